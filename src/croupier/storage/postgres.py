"""The services' database on PostgreSQL (asyncpg pool)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import asyncpg

from ..errors import Unavailable
from ..logs.postgres import PostgresLog
from .base import Row, apply_migrations

__all__ = ["PostgresDatabase"]

_LOCK = 0x43524F57  # advisory lock: one node migrates at a time

_FAILURES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)


def _count(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Tx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        return _count(await self._conn.execute(sql, *args))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [dict(r) for r in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row = await self._conn.fetchrow(sql, *args)
        return None if row is None else dict(row)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.dsn = PostgresLog.from_url(url).dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Self:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._pool_size, command_timeout=30, timeout=10
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach PostgreSQL for the services: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise Unavailable("the services' database is closed")
        try:
            async with self._pool.acquire(timeout=10) as conn:
                yield conn
        except _FAILURES as exc:
            raise Unavailable(f"the services' database failed: {exc}") from exc

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._conn() as conn:
            return await _Tx(conn).execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn() as conn:
            return await _Tx(conn).fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._conn() as conn:
            return await _Tx(conn).fetchrow(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._conn() as conn:
            await _Tx(conn).executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        async with self._conn() as conn, conn.transaction():
            yield _Tx(conn)

    async def migrate(self, component: str, steps: Sequence[Sequence[str]]) -> None:
        async with self._conn() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
            try:
                async with conn.transaction():
                    await apply_migrations(_Tx(conn), component, steps)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
