"""Event streams on the lean front door and through aiohttp answer with the same bytes.

A stream requested as a fresh connection's first request is served without aiohttp; the same
request after another one on a kept-alive connection goes through aiohttp's router. Every
answer (a stream's head, greeting and replay, each refusal, the admission budget's 503) is
compared between the two, with only the clock's readings left out.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sseclient import (
    RawStream,
    metric,
    publish,
    publish_batch,
    wait_for,
    write_config,
)
from tests.support import ServerProcess, running_server, timeout, token

pytestmark = pytest.mark.e2e

ALLOWED = "https://casino.example"
# The clock's readings: the Date header and the greetings' timestamps.
CLOCK = re.compile(rb"Date: [^\r]*\r\n|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{3})?Z?")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Keep-alives far apart and a namespace without presence counts (a stream's bytes are
    predictable), and an origin allowlist."""
    tmp = tmp_path_factory.mktemp("lean")
    config = write_config(
        tmp,
        f'[server]\norigins = ["{ALLOWED}"]\n[limits]\nsse_keepalive = 60\n'
        "[namespaces.quiet]\npresence = false\n",
    )
    with running_server(tmp, config=config) as srv:
        yield srv


class Exchange:
    """One request over a raw socket, fresh or after a ``GET /healthz`` on the same one."""

    def __init__(
        self,
        server: ServerProcess,
        path: str,
        headers: dict[str, str],
        *,
        kept_alive: bool,
        rcvbuf: int = 0,
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout(5))
        self.sock.connect(("127.0.0.1", server.port))
        self.buffer = b""
        if kept_alive:
            self.send("/healthz", {})
            head = self.head()
            assert b"200 OK" in head.split(b"\r\n", 1)[0], head
            assert b"connection: close" not in head.lower()
            self.take(self.content_length(head))
        self.send(path, headers)

    def send(self, path: str, headers: dict[str, str]) -> None:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            assert self.fill(), f"closed in the head: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    @staticmethod
    def content_length(head: bytes) -> int:
        found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        assert found is not None, head
        return int(found.group(1))

    def take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert self.fill(), "closed in the body"
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def messages(self, count: int) -> bytes:
        """The stream's next ``count`` messages."""
        out = b""
        for _ in range(count):
            while b"\n\n" not in self.buffer:
                assert self.fill(), f"closed in the stream: {self.buffer!r}"
            message, _, self.buffer = self.buffer.partition(b"\n\n")
            out += message + b"\n\n"
        return out

    def to_eof(self) -> bytes:
        while self.fill():
            pass
        out, self.buffer = self.buffer, b""
        return out

    def answer(self) -> bytes:
        """A whole answer: by its length, or up to the end of the connection."""
        head = self.head()
        if b"\r\ncontent-length:" in head.lower():
            return head + self.take(self.content_length(head))
        return head + self.to_eof()

    def close(self) -> None:
        self.sock.close()


def both(
    server: ServerProcess, path: str, headers: dict[str, str] | None = None
) -> tuple[Exchange, Exchange]:
    """The same request, lean (a fresh connection) and through aiohttp (kept alive)."""
    return (
        Exchange(server, path, headers or {}, kept_alive=False),
        Exchange(server, path, headers or {}, kept_alive=True),
    )


def unclocked(answer: bytes) -> bytes:
    return CLOCK.sub(b"<clock>", answer)


STREAMS = [
    pytest.param("/sse?channel=quiet:lean1&token={token}", {}, 1, id="sse"),
    pytest.param(
        "/sse?channel=quiet:lean2&token={token}",
        {"Origin": ALLOWED, "Last-Event-ID": "1"},
        3,
        id="sse-origin-resume",
    ),
    pytest.param(
        "/sse?channel=quiet:lean3&channel=quiet:lean4&token={token}",
        {},
        1,
        id="sse-cursor",
    ),
    pytest.param("/api/tables/lean5/events?lastEventId=2", {}, 3, id="poker"),
    pytest.param("/gateway/sse/1001/stream", {"x-auth-token": "{token}"}, 1, id="casino"),
]


@pytest.mark.parametrize(("path", "headers", "opening"), STREAMS)
def test_a_stream_is_the_same_on_a_fresh_and_a_kept_alive_connection(
    server: ServerProcess, path: str, headers: dict[str, str], opening: int
) -> None:
    """Head, greeting and replay (``opening`` messages), then a live event: the same bytes
    either way."""
    tok = token("lean-player", brand="1001")
    path = path.format(token=tok)
    headers = {k: v.format(token=tok) for k, v in headers.items()}
    channels = re.findall(r"channel=([^&]+)", path) or (
        ["table:lean5"] if "tables" in path else ["player:1001:lean-player"]
    )
    for channel in channels:
        for n in range(3):
            publish(server, channel, "t.x", {"kind": "x", "n": n})
    lean, aio = both(server, path, headers)
    try:
        heads = [unclocked(e.head()) for e in (lean, aio)]
        assert heads[0] == heads[1]
        assert heads[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close\r\n" in heads[0]
        opened = [unclocked(e.messages(opening)) for e in (lean, aio)]
        assert opened[0] == opened[1]
        publish(server, channels[0], "t.x", {"kind": "x", "n": "live"})
        live = [e.messages(1) for e in (lean, aio)]
        assert live[0] == live[1]
        assert b'"n":"live"' in live[0]
    finally:
        lean.close()
        aio.close()
    wait_for(lambda: metric(server, "croupier_connections") == 0, what="cleanup")


REFUSALS = [
    pytest.param("/sse?channel=quiet:1&token=garbage", {}, 401, id="bad-token"),
    pytest.param("/sse?token={token}", {}, 400, id="no-channel"),
    pytest.param("/sse?channel=bad%20channel&token={token}", {}, 400, id="bad-channel"),
    pytest.param(
        "/sse?channel=quiet:1&token={token}", {"Origin": "https://evil.example"}, 403, id="origin"
    ),
    pytest.param(
        "/sse?" + "&".join(f"channel=lobby{i}" for i in range(300)), {}, 400, id="many-channels"
    ),
    # Refused in the stream: greeted, told why, closed.
    pytest.param("/sse?channel=player:1001:someone-else&token={token}", {}, 200, id="in-stream"),
    pytest.param("/sse?channel=quiet:1", {}, 200, id="in-stream-no-token"),
    pytest.param("/api/tables/1/events?token=garbage", {}, 401, id="poker-bad-token"),
    pytest.param("/api/tables/bad%20id/events", {}, 400, id="poker-bad-channel"),
    pytest.param("/gateway/sse/1001/stream", {}, 401, id="casino-no-token"),
    pytest.param("/gateway/sse/1002/stream", {"x-auth-token": "{token}"}, 403, id="casino-brand"),
    # Past aiohttp's limits on a request head.
    pytest.param("/sse?channel=quiet:1&pad=" + "x" * 8200, {}, 400, id="long-line"),
    pytest.param("/sse?channel=quiet:1", {f"X-{i}": "v" for i in range(129)}, 400, id="headers"),
]


@pytest.mark.parametrize(("path", "headers", "status"), REFUSALS)
def test_a_refused_stream_is_answered_the_same_either_way(
    server: ServerProcess, path: str, headers: dict[str, str], status: int
) -> None:
    tok = token("p1", brand="1001")
    path = path.format(token=tok)
    headers = {k: v.format(token=tok) for k, v in headers.items()}
    lean, aio = both(server, path, headers)
    try:
        answers = [unclocked(e.answer()) for e in (lean, aio)]
    finally:
        lean.close()
        aio.close()
    assert answers[0] == answers[1]
    assert answers[0].split(b"\r\n", 1)[0].split(b" ")[1] == str(status).encode()
    if status == 200:
        assert b'data: {"type":"error"' in answers[0]


def test_over_the_budget_both_ways_answer_the_same_503(tmp_path: Path) -> None:
    env = {"CROUPIER_ADMIT_RATE": "0.001", "CROUPIER_ADMIT_BURST": "1"}
    with running_server(tmp_path, env=env, config=write_config(tmp_path)) as server:
        admitted = RawStream(server, f"/sse?channel=tournament:b&token={token('p1')}")
        try:
            assert admitted.status == 200
            lean, aio = both(server, f"/sse?channel=tournament:b&token={token('p2')}")
            try:
                answers = [unclocked(e.answer()) for e in (lean, aio)]
            finally:
                lean.close()
                aio.close()
        finally:
            admitted.close()
        assert answers[0] == answers[1]
        assert answers[0].startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nRetry-After: 60\r\n" in answers[0]
        assert b'"code":"overloaded"' in answers[0]
        # Each refusal is counted once, whichever path answered it.
        assert metric(server, "croupier_refused_connections_total") == 2


def test_clients_that_go_while_subscribing_leave_nothing_behind(server: ServerProcess) -> None:
    """Streams that resume (a history read: the subscribe awaits) from clients that close or
    reset right after asking."""
    channel = "quiet:lean-gone"
    for n in range(20):
        publish(server, channel, "t.x", {"n": n})
    request = (
        f"GET /sse?channel={channel}&token={token('p1')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Last-Event-ID: 1\r\n\r\n"
    ).encode()
    for i in range(40):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout(5))
        sock.sendall(request)
        if i % 2:
            sock.shutdown(socket.SHUT_WR)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    wait_for(lambda: metric(server, "croupier_connections") == 0, what="cleanup", seconds=10)
    assert metric(server, "croupier_subscriptions") == 0
    # The node still serves the channel.
    raw = RawStream(server, f"/sse?channel={channel}&token={token('p1')}")
    try:
        assert raw.status == 200
        assert raw.headers["croupier-last-event-id"] == "20"
    finally:
        raw.close()


def test_what_follows_the_request_is_dropped_and_the_stream_goes_on(
    server: ServerProcess,
) -> None:
    """A client may send more after its request (a second request, noise): a stream reads
    nothing, on the lean path as on aiohttp's."""
    channel = "quiet:lean-noise"
    exchanges = []
    for kept_alive in (False, True):
        e = Exchange(
            server, f"/sse?channel={channel}&token={token('p1')}", {}, kept_alive=kept_alive
        )
        e.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nnoise")
        exchanges.append(e)
    try:
        for e in exchanges:
            assert e.head().startswith(b"HTTP/1.1 200 OK")
            e.messages(1)
        publish(server, channel, "t.x", {"n": 1})
        for e in exchanges:
            assert b'"data":{"n":1}' in e.messages(1)
    finally:
        for e in exchanges:
            e.close()


@pytest.mark.parametrize("kept_alive", [False, True], ids=["lean", "aiohttp"])
def test_a_stalled_stream_is_cut_off_on_either_path(tmp_path: Path, kept_alive: bool) -> None:
    """The outbox bound holds whichever path opened the stream; a reader that keeps up
    (on the other path) gets every event."""
    config = write_config(
        tmp_path, "[limits]\nsse_keepalive = 5\noutbox_messages = 8\noutbox_bytes = 65536\n"
    )
    with running_server(tmp_path, config=config) as server:
        path = f"/sse?channel=tournament:s&token={token('p2')}"
        stalled = Exchange(server, path, {}, kept_alive=kept_alive, rcvbuf=4096)
        reader = Exchange(server, path, {}, kept_alive=not kept_alive)
        try:
            assert reader.head().startswith(b"HTTP/1.1 200 OK")
            reader.messages(1)
            blob = "x" * 8000
            sent = got = 0
            while metric(server, "croupier_slow_consumer_disconnects_total") < 1:
                assert sent < 2000, "never cut off"
                events = [{"channel": "tournament:s", "type": "t.big", "data": {"b": blob}}]
                publish_batch(server, events * 100)
                sent += 100
                while got < sent:  # keep up
                    got += b'"type":"t.big"' in reader.messages(1)
            assert metric(server, "croupier_slow_consumer_disconnects_total") == 1
        finally:
            stalled.close()
            reader.close()
        wait_for(lambda: metric(server, "croupier_connections") == 0, what="cleanup")
