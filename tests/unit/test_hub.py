"""The hub's fan-out and ordering rules, over MemoryLog and LocalBroker with fake sinks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from croupier.brokers import LocalBroker
from croupier.core.wire import encode_event, ws_frame
from croupier.errors import Unavailable
from croupier.events import Event, History, Position
from croupier.hub import Hub, SubscribeResult
from croupier.logs import Append, Log, MemoryLog, now_ts
from tests.support import timeout

CHANNEL = "tournament:1"


class Sink:
    """A subscriber that keeps what it is pushed."""

    def __init__(self, wire: str = "ws") -> None:
        self.wire = wire
        self.frames: list[bytes] = []
        self.events: list[Event] = []
        self.announced: list[tuple[SubscribeResult, int]] = []

    def push(self, frame: bytes, event: Event) -> None:
        self.frames.append(frame)
        self.events.append(event)

    def announce(self, result: SubscribeResult) -> None:
        self.announced.append((result, len(self.events)))

    @property
    def offsets(self) -> list[int | None]:
        return [e.offset for e in self.events]


class GatedLog:
    """A Log whose reads wait at a gate, to hold a subscriber inside its history read.

    ``snapshot_first`` reads before waiting (the read misses what is published meanwhile);
    otherwise it waits, then reads (the read sees it).
    """

    def __init__(self, inner: Log, *, snapshot_first: bool = False) -> None:
        self.inner = inner
        self.snapshot_first = snapshot_first
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()
        self.fail = False

    async def read(self, channel: str, after: int, limit: int) -> History:
        self.reading.set()
        if self.snapshot_first:
            history = await self.inner.read(channel, after, limit)
            await self.gate.wait()
            return history
        await self.gate.wait()
        if self.fail:
            raise Unavailable("the log could not be read")
        return await self.inner.read(channel, after, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Node:
    """A hub wired the way the gateway wires it: publish = log.append -> broker.publish."""

    def __init__(self, log: Log | None = None) -> None:
        self.memory = MemoryLog()
        self.log: Any = log if log is not None else self.memory
        self.broker = LocalBroker()
        self.hub = Hub(self.log, self.broker, recover_max=100)
        self.broker.bind(self.hub.deliver)
        self.count = 0

    async def store(self, n: int, channel: str = CHANNEL) -> list[Event]:
        """Append ``n`` events to the log only (as if the broker had not carried them yet)."""
        items = []
        for _ in range(n):
            self.count += 1
            items.append(Append(channel, "t.x", orjson.dumps({"n": self.count}), now_ts()))
        return [a.event for a in await self.memory.append(items)]

    async def publish(self, n: int = 1, channel: str = CHANNEL) -> list[Event]:
        events = await self.store(n, channel)
        await self.broker.publish(events)
        return events

    async def subscribe(
        self, sink: Sink, since: Position | None = None, channel: str = CHANNEL
    ) -> SubscribeResult | None:
        return await self.hub.subscribe(
            sink, channel, since=since, stored=True, announce=sink.announce
        )


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    n = Node()
    yield n
    await n.hub.close()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(timeout(seconds)):
        while not condition():  # noqa: ASYNC110 - a plain condition, not an awaitable
            await asyncio.sleep(0.001)


def span(first: int, last: int) -> list[int | None]:
    return list(range(first, last + 1))


# -- fan-out -------------------------------------------------------------------------------


async def test_each_event_is_encoded_once_for_every_sink(node: Node) -> None:
    sinks = [Sink() for _ in range(5)]
    for sink in sinks:
        await node.subscribe(sink)
    (event,) = await node.publish()
    frames = [sink.frames[0] for sink in sinks]
    assert all(frame is frames[0] for frame in frames), "the same bytes object"
    assert frames[0] == ws_frame(encode_event(event))
    assert node.hub.delivered == 5


async def test_each_wire_format_has_its_own_encoding(node: Node) -> None:
    calls: list[Event] = []

    def encoder(event: Event) -> bytes:
        calls.append(event)
        return b"data: " + encode_event(event) + b"\n\n"

    node.hub.add_wire("sse", encoder)
    ws, sse = [Sink("ws"), Sink("ws")], [Sink("sse"), Sink("sse"), Sink("sse")]
    for sink in ws + sse:
        await node.subscribe(sink)
    await node.publish(2)
    assert len(calls) == 2, "once per event, not once per sink"
    assert sse[0].frames[0].startswith(b"data: {")
    assert sse[0].frames[0] is sse[2].frames[0]
    assert ws[0].frames[0] is ws[1].frames[0]
    assert ws[0].frames[0] != sse[0].frames[0]


async def test_events_arrive_in_order(node: Node) -> None:
    sink = Sink()
    await node.subscribe(sink)
    for _ in range(10):
        await node.publish(5)
    assert sink.offsets == span(1, 50)


async def test_only_subscribed_channels_are_delivered(node: Node) -> None:
    sink = Sink()
    await node.subscribe(sink)
    await node.publish(3, channel="tournament:2")
    await node.publish(1)
    assert [(e.channel, e.offset) for e in sink.events] == [(CHANNEL, 1)]


async def test_duplicates_are_dropped(node: Node) -> None:
    sink = Sink()
    await node.subscribe(sink)
    events = await node.publish(3)
    for event in events:
        node.hub.deliver(event)
    node.hub.deliver(events[0])
    assert sink.offsets == [1, 2, 3]


async def test_ephemeral_events_pass_without_offsets(node: Node) -> None:
    sink = Sink()
    await node.hub.subscribe(sink, "match:m1", since=None, stored=False, announce=sink.announce)
    event = Event("match:m1", "reaction", b'{"emoji":"x"}', now_ts())
    node.hub.deliver(event)
    node.hub.deliver(event)
    assert sink.events == [event, event]
    assert sink.announced == [(SubscribeResult(False, None, 0), 0)]


async def test_a_gap_is_filled_from_the_log_in_order(node: Node) -> None:
    sink = Sink()
    await node.subscribe(sink)
    await node.publish(3)
    skipped, ahead, later = await node.store(3)  # offsets 4, 5, 6 reach the log only
    node.hub.deliver(ahead)  # 5 before 4: the hub reads 4 from the log
    node.hub.deliver(later)  # 6 arrives while that read is under way
    node.hub.deliver(skipped)
    await until(lambda: len(sink.events) >= 6)
    await asyncio.sleep(0)
    assert sink.offsets == span(1, 6)
    node.hub.deliver(skipped)
    node.hub.deliver(ahead)
    await node.publish()
    assert sink.offsets == span(1, 7), "nothing twice, and live delivery goes on"


# -- subscribe with history ----------------------------------------------------------------


async def test_subscribe_recovers_what_was_missed(node: Node) -> None:
    first = await node.publish(10)
    sink = Sink()
    since = Position(4, first[0].epoch or "")
    result = await node.subscribe(sink, since)
    assert result == SubscribeResult(True, Position(10, since.epoch), 6)
    assert sink.announced == [(result, 0)], "announced before any event"
    assert sink.offsets == span(5, 10)
    await node.publish(2)
    assert sink.offsets == span(5, 12)


async def test_subscribe_without_since_gets_only_new_events(node: Node) -> None:
    await node.publish(3)
    sink = Sink()
    result = await node.subscribe(sink)
    assert result is not None
    assert (result.recovered, result.position, result.replayed) == (
        False,
        await node.memory.position(CHANNEL),
        0,
    )
    assert sink.events == []
    await node.publish()
    assert sink.offsets == [4]


async def test_another_epoch_replays_nothing(node: Node) -> None:
    await node.publish(5)
    sink = Sink()
    result = await node.subscribe(sink, Position(2, "other-epoch"))
    assert result is not None
    assert not result.recovered
    assert result.replayed == 0
    assert result.position == await node.memory.position(CHANNEL)
    assert sink.events == []
    await node.publish()
    assert sink.offsets == [6]


async def test_a_trimmed_gap_replays_nothing(node: Node) -> None:
    events = await node.publish(10)
    await node.memory.trim(lambda channel: (3, 1e9))
    sink = Sink()
    result = await node.subscribe(sink, Position(5, events[0].epoch or ""))
    assert result is not None
    assert not result.recovered
    assert sink.events == []


async def test_a_gap_over_the_bound_replays_nothing(node: Node) -> None:
    events = await node.publish(150)  # recover_max is 100
    sink = Sink()
    result = await node.subscribe(sink, Position(10, events[0].epoch or ""))
    assert result is not None
    assert not result.recovered
    assert sink.events == []


@pytest.mark.parametrize("snapshot_first", [True, False], ids=["read-misses", "read-sees"])
@pytest.mark.parametrize("watched", [False, True], ids=["first-subscriber", "live-channel"])
@pytest.mark.parametrize("broker_lags", [False, True], ids=["in-step", "broker-lags"])
async def test_nothing_lost_or_doubled_while_history_is_read(
    snapshot_first: bool, watched: bool, broker_lags: bool
) -> None:
    """Events published during the history read reach the sink once, in order.

    ``broker_lags``: the concurrent events are in the log during the read but reach the hub
    only after it, as when another node stored them.
    """
    gated = GatedLog(MemoryLog(), snapshot_first=snapshot_first)
    node = Node(gated)
    node.memory = gated.inner
    watcher = Sink()
    if watched:
        gated.gate.set()
        await node.subscribe(watcher)
        gated.gate.clear()
    events = await node.publish(10)
    sink = Sink()
    task = asyncio.create_task(node.subscribe(sink, Position(4, events[0].epoch or "")))
    await gated.reading.wait()

    concurrent = await (node.store(10) if broker_lags else node.publish(10))
    gated.gate.set()
    result = await task
    if broker_lags:
        await node.broker.publish(concurrent)
    # No later event is needed to bring the sink level with the channel.
    await until(lambda: len(sink.events) >= 16)
    await asyncio.sleep(0)
    assert sink.offsets == span(5, 20)

    await node.publish(5)
    await until(lambda: len(sink.events) >= 21)
    await asyncio.sleep(0)

    assert result is not None
    assert result.recovered
    assert sink.offsets == span(5, 25)
    assert sink.announced == [(result, 0)]
    if watched:
        assert watcher.offsets == span(1, 25)
    await node.hub.close()


@pytest.mark.parametrize("later", [False, True])
async def test_an_event_the_broker_missed_before_the_buffer_is_read_from_the_log(
    later: bool,
) -> None:
    """The first subscriber of a channel on this node: the broker subscription takes effect
    while history is read, so an event stored just before it reaches the hub only through the
    log, while the next one arrives from the broker into the buffer. The sink gets both, in
    order (``later``: and one more published after it settled)."""
    gated = GatedLog(MemoryLog(), snapshot_first=True)  # the read sees nothing after 8
    node = Node(gated)
    node.memory = gated.inner
    first = await node.store(8)
    sink = Sink()
    task = asyncio.create_task(node.subscribe(sink, Position(8, first[0].epoch or "")))
    await gated.reading.wait()
    await node.store(1)  # offset 9: stored, but published before this node listened
    await node.publish(1)  # offset 10 reaches the buffer
    gated.gate.set()
    result = await task
    assert result is not None
    assert result.recovered
    if later:
        await node.publish()
    want = span(9, 11 if later else 10)
    await until(lambda: len(sink.events) >= len(want))
    await asyncio.sleep(0)
    assert sink.offsets == want
    await node.hub.close()


class LaggingLog:
    """A Log whose first read answers from an older snapshot, as a lagging replica would."""

    def __init__(self, inner: Log, cap: int) -> None:
        self.inner = inner
        self.cap: int | None = cap

    async def read(self, channel: str, after: int, limit: int) -> History:
        cap, self.cap = self.cap, None
        if cap is None:
            return await self.inner.read(channel, after, limit)
        history = await self.inner.read(channel, after, max(0, min(limit, cap - after)))
        return History(history.events, Position(cap, history.position.epoch), history.first)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_history_read_behind_the_hub_is_caught_up() -> None:
    lagging = LaggingLog(MemoryLog(), cap=6)
    node = Node(lagging)
    node.memory = lagging.inner
    watcher = Sink()
    await node.subscribe(watcher)
    events = await node.publish(10)
    sink = Sink()
    lagging.cap = 6
    result = await node.subscribe(sink, Position(2, events[0].epoch or ""))
    assert result is not None
    assert result.recovered
    assert sink.offsets == span(3, 10)
    await node.publish()
    assert sink.offsets == span(3, 11)
    await node.hub.close()


async def test_unsubscribe_while_history_is_read() -> None:
    gated = GatedLog(MemoryLog())
    node = Node(gated)
    node.memory = gated.inner
    await node.publish(3)
    sink = Sink()
    task = asyncio.create_task(node.subscribe(sink, Position(0, "x")))
    await gated.reading.wait()
    assert node.hub.subscribers(CHANNEL) == 1
    assert node.hub.unsubscribe(sink, CHANNEL)
    gated.gate.set()
    assert await task is None
    assert sink.announced == []
    await node.publish(2)
    assert sink.events == []
    assert node.hub.subscribers(CHANNEL) == 0
    assert node.hub.channel_count == 0
    await until(lambda: CHANNEL not in node.broker.channels)
    assert not node.hub.unsubscribe(sink, CHANNEL)
    await node.hub.close()


async def test_a_failed_history_read_leaves_no_subscription() -> None:
    gated = GatedLog(MemoryLog())
    gated.fail = True
    gated.gate.set()
    node = Node(gated)
    sink = Sink()
    with pytest.raises(Unavailable):
        await node.subscribe(sink, Position(0, "x"))
    assert node.hub.subscribers(CHANNEL) == 0
    assert sink.announced == []


async def test_unsubscribe_stops_delivery(node: Node) -> None:
    a, b = Sink(), Sink()
    await node.subscribe(a)
    await node.subscribe(b)
    await node.publish()
    assert node.hub.unsubscribe(a, CHANNEL)
    await node.publish()
    assert a.offsets == [1]
    assert b.offsets == [1, 2]
    assert node.hub.subscribers(CHANNEL) == 1
    assert CHANNEL in node.broker.channels


# -- subscribing at once -------------------------------------------------------------------


def subscribe_now(node: Node, sink: Sink, since: Position | None = None) -> SubscribeResult | None:
    start = node.hub.start_now(CHANNEL, since=since, stored=True)
    return None if start is None else node.hub.subscribe_now(sink, start, announce=sink.announce)


async def test_subscribe_now_waits_for_what_needs_an_await(node: Node) -> None:
    sink = Sink()
    assert subscribe_now(node, sink) is None, "no broker subscription yet"
    assert node.hub.subscribers(CHANNEL) == 0
    assert not sink.announced
    await node.publish(3)
    first = Sink()
    await node.subscribe(first)  # opens the channel; the hub now knows where it stands
    older = Position(1, first.announced[0][0].position.epoch)  # type: ignore[union-attr]
    assert subscribe_now(node, sink, since=older) is None, "that history must be read"
    assert node.hub.subscribers(CHANNEL) == 1
    assert not sink.announced


async def test_subscribe_now_starts_where_delivery_stands_and_gets_what_follows(
    node: Node,
) -> None:
    await node.publish(3)
    await node.subscribe(Sink())
    sink = Sink()
    result = subscribe_now(node, sink)
    assert result is not None
    assert not result.recovered
    assert result.position is not None
    assert result.position.offset == 3
    assert node.hub.subscribers(CHANNEL) == 2
    await node.publish(2)
    assert sink.offsets == span(4, 5)


async def test_subscribe_now_resumes_from_recent_history_exactly_once(node: Node) -> None:
    first = Sink()
    await node.subscribe(first)
    epoch = first.announced[0][0].position.epoch  # type: ignore[union-attr]
    await node.publish(5)
    reader = Sink()
    await node.subscribe(reader, since=Position(0, epoch))  # reads the log: recent history
    sink = Sink()
    result = subscribe_now(node, sink, since=Position(2, epoch))
    assert result is not None
    assert result.recovered
    assert result.replayed == 3
    assert sink.offsets == span(3, 5)
    assert sink.announced[0][1] == 0, "announced before the first replayed event"
    await node.publish(1)
    assert sink.offsets == span(3, 6)


async def test_subscribe_now_ahead_of_delivery_waits_for_the_channel_to_catch_up(
    node: Node,
) -> None:
    first = Sink()
    await node.subscribe(first)
    epoch = first.announced[0][0].position.epoch  # type: ignore[union-attr]
    await node.publish(2)
    stored = await node.store(3)  # in the log, not yet brought by the broker
    await node.subscribe(Sink(), since=Position(0, epoch))  # reads the log: offsets 1-5
    sink = Sink()
    result = subscribe_now(node, sink, since=Position(1, epoch))
    assert result is not None
    assert result.recovered
    assert sink.offsets == span(2, 5), "replayed from recent history, beyond delivery"
    await node.broker.publish(stored)  # the broker catches up: nothing twice
    assert sink.offsets == span(2, 5)
    await node.publish(1)
    assert sink.offsets == span(2, 6)
    await node.publish(1)
    assert sink.offsets == span(2, 7)
    assert first.offsets == span(1, 7)
