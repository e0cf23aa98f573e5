"""The serving processes' heap: what they build at startup is kept out of the collector's way.

CPython's full (generation 2) collection walks every tracked object. Right after startup a
serving process holds about 90,000 (modules, FastAPI's routes and pydantic's schemas, the
services), and walking them took 55-95 ms each time on the benchmark machine, several times
a minute under load: those pauses were the slowest answers (the switch's p99 at 32
connections, 100 ms against a p50 of 30). Everything alive when startup ends is moved to the
permanent generation (``gc.freeze``), so a full collection walks only what was made since:
requests and caches. Garbage made before is collected first, so nothing is frozen that
could have been freed.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect, then freeze what survives (call once startup is over)."""
    gc.collect()
    gc.freeze()
