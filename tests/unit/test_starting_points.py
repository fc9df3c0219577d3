"""A service's starting point: its channel part is asked once per channel for a crowd of new
subscribers; its greeting is asked for each subscriber, with their claims, after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from croupier.config import Settings
from croupier.core.channels import Claims
from croupier.events import Position
from croupier.gateway import Gateway
from croupier.hooks import Start

ANN = Claims("ann", brand="1001")


class ChannelPart:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self, channel: str) -> Start:
        self.calls.append(channel)
        n = len(self.calls)
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the service could not answer")
        return Start(Position(n, "e"), (f"snapshot {n}".encode(),))


async def hello(channel: str, claims: Claims | None) -> tuple[bytes, ...]:
    if claims is None:
        return ()
    return (f"hello {claims.brand}/{claims.sub} on {channel}".encode(),)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with Gateway(Settings(database_url="memory://")) as gw:
        yield gw


def start_of(gateway: Gateway, channel: str) -> ChannelPart:
    start = ChannelPart()
    gateway.hooks.on_fresh_subscribe(channel.split(":", 1)[0], start)
    return start


async def test_a_crowd_of_new_subscribers_shares_one_answer(gateway: Gateway) -> None:
    start = start_of(gateway, "match:1")
    start.gate.clear()
    shared = gateway.starting_point("match:1")
    assert shared is not None
    waiting = [asyncio.ensure_future(shared("match:1", ANN)) for _ in range(30)]
    await asyncio.sleep(0.01)
    start.gate.set()
    answers = await asyncio.gather(*waiting)
    assert start.calls == ["match:1"]
    assert set(answers) == {Start(Position(1, "e"), (b"snapshot 1",))}
    start.gate.clear()
    waiting = [asyncio.ensure_future(shared(f"match:{n}", None)) for n in (2, 3)]
    await asyncio.sleep(0.01)
    start.gate.set()
    assert len(set(await asyncio.gather(*waiting))) == 2, "one answer per channel"


async def test_an_answer_is_not_kept(gateway: Gateway) -> None:
    start_of(gateway, "match:1")
    shared = gateway.starting_point("match:1")
    assert shared is not None
    await shared("match:1", None)
    assert await shared("match:1", None) == Start(Position(2, "e"), (b"snapshot 2",))


async def test_a_failure_is_not_kept(gateway: Gateway) -> None:
    start = start_of(gateway, "match:1")
    start.fail = True
    start.gate.clear()
    shared = gateway.starting_point("match:1")
    assert shared is not None
    waiting = [asyncio.ensure_future(shared("match:1", None)) for _ in range(5)]
    await asyncio.sleep(0.01)
    start.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(start.calls) == 1
    start.fail = False
    assert await shared("match:1", None) == Start(Position(2, "e"), (b"snapshot 2",))


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
    first = await shared("match:1", None)
    assert await shared("match:1", ANN) == first
    assert len(start.calls) == 1
    await gateway.publish_json("match:1", "t.x", {"n": 2})  # delivered: the answer is old
    assert await shared("match:1", None) == Start(Position(2, "e"), (b"snapshot 2",))


async def test_each_subscriber_is_greeted_after_the_shared_snapshot(gateway: Gateway) -> None:
    start = ChannelPart()
    start.gate.clear()
    gateway.hooks.on_fresh_subscribe("tournament", start, greeting=hello)
    begin = gateway.starting_point("tournament:7")
    assert begin is not None
    bob = Claims("bob", brand="1001")
    waiting = [asyncio.ensure_future(begin("tournament:7", c)) for c in (ANN, bob, None)]
    await asyncio.sleep(0.01)
    start.gate.set()
    ann_start, bob_start, anonymous = await asyncio.gather(*waiting)
    assert start.calls == ["tournament:7"]  # the channel part still shared
    assert ann_start == Start(Position(1, "e"), (b"snapshot 1", b"hello 1001/ann on tournament:7"))
    assert bob_start.messages == (b"snapshot 1", b"hello 1001/bob on tournament:7")
    assert anonymous == Start(Position(1, "e"), (b"snapshot 1",))


async def test_a_greeting_alone_starts_nowhere_special(gateway: Gateway) -> None:
    gateway.hooks.on_fresh_subscribe("tournament", greeting=hello)
    begin = gateway.starting_point("tournament:7")
    assert begin is not None
    assert await begin("tournament:7", ANN) == Start(None, (b"hello 1001/ann on tournament:7",))
    assert await begin("tournament:7", None) == Start()
