"""Real Redis and PostgreSQL for tests: where they are, and what to do when they are not.

``redis_url()`` and ``postgres_url()`` return the server's URL (from
``CROUPIER_TEST_REDIS_URL`` / ``CROUPIER_TEST_POSTGRES_URL``, loopback defaults). The first
call checks that a server answers; when none does, the calling test is skipped with the
reason, except under ``CI=true``, where a missing service is a failure rather than a silent
skip. Each check runs once per test session.

``fresh_postgres_database()`` creates a throwaway database on that server and drops it
afterwards, so tests never share tables with each other or with a developer's data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import secrets
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from tests.support import IN_CI

__all__ = ["fresh_postgres_database", "postgres_url", "redis_url", "with_database"]

REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


def _unavailable(what: str, url: str, why: str) -> None:
    message = f"{what} is not reachable at {url} ({why}); set {_env_name(what)} to run this"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _env_name(what: str) -> str:
    return f"CROUPIER_TEST_{what.upper()}_URL"


@functools.cache
def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    # The check may be called from inside a running event loop (an async test or
    # fixture), where asyncio.run is not allowed; a worker thread has a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _pg_probe(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    await conn.close()
    return None


@functools.cache
def _postgres_problem(url: str) -> str | None:
    return _run_sync(_pg_probe(url))


def redis_url() -> str:
    """The test Redis URL; skips (or, in CI, fails) the test when no server answers."""
    url = os.environ.get(_env_name("redis")) or REDIS_DEFAULT
    problem = _redis_problem(url)
    if problem is not None:
        _unavailable("Redis", url, problem)
    return url


def postgres_url() -> str:
    """The test PostgreSQL URL; skips (or, in CI, fails) the test when no server answers."""
    url = os.environ.get(_env_name("postgres")) or POSTGRES_DEFAULT
    problem = _postgres_problem(url)
    if problem is not None:
        _unavailable("Postgres", url, problem)
    return url


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _create(url: str, name: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop(url: str, name: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        # FORCE ends sessions still connected (a server under test that was killed, say).
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "croupier_test") -> Iterator[str]:
    """Create ``{prefix}_{random}`` on the test server; yield its URL; drop it afterwards.

    Usable from synchronous fixtures (it runs its own event loop in a worker thread).
    """
    base = postgres_url()
    name = f"{prefix}_{secrets.token_hex(4)}"
    _run_sync(_create(base, name))
    try:
        yield with_database(base, name)
    finally:
        _run_sync(_drop(base, name))
