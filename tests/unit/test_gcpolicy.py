"""The garbage collection policy: full collections skip what survived the last one, and
garbage cycles among the frozen objects are still reclaimed once the freeze is lifted."""

from __future__ import annotations

import gc
import weakref

from croupier.gcpolicy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector can free it


def test_survivors_are_frozen_and_their_cycles_reclaimed_after_a_thaw() -> None:
    now = [0.0]
    with GcPolicy(thaw_interval=10, clock=lambda: now[0]) as policy:
        young = weakref.ref(Node())
        gc.collect()
        assert young() is None  # new garbage cycles go as always
        assert policy.freezes == 1
        assert gc.get_objects(generation=2) == []  # survivors moved out of every walk

        kept = Node()
        ref = weakref.ref(kept)
        gc.collect()
        del kept  # now a garbage cycle among frozen objects
        gc.collect()
        assert ref() is not None  # frozen: not walked

        now[0] = 11.0
        gc.collect()  # lifts the freeze at its end
        assert policy.thaws == 1
        gc.collect()
        assert ref() is None
    assert policy._collected not in gc.callbacks
    assert gc.get_freeze_count() == 0
