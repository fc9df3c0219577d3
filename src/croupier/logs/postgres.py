"""The PostgreSQL Log, for many nodes.

Offsets come from the channel's row: appending ``n`` events to a channel runs
``top = top + n`` on it inside the same transaction that inserts the events, so concurrent
appenders (on any node) queue on that row lock and offsets stay gap-free and strictly
increasing; a rolled-back transaction takes its offsets with it. Rows are always locked in
the same order (idempotency keys, then channels, each sorted) so two batches cannot
deadlock.

Each node group-commits: appends that arrive while a transaction runs are folded into the
next one, and a few writer tasks keep several transactions in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg

from ..errors import Unavailable
from ..events import Event, History, Position
from .base import IDEMPOTENCY_WINDOW, Append, Appended, Retention, new_epoch
from .postgres_schema import migrate

__all__ = ["PostgresLog"]

log = logging.getLogger(__name__)

_MAX_BATCH = 5_000
_TRIM_LOCK = 0x43524F56
_Job = tuple[Sequence[Append], asyncio.Future[list[Appended]]]

_CLAIM_KEYS = """
INSERT INTO croupier_idempotency AS i (channel, key, "offset", created)
SELECT c, k, 0, $3 FROM unnest($1::text[], $2::text[]) AS t(c, k) ORDER BY c, k
ON CONFLICT (channel, key) DO UPDATE SET "offset" = 0, created = EXCLUDED.created
    WHERE i.created < $4
RETURNING channel, key
"""
_SEEN_KEYS = """
SELECT i.channel, i.key, i."offset", e.type, e.data, e.ts, ch.epoch
FROM unnest($1::text[], $2::text[]) AS t(c, k)
JOIN croupier_idempotency i ON i.channel = t.c AND i.key = t.k
JOIN croupier_channels ch ON ch.name = i.channel
LEFT JOIN croupier_events e ON e.channel = i.channel AND e."offset" = i."offset"
"""
# Reserve offsets (one row update per channel, in name order) and insert the events in one
# statement, so a batch without idempotency keys is a single round trip in autocommit.
_STORE = """
WITH counts AS (
    SELECT n, c FROM unnest($1::text[], $2::bigint[]) AS t(n, c)
), reserved AS (
    INSERT INTO croupier_channels AS ch (name, epoch, top)
    SELECT n, $3, c FROM counts ORDER BY n
    ON CONFLICT (name) DO UPDATE SET top = ch.top + EXCLUDED.top
    RETURNING name, top, epoch
), numbered AS (
    SELECT e.c, r.top - counts.c + e.i AS o, e.t, e.d, e.ts, e.k
    FROM unnest($4::text[], $5::bigint[], $6::text[], $7::bytea[], $8::text[], $9::text[])
        AS e(c, i, t, d, ts, k)
    JOIN reserved r ON r.name = e.c
    JOIN counts ON counts.n = e.c
), stored AS (
    INSERT INTO croupier_events (channel, "offset", type, data, ts, created)
    SELECT c, o, t, d, ts, $10 FROM numbered
), keyed AS (
    UPDATE croupier_idempotency AS i SET "offset" = numbered.o
    FROM numbered WHERE numbered.k IS NOT NULL AND i.channel = numbered.c AND i.key = numbered.k
)
SELECT name, top, epoch FROM reserved
"""


def _options(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    ours = {"migrate", "writers", "pool_size"}
    query = parse_qsl(parts.query)
    options = {k: v for k, v in query if k in ours}
    rest = "&".join(f"{k}={v}" for k, v in query if k not in ours)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), options


class PostgresLog:
    """Args:
    dsn: a ``postgresql://`` URL. Croupier's own query options: ``migrate=false`` (skip
        migrations on start), ``writers=N`` (concurrent writer transactions, default 4),
        ``pool_size=N`` (connections, default 10).
    """

    def __init__(
        self, dsn: str, *, migrate: bool = True, writers: int = 4, pool_size: int = 10
    ) -> None:
        self.dsn = dsn
        self._migrate = migrate
        self._writers = writers
        self._pool_size = max(pool_size, writers + 2)
        self._pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch = ""

    @classmethod
    def from_url(cls, url: str) -> PostgresLog:
        dsn, options = _options(url)
        return cls(
            dsn,
            migrate=options.get("migrate", "true").lower() not in ("0", "false", "no"),
            writers=int(options.get("writers", 4)),
            pool_size=int(options.get("pool_size", 10)),
        )

    async def __aenter__(self) -> Self:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=30,
                timeout=10,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach PostgreSQL: {exc}") from exc
        async with self._pool.acquire() as conn:
            if self._migrate:
                applied = await migrate(conn)
                if applied:
                    log.info("applied migrations %s", applied)
            self._epoch = await self._database_epoch(conn)
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(self._writers)]
        return self

    async def _database_epoch(self, conn: asyncpg.Connection) -> str:
        try:
            await conn.execute(
                "INSERT INTO croupier_meta(key, value) VALUES ('epoch', $1) "
                "ON CONFLICT (key) DO NOTHING",
                new_epoch(),
            )
        except asyncpg.UndefinedTableError:
            raise Unavailable(
                "the database has no Croupier schema: run 'croupier migrate'"
            ) from None
        value: str = await conn.fetchval("SELECT value FROM croupier_meta WHERE key='epoch'")
        return value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(Unavailable("the log is closing"))
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("the log is closed")
        return self._pool

    # -- writing ---------------------------------------------------------------------------

    async def append(self, items: Sequence[Append]) -> list[Appended]:
        if not self._tasks:
            raise Unavailable("the log is closed")
        if not items:
            return []
        fut: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((items, fut))
        return await fut

    async def _write_loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            count = len(jobs[0][0])
            while count < _MAX_BATCH and not self._queue.empty():
                job = self._queue.get_nowait()
                jobs.append(job)
                count += len(job[0])
            batches = [items for items, _ in jobs]
            keyed = any(item.idempotency_key is not None for items in batches for item in items)
            try:
                async with self.pool.acquire(timeout=10) as conn:
                    if keyed:
                        async with conn.transaction():
                            results = await self._apply(conn, batches)
                    else:
                        results = await self._apply(conn, batches)
            except asyncio.CancelledError:
                for _, fut in jobs:
                    if not fut.done():
                        fut.set_exception(Unavailable("the log is closing"))
                raise
            except Exception as exc:
                error = Unavailable(f"the log could not store the events: {exc}")
                for _, fut in jobs:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for (_, fut), result in zip(jobs, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _apply(
        self, conn: asyncpg.Connection, batches: list[Sequence[Append]]
    ) -> list[list[Appended]]:
        now = time.time()
        flat = [item for items in batches for item in items]
        # 1. Claim idempotency keys; a key claimed elsewhere within the window is a duplicate.
        first_use: dict[tuple[str, str], int] = {}
        for i, item in enumerate(flat):
            if item.idempotency_key is not None:
                first_use.setdefault((item.channel, item.idempotency_key), i)
        seen: dict[tuple[str, str], Event] = {}
        if first_use:
            keys = sorted(first_use)
            claimed = await conn.fetch(
                _CLAIM_KEYS,
                [c for c, _ in keys],
                [k for _, k in keys],
                now,
                now - IDEMPOTENCY_WINDOW,
            )
            mine = {(r["channel"], r["key"]) for r in claimed}
            taken = [k for k in keys if k not in mine]
            if taken:
                for r in await conn.fetch(_SEEN_KEYS, [c for c, _ in taken], [k for _, k in taken]):
                    data = bytes(r["data"]) if r["data"] is not None else b"null"
                    seen[(r["channel"], r["key"])] = Event(
                        r["channel"], r["type"] or "", data, r["ts"] or "", r["offset"], r["epoch"]
                    )
        # 2. Reserve offsets: one row update per channel.
        fresh: list[int] = []
        counts: dict[str, int] = {}
        for i, item in enumerate(flat):
            key = item.idempotency_key
            if key is not None and (
                (item.channel, key) in seen or first_use[(item.channel, key)] != i
            ):
                continue
            fresh.append(i)
            counts[item.channel] = counts.get(item.channel, 0) + 1
        events: dict[int, Event] = {}
        if counts:
            names = sorted(counts)
            index: dict[str, int] = {}
            columns: list[list[Any]] = [[], [], [], [], [], []]
            for i in fresh:
                item = flat[i]
                index[item.channel] = index.get(item.channel, 0) + 1
                row = (item.channel, index[item.channel], item.type, item.payload, item.ts)
                for column, value in zip(columns, (*row, item.idempotency_key), strict=True):
                    column.append(value)
            reserved = await conn.fetch(
                _STORE, names, [counts[n] for n in names], self._epoch, *columns, now
            )
            next_offset = {
                r["name"]: (r["top"] - counts[r["name"]] + 1, r["epoch"]) for r in reserved
            }
            for i in fresh:
                item = flat[i]
                offset, epoch = next_offset[item.channel]
                next_offset[item.channel] = (offset + 1, epoch)
                events[i] = Event(item.channel, item.type, item.payload, item.ts, offset, epoch)
        # 3. Answer each job in order.
        results: list[list[Appended]] = []
        i = 0
        for items in batches:
            out = []
            for item in items:
                if i in events:
                    out.append(Appended(events[i]))
                else:
                    assert item.idempotency_key is not None
                    used = (item.channel, item.idempotency_key)
                    original = seen.get(used) or events[first_use[used]]
                    out.append(Appended(original, duplicate=True))
                i += 1
            results.append(out)
        return results

    # -- reading ---------------------------------------------------------------------------

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            async with self.pool.acquire(timeout=10) as conn:
                rows: list[asyncpg.Record] = await conn.fetch(query, *args)
                return rows
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise Unavailable(f"the log could not be read: {exc}") from exc

    async def read(self, channel: str, after: int, limit: int) -> History:
        # Events first, then the channel's top: the top read second is at least the last
        # event read, so the History never claims less than it holds.
        found = await self._fetch(
            'SELECT "offset", type, data, ts FROM croupier_events '
            'WHERE channel = $1 AND "offset" > $2 ORDER BY "offset" LIMIT $3',
            channel,
            after,
            limit,
        )
        head = await self._fetch(
            'SELECT top, epoch, (SELECT min("offset") FROM croupier_events WHERE channel = $1) '
            "AS first FROM croupier_channels WHERE name = $1",
            channel,
        )
        if not head:
            return History((), Position(0, self._epoch), 1)
        top, epoch, first = head[0]["top"], head[0]["epoch"], head[0]["first"]
        events = tuple(
            Event(channel, r["type"], bytes(r["data"]), r["ts"], r["offset"], epoch) for r in found
        )
        return History(events, Position(top, epoch), top + 1 if first is None else first)

    async def position(self, channel: str) -> Position:
        rows = await self._fetch(
            "SELECT top, epoch FROM croupier_channels WHERE name = $1", channel
        )
        return Position(rows[0]["top"], rows[0]["epoch"]) if rows else Position(0, self._epoch)

    async def channels(
        self, prefix: str, limit: int, *, after: str = "", contains: str = ""
    ) -> list[tuple[str, Position]]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._fetch(
            "SELECT name, top, epoch FROM croupier_channels WHERE name LIKE $1 "
            "AND name > $3 AND strpos(name, $4) > 0 ORDER BY name LIMIT $2",
            pattern,
            limit,
            after,
            contains,
        )
        return [(r["name"], Position(r["top"], r["epoch"])) for r in rows]

    # -- retention -------------------------------------------------------------------------

    async def trim(self, retention: Retention, now: float | None = None) -> int:
        now = time.time() if now is None else now
        try:
            async with self.pool.acquire(timeout=10) as conn, conn.transaction():
                # One node trims at a time; the others skip this round.
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _TRIM_LOCK):
                    return 0
                await conn.execute(
                    "DELETE FROM croupier_idempotency WHERE created < $1",
                    now - IDEMPOTENCY_WINDOW,
                )
                names: list[str] = []
                floors: list[int] = []
                cutoffs: list[float] = []
                for row in await conn.fetch("SELECT name, top FROM croupier_channels"):
                    rule = retention(row["name"])
                    if rule is None:
                        continue
                    names.append(row["name"])
                    floors.append(row["top"] - rule[0])
                    cutoffs.append(now - rule[1])
                if not names:
                    return 0
                status: str = await conn.execute(
                    "DELETE FROM croupier_events e USING unnest($1::text[], $2::bigint[], "
                    "$3::float8[]) AS t(c, o, cr) "
                    'WHERE e.channel = t.c AND (e."offset" <= t.o OR e.created < t.cr)',
                    names,
                    floors,
                    cutoffs,
                )
                return int(status.split()[-1])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise Unavailable(f"the log could not be trimmed: {exc}") from exc
