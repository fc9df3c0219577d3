"""Subscribing in the connect URL: ``/ws?channel=<name>[&since=<offset>.<epoch>]…``.

A reconnecting client names its channels, and where it stands in each, in the upgrade
request: no subscribe round trip, and the replies and the replay follow ``connected``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ServerProcess, running_server, token

from .wsclient import http, offsets, publish, ws_connect

pytestmark = pytest.mark.e2e

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("connect-subscribe")) as server:
        yield server


def fresh(namespace: str = "tournament") -> str:
    return f"{namespace}:url-{next(_ids)}"


async def test_channels_in_the_url_are_subscribed_in_order(srv: ServerProcess) -> None:
    first, second = fresh(), fresh("table")
    async with ws_connect(srv, token("p1"), query=[("channel", first), ("channel", second)]) as c:
        one = await c.expect("subscribed")
        two = await c.expect("subscribed")
        assert (one["channel"], two["channel"]) == (first, second)
        assert "id" not in one, "no message asked for it"
        assert one["recovered"] is False
        assert one["position"]["offset"] == 0
        async with http(srv) as api:
            await publish(api, second, "hand.dealt", {"n": 1})
            await publish(api, first, "round.started", {"n": 2})
        got = await c.events(2)
        assert [(e["channel"], e["type"]) for e in got] == [
            (second, "hand.dealt"),
            (first, "round.started"),
        ]


async def test_a_reconnect_resumes_from_the_url_exactly_once(srv: ServerProcess) -> None:
    channel = fresh()
    async with ws_connect(srv, token("p2"), query=[("channel", channel)]) as c:
        position = (await c.expect("subscribed"))["position"]
        async with http(srv) as api:
            await publish(api, channel, "t.x", {"i": 0})
        (seen,) = await c.events(1)
    async with http(srv) as api:
        for i in range(1, 4):
            await publish(api, channel, "t.x", {"i": i})
    since = f"{seen['offset']}.{position['epoch']}"
    query = [("channel", channel), ("since", since)]
    async with ws_connect(srv, token("p2"), query=query) as c:
        subscribed = await c.expect("subscribed")
        assert subscribed["recovered"] is True
        assert subscribed["position"] == {"offset": 4, "epoch": position["epoch"]}
        replay = await c.events(3)
        assert offsets(replay) == [2, 3, 4]
        assert [e["data"]["i"] for e in replay] == [1, 2, 3]
        assert await c.barrier() == [], "nothing twice"


async def test_an_offset_without_epoch_is_in_the_current_epoch(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api:
        for i in range(3):
            await publish(api, channel, "t.x", {"i": i})
    query = [("channel", channel), ("since", "1")]
    async with ws_connect(srv, token("p3"), query=query) as c:
        assert (await c.expect("subscribed"))["recovered"] is True
        assert offsets(await c.events(2)) == [2, 3]


async def test_a_refused_channel_is_an_error_and_the_connection_stays(
    srv: ServerProcess,
) -> None:
    mine, theirs = "player:1001:p4", "player:1001:someone-else"
    async with ws_connect(srv, token("p4"), query=[("channel", theirs), ("channel", mine)]) as c:
        error = await c.expect("error")
        assert error["code"] == "forbidden"
        assert error["channel"] == theirs
        assert (await c.expect("subscribed"))["channel"] == mine
        assert await c.barrier() == []


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ([("channel", "lobby"), ("since", "12.bad epoch")], 'since="12.bad epoch"'),
        ([("since", "3"), ("channel", "lobby")], "right after the channel=<name>"),
        ([("channel", f"lobby:{i}") for i in range(129)], "at most 128 channels"),
    ],
)
async def test_a_malformed_url_refuses_the_upgrade_with_a_reason(
    srv: ServerProcess, query: list[tuple[str, str]], said: str
) -> None:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{srv.url}/ws", params=query, headers=headers)
    assert answer.status_code == 400
    assert said in answer.json()["error"]["message"]
