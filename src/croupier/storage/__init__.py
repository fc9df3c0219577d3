"""Relational storage for the services, on SQLite (embedded) or PostgreSQL (many nodes).

Services write one SQL dialect — PostgreSQL's ``$1`` placeholders, ``ON CONFLICT``,
``RETURNING`` — that both engines accept; the SQLite side rewrites placeholders to ``?1``.
Each service keeps its own tables and migrations (see :meth:`Database.migrate`).
"""

from .base import Database, Row, Transaction
from .postgres import PostgresDatabase
from .sqlite import SQLiteDatabase

__all__ = [
    "Database",
    "PostgresDatabase",
    "Row",
    "SQLiteDatabase",
    "Transaction",
    "database_from_url",
]


def database_from_url(url: str) -> Database:
    """The services' database beside the log of ``url``: for ``sqlite:///croupier.db`` the
    file ``croupier-services.db`` next to it, for ``postgresql://…`` the same database (tables
    of their own), for ``memory://`` an in-memory SQLite database (tests, throwaway demos)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgres", "postgresql"):
        return PostgresDatabase(url)
    if scheme == "sqlite":
        return SQLiteDatabase.from_url(url)
    if scheme == "memory":
        return SQLiteDatabase(":memory:")
    raise ValueError(f"unsupported database URL scheme {scheme!r}")
