"""Versioned migrations of the PostgreSQL schema. Append new versions; never edit old ones."""

from __future__ import annotations

import asyncpg

__all__ = ["MIGRATIONS", "migrate"]

# An arbitrary constant: the advisory lock that keeps nodes from migrating at the same time.
_LOCK = 0x43524F55  # "CROU"

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "channels, events and idempotency keys",
        [
            """CREATE TABLE croupier_meta (
                key text PRIMARY KEY, value text NOT NULL)""",
            """CREATE TABLE croupier_channels (
                name text PRIMARY KEY, epoch text NOT NULL, top bigint NOT NULL)""",
            """CREATE TABLE croupier_events (
                channel text NOT NULL, "offset" bigint NOT NULL, type text NOT NULL,
                data bytea NOT NULL, ts text NOT NULL, created double precision NOT NULL,
                PRIMARY KEY (channel, "offset"))""",
            "CREATE INDEX croupier_events_created ON croupier_events (created)",
            """CREATE TABLE croupier_idempotency (
                channel text NOT NULL, key text NOT NULL, "offset" bigint NOT NULL,
                created double precision NOT NULL, PRIMARY KEY (channel, key))""",
            "CREATE INDEX croupier_idempotency_created ON croupier_idempotency (created)",
        ],
    ),
]


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks, in order; return the versions applied.

    Safe to run from many nodes at once: they take turns under an advisory lock.
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS croupier_migrations (
                version integer PRIMARY KEY, description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM croupier_migrations")}
        for version, description, statements in MIGRATIONS:
            if version in done:
                continue
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO croupier_migrations(version, description) VALUES ($1, $2)",
                    version,
                    description,
                )
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return applied
