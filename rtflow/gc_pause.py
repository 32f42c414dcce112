"""Keeping the cycle collector's pauses out of the way.

`gc_paused()`: loading or compiling a 50,000-test suite makes millions of small objects that all stay alive.
Every collection their allocation triggers walks all of them again and frees nothing: half the time of a load
goes there. The structures built under it hold no reference cycles that need collecting, and collection resumes
(if it was on) as soon as the block ends.

`steady_heap()`: while turns are being timed (a run, a simulator serving), a full collection must not stop the
event loop for tens of milliseconds.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused", "steady_heap"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cycle collector off inside the block (reentrant: an inner block leaves it as the outer one set it)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


_heap_lock = threading.Lock()
_heap_holders = 0
"""How many `steady_heap` blocks are open in this process (they may overlap without nesting)."""
_heap_frozen_by_us = False
"""Whether the freeze they share is theirs (False: the heap was frozen before the first of them opened)."""


@contextmanager
def steady_heap() -> Iterator[None]:
    """Hide what is alive when the block starts (modules, the plan, providers, a simulator's set-up) from the
    collector until it ends.

    A full collection walks every tracked object; on a loaded process that is tens of milliseconds with the event
    loop stopped (63 ms measured in the middle of 100 concurrent barge-ins), which moves every time rtflow
    measures by that much: the barge-in's `audio_end_ms`, the yield, first-delta latencies. Frozen, the start-up
    heap is skipped, and a full pass walks only what was made since. Nothing is collected first (that pass would
    cost the same pause once, at start): garbage frozen with the rest is handed back with it at the end and
    collected then.

    Blocks may overlap in one process (`rtflow run --sim`: the simulator's, then the run's; two runs at once):
    each one that opens freezes what it finds as well, and the heap is handed back when the last one ends. A heap
    that was frozen before the first opened (by the host) is left as it is, and left frozen.
    """
    global _heap_holders, _heap_frozen_by_us
    with _heap_lock:
        if _heap_holders == 0:
            _heap_frozen_by_us = gc.get_freeze_count() == 0
        if _heap_frozen_by_us:
            gc.freeze()
        _heap_holders += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_holders -= 1
            if _heap_holders == 0 and _heap_frozen_by_us:
                _heap_frozen_by_us = False
                gc.unfreeze()
