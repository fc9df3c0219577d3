"""The compatibility streams, byte for byte: the poker table and the casino player stream."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.sseclient import RawStream, blocks, publish, write_config
from tests.support import ServerProcess, running_server, token

pytestmark = pytest.mark.e2e

HAND_ACTION = {
    "kind": "hand_action",
    "table": {"id": 1, "name": "Table 1"},
    "hand": {"id": 123, "round": "FLOP"},
    "action": {"type": "RAISE", "amount": "1000000000", "seatNumber": 3},
    "playerBalances": [
        {"seatNumber": 1, "tableBalanceGwei": "5000000000"},
        {"seatNumber": 3, "tableBalanceGwei": "4000000000"},
    ],
}
HAND_START = {"kind": "hand_start", "table": {"id": 1}, "hand": {"id": 123}}
CHAT = {"kind": "chat_message", "table": {"id": 1}, "seatNumber": 3, "message": "gl"}
NOTIFICATION = {
    "message_id": "a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c",
    "event": "bonus_granted",
    "event_details": {"bonus_amount": 100, "bonus_type": "welcome", "currency": "USD"},
    "is_read": False,
    "time": "2025-10-22 14:30:45",
}
BALANCE = {"balance": 1500, "total_received": 5000, "total_redeemed": 3500.5}


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose keep-alives are far apart, so a stream's bytes are predictable."""
    tmp = tmp_path_factory.mktemp("compat")
    config = write_config(tmp, "[limits]\nsse_keepalive = 60\n")
    with running_server(tmp, config=config) as srv:
        yield srv


def frame(payload: Any, offset: int | None = None) -> bytes:
    head = b"" if offset is None else b"id: %d\n" % offset
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def assert_stream_headers(raw: RawStream, start: str | None) -> None:
    assert raw.status_line == "HTTP/1.1 200 OK"
    assert raw.headers["content-type"] == "text/event-stream"
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.headers["x-accel-buffering"] == "no"
    assert raw.headers["connection"] == "close"
    assert "transfer-encoding" not in raw.headers
    assert "content-length" not in raw.headers
    assert raw.headers.get("croupier-last-event-id") == start


# -- the poker table ---------------------------------------------------------------------------


def test_poker_table_replay_live_and_ephemeral_bytes(quiet_server: ServerProcess) -> None:
    publish(quiet_server, "table:1", "hand_start", HAND_START)
    publish(quiet_server, "table:1", "hand_action", HAND_ACTION)
    raw = RawStream(quiet_server, f"/api/tables/1/events?lastEventId=0&token={token('p1')}")
    try:
        assert_stream_headers(raw, "0")
        expected = b": connected\n\nretry: 1000\n\n" + frame(HAND_START, 1) + frame(HAND_ACTION, 2)
        assert raw.read_until(frame(HAND_ACTION, 2)) == expected
        assert frame(HAND_ACTION, 2) == (
            b'id: 2\ndata: {"kind":"hand_action","table":{"id":1,"name":"Table 1"},'
            b'"hand":{"id":123,"round":"FLOP"},"action":{"type":"RAISE",'
            b'"amount":"1000000000","seatNumber":3},"playerBalances":'
            b'[{"seatNumber":1,"tableBalanceGwei":"5000000000"},'
            b'{"seatNumber":3,"tableBalanceGwei":"4000000000"}]}\n\n'
        )
        publish(quiet_server, "table:1", "chat_message", CHAT, ephemeral=True)
        publish(quiet_server, "table:1", "hand_end", {"kind": "hand_end", "winners": [3]})
        live = raw.read_until(b"\n\n") + raw.read_until(b"\n\n")
        # Presence counts are the gateway's own and never reach a table client.
        assert live == frame(CHAT) + frame({"kind": "hand_end", "winners": [3]}, 3)
    finally:
        raw.close()


def test_poker_table_resumes_from_the_browser_header(quiet_server: ServerProcess) -> None:
    for n in range(1, 5):
        publish(quiet_server, "table:2", "hand_action", {"kind": "hand_action", "n": n})
    # A reconnecting EventSource sends Last-Event-ID; it wins over the URL's lastEventId.
    raw = RawStream(
        quiet_server,
        f"/api/tables/2/events?lastEventId=0&token={token('p1')}",
        {"Last-Event-ID": "2"},
    )
    try:
        assert_stream_headers(raw, "2")
        body = raw.read_until(b"id: 4\n")
        body += raw.read_until(b"\n\n")
    finally:
        raw.close()
    assert body == (
        b": connected\n\nretry: 1000\n\n"
        + frame({"kind": "hand_action", "n": 3}, 3)
        + frame({"kind": "hand_action", "n": 4}, 4)
    )


def test_poker_table_reset_when_history_cannot_cover(quiet_server: ServerProcess) -> None:
    publish(quiet_server, "table:3", "hand_start", HAND_START)
    raw = RawStream(quiet_server, f"/api/tables/3/events?lastEventId=41&token={token('p1')}")
    try:
        assert_stream_headers(raw, "1")
        body = raw.read_until(b"}\n\n")
    finally:
        raw.close()
    assert body == (
        b": connected\n\nretry: 1000\n\n"
        b'data: {"kind":"reset","type":"reset","channel":"table:3"}\n\n'
    )


def test_poker_table_refusals(quiet_server: ServerProcess) -> None:
    url = quiet_server.url + "/api/tables/{}/events"
    # The table namespace is public by default, but a token that is sent must be valid.
    r = httpx.get(url.format(1), params={"token": "garbage"})
    assert r.status_code == 401
    r = httpx.get(url.format("bad%20id"), params={"token": token("p1")})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_channel"


# -- the casino player stream -------------------------------------------------------------------


def test_player_stream_envelope_bytes(quiet_server: ServerProcess) -> None:
    raw = RawStream(
        quiet_server, "/gateway/sse/1001/stream", {"x-auth-token": token("12345", brand="1001")}
    )
    try:
        assert_stream_headers(raw, "0")
        greeting = raw.read_until(b"\n\n")
        assert re.fullmatch(
            rb'retry: 1000\nid: 0\ndata: \{"type":"connected",'
            rb'"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\}\n\n',
            greeting,
        ), greeting
        publish(quiet_server, "player:1001:12345", "notification", NOTIFICATION)
        publish(quiet_server, "player:1001:12345", "gamification_balance_update", BALANCE)
        body = raw.read_until(b"id: 2\n") + raw.read_until(b"\n\n")
    finally:
        raw.close()
    assert body == (
        b'id: 1\ndata: {"brand_id":1001,"player_id":12345,"event_type":"notification",'
        b'"event_data":{"message_id":"a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c",'
        b'"event":"bonus_granted","event_details":{"bonus_amount":100,"bonus_type":"welcome",'
        b'"currency":"USD"},"is_read":false,"time":"2025-10-22 14:30:45"}}\n\n'
        b'id: 2\ndata: {"brand_id":1001,"player_id":12345,'
        b'"event_type":"gamification_balance_update","event_data":{"balance":1500,'
        b'"total_received":5000,"total_redeemed":3500.5}}\n\n'
    )


def test_player_stream_ids_that_are_not_numbers_stay_text(quiet_server: ServerProcess) -> None:
    publish(quiet_server, "player:acme:007", "notification", {"n": 1})
    raw = RawStream(
        quiet_server,
        f"/gateway/sse/acme/stream?token={token('007', brand='acme')}",
        {"Last-Event-ID": "0"},
    )
    try:
        raw.read_until(b"\n\n")
        event = raw.read_until(b"\n\n")
    finally:
        raw.close()
    assert event == (
        b'id: 1\ndata: {"brand_id":"acme","player_id":"007","event_type":"notification",'
        b'"event_data":{"n":1}}\n\n'
    )


def test_player_stream_resumes(quiet_server: ServerProcess) -> None:
    for n in range(1, 4):
        publish(quiet_server, "player:1001:777", "notification", {"n": n})
    raw = RawStream(
        quiet_server,
        "/gateway/sse/1001/stream",
        {"x-auth-token": token("777", brand="1001"), "Last-Event-ID": "1"},
    )
    try:
        assert_stream_headers(raw, "1")
        body = raw.read_until(b"id: 3\n") + raw.read_until(b"\n\n")
    finally:
        raw.close()
    events = blocks(body)[1:]
    assert [orjson.loads(b.split(b"data: ")[1])["event_data"] for b in events] == [
        {"n": 2},
        {"n": 3},
    ]


def test_player_stream_refusals(quiet_server: ServerProcess) -> None:
    url = quiet_server.url + "/gateway/sse/1001/stream"
    r = httpx.get(url)
    assert r.status_code == 401
    r = httpx.get(url, headers={"x-auth-token": "garbage"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    r = httpx.get(url, headers={"x-auth-token": token("12345", brand="1002")})
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "forbidden",
        "message": 'the token is not for brand "1001"',
    }
    r = httpx.get(url, headers={"x-auth-token": token("12345", brand=None)})
    assert r.status_code == 403


# -- keep-alives and the end of a stream ---------------------------------------------------------


def test_heartbeats_keepalives_and_shutdown(tmp_path: Path) -> None:
    with running_server(tmp_path, config=write_config(tmp_path)) as server:
        poker = RawStream(server, f"/api/tables/9/events?token={token('p1')}")
        player = RawStream(
            server, "/gateway/sse/1001/stream", {"x-auth-token": token("5", brand="1001")}
        )
        try:
            assert poker.read_until(b"retry: 1000\n\n") == b": connected\n\nretry: 1000\n\n"
            assert poker.read_until(b"\n\n", seconds=3) == b": heartbeat\n\n"
            player.read_until(b"\n\n")
            keepalive = player.read_until(b"\n\n", seconds=3)
            assert re.fullmatch(
                rb": keepalive (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\n"
                rb'data: \{"type":"keepalive","timestamp":"\1"\}\n\n',
                keepalive,
            ), keepalive
            server.stop(signal.SIGTERM)
            poker_end = poker.read_to_eof()
            player_end = player.read_to_eof()
        finally:
            poker.close()
            player.close()
    assert blocks(poker_end)[-1] == b": disconnect shutdown"
    assert blocks(player_end)[-1] == (
        b'data: {"type":"error","message":"disconnected: shutdown; reconnect"}'
    )
