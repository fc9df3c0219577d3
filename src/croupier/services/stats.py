"""Node statistics for the operator console: connections, channels and event rates.

Every node samples its own counters once a second and keeps the last two minutes in memory.
When it has peers (a broker other than ``local://``), it also writes its latest figures and
recent series to the services' database every few seconds, so ``GET /api/v1/stats`` on any
node lists every node that wrote lately: with PostgreSQL behind many nodes the console sees
them all, with no other channel between them. A single node never touches the database for
this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import msgspec
from aiohttp import web

from ..api.openapi import Operation, api_version
from ..api.toolkit import require_key, struct_response
from ..tasks import stop_task

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..storage import Database

__all__ = ["NodeReply", "NodeStats", "Sample", "StatsReply", "rates"]

log = logging.getLogger(__name__)

_MIGRATIONS = [
    [
        "CREATE TABLE IF NOT EXISTS croupier_nodes ("
        "node_id TEXT PRIMARY KEY, seen_ms BIGINT NOT NULL, doc TEXT NOT NULL)"
    ]
]
SERIES = 120  # samples kept (one a second)
SHARED = 60  # samples each node writes for the others
STALE = 15.0  # seconds after which a node that stopped writing is no longer listed


class Sample(msgspec.Struct, frozen=True):
    """One second of a node: when (ms since the epoch), events published and delivered per
    second, and open connections."""

    t: int
    published: float
    delivered: float
    connections: int


class NodeReply(msgspec.Struct, frozen=True):
    id: str
    address: str
    startedAt: int
    seenAt: int
    version: str
    rss: int  # bytes of memory resident
    cpu: float  # percent of one core over the last sample
    loopLagMs: float  # how late the event loop woke for the last sample
    connections: int
    subscriptions: int
    channels: int
    published: int
    delivered: int
    publishedPerSecond: float
    deliveredPerSecond: float
    series: list[Sample]


class StatsReply(msgspec.Struct, frozen=True):
    node: str
    nodes: list[NodeReply]
    connections: int
    subscriptions: int
    publishedPerSecond: float
    deliveredPerSecond: float


def rates(before: tuple[float, int, int], after: tuple[float, int, int]) -> tuple[float, float]:
    """Published and delivered per second between two (time, published, delivered) readings."""
    elapsed = after[0] - before[0]
    if elapsed <= 0:
        return 0.0, 0.0
    return (
        round(max(0, after[1] - before[1]) / elapsed, 2),
        round(max(0, after[2] - before[2]) / elapsed, 2),
    )


class NodeStats:
    """Samples this node; answers ``GET /api/v1/stats`` for every node.

    Args:
        interval: seconds between samples.
        share_every: samples between writes to the database.
    """

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        *,
        interval: float = 1.0,
        share_every: int = 2,
    ) -> None:
        self.gateway = gateway
        self.db = database
        self.interval = interval
        self.share_every = share_every
        self.id = gateway.node
        self.version = api_version()
        settings = gateway.settings
        self.address = f"{settings.host}:{settings.port}"
        self.started = int(time.time() * 1000)
        # With the local broker there is no other node to tell, nor to hear from.
        self.shared = not settings.broker_url.startswith("local:")
        self.series: deque[Sample] = deque(maxlen=SERIES)
        self._last = self._reading()
        self._cpu_at = (time.monotonic(), time.process_time())
        self.cpu = 0.0
        self.loop_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.db.migrate("node_stats", _MIGRATIONS)
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        with contextlib.suppress(Exception):
            await self.db.execute("DELETE FROM croupier_nodes WHERE node_id = $1", self.id)

    def _reading(self) -> tuple[float, int, int]:
        return (time.monotonic(), self.gateway.metrics.published, self.gateway.hub.delivered)

    def sample(self) -> Sample:
        """Take one sample of the counters now and keep it."""
        wall, cpu = time.monotonic(), time.process_time()
        if wall > self._cpu_at[0]:
            self.cpu = round(100 * (cpu - self._cpu_at[1]) / (wall - self._cpu_at[0]), 1)
        self._cpu_at = (wall, cpu)
        now = self._reading()
        published, delivered = rates(self._last, now)
        self._last = now
        sample = Sample(int(time.time() * 1000), published, delivered, self._connections())
        self.series.append(sample)
        return sample

    def _connections(self) -> int:
        return len(self.gateway.connections)

    def own(self) -> NodeReply:
        """This node's figures, as of now."""
        gateway = self.gateway
        last = self.series[-1] if self.series else Sample(self.started, 0.0, 0.0, 0)
        return NodeReply(
            id=self.id,
            address=self.address,
            startedAt=self.started,
            seenAt=int(time.time() * 1000),
            version=self.version,
            rss=_rss(),
            cpu=self.cpu,
            loopLagMs=round(self.loop_lag * 1000, 2),
            connections=self._connections(),
            subscriptions=sum(len(c.channels) for c in gateway.connections),
            channels=gateway.hub.channel_count,
            published=gateway.metrics.published,
            delivered=gateway.hub.delivered,
            publishedPerSecond=last.published,
            deliveredPerSecond=last.delivered,
            series=list(self.series),
        )

    async def _run(self) -> None:
        n = 0
        loop = asyncio.get_running_loop()
        while True:
            asleep = loop.time()
            await asyncio.sleep(self.interval)
            self.loop_lag = max(0.0, loop.time() - asleep - self.interval)
            self.sample()
            n += 1
            if self.shared and n % self.share_every == 0:
                try:
                    await self._share()
                except Exception:  # the database is down: the console shows this node only
                    log.warning("could not share node stats", exc_info=True)

    async def _share(self) -> None:
        own = self.own()
        doc = msgspec.structs.replace(own, series=own.series[-SHARED:])
        now = int(time.time() * 1000)
        await self.db.execute(
            "INSERT INTO croupier_nodes (node_id, seen_ms, doc) VALUES ($1, $2, $3) "
            "ON CONFLICT (node_id) DO UPDATE SET seen_ms = excluded.seen_ms, doc = excluded.doc",
            self.id,
            now,
            msgspec.json.encode(doc).decode(),
        )
        await self.db.execute(
            "DELETE FROM croupier_nodes WHERE seen_ms < $1", now - int(STALE * 1000) * 20
        )

    async def report(self) -> StatsReply:
        """Every node seen in the last ``STALE`` seconds, this one first and up to date."""
        own = self.own()
        nodes = [own]
        if not self.shared:
            return _totals(own.id, nodes)
        since = int(time.time() * 1000) - int(STALE * 1000)
        try:
            rows = await self.db.fetch(
                "SELECT doc FROM croupier_nodes WHERE seen_ms >= $1 AND node_id <> $2 "
                "ORDER BY node_id",
                since,
                self.id,
            )
        except Exception:
            log.warning("could not read other nodes' stats", exc_info=True)
            rows = []
        for row in rows:
            with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
                nodes.append(msgspec.json.decode(row["doc"], type=NodeReply))
        return _totals(own.id, nodes)

    async def _stats(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        return struct_response(await self.report())

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/stats", self._stats, allow_head=False)]

    @property
    def operations(self) -> Sequence[Operation]:
        return [
            Operation(
                "get",
                "/api/v1/stats",
                "node_stats",
                "Every node's connections, channels and event rates (for the console)",
                "meta",
                scope="admin",
                reply=StatsReply,
                reply_example=_EXAMPLE,
                errors=(401, 403),
            )
        ]


def _rss() -> int:
    """This process's resident memory in bytes (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def _totals(node: str, nodes: list[NodeReply]) -> StatsReply:
    return StatsReply(
        node=node,
        nodes=nodes,
        connections=sum(n.connections for n in nodes),
        subscriptions=sum(n.subscriptions for n in nodes),
        publishedPerSecond=round(sum(n.publishedPerSecond for n in nodes), 2),
        deliveredPerSecond=round(sum(n.deliveredPerSecond for n in nodes), 2),
    )


_NODE: dict[str, Any] = {
    "id": "n-3fa9c21b",
    "address": "127.0.0.1:8000",
    "startedAt": 1735732800000,
    "seenAt": 1735732860000,
    "version": "0.4.0",
    "rss": 73400320,
    "cpu": 12.5,
    "loopLagMs": 0.8,
    "connections": 42,
    "subscriptions": 97,
    "channels": 12,
    "published": 5120,
    "delivered": 48210,
    "publishedPerSecond": 85.0,
    "deliveredPerSecond": 812.5,
    "series": [{"t": 1735732860000, "published": 85.0, "delivered": 812.5, "connections": 42}],
}
_EXAMPLE: dict[str, Any] = {
    "node": "n-3fa9c21b",
    "nodes": [_NODE],
    "connections": 42,
    "subscriptions": 97,
    "publishedPerSecond": 85.0,
    "deliveredPerSecond": 812.5,
}
