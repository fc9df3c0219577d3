"""``GET /sse`` end to end: a real server process, real sockets, httpx-sse as the client."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import EventSource, ServerSentEvent, connect_sse

from tests.e2e.sseclient import (
    RawStream,
    blocks,
    data_of,
    id_of,
    metric,
    publish,
    publish_batch,
    wait_for,
    write_config,
)
from tests.support import ServerProcess, running_server, timeout, token

pytestmark = pytest.mark.e2e

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
NOISE = {"connected", "keepalive", "presence.count"}


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not stop it; each test uses its own channels."""
    tmp = tmp_path_factory.mktemp("sse")
    with running_server(tmp, config=write_config(tmp)) as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(timeout(10))) as c:
        yield c


class Live:
    """An open stream: the response, and one iterator over its messages."""

    def __init__(self, source: EventSource) -> None:
        self.response = source.response
        self.events = source.iter_sse()

    def iter_sse(self) -> Iterator[ServerSentEvent]:
        return self.events


@contextlib.contextmanager
def stream(
    client: httpx.Client,
    server: ServerProcess,
    *channels: str,
    last_id: str | None = None,
    query_id: str | None = None,
    tok: str | None = None,
) -> Iterator[Live]:
    params: list[tuple[str, str]] = [("channel", c) for c in channels]
    params.append(("token", tok or token("p1")))
    if query_id is not None:
        params.append(("lastEventId", query_id))
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    with connect_sse(client, "GET", server.url + "/sse", params=params, headers=headers) as es:
        yield Live(es)


def take(es: Live, count: int, seconds: float = 5.0) -> list[ServerSentEvent]:
    """The next ``count`` messages, leaving out greetings, keep-alives and presence counts."""
    out: list[ServerSentEvent] = []
    deadline = time.monotonic() + timeout(seconds)
    for sse in es.events:
        if sse.data and orjson.loads(sse.data).get("type") not in NOISE:
            out.append(sse)
            if len(out) == count:
                return out
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"got {len(out)} of {count} messages: {[s.data for s in out]}")


def docs(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [orjson.loads(e.data) for e in events]


def test_greeting_headers_and_live_events(sse_server: ServerProcess, client: httpx.Client) -> None:
    publish(sse_server, "tournament:1", "t.before", {"n": 0})
    with stream(client, sse_server, "tournament:1") as es:
        r = es.response
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        assert r.headers["croupier-last-event-id"] == "1"
        assert "transfer-encoding" not in r.headers
        assert "content-length" not in r.headers
        assert r.headers["connection"] == "close"
        events = es.iter_sse()
        hello = next(events)
        assert hello.retry == 1000
        assert hello.id == "1"
        greeting = orjson.loads(hello.data)
        assert greeting.keys() == {"type", "timestamp"}
        assert greeting["type"] == "connected"
        assert TS.fullmatch(greeting["timestamp"])
        for n in (1, 2, 3):
            publish(sse_server, "tournament:1", "player.score.updated", {"n": n})
        got = take(es, 3)
    assert [e.id for e in got] == ["2", "3", "4"]
    assert [d["data"] for d in docs(got)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    first = docs(got)[0]
    assert first["type"] == "player.score.updated"
    assert first["channel"] == "tournament:1"
    assert first["offset"] == 2


def test_resume_from_last_event_id_header(sse_server: ServerProcess, client: httpx.Client) -> None:
    for n in range(1, 6):
        publish(sse_server, "tournament:7", "t.x", {"n": n})
    with stream(client, sse_server, "tournament:7", last_id="2") as es:
        assert es.response.headers["croupier-last-event-id"] == "2"
        replayed = take(es, 3)
        publish(sse_server, "tournament:7", "t.x", {"n": 6})
        live = take(es, 1)
    assert [e.id for e in replayed + live] == ["3", "4", "5", "6"]
    assert [d["data"]["n"] for d in docs(replayed + live)] == [3, 4, 5, 6]


def test_resume_from_query_parameter_and_header_wins(
    sse_server: ServerProcess, client: httpx.Client
) -> None:
    for n in range(1, 5):
        publish(sse_server, "tournament:8", "t.x", {"n": n})
    with stream(client, sse_server, "tournament:8", query_id="3") as es:
        assert [e.id for e in take(es, 1)] == ["4"]
    # A reconnecting browser keeps its original URL and sends the newer header.
    with stream(client, sse_server, "tournament:8", query_id="1", last_id="3") as es:
        assert es.response.headers["croupier-last-event-id"] == "3"
        publish(sse_server, "tournament:8", "t.x", {"n": 5})
        assert [e.id for e in take(es, 2)] == ["4", "5"]


def test_resume_while_publishing_is_exactly_once(
    sse_server: ServerProcess, client: httpx.Client
) -> None:
    seen: list[int] = []
    last = "0"
    published = 0
    for _round in range(4):
        with stream(client, sse_server, "tournament:9", last_id=last) as es:
            for _ in range(5):
                published += 1
                publish(sse_server, "tournament:9", "t.x", {"n": published})
            for e in take(es, 3):  # leave some unread: they come again on the resume
                seen.append(orjson.loads(e.data)["offset"])
                assert e.id is not None
                last = e.id
    with stream(client, sse_server, "tournament:9", last_id=last) as es:
        rest = take(es, published - len(seen))
    seen += [orjson.loads(e.data)["offset"] for e in rest]
    assert seen == list(range(1, published + 1))


def test_unrecoverable_gap_sends_reset(tmp_path: Path, client: httpx.Client) -> None:
    config = write_config(
        tmp_path,
        "[server]\ntrim_interval = 0.2\n[namespaces.tournament]\nhistory_size = 3\n",
    )
    with running_server(tmp_path, config=config) as server:
        for n in range(1, 11):
            publish(server, "tournament:2", "t.x", {"n": n})

        def trimmed() -> bool:
            r = httpx.get(
                server.url + "/api/v1/channels/tournament:2/history",
                params={"since": 0},
                headers=server.headers,
            )
            return len(r.json()["events"]) == 3

        wait_for(trimmed, what="retention to trim the channel")
        top = 10
        for last_id in ("2", "not-an-offset", "99"):
            with stream(client, server, "tournament:2", last_id=last_id) as es:
                assert docs(take(es, 1)) == [{"type": "reset", "channel": "tournament:2"}]
                assert es.response.headers["croupier-last-event-id"] == str(top)
                top = publish(server, "tournament:2", "t.x", {"n": "live"})["offset"]
                live = take(es, 1)[0]
                assert live.id == str(top)
                assert orjson.loads(live.data)["data"] == {"n": "live"}
        # Still within what is kept: recovered, no reset.
        with stream(client, server, "tournament:2", last_id=str(top - 1)) as es:
            assert [e.id for e in take(es, 1)] == [str(top)]


def test_multi_channel_cursor_resumes_every_channel(
    sse_server: ServerProcess, client: httpx.Client
) -> None:
    publish(sse_server, "tournament:a", "t.x", {"n": "a1"})
    with stream(client, sse_server, "tournament:a", "lobby") as es:
        start = es.response.headers["croupier-last-event-id"]
        assert not start.isdigit()
        assert re.fullmatch(r"[A-Za-z0-9_-]+", start)
        hello = next(es.iter_sse())
        assert hello.id == start
        publish(sse_server, "lobby", "t.x", {"n": "l1"})
        publish(sse_server, "tournament:a", "t.x", {"n": "a2"})
        got = take(es, 2)
    assert [d["data"]["n"] for d in docs(got)] == ["l1", "a2"]
    ids = [e.id for e in got]
    assert len({*ids, start}) == 3  # each stored event moves the cursor
    # Missed on both channels while away:
    publish(sse_server, "tournament:a", "t.x", {"n": "a3"})
    publish(sse_server, "lobby", "t.x", {"n": "l2"})
    publish(sse_server, "lobby", "t.x", {"n": "l3"})
    with stream(client, sse_server, "tournament:a", "lobby", last_id=ids[0]) as es:
        assert es.response.headers["croupier-last-event-id"] == ids[0]
        again = take(es, 4)
    by_channel: dict[str, list[str]] = {}
    for d in docs(again):
        by_channel.setdefault(d["channel"], []).append(d["data"]["n"])
    assert by_channel == {"tournament:a": ["a2", "a3"], "lobby": ["l2", "l3"]}
    # A cursor of another channel list cannot be used: every channel is reset.
    with stream(client, sse_server, "lobby", "tournament:a", last_id=ids[0]) as es:
        resets = docs(take(es, 2))
    assert resets == [
        {"type": "reset", "channel": "lobby"},
        {"type": "reset", "channel": "tournament:a"},
    ]


def test_ephemeral_events_have_no_id(sse_server: ServerProcess) -> None:
    raw = RawStream(
        sse_server, f"/sse?channel=match:final&token={token('p1')}", {"Last-Event-ID": "0"}
    )
    try:
        greeting = raw.read_until(b"\n\n")
        assert greeting.startswith(b'retry: 1000\nid: 0\ndata: {"type":"connected"')
        publish(sse_server, "match:final", "reaction", {"emoji": "x"}, ephemeral=True)
        publish(sse_server, "match:final", "score", {"runs": 4})
        seen = [raw.next_message(), raw.next_message()]
    finally:
        raw.close()
    assert seen[0].startswith(b'data: {"type":"reaction","channel":"match:final","ts":')
    assert id_of(seen[0]) is None
    assert seen[1].startswith(b'id: 1\ndata: {"type":"score","channel":"match:final","offset":1,')


def test_keepalive_comment_and_event(sse_server: ServerProcess) -> None:
    raw = RawStream(sse_server, f"/sse?channel=tournament:k&token={token('p1')}")
    try:
        raw.read_until(b"\n\n")
        block = raw.read_until(b"\n\n", seconds=3)
    finally:
        raw.close()
    m = re.fullmatch(
        rb': keepalive (\S+)\ndata: \{"type":"keepalive","timestamp":"(\S+)"\}\n\n', block
    )
    assert m is not None, block
    assert m.group(1) == m.group(2)
    assert TS.fullmatch(m.group(1).decode())


def test_bad_requests_are_refused_before_the_stream(sse_server: ServerProcess) -> None:
    url = sse_server.url + "/sse"
    r = httpx.get(url, params={"channel": "tournament:1", "token": "nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    r = httpx.get(url, params={"token": token("p1")})
    assert r.status_code == 400
    r = httpx.get(url, params={"channel": "bad channel!", "token": token("p1")})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_channel"
    # A stream has no body to leave out: HEAD is not offered.
    assert httpx.head(url, params={"channel": "lobby"}).status_code == 405


def test_refused_subscription_is_an_error_event(sse_server: ServerProcess) -> None:
    raw = RawStream(sse_server, f"/sse?channel=player:1001:someone-else&token={token('p1')}")
    try:
        assert raw.status == 200
        body = raw.read_to_eof()
    finally:
        raw.close()
    messages = blocks(body)
    assert len(messages) == 2
    assert data_of(messages[0])["type"] == "connected"
    assert messages[1] == (
        b'data: {"type":"error","code":"forbidden",'
        b'"message":"player:1001:someone-else belongs to another player"}'
    )
    # Without a token, a token namespace is refused the same way.
    raw = RawStream(sse_server, "/sse?channel=tournament:1")
    try:
        body = raw.read_to_eof()
    finally:
        raw.close()
    assert data_of(blocks(body)[1])["code"] == "unauthorized"


def test_own_player_channel_and_subscription_count(sse_server: ServerProcess) -> None:
    raw = RawStream(sse_server, f"/sse?channel=player:1001:p1&token={token('p1')}")
    try:
        raw.read_until(b"\n\n")
        wait_for(lambda: metric(sse_server, "croupier_subscriptions") == 1, what="subscribed")
        publish(sse_server, "player:1001:p1", "balance", {"coins": 5})
        block = raw.next_message()
        assert id_of(block) == "1"
        assert data_of(block)["data"] == {"coins": 5}
    finally:
        raw.close()
    # The server notices the client went away and drops its subscription.
    wait_for(lambda: metric(sse_server, "croupier_connections") == 0, what="cleanup")
    assert metric(sse_server, "croupier_subscriptions") == 0


def test_slow_consumer_is_cut_off_and_others_carry_on(tmp_path: Path, client: httpx.Client) -> None:
    config = write_config(
        tmp_path, "[limits]\nsse_keepalive = 5\noutbox_messages = 8\noutbox_bytes = 65536\n"
    )
    with running_server(tmp_path, config=config) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(
            f"GET /sse?channel=tournament:s&token={token('p2')} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n\r\n".encode()
        )
        try:
            with stream(client, server, "tournament:s") as es:
                blob = "x" * 8000
                sent = 0
                for _ in range(20):
                    publish_batch(
                        server,
                        [
                            {"channel": "tournament:s", "type": "t.big", "data": {"b": blob}}
                            for _ in range(100)
                        ],
                    )
                    sent += 100
                    if metric(server, "croupier_slow_consumer_disconnects_total") >= 1:
                        break
                assert metric(server, "croupier_slow_consumer_disconnects_total") == 1
                got = take(es, sent, seconds=30)
                assert [orjson.loads(e.data)["offset"] for e in got] == list(range(1, sent + 1))
        finally:
            stalled.close()


def test_graceful_shutdown_tells_the_client_to_reconnect(tmp_path: Path) -> None:
    with running_server(tmp_path, config=write_config(tmp_path)) as server:
        raw = RawStream(server, f"/sse?channel=tournament:z&token={token('p1')}")
        try:
            raw.read_until(b"\n\n")
            server.stop(signal.SIGTERM)
            body = raw.read_to_eof()
        finally:
            raw.close()
    assert blocks(body)[-1] == b'data: {"type":"disconnect","code":"shutdown","reconnect":true}'
