"""Pausing Python's cyclic garbage collector around bulk work.

A cycle over the fleet allocates millions of small objects (rows, totals, looks) that reference counting frees on
its own, none of them in reference cycles. The cyclic collector still runs every 700 allocations and, as the
heap grows, walks ever more live objects each time: a tenth of an evaluation cycle's time at 3,000 releases, and
growing with the fleet. Pausing it for the cycle leaves memory as it would be (refcounting still frees everything
else), and whatever cycles arise are collected once it is back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; it is enabled again after, if it was on before (a nested
    or concurrent pause leaves it to the outermost one)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
