"""Benchmarks: run each with `python -m bench.<name> --help`; not part of the test suite."""
