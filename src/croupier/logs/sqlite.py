"""The SQLite Log, the embedded default.

One writer thread owns the only write connection and group-commits: every append that
arrives while a transaction is running joins the next one, so a burst of publishes costs one
commit instead of one each. Offsets come from the writer's own cache of each channel's top,
which is authoritative because no one else writes. Reads run on a small pool of read
connections; WAL mode lets them proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

from ..errors import Unavailable
from ..events import Event, History, Position
from .base import IDEMPOTENCY_WINDOW, Append, Appended, Retention, new_epoch

__all__ = ["SQLiteLog"]

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS channels (
        name TEXT PRIMARY KEY, epoch TEXT NOT NULL, top INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
        channel TEXT NOT NULL, offset INTEGER NOT NULL, type TEXT NOT NULL,
        data BLOB NOT NULL, ts TEXT NOT NULL, created REAL NOT NULL,
        PRIMARY KEY (channel, offset)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS idempotency (
        channel TEXT NOT NULL, key TEXT NOT NULL, offset INTEGER NOT NULL,
        created REAL NOT NULL, PRIMARY KEY (channel, key)) WITHOUT ROWID""",
]

_MAX_BATCH = 20_000  # appends folded into one transaction at most
_Job = tuple[Sequence[Append], asyncio.Future[list[Appended]], asyncio.AbstractEventLoop]


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a file path."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("?", 1)[0]
    return rest[1:] if rest.startswith("/") else rest


def synchronous_from_url(url: str) -> str:
    """The ``synchronous`` query parameter of a ``sqlite://`` URL (default ``NORMAL``)."""
    synchronous = "NORMAL"
    if "?" in url:
        for part in url.split("?", 1)[1].split("&"):
            key, _, value = part.partition("=")
            if key == "synchronous":
                synchronous = value
    return synchronous


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    # Fewer, larger checkpoints: the writer commits often and in bursts.
    conn.execute("PRAGMA wal_autocheckpoint=4000")
    conn.execute("PRAGMA cache_size=-32000")
    return conn


def _resolve(loop: asyncio.AbstractEventLoop, done: list[tuple[Any, Any, bool]]) -> None:
    for fut, value, failed in done:
        if fut.done():
            continue
        if failed:
            fut.set_exception(value)
        else:
            fut.set_result(value)


class SQLiteLog:
    """Args:
    path: the database file.
    synchronous: SQLite's ``synchronous`` pragma. ``NORMAL`` (the default) survives a
        killed process; ``FULL`` also survives a power cut, at a cost per commit.
    """

    def __init__(self, path: str, *, synchronous: str = "NORMAL", readers: int = 2) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = path
        self._sync = synchronous.upper()
        self._readers = readers
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._epoch = ""
        self._tops: dict[str, tuple[int, str]] = {}

    @classmethod
    def from_url(cls, url: str) -> SQLiteLog:
        return cls(path_from_url(url), synchronous=synchronous_from_url(url))

    async def __aenter__(self) -> Self:
        try:
            conn = _connect(self.path, self._sync)
        except sqlite3.Error as exc:
            raise Unavailable(
                f"cannot open the SQLite log at {self.path!r}: {exc} (sqlite:///relative.db, "
                "sqlite:////absolute/path.db)"
            ) from exc
        for statement in SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row is None:
            self._epoch = new_epoch()
            conn.execute("INSERT INTO meta(key, value) VALUES ('epoch', ?)", (self._epoch,))
        else:
            self._epoch = row[0]
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="croupier-read")
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="croupier-write", daemon=True
        )
        self._writer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    # -- writing ---------------------------------------------------------------------------

    async def append(self, items: Sequence[Append]) -> list[Appended]:
        if self._writer is None:
            raise Unavailable("the log is closed")
        if not items:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Appended]] = loop.create_future()
        self._queue.put((items, fut, loop))
        return await fut

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                jobs = [job]
                count = len(job[0])
                stop = False
                while count < _MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    jobs.append(more)
                    count += len(more[0])
                self._commit(conn, jobs)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, bool]]] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = self._apply(conn, [items for items, _, _ in jobs])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                self._tops.clear()  # the cache may hold offsets that were rolled back
                raise
            for (_, fut, loop), result in zip(jobs, results, strict=True):
                by_loop.setdefault(loop, []).append((fut, result, False))
        except Exception as exc:
            error = Unavailable(f"the log could not store the events: {exc}")
            for _, fut, loop in jobs:
                by_loop.setdefault(loop, []).append((fut, error, True))
        for loop, done in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, loop, done)

    def _top(self, conn: sqlite3.Connection, channel: str) -> tuple[int, str]:
        top = self._tops.get(channel)
        if top is None:
            row = conn.execute(
                "SELECT top, epoch FROM channels WHERE name=?", (channel,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO channels(name, epoch, top) VALUES (?, ?, 0)",
                    (channel, self._epoch),
                )
                top = (0, self._epoch)
            else:
                top = (row[0], row[1])
            self._tops[channel] = top
        return top

    def _apply(
        self, conn: sqlite3.Connection, batches: list[Sequence[Append]]
    ) -> list[list[Appended]]:
        now = time.time()
        rows: list[tuple[str, int, str, bytes, str, float]] = []
        keys: list[tuple[str, str, int, float]] = []
        pending_keys: dict[tuple[str, str], Event] = {}
        results: list[list[Appended]] = []
        tops = self._tops
        add_row = rows.append
        for items in batches:
            out: list[Appended] = []
            for item in items:
                channel = item.channel
                key = item.idempotency_key
                if key is not None:
                    seen = pending_keys.get((channel, key)) or self._seen(conn, channel, key, now)
                    if seen is not None:
                        out.append(Appended(seen, duplicate=True))
                        continue
                offset, epoch = tops.get(channel) or self._top(conn, channel)
                offset += 1
                tops[channel] = (offset, epoch)
                event = Event(channel, item.type, item.payload, item.ts, offset, epoch)
                add_row((channel, offset, item.type, item.payload, item.ts, now))
                if key is not None:
                    pending_keys[(channel, key)] = event
                    keys.append((channel, key, offset, now))
                out.append(Appended(event))
            results.append(out)
        conn.executemany(
            "INSERT INTO events(channel, offset, type, data, ts, created) VALUES (?,?,?,?,?,?)",
            rows,
        )
        if keys:
            conn.executemany(
                "INSERT OR REPLACE INTO idempotency(channel, key, offset, created) "
                "VALUES (?,?,?,?)",
                keys,
            )
        touched = {r[0] for r in rows}
        conn.executemany(
            "UPDATE channels SET top=? WHERE name=?", [(self._tops[c][0], c) for c in touched]
        )
        return results

    def _seen(self, conn: sqlite3.Connection, channel: str, key: str, now: float) -> Event | None:
        row = conn.execute(
            "SELECT offset, created FROM idempotency WHERE channel=? AND key=?", (channel, key)
        ).fetchone()
        if row is None or now - row[1] >= IDEMPOTENCY_WINDOW:
            return None
        offset = row[0]
        epoch = self._top(conn, channel)[1]
        found = conn.execute(
            "SELECT type, data, ts FROM events WHERE channel=? AND offset=?", (channel, offset)
        ).fetchone()
        if found is None:  # trimmed already: the offset is still the answer
            return Event(channel, "", b"null", "", offset, epoch)
        return Event(channel, found[0], bytes(found[1]), found[2], offset, epoch)

    # -- reading ---------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self._sync)
            self._local.conn = conn
            with self._lock:
                self._read_conns.append(conn)
        return conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._pool is None:
            raise Unavailable("the log is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except sqlite3.Error as exc:
            raise Unavailable(f"the log could not be read: {exc}") from exc

    def _read(self, channel: str, after: int, limit: int) -> History:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            row = conn.execute(
                "SELECT top, epoch FROM channels WHERE name=?", (channel,)
            ).fetchone()
            if row is None:
                return History((), Position(0, self._epoch), 1)
            top, epoch = row
            first_row = conn.execute(
                "SELECT MIN(offset) FROM events WHERE channel=?", (channel,)
            ).fetchone()
            first = first_row[0] if first_row[0] is not None else top + 1
            found = conn.execute(
                "SELECT offset, type, data, ts FROM events WHERE channel=? AND offset>? "
                "ORDER BY offset LIMIT ?",
                (channel, after, limit),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        events = tuple(Event(channel, t, bytes(d), ts, o, epoch) for o, t, d, ts in found)
        return History(events, Position(top, epoch), first)

    async def read(self, channel: str, after: int, limit: int) -> History:
        result: History = await self._run(self._read, channel, after, limit)
        return result

    def _position(self, channel: str) -> Position:
        row = (
            self._reader()
            .execute("SELECT top, epoch FROM channels WHERE name=?", (channel,))
            .fetchone()
        )
        return Position(row[0], row[1]) if row else Position(0, self._epoch)

    async def position(self, channel: str) -> Position:
        result: Position = await self._run(self._position, channel)
        return result

    def _channels(
        self, prefix: str, limit: int, after: str, contains: str
    ) -> list[tuple[str, Position]]:
        upper = prefix + "\U0010ffff"
        rows = (
            self._reader()
            .execute(
                "SELECT name, top, epoch FROM channels WHERE name >= ? AND name < ? "
                "AND name > ? AND instr(name, ?) > 0 ORDER BY name LIMIT ?",
                (prefix, upper, after, contains, limit),
            )
            .fetchall()
        )
        return [(n, Position(t, e)) for n, t, e in rows]

    async def channels(
        self, prefix: str, limit: int, *, after: str = "", contains: str = ""
    ) -> list[tuple[str, Position]]:
        result: list[tuple[str, Position]] = await self._run(
            self._channels, prefix, limit, after, contains
        )
        return result

    # -- retention -------------------------------------------------------------------------

    def _trim(self, retention: Retention, now: float) -> int:
        conn = _connect(self.path, self._sync)
        try:
            removed = 0
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_WINDOW,))
            for name, top in conn.execute("SELECT name, top FROM channels").fetchall():
                rule = retention(name)
                if rule is None:
                    continue
                size, ttl = rule
                cur = conn.execute(
                    "DELETE FROM events WHERE channel=? AND (offset<=? OR created<?)",
                    (name, top - size, now - ttl),
                )
                removed += cur.rowcount
            conn.execute("COMMIT")
            return removed
        finally:
            conn.close()

    async def trim(self, retention: Retention, now: float | None = None) -> int:
        result: int = await self._run(self._trim, retention, time.time() if now is None else now)
        return result
