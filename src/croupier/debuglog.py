"""The live event log an operator watches in the console: what happened, on which node.

Rules:

* Nothing is recorded while nobody watches. Every emission point is guarded by
  ``if gateway.debug.watching:``, one attribute read, so an unwatched node pays nothing
  else on its hot path.
* While someone watches, each node records at most :data:`RATE` records a second (bursts of
  :data:`BURST`) of each of two classes: publishes (:data:`BULK`, as many as the traffic)
  and everything else (connections, refusals, slow consumers…), so a flood of publishes
  never crowds out the record that says why a player was cut off. What the cap leaves out
  is counted, and the next record that gets through says how many were skipped, so a busy
  node is never slowed by its own log and the operator knows the log is sampled.
* Each watcher holds at most :data:`BACKLOG` records not yet read; a watcher that falls
  further behind loses the oldest and is told how many.
* The log spans every node: a node with a watcher says so to the others (see
  :class:`~croupier.cluster.Cluster`), and they forward their records to it in batches
  while the lease lasts.
* A record never holds a token, an API key or a webhook secret: emission points pass only
  names, ids, counts and codes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .core.ratelimit import TokenBucket

__all__ = ["BACKLOG", "BULK", "BURST", "KINDS", "RATE", "DebugLog", "Record", "Watcher"]

RATE = 200.0  # records per second per node while watched
BURST = 400
BACKLOG = 2000  # records a watcher may hold unread
BULK = frozenset({"published"})  # kinds with a rate cap of their own
FORWARD_EVERY = 0.1  # seconds between batches forwarded to watching nodes
FORWARD_MAX = 100  # records per forwarded batch (each batch must fit a NOTIFY payload)

Record = dict[str, Any]

# The kinds of record, for the console's filter and the OpenAPI document.
KINDS = (
    "connection.opened",
    "connection.closed",
    "connection.refused",
    "authenticated",
    "subscribed",
    "subscribe.refused",
    "unsubscribed",
    "resumed",
    "published",
    "slow_consumer",
    "idle_timeout",
    "auth.failed",
    "rate_limited",
    "disconnect.requested",
    "webhook.delivered",
    "webhook.failed",
)


class Watcher:
    """One reader of the log: a bounded queue of records, newest last."""

    __slots__ = ("_wake", "records", "skipped")

    def __init__(self) -> None:
        self.records: deque[Record] = deque(maxlen=BACKLOG)
        self.skipped = 0  # records lost because this watcher fell behind
        self._wake = asyncio.Event()

    def put(self, record: Record) -> None:
        if len(self.records) == BACKLOG:
            self.skipped += 1
        self.records.append(record)
        self._wake.set()

    async def take(self, wait: float) -> list[Record]:
        """Every record queued, waiting up to ``wait`` seconds for the first."""
        if not self.records:
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                return []
        out = list(self.records)
        self.records.clear()
        return out


class DebugLog:
    """This node's side of the live log.

    Args:
        node: this node's id, put on every record.
        rate: records per second this node records while watched; ``burst`` above it.
    """

    def __init__(self, node: str, *, rate: float = RATE, burst: int = BURST) -> None:
        self.node = node
        self.watching = False
        self.skipped = 0  # left out by the rate cap since start
        self._unsaid = 0  # left out since the last record that got through
        # One token bucket per class: bulk kinds, then the rest.
        now = time.monotonic()
        self._buckets = (TokenBucket(rate, burst, now), TokenBucket(rate, burst, now))
        self._watchers: set[Watcher] = set()
        self._remote: dict[str, float] = {}  # node -> until when it watches (monotonic)
        self._remote_check: asyncio.TimerHandle | None = None
        self._outgoing: list[Record] = []
        self._flush: asyncio.TimerHandle | None = None
        self._forward: Callable[[list[Record]], None] | None = None
        self._on_watchers: Callable[[bool], None] | None = None

    # -- emitting --------------------------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        """Record one thing that happened (call it only ``if debug.watching``).

        ``fields`` must be JSON-serialisable and must not hold a secret.
        """
        if not self._buckets[0 if kind in BULK else 1].take(time.monotonic()):
            self.skipped += 1
            self._unsaid += 1
            return
        record: Record = {"t": int(time.time() * 1000), "node": self.node, "kind": kind}
        record.update(fields)
        if self._unsaid:
            record["skipped"] = self._unsaid  # left out by the rate cap just before this one
            self._unsaid = 0
        for watcher in self._watchers:
            watcher.put(record)
        if self._remote and self._forward is not None:
            self._outgoing.append(record)
            if self._flush is None:
                loop = asyncio.get_running_loop()
                self._flush = loop.call_later(FORWARD_EVERY, self._send_batch)

    def _send_batch(self) -> None:
        self._flush = None
        outgoing, self._outgoing = self._outgoing, []
        if self._forward is None:
            return
        for i in range(0, len(outgoing), FORWARD_MAX):
            self._forward(outgoing[i : i + FORWARD_MAX])

    # -- watching --------------------------------------------------------------------------

    def watch(self) -> Watcher:
        """A new watcher; recording starts (on every node) until it is :meth:`unwatch`-ed."""
        watcher = Watcher()
        first = not self._watchers
        self._watchers.add(watcher)
        self._update()
        if first and self._on_watchers is not None:
            self._on_watchers(True)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        if watcher not in self._watchers:
            return
        self._watchers.discard(watcher)
        self._update()
        if not self._watchers and self._on_watchers is not None:
            self._on_watchers(False)

    @property
    def watchers(self) -> int:
        """Watchers on this node."""
        return len(self._watchers)

    def received(self, records: list[Record]) -> None:
        """Records another node forwarded: hand them to this node's watchers."""
        for record in records:
            if record.get("node") == self.node:
                continue  # this node's own records reached its watchers directly
            for watcher in self._watchers:
                watcher.put(record)

    def connect(
        self,
        forward: Callable[[list[Record]], None],
        on_watchers: Callable[[bool], None],
    ) -> None:
        """Wire the log to the other nodes: ``forward`` sends a batch of records to the
        watching nodes; ``on_watchers`` is told when this node starts or stops having
        watchers (to announce a lease)."""
        self._forward = forward
        self._on_watchers = on_watchers

    def remote_lease(self, node: str, seconds: float) -> None:
        """Node ``node`` watches for the next ``seconds`` (0: it stopped): record and
        forward to it until then."""
        if node == self.node:
            return
        if seconds > 0:
            self._remote[node] = time.monotonic() + seconds
        else:
            self._remote.pop(node, None)
        self._update()

    def _update(self) -> None:
        now = time.monotonic()
        for node, until in list(self._remote.items()):
            if until <= now:
                del self._remote[node]
        self.watching = bool(self._watchers) or bool(self._remote)
        if self._remote_check is not None:
            self._remote_check.cancel()
            self._remote_check = None
        if self._remote:
            loop = asyncio.get_running_loop()
            delay = min(self._remote.values()) - now + 0.01
            self._remote_check = loop.call_later(delay, self._update)

    def close(self) -> None:
        for handle in (self._flush, self._remote_check):
            if handle is not None:
                handle.cancel()
        self._flush = self._remote_check = None
        self._forward = None
        self._on_watchers = None
