"""Presence in a storm: a player's arrival and departure are told once, batched per channel
per window, and deciding them never reads the channel's member list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from croupier import gateway as gateway_module
from croupier.config import Settings
from croupier.events import Event
from croupier.gateway import Gateway
from croupier.presence import Change, MemoryPresence
from tests.support import timeout

ROOM = Settings(database_url="memory://").rules_for("room")


class NoScans(MemoryPresence):
    """Presence that refuses to list members: joins and leaves must not need it."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = asyncio.Event()  # a grace period ended and asked about its player

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        raise AssertionError("a join or leave listed the channel's members")

    async def connections(self, channel: str, player: str) -> int:
        self.checked.set()
        return await super().connections(channel, player)


class Batches:
    """Every publish of presence notices, as one list of (type, data) per publish call."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, Any]]] = []
        self.more = asyncio.Event()

    def __call__(self, events: list[Event]) -> None:
        if events and events[0].type.startswith("presence."):
            self.calls.append([(e.type, orjson.loads(e.payload)) for e in events])
            self.more.set()

    def notices(self) -> list[tuple[str, Any]]:
        return [n for call in self.calls for n in call if n[0] != "presence.count"]

    async def wait_for(self, notice: tuple[str, Any]) -> None:
        async with asyncio.timeout(timeout(10)):
            while notice not in [n for call in self.calls for n in call]:
                self.more.clear()
                await self.more.wait()


@pytest.fixture
async def node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Gateway, Batches]]:
    monkeypatch.setattr(gateway_module, "PRESENCE_THROTTLE", 0.05)
    monkeypatch.setattr(gateway_module, "LEAVE_DELAY", 0.1)
    async with Gateway(Settings(database_url="memory://"), presence=NoScans()) as gw:
        batches = Batches()
        gw.hooks.on_publish(batches)
        yield gw, batches


@pytest.fixture
async def slow_window(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Gateway, Batches, NoScans]]:
    """A window much longer than the leave grace: a leave is queued well before it ends."""
    monkeypatch.setattr(gateway_module, "PRESENCE_THROTTLE", 1.0)
    monkeypatch.setattr(gateway_module, "LEAVE_DELAY", 0.01)
    presence = NoScans()
    async with Gateway(Settings(database_url="memory://"), presence=presence) as gw:
        batches = Batches()
        gw.hooks.on_publish(batches)
        yield gw, batches, presence


async def test_a_storm_of_joins_is_one_publish_per_channel(node: tuple[Gateway, Batches]) -> None:
    gw, batches = node
    assert ROOM is not None
    players = [{"id": f"p{i}"} for i in range(300)]
    for i, info in enumerate(players):
        await gw.join("room:a", f"c-{i}", info, ROOM)
    assert await gw.join("room:a", "c-tab", {"id": "p7"}, ROOM) == 301  # a second tab
    await gw.join("room:b", "c-b", {"id": "p1"}, ROOM)
    await batches.wait_for(("presence.count", {"count": 301}))
    await batches.wait_for(("presence.count", {"count": 1}))
    room_a = [call for call in batches.calls if ("presence.join", {"id": "p0"}) in call]
    assert len(room_a) == 1, "the storm's joins were not published together"
    assert room_a[0] == [("presence.join", p) for p in players] + [
        ("presence.count", {"count": 301})
    ]
    room_b = [call for call in batches.calls if ("presence.count", {"count": 1}) in call]
    assert room_b == [[("presence.join", {"id": "p1"}), ("presence.count", {"count": 1})]]


async def test_a_quick_reconnect_is_silent(node: tuple[Gateway, Batches]) -> None:
    gw, batches = node
    assert ROOM is not None
    await gw.join("room:q", "c-1", {"id": "ann"}, ROOM)
    await batches.wait_for(("presence.join", {"id": "ann"}))
    await gw.leave("room:q", "c-1", {"id": "ann"}, ROOM)
    await gw.join("room:q", "c-2", {"id": "ann"}, ROOM)  # back before the grace ends
    await gw.join("room:q", "c-3", {"id": "bob"}, ROOM)
    await gw.leave("room:q", "c-3", {"id": "bob"}, ROOM)  # bob really goes
    await batches.wait_for(("presence.leave", {"id": "bob"}))
    assert batches.notices() == [
        ("presence.join", {"id": "ann"}),
        ("presence.join", {"id": "bob"}),
        ("presence.leave", {"id": "bob"}),
    ]


async def test_a_player_leaves_with_their_last_connection(node: tuple[Gateway, Batches]) -> None:
    gw, batches = node
    assert ROOM is not None
    await gw.join("room:t", "c-1", {"id": "ann"}, ROOM)
    await gw.join("room:t", "c-2", {"id": "ann"}, ROOM)
    await gw.leave("room:t", "c-1", {"id": "ann"}, ROOM)  # another tab is still in
    await gw.join("room:t", "c-3", {"id": "bob"}, ROOM)
    await gw.leave("room:t", "c-3", {"id": "bob"}, ROOM)
    await batches.wait_for(("presence.leave", {"id": "bob"}))
    assert ("presence.leave", {"id": "ann"}) not in batches.notices()
    await gw.leave("room:t", "c-2", {"id": "ann"}, ROOM)
    await batches.wait_for(("presence.leave", {"id": "ann"}))
    assert [n for n in batches.notices() if n[1] == {"id": "ann"}] == [
        ("presence.join", {"id": "ann"}),
        ("presence.leave", {"id": "ann"}),
    ]


async def test_a_join_then_a_leave_in_one_window_stay_silent(
    slow_window: tuple[Gateway, Batches, NoScans],
) -> None:
    gw, batches, _ = slow_window
    assert ROOM is not None
    await gw.join("room:w", "c-1", {"id": "ann"}, ROOM)
    await gw.join("room:w", "c-2", {"id": "bob"}, ROOM)
    await gw.leave("room:w", "c-1", {"id": "ann"}, ROOM)  # gone before anyone heard of her
    await batches.wait_for(("presence.count", {"count": 1}))
    assert batches.notices() == [("presence.join", {"id": "bob"})]


async def test_a_leave_then_a_join_in_one_window_stay_silent(
    slow_window: tuple[Gateway, Batches, NoScans],
) -> None:
    gw, batches, presence = slow_window
    assert ROOM is not None
    await gw.join("room:v", "c-1", {"id": "ann"}, ROOM)
    await batches.wait_for(("presence.join", {"id": "ann"}))
    await gw.leave("room:v", "c-1", {"id": "ann"}, ROOM)
    await presence.checked.wait()  # the grace ended: her leave waits for the window
    await gw.join("room:v", "c-2", {"id": "ann"}, ROOM)  # back before it went out
    await gw.join("room:v", "c-3", {"id": "bob"}, ROOM)
    await batches.wait_for(("presence.join", {"id": "bob"}))
    assert batches.notices() == [
        ("presence.join", {"id": "ann"}),
        ("presence.join", {"id": "bob"}),
    ]


async def test_memory_presence_counts_players_not_members() -> None:
    store = MemoryPresence()
    assert await store.join("room:m", "c-1", {"id": "ann"}) == Change(1, True)
    assert await store.join("room:m", "c-2", {"id": "ann"}) == Change(2, False)
    assert await store.leave("room:m", "c-2") == Change(1, False)
    assert await store.leave("room:m", "c-1") == Change(0, True)
    assert await store.connections("room:m", "ann") == 0
