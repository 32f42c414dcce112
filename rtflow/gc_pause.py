"""`gc_paused()`: build a large structure without the cycle collector's pauses.

Loading or compiling a 50,000-test suite makes millions of small objects that all stay alive. Every
collection their allocation triggers walks all of them again and frees nothing: half the time of a load goes
there. The structures built under it hold no reference cycles that need collecting, and collection resumes
(if it was on) as soon as the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


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
