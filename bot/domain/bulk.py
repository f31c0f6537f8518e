"""Building something large at once (a report's ticket lines, a workbook's cells): Python's garbage collector paused
while it is built.

Every few hundred objects allocated, the collector looks for reference cycles, and each of its full passes walks
every object alive: building tens of thousands of rows then spends a third of its time in passes that find nothing
(the rows hold no cycles). Paused, the collector catches up at its next pass after the build.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_builds = 0  # builds under way (in any thread)
_resume = False  # whether the collector ran when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector paused inside the block (process-wide) and resumed when the last build under way ends,
    whether the builds nest or overlap (a workbook in a worker thread beside a report's lines); a collector that was
    already paused stays paused."""
    global _builds, _resume
    with _lock:
        if _builds == 0:
            _resume = gc.isenabled()
            gc.disable()
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if _builds == 0 and _resume:
                gc.enable()
