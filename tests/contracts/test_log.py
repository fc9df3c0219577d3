"""The Log contract, run over every implementation (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest

from croupier.logs import IDEMPOTENCY_WINDOW, Append, Appended, Log, now_ts
from tests.contracts.conftest import LogBackend


def item(channel: str, n: int = 0, *, key: str | None = None, type: str = "t.x") -> Append:
    return Append(channel, type, orjson.dumps({"n": n}), now_ts(), key)


async def put(log: Log, channel: str, count: int) -> list[Appended]:
    """Append ``count`` events one request at a time; their data is ``{"n": i}``."""
    return [(await log.append([item(channel, i)]))[0] for i in range(count)]


def offsets(appended: list[Appended]) -> list[int | None]:
    return [a.event.offset for a in appended]


class FakeClock:
    """``time.time`` under the test's control (the SQLite writer thread reads it too)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "time", fake)
    return fake


def keep(size: int, ttl: float, *, only: str | None = None) -> Callable[[str], tuple[int, float]]:
    never = (1 << 62, 1e12)
    return lambda channel: (size, ttl) if only is None or channel == only else never


# -- offsets -------------------------------------------------------------------------------


async def test_offsets_start_at_one_and_are_per_channel(log: Log) -> None:
    a = await put(log, "room:a", 3)
    b = await put(log, "room:b", 2)
    assert offsets(a) == [1, 2, 3]
    assert offsets(b) == [1, 2]
    assert not any(x.duplicate for x in a + b)
    assert (await log.position("room:a")).offset == 3
    assert (await log.position("room:b")).offset == 2


async def test_appended_event_is_what_was_asked(log: Log) -> None:
    request = Append("room:a", "player.score.updated", b'{"score":12}', "2026-01-01T00:00:00.000Z")
    (appended,) = await log.append([request])
    event = appended.event
    assert (event.channel, event.type, event.payload, event.ts) == (
        "room:a",
        "player.score.updated",
        b'{"score":12}',
        "2026-01-01T00:00:00.000Z",
    )
    assert event.epoch == (await log.position("room:a")).epoch
    (read,) = (await log.read("room:a", 0, 10)).events
    assert read == event


async def test_concurrent_appends_are_gap_free_and_readable(log: Log) -> None:
    channels = [f"table:{i}" for i in range(5)]
    rng = random.Random(7)
    requests = []
    for n in range(400):
        channel = rng.choice(channels)
        size = rng.choice([1, 1, 1, 2, 5])
        requests.append([item(channel, n * 10 + k) for k in range(size)])

    results = await asyncio.gather(*(log.append(r) for r in requests))

    sent: dict[str, dict[int, bytes]] = defaultdict(dict)
    for batch, appended in zip(requests, results, strict=True):
        assert len(appended) == len(batch)
        got = offsets(appended)
        assert got == list(range(got[0] or 0, (got[0] or 0) + len(batch))), "batch contiguous"
        for request, a in zip(batch, appended, strict=True):
            assert a.event.offset is not None
            sent[request.channel][a.event.offset] = request.payload
    for channel, by_offset in sent.items():
        assert sorted(by_offset) == list(range(1, len(by_offset) + 1)), channel
        history = await log.read(channel, 0, 10_000)
        assert [e.offset for e in history.events] == sorted(by_offset)
        assert [e.payload for e in history.events] == [by_offset[o] for o in sorted(by_offset)]
        assert history.position.offset == len(by_offset)


async def test_batch_is_stored_in_order(log: Log) -> None:
    batch = [item("room:a", 0), item("room:b", 1), item("room:a", 2), item("room:a", 3)]
    appended = await log.append(batch)
    assert [(a.event.channel, a.event.offset) for a in appended] == [
        ("room:a", 1),
        ("room:b", 1),
        ("room:a", 2),
        ("room:a", 3),
    ]
    history = await log.read("room:a", 0, 10)
    assert [e.data["n"] for e in history.events] == [0, 2, 3]


async def test_empty_batch_stores_nothing(log: Log) -> None:
    assert await log.append([]) == []
    assert await log.channels("", 10) == []


async def test_batches_are_atomic_to_readers(log: Log) -> None:
    """A reader sees all of a batch or none of it, never a part."""
    batch_size, batches = 50, 20
    seen: list[int] = []
    writing = True

    async def reader() -> None:
        while writing:
            history = await log.read("room:a", 0, 100_000)
            seen.append(len(history.events))
            # The position may be read apart from the events, but it is atomic too.
            assert history.position.offset % batch_size == 0
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    for b in range(batches):
        await log.append([item("room:a", b * batch_size + k) for k in range(batch_size)])
        await asyncio.sleep(0)
    writing = False
    await task
    assert seen, "the reader never ran"
    assert all(n % batch_size == 0 for n in seen), seen


# -- reading -------------------------------------------------------------------------------


async def test_read_pages_after_an_offset(log: Log) -> None:
    await put(log, "room:a", 10)
    pages = []
    after = 0
    while True:
        history = await log.read("room:a", after, 3)
        if not history.events:
            break
        pages.append([e.offset for e in history.events])
        after = history.events[-1].offset or 0
        assert history.position.offset == 10
        assert history.first == 1
    assert pages == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert (await log.read("room:a", 10, 5)).events == ()
    assert (await log.read("room:a", 50, 5)).events == ()
    assert (await log.read("room:a", 0, 0)).events == ()


async def test_unknown_channel_is_at_offset_zero(log: Log) -> None:
    position = await log.position("room:never")
    assert position.offset == 0
    assert isinstance(position.epoch, str)
    assert position.epoch
    history = await log.read("room:never", 0, 10)
    assert history.events == ()
    assert history.position.offset == 0
    assert history.first == 1
    assert await log.channels("room:", 10) == []


async def test_channels_by_prefix_in_name_order(log: Log) -> None:
    for channel, count in [("room:b", 2), ("table:1", 1), ("room:a", 3), ("lobby", 1)]:
        await put(log, channel, count)
    await put(log, "room:c", 1)

    rooms = await log.channels("room:", 10)
    assert [(name, pos.offset) for name, pos in rooms] == [
        ("room:a", 3),
        ("room:b", 2),
        ("room:c", 1),
    ]
    assert [name for name, _ in await log.channels("room:", 2)] == ["room:a", "room:b"]
    assert [name for name, _ in await log.channels("", 100)] == [
        "lobby",
        "room:a",
        "room:b",
        "room:c",
        "table:1",
    ]
    assert await log.channels("zzz", 10) == []
    for name, position in rooms:
        assert position == await log.position(name)


# -- epochs --------------------------------------------------------------------------------


async def test_epoch_is_stable_while_open(log: Log) -> None:
    (first,) = await log.append([item("room:a")])
    await put(log, "room:a", 5)
    epochs = {first.event.epoch, (await log.position("room:a")).epoch}
    epochs |= {e.epoch for e in (await log.read("room:a", 0, 10)).events}
    epochs.add((await log.read("room:a", 0, 10)).position.epoch)
    assert len(epochs) == 1
    assert None not in epochs


async def test_epoch_and_history_across_reopen(log_backend: LogBackend) -> None:
    async with log_backend.make() as log:
        await put(log, "room:a", 3)
        before = await log.position("room:a")
    async with log_backend.make() as again:
        after = await again.position("room:a")
        history = await again.read("room:a", 0, 10)
        (next_event,) = await again.append([item("room:a")])
    if log_backend.durable:
        assert after == before
        assert [e.offset for e in history.events] == [1, 2, 3]
        assert next_event.event.offset == 4
        assert next_event.event.epoch == before.epoch
    else:
        # A history that did not survive must not look like the same one.
        assert after.offset == 0
        assert after.epoch != before.epoch
        assert history.events == ()
        assert next_event.event.offset == 1


# -- idempotency ---------------------------------------------------------------------------


async def test_repeated_key_returns_the_first_event(log: Log) -> None:
    (first,) = await log.append([item("room:a", 1, key="k1")])
    (again,) = await log.append([item("room:a", 2, key="k1")])
    assert not first.duplicate
    assert again.duplicate
    assert again.event == first.event
    assert again.event.data == {"n": 1}
    assert (await log.position("room:a")).offset == 1
    (other,) = await log.append([item("room:a", 3, key="k2")])
    assert (other.duplicate, other.event.offset) == (False, 2)


async def test_repeated_key_within_one_batch(log: Log) -> None:
    appended = await log.append(
        [item("room:a", 1, key="k"), item("room:a", 2), item("room:a", 3, key="k")]
    )
    assert [(a.event.offset, a.duplicate) for a in appended] == [(1, False), (2, False), (1, True)]
    assert appended[2].event.data == {"n": 1}
    assert (await log.position("room:a")).offset == 2


async def test_same_key_on_another_channel_is_not_a_duplicate(log: Log) -> None:
    (a,) = await log.append([item("room:a", key="k")])
    (b,) = await log.append([item("room:b", key="k")])
    assert not b.duplicate
    assert (b.event.channel, b.event.offset) == ("room:b", 1)
    assert a.event.channel == "room:a"


async def test_key_is_forgotten_after_the_window(log: Log, clock: FakeClock) -> None:
    (first,) = await log.append([item("room:a", 1, key="k")])
    clock.now += IDEMPOTENCY_WINDOW - 10
    (within,) = await log.append([item("room:a", 2, key="k")])
    assert within.duplicate
    clock.now += 11
    (after,) = await log.append([item("room:a", 3, key="k")])
    assert not after.duplicate
    assert after.event.offset == 2
    assert first.event.offset == 1


async def test_trim_forgets_expired_keys(log: Log) -> None:
    await log.append([item("room:a", 1, key="old")])
    keep_all = keep(1 << 30, 1e12)
    await log.trim(keep_all, now=time.time() + IDEMPOTENCY_WINDOW / 2)
    (still,) = await log.append([item("room:a", 2, key="old")])
    assert still.duplicate, "a key inside the window survives a trim"
    assert await log.trim(keep_all, now=time.time() + IDEMPOTENCY_WINDOW + 1) == 0
    (fresh,) = await log.append([item("room:a", 3, key="old")])
    assert not fresh.duplicate
    assert fresh.event.offset == 2


# -- retention -----------------------------------------------------------------------------


async def test_trim_by_count(log: Log) -> None:
    await put(log, "room:a", 10)
    await put(log, "room:b", 4)
    removed = await log.trim(keep(3, 1e9, only="room:a"))
    assert removed == 7
    history = await log.read("room:a", 0, 100)
    assert [e.offset for e in history.events] == [8, 9, 10]
    assert history.first == 8
    assert history.position.offset == 10
    assert len((await log.read("room:b", 0, 100)).events) == 4, "other channels untouched"

    (next_event,) = await log.append([item("room:a")])
    assert next_event.event.offset == 11, "offsets are never reused"
    assert await log.trim(keep(3, 1e9, only="room:a")) == 1


async def test_trim_everything_keeps_the_position(log: Log) -> None:
    await put(log, "room:a", 5)
    assert await log.trim(keep(0, 1e9)) == 5
    history = await log.read("room:a", 0, 100)
    assert history.events == ()
    assert history.position.offset == 5
    assert history.first == 6
    (next_event,) = await log.append([item("room:a")])
    assert next_event.event.offset == 6
    assert (await log.read("room:a", 0, 100)).first == 6


async def test_trim_by_age(log: Log, clock: FakeClock) -> None:
    await put(log, "room:a", 3)
    clock.now += 100
    await put(log, "room:a", 2)
    assert await log.trim(keep(1000, 50), now=clock.now + 20) == 3
    history = await log.read("room:a", 0, 100)
    assert [e.offset for e in history.events] == [4, 5]
    assert history.first == 4
    assert await log.trim(keep(1000, 50), now=clock.now + 20) == 0
    assert await log.trim(keep(1000, 50), now=clock.now + 60) == 2
    history = await log.read("room:a", 0, 100)
    assert (history.events, history.first, history.position.offset) == ((), 6, 5)
    (next_event,) = await log.append([item("room:a")])
    assert next_event.event.offset == 6


async def test_trim_without_rules_keeps_everything(log: Log) -> None:
    await put(log, "room:a", 5)
    assert await log.trim(lambda channel: None, now=time.time() + 1e9) == 0
    assert len((await log.read("room:a", 0, 100)).events) == 5
