"""The connection core on a fake transport: no server process, no socket."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from croupier.auth import LEEWAY
from croupier.config import Limits, Settings
from croupier.core.channels import Claims
from croupier.gateway import Gateway
from croupier.transports.common import new_client_id
from croupier.transports.connection import Connection
from croupier.transports.native import NativeCodec
from croupier.transports.websocket import close_websocket

from .fake_transport import FakeTransport, close_code, texts


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = Settings(database_url="memory://", limits=Limits(outbox_messages=3))
    async with Gateway(settings) as gw:
        yield gw


PLAYER = Claims("p1", brand="1001")


def _connect(gateway: Gateway, claims: Claims | None = PLAYER) -> tuple[Connection, FakeTransport]:
    transport = FakeTransport()
    conn = Connection(
        gateway,
        NativeCodec(gateway.settings),
        claims,
        close_websocket,
        transport=transport,  # type: ignore[arg-type]
    )
    conn.open()
    return conn, transport


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _send(conn: Connection, doc: dict[str, Any]) -> None:
    conn.receive(orjson.dumps(doc))


async def test_greets_answers_and_delivers(gateway: Gateway) -> None:
    conn, transport = _connect(gateway)
    assert conn in gateway.connections
    _send(conn, {"type": "ping", "id": 1})
    _send(conn, {"type": "subscribe", "channel": "tournament:1", "id": 2})
    await _settle()
    await gateway.publish_json("tournament:1", "player.score.updated", {"score": 5})
    await _settle()
    kinds = [t["type"] for t in texts(transport)]
    assert kinds == ["connected", "pong", "subscribed", "player.score.updated"]
    info = conn.info()
    assert info["protocol"] == "native"
    assert info["player"] == "p1"
    assert info["subscriptions"] == [
        {
            "channel": "tournament:1",
            "position": {"offset": 1, "epoch": texts(transport)[-1]["epoch"]},
        }
    ]


async def test_a_slow_consumer_is_cut_with_its_reason_after_what_is_queued(
    gateway: Gateway,
) -> None:
    conn, transport = _connect(gateway)
    _send(conn, {"type": "subscribe", "channel": "tournament:2", "id": 1})
    await _settle()
    transport.buffered = 10  # the client stopped reading: every write now waits
    for i in range(5):
        await gateway.publish_json("tournament:2", "tick", {"i": i})
    await _settle()
    assert conn.closed
    assert gateway.metrics.slow_consumers == 1
    last = texts(transport)[-1]
    assert last == {"type": "disconnect", "code": "slow_consumer", "reconnect": True}
    assert close_code(transport) == 1013
    assert transport.eof  # the write side is shut after the queue; input is still read
    assert not transport.aborted


async def test_abuse_closes_with_the_error_and_1008(gateway: Gateway) -> None:
    conn, transport = _connect(gateway)
    for _ in range(gateway.settings.limits.abuse_errors):
        conn.receive(b"junk")
    messages = texts(transport)
    assert messages[-2] == {
        "type": "error",
        "code": "abuse",
        "message": "too many protocol errors in a row",
    }
    assert messages[-1]["type"] == "disconnect"
    assert close_code(transport) == 1008


async def test_lost_leaves_the_hub_and_the_gateway(gateway: Gateway) -> None:
    conn, _ = _connect(gateway)
    _send(conn, {"type": "subscribe", "channel": "tournament:3"})
    await _settle()
    assert gateway.hub.subscribers("tournament:3") == 1
    conn.lost()
    await _settle()
    assert gateway.hub.subscribers("tournament:3") == 0
    assert conn not in gateway.connections


def test_connection_ids_are_distinct_across_refills_of_the_random_pool() -> None:
    ids = [new_client_id() for _ in range(2000)]  # several refills of 256
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"c-[0-9a-f]{12}", i) for i in ids)


async def test_a_token_lasts_as_long_as_the_token_check_accepts_it(gateway: Gateway) -> None:
    # A token past its exp but within the leeway is accepted at connect time (clock skew):
    # the connection keeps it until the leeway is over too, not dropping it at the next tick.
    exp = 1_000_000.0
    conn, transport = _connect(gateway, Claims("p1", exp=exp))
    mono = conn.last_seen
    conn.tick(mono, exp + LEEWAY - 0.5)
    assert not conn.closed
    conn.tick(mono, exp + LEEWAY)
    assert conn.closed
    said = {"type": "disconnect", "code": "token_expired", "reconnect": True}
    assert texts(transport)[-1] == said
    assert close_code(transport) == 1008
