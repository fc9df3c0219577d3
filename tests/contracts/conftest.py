"""The backends the contract suites run over: one param per implementation.

A new implementation (PostgresLog, RedisBroker …) is one more param here; every contract
test then runs over it unchanged.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import asyncpg
import pytest

from croupier.brokers import Broker, EventHandler, LocalBroker, PostgresBroker, RedisBroker
from croupier.events import Event
from croupier.logs import Append, Log, MemoryLog, PostgresLog, SQLiteLog
from croupier.logs.postgres_schema import migrate
from croupier.presence import MemoryPresence, Presence, RedisPresence
from croupier.storage import Database, database_from_url
from tests.services import fresh_postgres_database, redis_url


@dataclass(frozen=True)
class LogBackend:
    """How to open a Log on one store.

    ``make()`` opens a new instance over the same store each call, so a test can close a log
    and reopen it. ``durable`` says whether history (and the epoch) outlive the instance.
    """

    name: str
    durable: bool
    make: Callable[[], Log]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def log_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogBackend]:
    if request.param == "memory":
        yield LogBackend("memory", durable=False, make=MemoryLog)
    elif request.param == "sqlite":
        path = str(tmp_path / "log.db")
        yield LogBackend("sqlite", durable=True, make=lambda: SQLiteLog(path))
    else:
        with fresh_postgres_database() as url:
            yield LogBackend("postgres", durable=True, make=lambda: PostgresLog(url))


@pytest.fixture
async def log(log_backend: LogBackend) -> AsyncIterator[Log]:
    async with log_backend.make() as opened:
        yield opened


@dataclass
class BrokerHarness:
    """An open broker bound to a handler that records what it is handed.

    A broker may be shared with other tests (one Redis server), so tests name their channels
    through :meth:`ch`, which makes them unique to the test.
    """

    broker: Broker
    prefix: str
    received: list[Event] = field(default_factory=list)

    def ch(self, name: str) -> str:
        namespace, _, rest = name.partition(":")
        return f"{namespace}:{self.prefix}" + (f":{rest}" if rest else "")


class LoggedPostgresBroker:
    """The PostgreSQL broker with the log it reads from.

    Its NOTIFY carries only a channel and an offset and the events are read from the log, so
    what a test publishes is stored first, as the gateway would have done. The log's epoch
    is set to the one the tests' events carry, so what comes out equals what went in.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.log = PostgresLog(url)
        self.inner = PostgresBroker(url, self.log)

    def bind(self, handler: EventHandler, resync: Callable[[], None] | None = None) -> None:
        self.inner.bind(handler, resync)

    async def __aenter__(self) -> Self:
        conn = await asyncpg.connect(self.url)
        try:
            await migrate(conn)
            await conn.execute("INSERT INTO croupier_meta(key, value) VALUES ('epoch', $1)", EPOCH)
        finally:
            await conn.close()
        await self.log.__aenter__()
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)
        await self.log.__aexit__(*exc)

    async def publish(self, events: Sequence[Event]) -> None:
        stored = [Append(e.channel, e.type, e.payload, e.ts) for e in events if e.offset]
        if stored:
            await self.log.append(stored)
        await self.inner.publish(events)

    async def subscribe(self, channel: str) -> None:
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.inner.unsubscribe(channel)


EPOCH = "e1"  # the epoch the contract tests' events carry


@pytest.fixture(params=["local", "redis", "postgres"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerHarness]:
    with contextlib.ExitStack() as stack:
        instance: Broker
        if request.param == "local":
            instance = LocalBroker()
        elif request.param == "redis":
            instance = RedisBroker(redis_url())
        else:
            instance = LoggedPostgresBroker(stack.enter_context(fresh_postgres_database()))
        harness = BrokerHarness(instance, secrets.token_hex(4))
        instance.bind(harness.received.append)
        async with instance:
            yield harness


@dataclass
class PresenceHarness:
    """Open presence stores that act as separate nodes over one backend.

    ``nodes[0]`` and ``nodes[1]`` share the backend (for memory, they are the same store).
    ``shared`` says whether two nodes see each other's members.
    """

    nodes: list[Presence]
    prefix: str
    shared: bool

    def ch(self, name: str) -> str:
        return f"{name}-{self.prefix}"


PRESENCE_TTL = 0.6  # seconds a Redis entry outlives its node's last refresh, in these tests


@pytest.fixture(params=["memory", "redis"])
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceHarness]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "memory":
            store = await stack.enter_async_context(MemoryPresence())
            nodes: list[Presence] = [store, store]
        else:
            url = redis_url()
            nodes = [
                await stack.enter_async_context(RedisPresence(url, ttl=PRESENCE_TTL))
                for _ in range(2)
            ]
        yield PresenceHarness(nodes, secrets.token_hex(4), shared=request.param != "memory")


@pytest.fixture(params=["sqlite", "postgres"])
async def services_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """An open, empty services' database on each engine."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'services.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database())
        async with database_from_url(url) as database:
            yield database
