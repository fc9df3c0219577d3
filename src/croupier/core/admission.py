"""How many new connections a node takes per second, and when to tell the others to return.

No I/O: the transports ask :meth:`Admission.admit` with the clock reading.

Rules:

* A token bucket: ``rate`` new connections a second, up to ``burst`` at once. A rate of 0
  admits everything.
* A refused client is told when to come back: its place in an imagined queue of the
  clients refused before it, at ``rate`` a second. The first refused in a storm are told
  1 s, later ones longer, so a storm far larger than one second's budget comes back spread
  over the time the budget needs, instead of all at once again. Clients add jitter on top.
* The queue drains with time: once it is empty a refusal is told 1 s again.
"""

from __future__ import annotations

import math

from .ratelimit import TokenBucket

__all__ = ["MAX_RETRY_AFTER", "Admission"]

MAX_RETRY_AFTER = 60  # seconds: the longest wait a client is told


class Admission:
    """Args:
    rate: new connections admitted per second (0: no limit).
    burst: how many may be admitted at once (0: one second's worth).
    now: the clock reading at start (seconds, monotonic).
    """

    __slots__ = ("_bucket", "_queue_until", "rate", "refused")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self._bucket = TokenBucket(rate, float(burst or max(1, math.ceil(rate))), now)
        self._queue_until = now
        self.refused = 0  # refusals so far (a metric)

    def admit(self, now: float) -> int | None:
        """Take one connection: ``None`` if admitted, else the seconds to wait (≥ 1)."""
        if self.rate <= 0 or self._bucket.take(now):
            return None
        self.refused += 1
        self._queue_until = max(self._queue_until, now) + 1.0 / self.rate
        return min(MAX_RETRY_AFTER, max(1, math.ceil(self._queue_until - now)))
