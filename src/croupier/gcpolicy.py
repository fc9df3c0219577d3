"""Garbage collection for a process that holds many long-lived connections.

CPython's full collection walks every object the collector tracks, and stops the event loop
while it does. With 10,000 casino player streams open a node tracks about 800,000 objects,
and one full collection took 0.2 to 0.6 s on a 2-core VM (``croupier bench notifications``):
every notification in flight waited that long. CPython runs a full collection whenever the
long-lived objects have grown by a quarter, so a node still taking on connections pays it
again and again.

The policy: after each full collection the survivors are frozen (:func:`gc.freeze`), which
moves them where no collection walks, so later full collections walk only what is newer.
Frozen objects are still freed by reference counting when they are dropped; only garbage
*cycles* among them would stay. To bound that, the freeze is lifted every
``thaw_interval`` seconds, and the next full collection walks everything once (one long
pause per interval instead of one per quarter of growth).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GcPolicy"]


class GcPolicy:
    """Use as ``with GcPolicy():`` around the server's life.

    Args:
        thaw_interval: seconds between two lifts of the freeze.
        clock: monotonic seconds, for tests.
    """

    def __init__(
        self, thaw_interval: float = 900.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thaw_interval = thaw_interval
        self._clock = clock
        self._thawed_at = clock()
        self.freezes = 0
        self.thaws = 0

    def __enter__(self) -> GcPolicy:
        gc.freeze()  # what importing and starting made: it lives as long as the process
        gc.callbacks.append(self._collected)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._collected in gc.callbacks:
            gc.callbacks.remove(self._collected)
        gc.unfreeze()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        now = self._clock()
        if now - self._thawed_at >= self.thaw_interval:
            # The next full collection walks everything, frozen cycles included.
            self._thawed_at = now
            gc.unfreeze()
            self.thaws += 1
        else:
            gc.freeze()
            self.freezes += 1
