"""The Database seam the services store their state through."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = ["Database", "Row", "Transaction", "apply_migrations"]

Row = dict[str, Any]


class Transaction(Protocol):
    """Statements run inside one transaction: all of them take effect, or none."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(Transaction, Protocol):
    """Use as ``async with database:``. Outside :meth:`transaction`, each call is its own
    transaction.

    Write SQL in PostgreSQL's dialect with ``$1`` placeholders, restricted to what SQLite
    also accepts (``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``, ``BIGINT``, ``TEXT``,
    ``DOUBLE PRECISION``, ``BOOLEAN`` as 0/1 …). JSON goes in ``TEXT`` columns.
    """

    dialect: str  # "sqlite" or "postgres"

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction that holds the rows it writes until it ends.

        On SQLite transactions run one at a time; on PostgreSQL use ``SELECT … FOR UPDATE``
        for the rows a decision depends on.
        """
        ...

    async def migrate(self, component: str, steps: Sequence[Sequence[str]]) -> None:
        """Apply ``steps`` (each a list of statements) not yet applied for ``component``.

        Step ``i`` is version ``i + 1``; versions already recorded are skipped. Append new
        steps; never edit applied ones.
        """
        ...


async def apply_migrations(tx: Transaction, component: str, steps: Sequence[Sequence[str]]) -> None:
    """The body of :meth:`Database.migrate`, inside the transaction (and lock) it runs in."""
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS croupier_service_migrations ("
        "component TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (component, version))"
    )
    done = {
        r["version"]
        for r in await tx.fetch(
            "SELECT version FROM croupier_service_migrations WHERE component = $1", component
        )
    }
    for version, statements in enumerate(steps, start=1):
        if version in done:
            continue
        for statement in statements:
            await tx.execute(statement)
        await tx.execute(
            "INSERT INTO croupier_service_migrations(component, version) VALUES ($1, $2)",
            component,
            version,
        )
