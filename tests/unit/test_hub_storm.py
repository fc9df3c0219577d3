"""A reconnect storm through the hub: the log is read once per channel, not per subscriber,
and every subscriber still gets each event exactly once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from croupier.core import ordering
from croupier.events import History, Position
from croupier.logs import Log, MemoryLog

from .test_hub import CHANNEL, Node, Sink, span, until


class CountingLog:
    """A Log that counts reads and position look-ups; reads may be held at a gate, and
    with ``snapshot_first`` read before waiting (missing what is published meanwhile)."""

    def __init__(self, inner: Log, *, snapshot_first: bool = False) -> None:
        self.inner = inner
        self.snapshot_first = snapshot_first
        self.reads = 0
        self.positions = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()

    async def read(self, channel: str, after: int, limit: int) -> History:
        self.reads += 1
        self.reading.set()
        if self.snapshot_first:
            history = await self.inner.read(channel, after, limit)
            await self.gate.wait()
            return history
        await self.gate.wait()
        return await self.inner.read(channel, after, limit)

    async def position(self, channel: str) -> Position:
        self.positions += 1
        self.reading.set()
        await self.gate.wait()
        return await self.inner.position(channel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counting_node(*, snapshot_first: bool = False) -> tuple[Node, CountingLog]:
    memory = MemoryLog()
    log = CountingLog(memory, snapshot_first=snapshot_first)
    node = Node(log)
    node.memory = memory
    return node, log


@pytest.mark.parametrize("snapshot_first", [False, True], ids=["read-sees", "read-misses"])
async def test_a_resume_storm_reads_the_log_once(snapshot_first: bool) -> None:
    node, log = counting_node(snapshot_first=snapshot_first)
    try:
        events = await node.publish(5)
        epoch = events[0].epoch or ""
        log.gate.clear()
        sinks = [Sink() for _ in range(60)]
        since = [2, 3, 5]
        tasks = [
            asyncio.ensure_future(node.subscribe(sink, Position(since[i % 3], epoch)))
            for i, sink in enumerate(sinks)
        ]
        await log.reading.wait()
        await asyncio.sleep(0)
        await node.publish(2)  # while the one read is held: buffered, not lost or doubled
        log.gate.set()
        results = await asyncio.gather(*tasks)
        assert all(r is not None and r.recovered for r in results)
        reads = log.reads
        await node.publish(1)
        await until(lambda: all(s.offsets[-1:] == [8] for s in sinks))
        for i, sink in enumerate(sinks):
            assert sink.offsets == span(since[i % 3] + 1, 8)
        # One read for the storm; a read that missed the two published meanwhile leaves the
        # hub behind them, and the next event makes it read them once more, for everyone.
        assert reads == 1
        assert log.reads == (2 if snapshot_first else 1)
    finally:
        await node.hub.close()


async def test_resumes_after_a_read_take_its_events_and_what_followed() -> None:
    node, log = counting_node()
    try:
        events = await node.publish(5)
        epoch = events[0].epoch or ""
        first = Sink()
        await node.subscribe(first, Position(1, epoch))
        await node.publish(3)  # delivered live: the kept events are extended with them
        later = [Sink() for _ in range(20)]
        for i, sink in enumerate(later):
            result = await node.subscribe(sink, Position(1 + i % 6, epoch))
            assert result is not None
            assert result.recovered
            assert result.position == Position(8, epoch)
        assert log.reads == 1
        await node.publish(1)
        assert first.offsets == span(2, 9)
        for i, sink in enumerate(later):
            assert sink.offsets == span(2 + i % 6, 9)
    finally:
        await node.hub.close()


async def test_replayed_events_are_encoded_once_per_channel() -> None:
    node, _ = counting_node()
    try:
        events = await node.publish(4)
        epoch = events[0].epoch or ""
        sinks = [Sink() for _ in range(10)]
        await asyncio.gather(*(node.subscribe(s, Position(0, epoch)) for s in sinks))
        for n in range(4):
            frames = {id(s.frames[n]) for s in sinks}
            assert len(frames) == 1, "one encoding shared by every resuming subscriber"
    finally:
        await node.hub.close()


@pytest.mark.parametrize("snapshot_first", [False, True], ids=["read-sees", "read-misses"])
async def test_what_a_crowd_waits_for_while_reading_is_encoded_once(snapshot_first: bool) -> None:
    node, log = counting_node(snapshot_first=snapshot_first)
    try:
        events = await node.publish(3)
        epoch = events[0].epoch or ""
        log.gate.clear()
        sinks = [Sink() for _ in range(20)]
        tasks = [asyncio.ensure_future(node.subscribe(s, Position(1, epoch))) for s in sinks]
        await log.reading.wait()
        await asyncio.sleep(0)
        await node.publish(2)  # offsets 4 and 5, while the one read is held
        log.gate.set()
        await asyncio.gather(*tasks)
        await node.publish(1)
        await until(lambda: all(s.offsets[-1:] == [6] for s in sinks))
        for sink in sinks:
            assert sink.offsets == span(2, 6)
        for n in range(len(sinks[0].frames)):
            frames = {id(s.frames[n]) for s in sinks}
            assert len(frames) == 1, f"frame {n}: one encoding for every waiting subscriber"
    finally:
        await node.hub.close()


async def test_a_resume_from_before_the_kept_events_reads_the_log() -> None:
    node, log = counting_node()
    try:
        events = await node.publish(6)
        epoch = events[0].epoch or ""
        await node.subscribe(Sink(), Position(4, epoch))
        early = Sink()
        result = await node.subscribe(early, Position(1, epoch))
        assert result is not None
        assert result.recovered
        assert early.offsets == span(2, 6)
        assert log.reads == 2
        other = Sink()
        result = await node.subscribe(other, Position(3, "another-epoch"))
        assert result is not None
        assert not result.recovered
        assert other.events == []
    finally:
        await node.hub.close()


async def test_kept_events_are_dropped_once_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ordering, "RECENT_IDLE", 0.0)
    node, log = counting_node()
    try:
        events = await node.publish(3)
        epoch = events[0].epoch or ""
        await node.subscribe(Sink(), Position(1, epoch))
        await asyncio.sleep(0.01)
        await node.publish(1)  # idle past the limit: the kept events go
        sink = Sink()
        await node.subscribe(sink, Position(1, epoch))
        assert log.reads == 2
        assert sink.offsets == span(2, 4)
    finally:
        await node.hub.close()


async def test_subscribers_without_history_read_nothing_once_the_channel_is_live() -> None:
    node, log = counting_node()
    try:
        await node.publish(3)
        first = Sink()
        await node.subscribe(first)
        assert log.positions == 1
        await node.publish(2)
        sinks = [Sink() for _ in range(50)]
        results = await asyncio.gather(*(node.subscribe(s) for s in sinks))
        assert log.positions == 1
        assert log.reads == 0
        top = await node.memory.position(CHANNEL)
        assert all(r is not None and r.position == top for r in results)
        await node.publish(1)
        await until(lambda: all(s.offsets == [6] for s in sinks))
        assert first.offsets == span(4, 6)
    finally:
        await node.hub.close()


async def test_a_crowd_on_a_channel_just_opened_looks_its_position_up_once() -> None:
    node, log = counting_node()
    try:
        await node.publish(3)
        log.gate.clear()
        sinks = [Sink() for _ in range(40)]
        tasks = [asyncio.ensure_future(node.subscribe(s)) for s in sinks]
        await log.reading.wait()
        await asyncio.sleep(0)
        await node.publish(2)  # offsets 4 and 5, while the one look-up is held
        log.gate.set()
        results = await asyncio.gather(*tasks)
        assert log.positions == 1
        assert all(r is not None and r.position == results[0].position for r in results)
        await node.publish(1)
        # Each subscriber starts where the shared look-up stood: what was published while it
        # was held arrives once, in order, whichever subscriber began buffering when.
        start = results[0].position.offset
        await until(lambda: all(s.offsets[-1:] == [6] for s in sinks))
        for sink in sinks:
            assert sink.offsets == span(start + 1, 6)
    finally:
        await node.hub.close()


async def test_a_failed_position_look_up_fails_its_crowd_and_the_next_one_retries() -> None:
    node, log = counting_node()
    try:
        await node.publish(2)
        broken = True

        async def position(channel: str) -> Position:
            log.positions += 1
            await asyncio.sleep(0)
            if broken:
                raise OSError("the log is unreachable")
            return await log.inner.position(channel)

        log.position = position  # type: ignore[method-assign]
        outcomes = await asyncio.gather(
            *(node.subscribe(Sink()) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, Exception) for o in outcomes)
        assert log.positions == 1
        broken = False
        result = await node.subscribe(Sink())
        assert result is not None
        assert log.positions == 2
    finally:
        await node.hub.close()
