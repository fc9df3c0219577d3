"""The Presence contract, run over every implementation (see ``conftest.py``)."""

from __future__ import annotations

import asyncio

import pytest

from croupier.presence import Change
from tests.contracts.conftest import PRESENCE_TTL, PresenceHarness
from tests.support import timeout


async def test_join_and_leave_count(presence: PresenceHarness) -> None:
    store = presence.nodes[0]
    channel = presence.ch("room:1")
    assert await store.count(channel) == 0
    assert (await store.join(channel, "c-1", {"id": "p1"})).total == 1
    assert (await store.join(channel, "c-2", {"id": "p2", "name": "Bea"})).total == 2
    assert (await store.join(channel, "c-2", {"id": "p2", "name": "Bea"})).total == 2  # again
    assert await store.count(channel) == 2
    assert (await store.leave(channel, "c-1")).total == 1
    assert (await store.leave(channel, "c-unknown")).total == 1  # harmless
    assert await store.count(channel) == 1
    assert (await store.leave(channel, "c-2")).total == 0
    assert await store.count(channel) == 0


async def test_a_players_first_and_last_connection_are_told(presence: PresenceHarness) -> None:
    store = presence.nodes[0]
    channel = presence.ch("room:tabs")
    assert await store.join(channel, "c-1", {"id": "p1"}) == Change(1, True)
    assert await store.join(channel, "c-2", {"id": "p1"}) == Change(2, False)  # another tab
    assert await store.join(channel, "c-2", {"id": "p1"}) == Change(2, False)  # the same again
    assert await store.join(channel, "c-3", {"id": "p2"}) == Change(3, True)
    assert await store.join(channel, "c-4", {"name": "anonymous"}) == Change(4, False)
    assert await store.connections(channel, "p1") == 2
    assert await store.leave(channel, "c-1") == Change(3, False)  # c-2 is still in
    assert await store.leave(channel, "c-1") == Change(3, False)  # harmless, not a second last
    assert await store.leave(channel, "c-2") == Change(2, True)
    assert await store.connections(channel, "p1") == 0
    assert await store.leave(channel, "c-4") == Change(1, False)
    assert await store.join(channel, "c-5", {"id": "p1"}) == Change(2, True)  # back again


async def test_a_player_across_nodes_is_one_player(presence: PresenceHarness) -> None:
    one, two = presence.nodes
    channel = presence.ch("room:nodes")
    assert (await one.join(channel, "c-1", {"id": "p1"})).player
    assert not (await two.join(channel, "c-2", {"id": "p1"})).player
    assert await one.connections(channel, "p1") == 2
    assert not (await one.leave(channel, "c-1")).player
    assert (await two.leave(channel, "c-2")).player


async def test_members_carry_their_info(presence: PresenceHarness) -> None:
    store = presence.nodes[0]
    channel = presence.ch("table:9")
    await store.join(channel, "c-1", {"id": "p1", "name": "Al"})
    await store.join(channel, "c-2", {"id": "p2"})
    members = sorted(await store.members(channel, 10), key=lambda m: m["client"])
    assert members == [
        {"client": "c-1", "id": "p1", "name": "Al"},
        {"client": "c-2", "id": "p2"},
    ]
    assert len(await store.members(channel, 1)) == 1
    assert await store.members(presence.ch("table:empty"), 10) == []


async def test_channels_are_independent(presence: PresenceHarness) -> None:
    store = presence.nodes[0]
    a, b = presence.ch("room:a"), presence.ch("room:b")
    await store.join(a, "c-1", {"id": "p1"})
    await store.join(b, "c-1", {"id": "p1"})
    await store.leave(a, "c-1")
    assert await store.count(a) == 0
    assert await store.count(b) == 1


async def test_nodes_see_each_other(presence: PresenceHarness) -> None:
    one, two = presence.nodes
    channel = presence.ch("match:final")
    await one.join(channel, "c-1", {"id": "p1"})
    assert (await two.join(channel, "c-2", {"id": "p2"})).total == 2
    assert await one.count(channel) == 2
    clients = {m["client"] for m in await one.members(channel, 10)}
    assert clients == {"c-1", "c-2"}


@pytest.mark.parametrize("presence", ["redis"], indirect=True)  # in-process dies with it
async def test_a_dead_nodes_entries_expire(presence: PresenceHarness) -> None:
    assert presence.shared
    one, two = presence.nodes
    channel = presence.ch("lobby")
    await one.join(channel, "c-1", {"id": "p1"})
    await two.join(channel, "c-2", {"id": "p2"})
    # Node two dies: its refresher stops, nobody calls leave.
    refresher = getattr(two, "_refresher", None)
    assert refresher is not None
    refresher.cancel()
    deadline = asyncio.get_running_loop().time() + timeout(PRESENCE_TTL * 8)
    while await one.count(channel) != 1:
        assert asyncio.get_running_loop().time() < deadline, "the dead node's entry stayed"
        await asyncio.sleep(PRESENCE_TTL / 4)
    assert await one.connections(channel, "p2") == 0  # a later join of p2 is an arrival
    assert (await one.join(channel, "c-3", {"id": "p2"})).player
    await one.leave(channel, "c-3")
    # The living node's entry is refreshed and stays.
    await asyncio.sleep(PRESENCE_TTL * 2)
    assert [m["client"] for m in await one.members(channel, 10)] == ["c-1"]
