"""The hub's gap fill and resync when the log cannot be read for a while.

A missing range is stored (the log numbered it), so the hub must wait for it rather than
skip it: skipping would lose events for good, since the later copies are dropped as
duplicates of what the hub believes it delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from croupier.brokers import LocalBroker
from croupier.errors import Unavailable
from croupier.events import Event, History
from croupier.hub import Hub
from croupier.logs import Append, MemoryLog, now_ts
from tests.support import timeout

CHANNEL = "tournament:outage"


class FlakyLog:
    """A MemoryLog whose reads fail while :attr:`down` is set, counting the attempts."""

    def __init__(self) -> None:
        self.inner = MemoryLog()
        self.down = False
        self.failed_reads = 0
        self.reads = 0

    async def read(self, channel: str, after: int, limit: int) -> History:
        self.reads += 1
        if self.down:
            self.failed_reads += 1
            raise Unavailable("the log could not be read")
        return await self.inner.read(channel, after, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Sink:
    wire = "ws"

    def __init__(self) -> None:
        self.offsets: list[int | None] = []

    def push(self, frame: bytes, event: Event) -> None:
        self.offsets.append(event.offset)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[FlakyLog, Hub, Sink]]:
    log = FlakyLog()
    hub = Hub(log, LocalBroker(), recover_max=100)  # type: ignore[arg-type]
    sink = Sink()
    await hub.subscribe(sink, CHANNEL, since=None, stored=True, announce=lambda result: None)
    yield log, hub, sink
    await hub.close()


async def store(log: FlakyLog, n: int) -> list[Event]:
    items = [Append(CHANNEL, "t.x", orjson.dumps({"i": i}), now_ts()) for i in range(n)]
    return [a.event for a in await log.inner.append(items)]


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(timeout(seconds)):
        while not condition():  # noqa: ASYNC110 - a plain condition, not an awaitable
            await asyncio.sleep(0.005)


async def test_a_gap_waits_for_the_log_instead_of_being_skipped(
    setup: tuple[FlakyLog, Hub, Sink],
) -> None:
    log, hub, sink = setup
    first, second, third = await store(log, 3)
    hub.deliver(first)
    log.down = True
    hub.deliver(third)  # 2 is missing and the log cannot say what it was
    await until(lambda: log.failed_reads >= 2)
    assert sink.offsets == [1], "nothing after the gap until the gap is known"
    log.down = False
    await until(lambda: len(sink.offsets) == 3)
    hub.deliver(second)  # the broker's late copy is a duplicate by now
    assert sink.offsets == [1, 2, 3]


async def test_the_broker_can_close_a_gap_while_the_log_is_down(
    setup: tuple[FlakyLog, Hub, Sink],
) -> None:
    log, hub, sink = setup
    first, second, third = await store(log, 3)
    hub.deliver(first)
    log.down = True
    hub.deliver(third)
    await until(lambda: log.failed_reads >= 1)
    hub.deliver(second)  # late, but here: the range is complete without the log
    await until(lambda: len(sink.offsets) == 3)
    assert sink.offsets == [1, 2, 3]


async def test_a_resync_during_a_fill_reads_to_the_end_of_the_log(
    setup: tuple[FlakyLog, Hub, Sink],
) -> None:
    log, hub, sink = setup
    events = await store(log, 6)
    hub.deliver(events[0])
    log.down = True
    hub.deliver(events[2])  # a fill starts for offset 2 and cannot read yet
    await until(lambda: log.failed_reads >= 1)
    hub.resync()  # the broker lost 4-6 meanwhile: nothing will announce them
    log.down = False
    await until(lambda: len(sink.offsets) == 6)
    await asyncio.sleep(0.05)
    assert sink.offsets == [1, 2, 3, 4, 5, 6]
