"""Tamper evidence and request context for the event log."""
