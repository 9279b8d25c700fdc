"""Every worker's start-up objects are frozen out of the collector's way, garbage
first, and the first generation collects less often (shared.app.settle_gc)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.app import GC_THRESHOLD_0, settle_gc


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the session collects as before
    gc.set_threshold(*threshold)


def test_settle_gc_collects_garbage_then_freezes_the_rest(unfrozen: None) -> None:
    gc.set_threshold(700, *gc.get_threshold()[1:])
    garbage = _Node()
    dead = weakref.ref(garbage)
    del garbage
    kept = _Node()
    assert dead() is not None and gc.get_freeze_count() == 0
    settle_gc()
    assert dead() is None  # collected, not frozen
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # frozen: no collection walks it
    assert gc.get_threshold()[0] == GC_THRESHOLD_0
