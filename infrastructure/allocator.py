"""Keep glibc's allocator from growing the service's memory under a long write load.

glibc gives each thread that allocates concurrently an arena of its own, up to eight per
core; a server with a pool of forty request threads ends up with many arenas, each keeping
freed memory it cannot hand to another. Measured with ``python -m bench.memory_soak``
(30,000 switches): resident memory still grew by about 25 bytes per switch in the second
half of the run with glibc's default, and by about 1 byte per switch (flat) with two arenas,
at no measurable cost in speed. ``MALLOC_ARENA_MAX`` set by the operator wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap this process's malloc arenas, and its future children's (through the environment
    glibc reads at start). Returns whether this process's allocator took the cap (False off
    glibc, or when the operator set ``MALLOC_ARENA_MAX`` themselves)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
