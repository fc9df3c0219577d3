"""The backends the contract suites run over: one param per implementation.

A new implementation (PostgresLog, RedisBroker …) is one more param here; every contract
test then runs over it unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from croupier.brokers import Broker, LocalBroker, RedisBroker
from croupier.events import Event
from croupier.logs import Log, MemoryLog, PostgresLog, SQLiteLog
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


def _make_broker(name: str) -> Broker:
    if name == "local":
        return LocalBroker()
    return RedisBroker(redis_url())


@pytest.fixture(params=["local", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerHarness]:
    instance = _make_broker(request.param)
    harness = BrokerHarness(instance, secrets.token_hex(4))
    instance.bind(harness.received.append)
    async with instance:
        yield harness
