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


@contextmanager
def steady_heap() -> Iterator[None]:
    """Hide what is alive when the block starts (modules, the plan, providers, a simulator's set-up) from the
    collector until it ends.

    A full collection walks every tracked object; on a loaded process that is tens of milliseconds with the event
    loop stopped (63 ms measured in the middle of 100 concurrent barge-ins), which moves every time rtflow
    measures by that much: the barge-in's `audio_end_ms`, the yield, first-delta latencies. Frozen, the start-up
    heap is skipped, and a full pass walks only what was made since. Nothing is collected first (that pass would
    cost the same pause once, at start): garbage frozen with the rest is handed back with it at the end and
    collected then. A process whose heap is frozen already (a host's own freeze, or an outer block) is left as
    it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
