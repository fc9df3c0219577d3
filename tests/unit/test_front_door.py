"""The lean front door in process: which requests it serves itself, and how a stream opens.

The sniffer gets a recording transport and an aiohttp stand-in that records what it is
handed, so a test sees whether a request stayed on the lean path and every write it made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from croupier.config import Settings
from croupier.gateway import Gateway
from croupier.transports import sse
from croupier.transports.sse import EventStreams
from croupier.transports.websocket import WebSockets
from croupier.transports.wsproto import FirstRequests, Sniffer, first_requests, parse_head

from .fake_transport import FakeTransport


class Transport(FakeTransport):
    """A fake transport whose protocol can be switched, as a socket's is."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


class Http(asyncio.Protocol):
    """aiohttp's stand-in: what it was handed."""

    def __init__(self) -> None:
        self.received = b""

    def data_received(self, data: bytes) -> None:
        self.received += data


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with Gateway(Settings(database_url="memory://")) as gw:
        for wire, encoder in sse.ENDPOINT.wires.items():
            gw.hub.add_wire(wire, encoder)
        yield gw


def sniff(gateway: Gateway, request: bytes) -> tuple[Transport, list[Http]]:
    """Feed ``request`` to a fresh connection's sniffer."""
    handed: list[Http] = []

    def http() -> Http:
        handed.append(Http())
        return handed[-1]

    transport = Transport()
    sniffer = Sniffer(http, gateway, WebSockets(), EventStreams([sse.ENDPOINT]))
    sniffer.connection_made(transport)  # type: ignore[arg-type]
    transport.set_protocol(sniffer)
    sniffer.data_received(request)
    return transport, handed


def get(target: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {target} HTTP/1.1", "Host: x", *headers]) + "\r\n\r\n").encode()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_parse_head_takes_a_well_formed_get() -> None:
    head = parse_head(b"GET /sse?channel=a&channel=b&x=%20y HTTP/1.1\r\nHost: x\r\nOrigin:  o \t")
    assert head is not None
    assert head.path == "/sse"
    assert head.query.getall("channel") == ["a", "b"]
    assert head.query["x"] == " y"
    assert head.headers["origin"] == "o"


@pytest.mark.parametrize(
    "query",
    ["a=b", "a=b+c", "a=%2B&a=%zz", "a&&b", "=x", "channel", "a=1;b=2", "&", "a==b", "a=%E2%80"],
)
def test_parse_head_reads_the_query_as_aiohttp_does(query: str) -> None:
    head = parse_head(f"GET /sse?{query} HTTP/1.1".encode())
    assert head is not None
    assert list(head.query.items()) == list(URL(f"/sse?{query}").query.items())


@pytest.mark.parametrize(
    "head",
    [
        b"POST /sse HTTP/1.1\r\nHost: x",
        b"GET /sse HTTP/1.0\r\nHost: x",
        b"GET http://x/sse HTTP/1.1\r\nHost: x",
        b"GET /sse HTTP/1.1\r\nHost: x\r\n folded",
        b"GET /sse HTTP/1.1\r\nOrigin: a\nInjected: b",
        b"GET /sse HTTP/1.1\r\nOrigin: a\rb",
        b"GET /sse HTTP/1.1\r\nOrigin: a\x00b",
        b"GET /sse HTTP/1.1\r\nOrigin: caf\xc3\xa9",
        b"GET /sse HTTP/1.1\r\nBad Name: x",
        b"GET /sse HTTP/1.1\r\n: x",
        b"GET /s\x7fe HTTP/1.1\r\nHost: x",
        # Past aiohttp's limits: it refuses what the lean path must not take.
        b"GET /sse?pad=" + b"x" * 8190 + b" HTTP/1.1",
        b"GET /sse HTTP/1.1" + b"".join(b"\r\nX-%d: v" % i for i in range(129)),
    ],
)
def test_parse_head_leaves_anything_unusual_to_aiohttp(head: bytes) -> None:
    assert parse_head(head) is None


async def test_a_stream_opens_without_aiohttp_in_one_write(gateway: Gateway) -> None:
    transport, handed = sniff(gateway, get("/sse?channel=match:1", "Origin: https://a.example"))
    await settle()
    assert handed == []
    (write,) = transport.writes
    head, _, body = write.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1:4] == [
        b"Content-Type: text/event-stream",
        b"Cache-Control: no-cache",
        b"X-Accel-Buffering: no",
    ]
    assert b"Access-Control-Allow-Origin: https://a.example" in lines
    assert lines[-1] == b"Connection: close"
    assert body.startswith(b"retry: ")
    assert b'"type":"connected"' in body
    assert len(gateway.connections) == 1


async def test_a_resume_that_reads_history_is_answered_when_it_is_done(gateway: Gateway) -> None:
    for n in range(5):
        await gateway.publish_json("match:2", "t.x", {"n": n})
    transport, handed = sniff(gateway, get("/sse?channel=match:2", "Last-Event-ID: 2"))
    (conn,) = gateway.connections
    assert conn.task is not None  # the subscribe awaits the log
    assert transport.writes == []
    await settle()
    assert handed == []
    (write,) = transport.writes  # head, greeting and the replay
    assert b"\r\nCroupier-Last-Event-ID: 2\r\n" in write
    assert [b"id: %d" % n in write for n in (3, 4, 5)] == [True, True, True]


async def test_a_client_gone_while_subscribing_leaves_nothing(gateway: Gateway) -> None:
    for n in range(5):
        await gateway.publish_json("match:3", "t.x", {"n": n})
    transport, handed = sniff(gateway, get("/sse?channel=match:3", "Last-Event-ID: 1"))
    assert handed == []
    (conn,) = gateway.connections
    assert conn.task is not None  # still subscribing
    transport.closing = True
    assert transport.protocol is not None
    transport.protocol.connection_lost(None)
    await settle()
    assert transport.writes == []
    assert gateway.connections == set()
    assert gateway.hub.subscribers("match:3") == 0


@pytest.mark.parametrize(
    "request_",
    [
        get("/sse?channel=bad%20channel"),  # refused: aiohttp's handler answers
        get("/sse"),
        get("/sse?channel=match:1", "Content-Length: 0"),
        get("/sse?channel=match:1", "Transfer-Encoding: chunked"),
        get("/sse?channel=match:1", "Expect: 100-continue"),
        get("/sse?channel=match:1", "Upgrade: h2c", "Connection: Upgrade"),
        get("/sse/?channel=match:1"),
        get("/healthz"),
        b"GET /sse?channel=match:1 HTTP/1.0\r\n\r\n",
    ],
)
async def test_anything_else_goes_to_aiohttp_as_it_came(gateway: Gateway, request_: bytes) -> None:
    transport, handed = sniff(gateway, request_)
    await settle()
    assert [h.received for h in handed] == [request_]
    assert transport.writes == []
    assert gateway.connections == set()


async def test_a_connection_that_asks_nothing_is_closed_after_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    waiting = FirstRequests(loop, timeout=0.05)
    silent, talking = Transport(), Transport()
    waiting.add(silent)  # type: ignore[arg-type]
    waiting.add(talking)  # type: ignore[arg-type]
    waiting.discard(talking)  # its request came
    await asyncio.sleep(0.02)
    assert not silent.closing  # not yet
    for _ in range(50):
        await asyncio.sleep(0.01)
        if silent.closing:
            break
    assert silent.closing
    assert not talking.closing
    assert waiting.waiting == {}
    assert waiting.timer is None  # nothing waits: no timer runs


async def test_the_sniffer_waits_for_the_first_request_only_until_it_comes(
    gateway: Gateway,
) -> None:
    waiting = first_requests(asyncio.get_running_loop())
    transport = Transport()
    sniffer = Sniffer(Http, gateway, WebSockets(), EventStreams([sse.ENDPOINT]))
    sniffer.connection_made(transport)  # type: ignore[arg-type]
    assert transport in waiting.waiting
    sniffer.data_received(b"GET /nowhere HTTP/1.1\r\n")  # a part of a request: still waiting
    assert transport in waiting.waiting
    sniffer.data_received(b"Host: x\r\n\r\n")  # handed to aiohttp: it has its own timeout
    assert transport not in waiting.waiting
    other = Transport()
    sniffer = Sniffer(Http, gateway, WebSockets(), EventStreams([sse.ENDPOINT]))
    sniffer.connection_made(other)  # type: ignore[arg-type]
    sniffer.connection_lost(None)  # gone before it asked
    assert other not in waiting.waiting
