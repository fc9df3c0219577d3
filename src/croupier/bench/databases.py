"""Throwaway PostgreSQL databases for benchmarks that run on PostgreSQL."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

__all__ = ["scratch_database"]


@contextlib.asynccontextmanager
async def scratch_database(url: str) -> AsyncIterator[str]:
    """Create an empty database on the server of ``url``; yield its URL; drop it after."""
    parts = urlsplit(url)
    name = "croupier_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(urlunsplit(parts._replace(scheme="postgresql")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(parts._replace(path="/" + name))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
