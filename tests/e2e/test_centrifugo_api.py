"""Centrifugo's server HTTP API (``POST /api/{method}``) driven by the real ``cent`` client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from cent import (
    AsyncClient,
    BroadcastRequest,
    ChannelsRequest,
    DisconnectRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
)
from cent.exceptions import CentApiResponseError, CentUnauthorizedError

from tests.support import API_KEY, ServerProcess, timeout, token

from .wsclient import channel_names, configured_server, ws_connect

pytestmark = pytest.mark.e2e

READ_KEY = "k-reader-0123456789"
CONFIG = f"""
[server]
trim_interval = 0.2

[[api_keys]]
name = "reader"
key = "{READ_KEY}"
scopes = ["read"]

[[api_keys]]
name = "full"
key = "{API_KEY}"
scopes = ["publish", "read", "admin"]

[namespaces.short]
history_size = 3
subscribe = "public"
"""
fresh = channel_names("cent")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with configured_server(tmp_path_factory.mktemp("cent"), CONFIG) as server:
        yield server


@pytest.fixture
async def cent(srv: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(srv.url + "/api", API_KEY, timeout=timeout(10)) as client:
        yield client


async def test_cent_publishes_and_reads_the_history_back(
    srv: ServerProcess, cent: AsyncClient
) -> None:
    channel = fresh()
    async with ws_connect(srv, token("p1")) as ws:
        await ws.subscribe(channel)
        first = await cent.publish(
            PublishRequest(
                channel=channel, data={"score": 1}, tags={"type": "player.score.updated"}
            )
        )
        second = await cent.publish(PublishRequest(channel=channel, data={"score": 2}))
        assert (first.offset, second.offset) == (1, 2)
        assert first.epoch == second.epoch != ""
        # A native client sees the events, typed from the publication's tags.
        got = await ws.events(2)
        assert [(e["type"], e["data"]) for e in got] == [
            ("player.score.updated", {"score": 1}),
            ("publication", {"score": 2}),
        ]

    everything = await cent.history(HistoryRequest(channel=channel, limit=-1))
    assert [(p.offset, p.data) for p in everything.publications] == [
        (1, {"score": 1}),
        (2, {"score": 2}),
    ]
    assert everything.publications[0].tags == {"type": "player.score.updated"}
    assert (everything.offset, everything.epoch) == (2, first.epoch)

    # Without a limit Centrifugo answers the position only.
    position = await cent.history(HistoryRequest(channel=channel))
    assert position.publications == []
    assert (position.offset, position.epoch) == (2, first.epoch)

    newest = await cent.history(HistoryRequest(channel=channel, limit=1, reverse=True))
    assert [p.offset for p in newest.publications] == [2]
    since = await cent.history(
        HistoryRequest(channel=channel, limit=10, since=StreamPosition(offset=1, epoch=first.epoch))
    )
    assert [p.offset for p in since.publications] == [2]


async def test_an_idempotency_key_publishes_once(cent: AsyncClient) -> None:
    channel = fresh()
    request = PublishRequest(channel=channel, data={"n": 1}, idempotency_key="once")
    first = await cent.publish(request)
    again = await cent.publish(request)
    assert again.offset == first.offset == 1
    history = await cent.history(HistoryRequest(channel=channel, limit=10))
    assert len(history.publications) == 1


async def test_skip_history_publishes_an_ephemeral_event(
    srv: ServerProcess, cent: AsyncClient
) -> None:
    channel = fresh()
    async with ws_connect(srv, token("p1")) as ws:
        await ws.subscribe(channel)
        result = await cent.publish(
            PublishRequest(channel=channel, data={"live": True}, skip_history=True)
        )
        assert result.offset == 0  # nothing stored
        event = await ws.expect("publication")
        assert "offset" not in event
    history = await cent.history(HistoryRequest(channel=channel, limit=10))
    assert history.publications == []


async def test_a_position_from_another_epoch_or_beyond_the_kept_history_is_unrecoverable(
    cent: AsyncClient,
) -> None:
    channel = fresh("short")
    for n in range(6):
        await cent.publish(PublishRequest(channel=channel, data={"n": n}))
    top = await cent.history(HistoryRequest(channel=channel))
    with pytest.raises(CentApiResponseError) as wrong_epoch:
        await cent.history(
            HistoryRequest(channel=channel, limit=5, since=StreamPosition(offset=1, epoch="nope"))
        )
    assert wrong_epoch.value.code == 112
    # The retention task trims the channel to 3 events; the gap after offset 1 then cannot be
    # filled, and saying so beats returning a partial answer.
    deadline = timeout(10)
    while True:
        kept = await cent.history(HistoryRequest(channel=channel, limit=-1))
        if len(kept.publications) <= 3:
            break
        deadline -= 0.1
        assert deadline > 0, kept
        await asyncio.sleep(0.1)
    with pytest.raises(CentApiResponseError) as gone:
        await cent.history(
            HistoryRequest(
                channel=channel, limit=5, since=StreamPosition(offset=1, epoch=top.epoch)
            )
        )
    assert gone.value.code == 112


async def test_broadcast_answers_each_channel(cent: AsyncClient) -> None:
    good, other = fresh(), fresh()
    result = await cent.broadcast(
        BroadcastRequest(channels=[good, "nowhere:1", other], data={"x": 1})
    )
    first, bad, last = result.responses
    assert first.result is not None
    assert first.result.offset == 1
    assert bad.error is not None
    assert bad.error.code == 102
    assert "nowhere" in bad.error.message
    assert last.result is not None
    assert last.result.offset == 1


async def test_presence_and_presence_stats(srv: ServerProcess, cent: AsyncClient) -> None:
    channel = fresh("room")
    async with (
        ws_connect(srv, token("p1", name="Ann")) as a,
        ws_connect(srv, token("p1")) as b,
        ws_connect(srv, token("p2")) as c,
    ):
        for ws in (a, b, c):
            await ws.subscribe(channel)
        stats = await cent.presence_stats(PresenceStatsRequest(channel=channel))
        assert (stats.num_clients, stats.num_users) == (3, 2)
        presence = await cent.presence(PresenceRequest(channel=channel))
        assert sorted(info.user for info in presence.presence.values()) == ["p1", "p1", "p2"]
        assert all(client == info.client for client, info in presence.presence.items())
    with pytest.raises(CentApiResponseError) as off:
        await cent.presence(PresenceRequest(channel="player:1001:p1"))
    assert off.value.code == 108  # the player namespace keeps no presence


async def test_channels_and_info(srv: ServerProcess, cent: AsyncClient) -> None:
    channel = fresh("lobby")
    async with ws_connect(srv) as ws:
        await ws.subscribe(channel)
        found = await cent.channels(ChannelsRequest(pattern="lobby:cent-*"))
        assert found.channels[channel].num_clients == 1
        info = await cent.info(InfoRequest())
        [node] = info.nodes
        assert node.num_clients >= 1
        assert node.version.startswith("croupier")


async def test_disconnect_closes_the_users_connections(
    srv: ServerProcess, cent: AsyncClient
) -> None:
    async with ws_connect(srv, token("quitter")) as gone, ws_connect(srv, token("stayer")) as kept:
        await cent.disconnect(DisconnectRequest(user="quitter"))
        seen = await gone.wait_closed()
        assert seen[-1]["type"] == "disconnect"
        assert seen[-1]["reconnect"] is False
        await kept.barrier()  # still served


async def test_keys_and_scopes(srv: ServerProcess) -> None:
    async with AsyncClient(srv.url + "/api", READ_KEY, timeout=timeout(10)) as reader:
        await reader.history(HistoryRequest(channel=fresh()))  # read is allowed
        with pytest.raises(CentApiResponseError) as refused:
            await reader.publish(PublishRequest(channel=fresh(), data={}))
        assert refused.value.code == 103
        assert "publish" in refused.value.message
    async with AsyncClient(srv.url + "/api", "not-a-key", timeout=timeout(10)) as stranger:
        with pytest.raises(CentUnauthorizedError):
            await stranger.info(InfoRequest())


async def test_bad_requests(srv: ServerProcess, cent: AsyncClient) -> None:
    with pytest.raises(CentApiResponseError) as bad_channel:
        await cent.publish(PublishRequest(channel="no spaces", data={}))
    assert bad_channel.value.code == 107
    with pytest.raises(CentApiResponseError) as binary:
        await cent.publish(PublishRequest(channel=fresh(), data=None, b64data="AAEC"))
    assert binary.value.code == 107
    assert "b64data" in binary.value.message
    async with httpx.AsyncClient(base_url=srv.url, timeout=timeout(10)) as raw:
        headers = {"X-API-Key": API_KEY}
        not_json = await raw.post("/api/publish", content=b"{", headers=headers)
        assert not_json.status_code == 400
        missing = await raw.post("/api/publish", json={"data": {}}, headers=headers)
        assert missing.status_code == 400
        assert "channel" in missing.json()["error"]["message"]
        unknown = await raw.post("/api/teleport", json={}, headers=headers)
        assert unknown.status_code == 404
        alt = await raw.post("/api/info", json={}, headers={"Authorization": f"apikey {API_KEY}"})
        assert alt.status_code == 200
        assert alt.json()["result"]["nodes"]
