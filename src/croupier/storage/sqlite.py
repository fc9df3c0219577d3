"""The services' database on SQLite: one connection on a worker thread, calls serialised.

Transactions are serialised too (an asyncio lock around BEGIN IMMEDIATE … COMMIT), which is
what makes a read-then-write decision inside :meth:`SQLiteDatabase.transaction` safe.

The file is not the log's but one beside it (:func:`services_path`). SQLite has one writer
per file, and the log's writer thread commits up to a thousand times a second: a service's
statement waiting behind it sleeps in SQLite's busy handler (1, 2, 5 … up to 100 ms a try)
and can lose the race again and again. In one file, a notification's insert was seen waiting
660 ms at 1,000 notifications/s; in two, the writers never wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..errors import Unavailable
from ..logs.sqlite import path_from_url, synchronous_from_url
from .base import Row, apply_migrations

__all__ = ["SQLiteDatabase", "services_path"]

_PLACEHOLDER = re.compile(r"\$(\d+)")
_FOR_UPDATE = re.compile(r"\s+FOR\s+UPDATE\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _sqlite_sql(sql: str) -> str:
    # $1 -> ?1 (SQLite's numbered parameters); row locks are implied by the writer lock.
    return _FOR_UPDATE.sub("", _PLACEHOLDER.sub(r"?\1", sql))


def services_path(log_path: str) -> str:
    """The services' file beside the log's: ``data/croupier.db`` → ``data/croupier-services.db``."""
    if log_path == ":memory:" or log_path.startswith("file:"):
        return log_path
    path = Path(log_path)
    return str(path.with_name(f"{path.stem}-services{path.suffix or '.db'}"))


class _Tx:
    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        changed: int = await self._db._call(self._db._execute, sql, args)
        return changed

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._db._call(self._db._fetch, sql, args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db._call(self._db._executemany, sql, rows)


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = path
        self._sync = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._auto = _Tx(self)

    @classmethod
    def from_url(cls, url: str) -> SQLiteDatabase:
        """The services' database beside the log of ``url`` (same ``synchronous`` mode)."""
        return cls(services_path(path_from_url(url)), synchronous=synchronous_from_url(url))

    async def __aenter__(self) -> Self:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="croupier-db")
        loop = asyncio.get_running_loop()

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn

        try:
            self._conn = await loop.run_in_executor(self._pool, connect)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the services' database {self.path!r}: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            if self._conn is not None:
                conn = self._conn
                await asyncio.get_running_loop().run_in_executor(self._pool, conn.close)
            self._pool.shutdown(wait=True)
        self._conn = None
        self._pool = None

    # -- the worker thread -------------------------------------------------------------------

    def _execute(self, sql: str, args: Sequence[Any]) -> int:
        assert self._conn is not None
        return self._conn.execute(_sqlite_sql(sql), tuple(args)).rowcount

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        assert self._conn is not None
        return [dict(r) for r in self._conn.execute(_sqlite_sql(sql), tuple(args)).fetchall()]

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        assert self._conn is not None
        self._conn.executemany(_sqlite_sql(sql), [tuple(r) for r in rows])

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._pool is None:
            raise Unavailable("the services' database is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise Unavailable(f"the services' database failed: {exc}") from exc

    # -- the Database face ---------------------------------------------------------------------

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._auto.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._auto.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._auto.fetchrow(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._lock:
            await self._auto.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        async with self._lock:
            await self._auto.execute("BEGIN IMMEDIATE")
            try:
                yield self._auto
            except BaseException:
                await self._auto.execute("ROLLBACK")
                raise
            await self._auto.execute("COMMIT")

    async def migrate(self, component: str, steps: Sequence[Sequence[str]]) -> None:
        async with self.transaction() as tx:
            await apply_migrations(tx, component, steps)
