"""The Broker contract, run over every implementation (see ``conftest.py``).

Delivery may be asynchronous (a network broker hands events over from its own reader), so
every check waits for what it expects, bounded by the suite's timeout scale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from croupier.events import Event
from croupier.logs import now_ts
from tests.contracts.conftest import BrokerHarness
from tests.support import timeout


def event(channel: str, offset: int | None) -> Event:
    epoch = None if offset is None else "e1"
    return Event(channel, "t.x", b'{"n":%d}' % (offset or 0), now_ts(), offset, epoch)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(timeout(seconds)):
        while not condition():  # noqa: ASYNC110 - a plain condition, not an awaitable
            await asyncio.sleep(0.001)


async def test_publish_hands_events_to_the_handler(broker: BrokerHarness) -> None:
    await broker.broker.subscribe(broker.ch("room:a"))
    sent = [event(broker.ch("room:a"), 1), event(broker.ch("room:a"), 2)]
    await broker.broker.publish(sent)
    await until(lambda: len(broker.received) == 2)
    assert broker.received == sent


async def test_order_is_kept_per_channel(broker: BrokerHarness) -> None:
    channels = [broker.ch("room:a"), broker.ch("room:b"), broker.ch("table:1")]
    for channel in channels:
        await broker.broker.subscribe(channel)
    sent = [event(channels[i % 3], i // 3 + 1) for i in range(300)]
    for start in range(0, 300, 7):  # publishes of several events, and of one
        await broker.broker.publish(sent[start : start + 7])
    # 300 events: the PostgreSQL broker reads each announced range back from the log, which
    # on a busy test machine takes seconds, not milliseconds.
    await until(lambda: len(broker.received) >= 300, seconds=30.0)
    for channel in channels:
        got = [e.offset for e in broker.received if e.channel == channel]
        assert got == list(range(1, 101)), channel
    # Across channels the order may differ (one stream per channel), but nothing is extra.
    key = lambda e: (e.channel, e.offset)  # noqa: E731
    assert sorted(broker.received, key=key) == sorted(sent, key=key)


async def test_ephemeral_events_pass_through(broker: BrokerHarness) -> None:
    await broker.broker.subscribe(broker.ch("match:m1"))
    sent = event(broker.ch("match:m1"), None)
    await broker.broker.publish([sent])
    await until(lambda: bool(broker.received))
    assert broker.received == [sent]
    assert broker.received[0].offset is None


async def test_who_an_ephemeral_event_is_for_travels_with_it(broker: BrokerHarness) -> None:
    """``only`` (one player's event) and ``exclude`` (not back to the sender) reach every
    node: a node that lost them would show a private event to everyone."""
    channel = broker.ch("tournament:t1")
    await broker.broker.subscribe(channel)
    ts = now_ts()
    sent = [
        Event(channel, "rebuy.request", b'{"n":1}', ts, only="1001/ann"),
        Event(channel, "client-x", b'{"n":2}', ts, exclude="1.2"),
        Event(channel, "t.x", b'{"n":3}', ts, exclude="1.3", only="1001/bob"),
        Event(channel, "t.x", b'{"n":4}', ts),
    ]
    await broker.broker.publish(sent)
    await until(lambda: len(broker.received) == 4)
    assert broker.received == sent


async def test_publish_nothing_is_harmless(broker: BrokerHarness) -> None:
    await broker.broker.subscribe(broker.ch("room:a"))
    await broker.broker.publish([])
    await broker.broker.publish([event(broker.ch("room:a"), 1)])
    await until(lambda: bool(broker.received))
    assert [e.offset for e in broker.received] == [1]


async def test_unsubscribe_then_subscribe_again(broker: BrokerHarness) -> None:
    """Unsubscribing stops nothing else, and a channel can be taken up again.

    Events of a channel this node is not subscribed to may still be handed over (the local
    broker hands over everything): the hub ignores channels it has no subscribers for.
    """
    await broker.broker.subscribe(broker.ch("room:a"))
    await broker.broker.subscribe(broker.ch("room:b"))
    await broker.broker.unsubscribe(broker.ch("room:a"))
    await broker.broker.unsubscribe(broker.ch("room:never"))  # not subscribed: harmless
    await broker.broker.publish([event(broker.ch("room:b"), 1)])
    await until(lambda: bool(broker.received))
    assert [e.channel for e in broker.received] == [broker.ch("room:b")]

    await broker.broker.subscribe(broker.ch("room:a"))
    await broker.broker.publish([event(broker.ch("room:a"), 1)])
    await until(lambda: len(broker.received) == 2)
    assert [(e.channel, e.offset) for e in broker.received] == [
        (broker.ch("room:b"), 1),
        (broker.ch("room:a"), 1),
    ]
