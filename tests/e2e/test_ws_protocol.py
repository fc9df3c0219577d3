"""The native WebSocket protocol (DESIGN §3) over real sockets against a real server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support import ServerProcess, running_server, timeout, token

from .wsclient import history, http, publish, write_config, ws_connect

pytestmark = pytest.mark.e2e

ALLOWED_ORIGIN = "https://casino.example"
_ids = itertools.count(1)


def fresh(namespace: str = "tournament") -> str:
    return f"{namespace}:ws-{next(_ids)}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("ws")
    config = write_config(tmp / "croupier.toml", f'[server]\norigins = ["{ALLOWED_ORIGIN}"]\n')
    with running_server(tmp, config=config) as server:
        yield server


async def test_connected_message(srv: ServerProcess) -> None:
    async with ws_connect(srv, token("p1")) as c:
        connected = c.connected
    assert set(connected) == {"type", "client", "ping_interval", "expires_in"}
    assert connected["client"].startswith("c-")
    assert connected["ping_interval"] == 25
    assert 3500 < connected["expires_in"] <= 3600


async def test_publish_over_http_arrives_over_websocket(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api, ws_connect(srv, token("p1")) as c:
        subscribed = await c.subscribe(channel, id=7)
        epoch = subscribed["position"]["epoch"]
        assert subscribed == {
            "type": "subscribed",
            "channel": channel,
            "id": 7,
            "recovered": False,
            "position": {"offset": 0, "epoch": epoch},
            "presence": {"count": 1},
        }
        data = {"tournamentId": "12345", "playerId": "tp_player_456", "score": 1250}
        result = await publish(api, channel, "player.score.updated", data)
        assert result["offset"] == 1
        assert result["epoch"] == epoch
        (event,) = await c.events(1)
    assert event == {
        "type": "player.score.updated",
        "channel": channel,
        "offset": 1,
        "epoch": epoch,
        "ts": result["ts"],
        "data": data,
    }
    assert event["ts"].endswith("Z") or "+" in event["ts"]


async def test_presence_count_in_subscribed(srv: ServerProcess) -> None:
    channel = fresh()
    async with ws_connect(srv, token("p1")) as a, ws_connect(srv, token("p2")) as b:
        assert (await a.subscribe(channel))["presence"] == {"count": 1}
        assert (await b.subscribe(channel))["presence"] == {"count": 2}
    # The player namespace keeps no presence, so none is announced.
    async with ws_connect(srv, token("p1")) as a:
        assert "presence" not in await a.subscribe("player:1001:p1")


async def test_unsubscribe_stops_delivery(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api, ws_connect(srv, token("p1")) as c:
        await c.subscribe(channel)
        await publish(api, channel, "a.b", {"n": 1})
        assert [e["offset"] for e in await c.events(1)] == [1]
        await c.send({"type": "unsubscribe", "channel": channel, "id": 3})
        assert await c.expect("unsubscribed") == {
            "type": "unsubscribed",
            "channel": channel,
            "id": 3,
        }
        await publish(api, channel, "a.b", {"n": 2})
        # Fan-out happens before the publish answers, so a ping now would follow any event.
        assert await c.barrier() == []
        await c.send({"type": "unsubscribe", "channel": channel, "id": 4})
        error = await c.expect("error")
        assert (error["code"], error["id"]) == ("not_subscribed", 4)


async def test_ping_pong(srv: ServerProcess) -> None:
    async with ws_connect(srv, token("p1")) as c:
        await c.send({"type": "ping", "id": 9})
        assert await c.recv_quiet() == {"type": "pong", "id": 9}
        await c.send({"type": "ping"})
        assert await c.recv_quiet() == {"type": "pong"}


@pytest.mark.parametrize("how", ["query", "bearer", "x-auth-token"])
async def test_auth_at_connect(srv: ServerProcess, how: str) -> None:
    tok = token("p1")
    headers = {}
    if how == "bearer":
        headers["Authorization"] = f"Bearer {tok}"
    elif how == "x-auth-token":
        headers["x-auth-token"] = tok
    async with ws_connect(srv, tok if how == "query" else None, headers=headers) as c:
        assert "expires_in" in c.connected
        # An owner channel: only that token's player may subscribe.
        subscribed = await c.subscribe("player:1001:p1")
        assert subscribed["channel"] == "player:1001:p1"


async def test_auth_as_first_message(srv: ServerProcess) -> None:
    async with ws_connect(srv) as c:
        assert "expires_in" not in c.connected
        # Anonymous: public channels only.
        await c.subscribe("lobby")
        await c.send({"type": "subscribe", "channel": fresh(), "id": 2})
        error = await c.expect("error")
        assert (error["code"], error["id"]) == ("unauthorized", 2)
        await c.send({"type": "auth", "token": token("p1"), "id": 3})
        authenticated = await c.expect("authenticated")
        assert (authenticated["id"], authenticated["user"]) == (3, "p1")
        assert (await c.subscribe("player:1001:p1", id=4))["id"] == 4


async def test_token_refresh(srv: ServerProcess) -> None:
    async with ws_connect(srv, token("p1", ttl=60)) as c:
        assert c.connected["expires_in"] <= 60
        await c.send({"type": "auth", "token": token("p1", ttl=7200), "id": 1})
        refreshed = await c.expect("authenticated")
        assert refreshed["user"] == "p1"
        assert refreshed["exp"] > time.time() + 3600
        await c.send({"type": "auth", "token": token("p2"), "id": 2})
        error = await c.expect("error")
        assert (error["code"], error["id"]) == ("identity_change", 2)
        # Still p1, still connected.
        await c.subscribe("player:1001:p1", id=3)
        await c.send({"type": "subscribe", "channel": "player:1001:p2", "id": 4})
        assert (await c.expect("error"))["code"] == "forbidden"
        await c.send({"type": "auth", "token": "not-a-jwt", "id": 5})
        assert (await c.expect("error"))["code"] == "invalid_token"


# -- bad input ------------------------------------------------------------------------------


async def test_bad_input_answers_with_errors_and_leaves_history_alone(srv: ServerProcess) -> None:
    room = fresh("room")
    async with http(srv) as api:
        before = await publish(api, room, "game.round.started", {"round": 1})
        async with ws_connect(srv, token("p1")) as c:
            await c.subscribe(room)

            async def refused(message: str | dict[str, Any], code: str) -> dict[str, Any]:
                if isinstance(message, str):
                    await c.send_raw(message)
                else:
                    await c.send(message)
                error = await c.expect("error")
                assert error["code"] == code, error
                assert isinstance(error.get("message"), str)
                assert error["message"]
                return error

            await refused('{"type": "subscribe", "channel": ', "bad_json")
            err = await refused({"type": "teleport", "id": 1}, "unknown_type")
            assert err["message"].startswith('the message has the unknown type "teleport";')
            # A missing type is named as missing, not shown as a Python value ('None').
            err = await refused({"channel": room, "id": 2}, "unknown_type")
            assert err["message"] == (
                "the message has no type; expected one of subscribe, unsubscribe, publish,"
                " auth, ping"
            )
            big = {"type": "ping", "pad": "x" * (64 * 1024 + 10)}
            await refused(big, "too_large")
            err = await refused(
                {"type": "subscribe", "channel": "bad channel!", "id": 5}, "bad_channel"
            )
            assert err["id"] == 5
            await refused({"type": "subscribe", "channel": "nope:1", "id": 6}, "unknown_namespace")
            await refused({"type": "subscribe", "channel": "player:1001:other"}, "forbidden")
            # Player publishes: an event type the namespace does not allow, anywhere or here.
            await refused(
                {"type": "publish", "channel": room, "event": "player.score.updated", "data": {}},
                "forbidden",
            )
            await refused(
                {"type": "publish", "channel": fresh(), "event": "chat.message", "data": {}},
                "forbidden",
            )
            big_chat = {"text": "x" * 4096}
            await refused(
                {"type": "publish", "channel": room, "event": "chat.message", "data": big_chat},
                "too_large",
            )
            await refused({"type": "subscribe", "channel": room, "id": 9}, "already_subscribed")
            await refused(
                {"type": "publish", "channel": room, "event": "chat.message", "data": [1]},
                "bad_message",
            )
            await refused({"type": "subscribe", "channel": 5}, "bad_message")
            # The connection is still there and still works.
            await c.send(
                {
                    "type": "publish",
                    "channel": room,
                    "event": "chat.message",
                    "data": {"text": "hi"},
                    "id": 10,
                }
            )
            replies = [await c.recv_quiet(), await c.recv_quiet()]
            kinds = sorted(r["type"] for r in replies)
            assert kinds == ["chat.message", "published"], replies
            chat = next(r for r in replies if r["type"] == "chat.message")
            assert "offset" not in chat
            assert chat["data"] == {"text": "hi", "from": {"id": "p1"}}
        after = await history(api, room)
        assert [e["offset"] for e in after["events"]] == [before["offset"]]
        assert after["position"]["offset"] == 1
        listed = (await api.get("/api/v1/channels", params={"prefix": "nope"})).json()
        assert listed["channels"] == []


async def test_player_publish_rate_limit(srv: ServerProcess) -> None:
    room = fresh("room")
    async with ws_connect(srv, token("p1")) as c:
        codes = []
        # chat.message allows a burst of 5 at 2/s per connection.
        for i in range(8):
            await c.send(
                {
                    "type": "publish",
                    "channel": room,
                    "event": "chat.message",
                    "data": {"n": i},
                    "id": i,
                }
            )
        for _ in range(8):
            reply = await c.recv_quiet()
            codes.append(reply.get("code", reply["type"]))
        assert "rate_limited" in codes, codes
        assert codes.count("published") >= 5
        await c.send({"type": "ping", "id": "alive"})
        assert await c.recv_quiet() == {"type": "pong", "id": "alive"}


async def test_frame_over_the_transport_limit_closes(srv: ServerProcess) -> None:
    """Past 64 KiB a frame is answered; past the transport's own cap the socket is closed."""
    async with ws_connect(srv, token("p1")) as c:
        await c.send_raw("x" * (2 * 1024 * 1024))
        await c.wait_closed()
        # 1009 when the close frame gets through; the server may also cut the socket while
        # the rest of the frame is still arriving.
        assert c.ws.close_code in (
            aiohttp.WSCloseCode.MESSAGE_TOO_BIG,
            aiohttp.WSCloseCode.ABNORMAL_CLOSURE,
        ), c.ws.close_code


async def test_abusive_client_is_closed(srv: ServerProcess) -> None:
    async with ws_connect(srv, token("p1")) as c:
        # abuse_errors (20) errors in a row; the server closes on the last one.
        for _ in range(20):
            await c.send_raw("{nope")
        seen = await c.wait_closed()
        assert c.ws.closed
    codes = [m.get("code") for m in seen]
    assert codes.count("bad_json") == 20, codes
    assert "abuse" in codes
    assert seen[-1] == {"type": "disconnect", "code": "abuse", "reconnect": False}
    assert c.ws.close_code == 1008


async def test_errors_must_be_in_a_row_to_count_as_abuse(srv: ServerProcess) -> None:
    async with ws_connect(srv, token("p1")) as c:
        for _ in range(3):
            for _ in range(19):
                await c.send_raw("{nope")
            await c.send({"type": "ping", "id": "ok"})
            seen = await c.barrier_after("ok")
            assert [m["code"] for m in seen] == ["bad_json"] * 19


async def _handshake_error(srv: ServerProcess, **kw: object) -> httpx.Response:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        **kw.pop("headers", {}),  # type: ignore[dict-item]
    }
    async with httpx.AsyncClient(timeout=timeout(5)) as raw:
        return await raw.get(srv.ws_url.replace("ws://", "http://"), headers=headers, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tok", "code"),
    [("garbage", "invalid_token"), (token("p1", ttl=-120), "token_expired")],
)
async def test_bad_token_is_refused_before_upgrade(srv: ServerProcess, tok: str, code: str) -> None:
    response = await _handshake_error(srv, params={"token": tok})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with ws_connect(srv, tok):
            pass
    assert info.value.status == 401


async def test_origin_allowlist(srv: ServerProcess) -> None:
    response = await _handshake_error(srv, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "origin_not_allowed",
        "message": 'origin "https://evil.example" is not allowed',
    }
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with ws_connect(srv, token("p1"), origin="https://evil.example"):
            pass
    assert info.value.status == 403
    async with ws_connect(srv, token("p1"), origin=ALLOWED_ORIGIN) as c:
        assert c.connected["type"] == "connected"


# -- time: token expiry and idle connections ------------------------------------------------


async def test_expired_token_disconnects_unless_refreshed(srv: ServerProcess) -> None:
    # Tokens 3 s past their exp: accepted (the clock-skew leeway is 5 s), and the connections
    # last until the leeway is over too.
    async with (
        ws_connect(srv, token("p1", ttl=-3)) as lapsing,
        ws_connect(srv, token("p1", ttl=-3)) as refreshed,
    ):
        await refreshed.send({"type": "auth", "token": token("p1", ttl=3600), "id": 1})
        await refreshed.expect("authenticated")
        seen = await lapsing.wait_closed(seconds=5)
        assert seen == [{"type": "disconnect", "code": "token_expired", "reconnect": True}]
        assert lapsing.ws.close_code == 1008
        # The refreshed connection outlived the first token.
        assert await refreshed.barrier() == []


async def test_idle_connection_is_closed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "croupier.toml", "[limits]\nping_interval = 0.5\n")
    with running_server(tmp_path, config=config) as server:
        async with (
            ws_connect(server, token("p1")) as quiet,
            ws_connect(server, token("p2")) as chatty,
        ):
            assert quiet.connected["ping_interval"] == 0.5
            # The quiet one sends nothing at all; the chatty one pings every 0.2 s.
            started = time.monotonic()
            closed = asyncio.create_task(quiet.wait_closed(seconds=5))
            while not closed.done():
                await chatty.send({"type": "ping"})
                assert await chatty.recv_quiet() == {"type": "pong"}
                await asyncio.sleep(0.2)
            assert await closed == [
                {"type": "disconnect", "code": "idle_timeout", "reconnect": True}
            ]
            # Never before twice the interval (a slow host only makes it later; the wait
            # above fails if it never comes).
            assert time.monotonic() - started >= 0.9
            assert await chatty.barrier() == []


async def test_presence_count_and_join_are_broadcast(srv: ServerProcess) -> None:
    room = fresh("room")  # rooms announce joins and keep presence
    async with ws_connect(srv, token("p1", name="Ann")) as a:
        await a.subscribe(room)
        async with ws_connect(srv, token("p2")) as b:
            await b.subscribe(room)
            seen: list[dict[str, Any]] = []
            # presence.count is throttled to one a second per channel.
            while not any(m["type"] == "presence.count" and m["data"]["count"] == 2 for m in seen):
                seen.append(await a.recv(seconds=3))
        joins = [m for m in seen if m["type"] == "presence.join"]
        assert {"id": "p2"} in [m["data"] for m in joins]
        assert all("offset" not in m for m in seen)
        assert all(m["channel"] == room for m in seen)


async def test_a_players_second_connection_is_not_a_second_join(srv: ServerProcess) -> None:
    room = fresh("room")
    async with ws_connect(srv, token("p1")) as watcher:
        await watcher.subscribe(room)
        async with ws_connect(srv, token("p2")) as first:
            await first.subscribe(room)
            async with ws_connect(srv, token("p2")) as second:
                await second.subscribe(room)
            # The second tab closed, the first is still in: no leave, no second join.
            async with ws_connect(srv, token("p3")) as marker:
                await marker.subscribe(room)
            seen: list[dict[str, Any]] = []
            while {"id": "p3"} not in [m["data"] for m in seen if m["type"] == "presence.join"]:
                seen.append(await watcher.recv(seconds=5))
            # Leaves are announced after a delay: by the time p3's is, the second tab's is due.
            while {"id": "p3"} not in [m["data"] for m in seen if m["type"] == "presence.leave"]:
                seen.append(await watcher.recv(seconds=8))
        joins = [m["data"] for m in seen if m["type"] == "presence.join"]
        leaves = [m["data"] for m in seen if m["type"] == "presence.leave"]
        assert joins.count({"id": "p2"}) == 1
        assert {"id": "p2"} not in leaves
