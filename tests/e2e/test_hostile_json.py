"""Hostile JSON over real sockets: nesting past the limit, numbers no decoder keeps, and
line breaks in valid data (issue 14, defects 1 and 2).

Every body-taking publish route and the WebSocket answer the same clear error whatever the
layout of the document, keep the connection, and store valid data as the bytes that were
sent.
"""

from __future__ import annotations

import hashlib
import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pusher
import pytest

from tests.support import API_KEY, ServerProcess, running_server, timeout, token

from .sseclient import RawStream, data_of
from .wsclient import ws_connect

pytestmark = pytest.mark.e2e

_ids = itertools.count(1)
LIMIT = 64  # the default limits.max_json_depth


def fresh(namespace: str = "tournament") -> str:
    return f"{namespace}:hostile-{next(_ids)}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("hostile")) as server:
        yield server


class KeepAlive:
    """HTTP/1.1 requests one after another on one TCP connection, answers read exactly."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout(10))
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, str, Any]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head_bytes, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers["content-type"], orjson.loads(payload)

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(srv: ServerProcess) -> Iterator[KeepAlive]:
    c = KeepAlive(srv)
    yield c
    c.close()


def nested(levels: int, inner: bytes = b"1") -> bytes:
    return b"[" * levels + inner + b"]" * levels


def bodies(channel: str, data: bytes) -> dict[str, bytes]:
    """The same ``data`` (raw JSON) in a body of each publish route."""
    head = b'"type":"t.hostile","data":' + data
    return {
        "/api/v1/publish": b'{"channel":"%s",%s}' % (channel.encode(), head),
        "/api/v1/broadcast": b'{"channels":["%s"],%s}' % (channel.encode(), head),
        "/api/v1/batch": b'{"events":[{"channel":"%s",%s}]}' % (channel.encode(), head),
    }


def history_raw(conn: KeepAlive, srv: ServerProcess, channel: str) -> bytes:
    """The history answer's bytes (the stored data is embedded in them as stored)."""
    request = (
        f"GET /api/v1/channels/{channel}/history HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout(10)) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    return body


@pytest.mark.parametrize("route", ["/api/v1/publish", "/api/v1/broadcast", "/api/v1/batch"])
def test_a_thousand_nested_arrays_are_a_json_400_and_the_connection_stays(
    srv: ServerProcess, conn: KeepAlive, route: str
) -> None:
    channel = fresh()
    status, content_type, doc = conn.post(route, bodies(channel, nested(1000))[route])
    assert (status, content_type) == (400, "application/json")
    assert doc["error"]["code"] == "too_deep"
    assert str(LIMIT) in doc["error"]["message"]
    # Same TCP connection: the next (valid) request is answered.
    status, _, doc = conn.post(route, bodies(channel, b'{"ok":true}')[route])
    assert status == 200, doc


def test_the_limit_counts_every_level_of_the_body(srv: ServerProcess, conn: KeepAlive) -> None:
    channel = fresh()
    publish = "/api/v1/publish"
    # The body's own object is one level; its data may add 63 more.
    status, _, doc = conn.post(publish, bodies(channel, nested(LIMIT - 1))[publish])
    assert status == 200, doc
    status, _, doc = conn.post(publish, bodies(channel, nested(LIMIT))[publish])
    assert (status, doc["error"]["code"]) == (400, "too_deep")
    assert b"[" * (LIMIT - 1) + b"1" in history_raw(conn, srv, channel)


# Each document once on one line and once with line breaks: one body, one answer.
REFUSED = {
    "non-finite": (b"[1e999,1]", b"[1e999,\n1]", "bad_number"),
    "400 digits": (b"[0," + b"7" * 400 + b"]", b"[0,\n" + b"7" * 400 + b"]", "bad_number"),
    "600 nested": (nested(600), b"[\n" + nested(599) + b"\n]", "too_deep"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("route", ["/api/v1/publish", "/api/v1/broadcast", "/api/v1/batch"])
def test_one_document_gets_one_answer_whatever_its_layout(
    srv: ServerProcess, conn: KeepAlive, route: str, case: str
) -> None:
    one_line, broken, code = REFUSED[case]
    channel = fresh()
    answers = [conn.post(route, bodies(channel, data)[route]) for data in (one_line, broken)]
    for status, content_type, doc in answers:
        assert (status, content_type, doc["error"]["code"]) == (400, "application/json", code)
    assert answers[0] == answers[1]
    assert b'"events":[]' in history_raw(conn, srv, channel)  # nothing stored


def test_valid_data_with_line_breaks_is_stored_and_sent_as_sent(
    srv: ServerProcess, conn: KeepAlive
) -> None:
    channel = fresh("lobby")  # public: an anonymous SSE stream may read it
    data = b'{"big":18446744073709551615,\r\n "tiny":-9223372036854775808,\n "x":[1.50,\n2E3]}'
    stream = RawStream(srv, f"/sse?channel={channel}")
    try:
        stream.next_message()  # connected
        status, _, doc = conn.post("/api/v1/publish", bodies(channel, data)["/api/v1/publish"])
        assert status == 200, doc
        block = stream.next_message()
    finally:
        stream.close()
    # Stored as sent: the history answer embeds the very bytes.
    assert data in history_raw(conn, srv, channel)
    # SSE: one data: line per event, whatever line breaks the data held; the same value.
    assert block.startswith(b"id: 1\ndata: "), block
    assert block.count(b"data: ") == 1, block
    event = data_of(block)
    assert event["data"] == orjson.loads(data)
    assert event["data"]["big"] == 2**64 - 1


PUSHER_CONFIG = '[[pusher.apps]]\nid = "4242"\nkey = "app-key"\nsecret = "app-secret"\n'


@pytest.fixture(scope="module")
def pusher_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("hostile-pusher")
    config = tmp / "croupier.toml"
    config.write_text(PUSHER_CONFIG)
    with running_server(tmp, config=config) as server:
        yield server


def pusher_post(server: ServerProcess, path: str, body: bytes) -> httpx.Response:
    """``body`` to Pusher's HTTP API, signed as Pusher's server SDKs sign (their library's
    signing function): the body's bytes are signed, so this route reads them itself."""
    query = {
        "auth_key": "app-key",
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    text = "&".join(f"{k}={query[k]}" for k in sorted(query))
    signature = pusher.signature.sign("app-secret", f"POST\n{path}\n{text}")
    return httpx.post(
        f"{server.url}{path}?{text}&auth_signature={signature}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=timeout(10),
    )


def test_pusher_http_api_bodies_are_under_the_same_limits(pusher_srv: ServerProcess) -> None:
    event = b'{"name":"score","channels":["orders"],"data":"{}","x":%s}'
    for path, body, code in [
        ("/apps/4242/events", event % nested(1000), "too_deep"),
        ("/apps/4242/events", event % b"1e999", "bad_number"),
        ("/apps/4242/batch_events", b'{"batch":[%s]}' % (event % nested(600)), "too_deep"),
    ]:
        response = pusher_post(pusher_srv, path, body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"] == code
    # A data string holding JSON past the limits is kept as the string it is.
    deep = nested(300).decode()
    ok = pusher_post(
        pusher_srv,
        "/apps/4242/events",
        orjson.dumps({"name": "score", "channels": ["orders"], "data": deep}),
    )
    assert ok.status_code == 200, ok.text
    stored = httpx.get(
        f"{pusher_srv.url}/api/v1/channels/pusher:orders/history",
        headers=pusher_srv.headers,
        timeout=timeout(10),
    ).json()["events"]
    assert [e["data"] for e in stored] == [deep]


async def test_websocket_refuses_deep_and_non_finite_data_and_keeps_the_connection(
    srv: ServerProcess, conn: KeepAlive
) -> None:
    channel = fresh("room")  # players may publish chat.message here
    async with ws_connect(srv, token("p1")) as ws:
        await ws.subscribe(channel)
        message = b'{"type":"publish","channel":"%s","event":"chat.message","data":%s,"id":%d}'
        # Too deep to read, so the error cannot name the message's id; a number out of range
        # is found once the message is read, and its error does.
        for n, (data, code, answer_id) in enumerate(
            [
                (nested(1000), "too_deep", None),
                (b"[1e999,\n1]", "bad_number", 1),
                (b'{"n":' + b"9" * 400 + b"}", "bad_number", 2),
            ]
        ):
            await ws.send_raw((message % (channel.encode(), data, n)).decode())
            error = await ws.expect("error")
            assert (error["code"], error.get("id")) == (code, answer_id), error
            assert error["message"], error
        # A subscribe carrying a deep extra field: the same error, before anything else.
        await ws.send(
            {"type": "subscribe", "channel": channel, "x": orjson.loads(nested(LIMIT + 1))}
        )
        assert (await ws.expect("error"))["code"] == "too_deep"
        # The connection stays, and valid data with line breaks is delivered.
        await ws.send_raw(
            (message % (channel.encode(), b'{"text":"gl",\n"n":[1,\r\n2]}', 9)).decode()
        )
        replies = {doc["type"]: doc for doc in [await ws.recv_quiet(), await ws.recv_quiet()]}
        assert set(replies) == {"chat.message", "published"}, replies
        assert replies["chat.message"]["data"]["text"] == "gl"
        assert replies["chat.message"]["data"]["n"] == [1, 2]
        assert await ws.barrier() == []
