"""Graceful shutdown: SIGTERM tells every client to reconnect, closes, and exits 0 in time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.support import API_KEY, ServerProcess, timeout, token

from .wsclient import WsClient, history, http, publish, raw_handshake, write_config, ws_connect

pytestmark = pytest.mark.e2e

GRACE = 2.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_disconnects_every_client_and_exits_zero(
    tmp_path: Path, sig: signal.Signals
) -> None:
    config = write_config(tmp_path / "croupier.toml", f"[limits]\nshutdown_grace = {GRACE}\n")
    srv = ServerProcess(tmp_path / "croupier.db", config=config).start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients: list[WsClient] = []
            for i in range(3):
                c = await stack.enter_async_context(ws_connect(srv, token(f"p{i}")))
                await c.subscribe("tournament:bye")
                clients.append(c)
            # An anonymous, unsubscribed connection is told too.
            clients.append(await stack.enter_async_context(ws_connect(srv)))
            # And one that never reads again must not hold the server past its bound.
            stalled = await asyncio.to_thread(raw_handshake, srv, token("mute"), "tournament:bye")
            stack.callback(stalled.close)
            async with http(srv) as api:
                await publish(api, "tournament:bye", "last.words", {"n": 1})
            for c in clients[:3]:
                assert [e["offset"] for e in await c.events(1)] == [1]

            assert srv.proc is not None
            started = time.monotonic()
            srv.proc.send_signal(sig)
            endings = await asyncio.gather(*(c.wait_closed(GRACE + 5) for c in clients))
            # Clients are told only once the server has stopped accepting.
            with pytest.raises((aiohttp.ClientError, OSError)):
                async with ws_connect(srv, token("late")):
                    pass
            code = await asyncio.to_thread(srv.proc.wait, timeout(GRACE + 10))
            elapsed = time.monotonic() - started
        for c, seen in zip(clients, endings, strict=True):
            seen = [m for m in seen if m.get("type") != "presence.count"]
            assert seen == [{"type": "disconnect", "code": "shutdown", "reconnect": True}]
            assert c.ws.closed
        assert code == 0, srv.output()[-2000:]
        # Bounded even with a client that never answers.
        assert elapsed < timeout(GRACE + 3), elapsed
    finally:
        srv.stop()


async def test_publishes_acknowledged_before_sigterm_survive(tmp_path: Path) -> None:
    # A short grace: aiohttp stops reading a connection once shutdown starts, so a request
    # whose body was still on the wire waits out the grace and is dropped unanswered (and
    # unstored). What matters here is that every answered publish is kept.
    config = write_config(tmp_path / "croupier.toml", "[limits]\nshutdown_grace = 1.0\n")
    srv = ServerProcess(tmp_path / "croupier.db", config=config).start()
    acked: list[int] = []
    try:

        async def publish_until_refused(worker: int) -> None:
            async with http(srv) as api:
                for i in range(100_000):
                    try:
                        response = await api.post(
                            "/api/v1/publish",
                            json={"channel": "tournament:term", "type": "t.n", "data": {"i": i}},
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code != 200:
                        assert response.status_code == 503, response.text
                        return
                    acked.append(response.json()["offset"])

        publishers = [asyncio.create_task(publish_until_refused(w)) for w in range(4)]
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while len(acked) < 200:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*publishers), timeout(15))
        assert await asyncio.to_thread(srv.proc.wait, timeout(10)) == 0
        await asyncio.to_thread(srv.start)
        async with http(srv) as api:
            doc = await history(api, "tournament:term", limit=1000)
            stored = [e["offset"] for e in doc["events"]]
            while doc["events"]:
                doc = await history(api, "tournament:term", since=stored[-1], limit=1000)
                stored += [e["offset"] for e in doc["events"]]
        assert set(acked) <= set(stored)
        assert stored == list(range(1, len(stored) + 1))
    finally:
        srv.stop()


async def test_request_in_flight_at_sigterm_is_answered(tmp_path: Path) -> None:
    """A publish whose body is still on the way when shutdown starts is served, not dropped."""
    srv = ServerProcess(tmp_path / "croupier.db").start()
    try:
        body = b'{"channel": "tournament:late", "type": "t.n", "data": {"late": true}}'
        head = (
            f"POST /api/v1/publish HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            writer.write(head)
            await writer.drain()
            async with ws_connect(srv, token("p1")) as watcher:
                # The handler is waiting for the body; make sure it got that far.
                metrics = ""
                deadline = asyncio.get_running_loop().time() + timeout(5)
                async with http(srv) as api:
                    while "croupier_connections 1.0" not in metrics:
                        assert asyncio.get_running_loop().time() < deadline
                        metrics = (await api.get("/metrics")).text
                assert srv.proc is not None
                srv.proc.send_signal(signal.SIGTERM)
                # The disconnect means shutdown is under way and nothing new is accepted.
                assert await watcher.wait_closed() == [
                    {"type": "disconnect", "code": "shutdown", "reconnect": True}
                ]
            writer.write(body)
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), timeout(5))
        finally:
            writer.close()
        status, _, rest = response.partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK", response
        assert b'"offset":1' in rest
        assert await asyncio.to_thread(srv.proc.wait, timeout(5)) == 0
    finally:
        srv.stop()
