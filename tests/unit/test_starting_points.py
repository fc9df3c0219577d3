"""A service's starting point is asked once per channel for a crowd of new subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from croupier.config import Settings
from croupier.events import Position
from croupier.gateway import Gateway


class Start:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self, channel: str) -> tuple[Position | None, bytes | None]:
        self.calls.append(channel)
        n = len(self.calls)
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the service could not answer")
        return Position(n, "e"), f"snapshot {n}".encode()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with Gateway(Settings(database_url="memory://")) as gw:
        yield gw


def start_of(gateway: Gateway, channel: str) -> Start:
    start = Start()
    gateway.hooks.on_fresh_subscribe(channel.split(":", 1)[0], start)
    return start


async def test_a_crowd_of_new_subscribers_shares_one_answer(gateway: Gateway) -> None:
    start = start_of(gateway, "match:1")
    start.gate.clear()
    shared = gateway.starting_point("match:1")
    assert shared is not None
    waiting = [asyncio.ensure_future(shared("match:1")) for _ in range(30)]
    await asyncio.sleep(0.01)
    start.gate.set()
    answers = await asyncio.gather(*waiting)
    assert start.calls == ["match:1"]
    assert set(answers) == {(Position(1, "e"), b"snapshot 1")}
    start.gate.clear()
    waiting = [asyncio.ensure_future(shared(f"match:{n}")) for n in (2, 3)]
    await asyncio.sleep(0.01)
    start.gate.set()
    assert len(set(await asyncio.gather(*waiting))) == 2, "one answer per channel"


async def test_an_answer_is_not_kept(gateway: Gateway) -> None:
    start_of(gateway, "match:1")
    shared = gateway.starting_point("match:1")
    assert shared is not None
    await shared("match:1")
    assert await shared("match:1") == (Position(2, "e"), b"snapshot 2")


async def test_a_failure_is_not_kept(gateway: Gateway) -> None:
    start = start_of(gateway, "match:1")
    start.fail = True
    start.gate.clear()
    shared = gateway.starting_point("match:1")
    assert shared is not None
    waiting = [asyncio.ensure_future(shared("match:1")) for _ in range(5)]
    await asyncio.sleep(0.01)
    start.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(start.calls) == 1
    start.fail = False
    assert await shared("match:1") == (Position(2, "e"), b"snapshot 2")


async def test_no_starting_point_for_other_namespaces(gateway: Gateway) -> None:
    start_of(gateway, "match:1")
    assert gateway.starting_point("room:1") is None


class Sink:
    wire = "ws"

    def push(self, frame: bytes, event: object) -> None:
        pass


async def test_an_answer_serves_a_channel_where_nothing_moved(gateway: Gateway) -> None:
    start = start_of(gateway, "match:1")
    await gateway.publish_json("match:1", "t.x", {"n": 1})
    await gateway.hub.subscribe(
        Sink(), "match:1", since=None, stored=True, announce=lambda result: None
    )
    shared = gateway.starting_point("match:1")
    assert shared is not None
    first = await shared("match:1")
    assert await shared("match:1") == first
    assert len(start.calls) == 1
    await gateway.publish_json("match:1", "t.x", {"n": 2})  # delivered: the answer is old
    assert await shared("match:1") == (Position(2, "e"), b"snapshot 2")
