"""A stalled client is cut off as a slow consumer; the others' delivery carries on."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ServerProcess, running_server, timeout, token

from .livelog import live_log
from .wsclient import http, metric, raw_handshake, server_frames, write_config, ws_connect

pytestmark = pytest.mark.e2e

BATCHES = 40
PER_BATCH = 25
EVENT_BYTES = 4000


@pytest.fixture
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("slow")
    config = write_config(
        tmp / "croupier.toml", "[limits]\noutbox_messages = 16\noutbox_bytes = 65536\n"
    )
    with running_server(tmp, config=config) as server:
        yield server


def _read_until_closed(sock: socket.socket) -> bytes:
    """Drain the socket until the server closes it (EOF or reset)."""
    sock.settimeout(timeout(10))
    seen = b""
    try:
        while chunk := sock.recv(65536):
            seen += chunk
    except ConnectionResetError:
        pass
    return seen


async def _load(api: httpx.AsyncClient, channel: str, fill: str = "x") -> None:
    """Publish BATCHES batches of PER_BATCH events of about EVENT_BYTES each on ``channel``."""
    pad = fill * EVENT_BYTES
    for b in range(BATCHES):
        events = [
            {"channel": channel, "type": "load.tick", "data": {"i": i, "pad": pad}}
            for i in range(b * PER_BATCH, (b + 1) * PER_BATCH)
        ]
        response = await api.post("/api/v1/batch", json={"events": events})
        assert response.status_code == 200, response.text


async def test_stalled_client_is_cut_off_and_others_keep_receiving(srv: ServerProcess) -> None:
    channel = "tournament:slow"
    total = BATCHES * PER_BATCH
    async with http(srv) as api, ws_connect(srv, token("fast")) as fast:
        await fast.subscribe(channel)
        stalled = await asyncio.to_thread(raw_handshake, srv, token("stalled"), channel)
        try:
            metrics = (await api.get("/metrics")).text
            assert metric(metrics, "croupier_slow_consumer_disconnects_total") == 0
            publisher = asyncio.create_task(_load(api, channel))
            received = await fast.events(total, seconds=30)
            await asyncio.wait_for(publisher, timeout(30))
            # The stalled socket was closed by the server (it never read a byte since).
            await asyncio.to_thread(_read_until_closed, stalled)
        finally:
            stalled.close()
        assert [e["offset"] for e in received] == list(range(1, total + 1))
        assert [e["data"]["i"] for e in received] == list(range(total))
        metrics = (await api.get("/metrics")).text
        assert metric(metrics, "croupier_slow_consumer_disconnects_total") == 1
        # The fast subscriber is still connected and served.
        assert await fast.barrier() == []
        presence = (await api.get(f"/api/v1/channels/{channel}/presence")).json()
        assert presence["count"] == 1


async def test_slow_consumer_resumes_without_loss(srv: ServerProcess) -> None:
    """The cut-off client reconnects with its last position and gets the rest."""
    channel = "tournament:slow-resume"
    async with http(srv) as api:
        stalled = await asyncio.to_thread(raw_handshake, srv, token("stalled"), channel)
        try:
            await _load(api, channel, "y")
            seen = await asyncio.to_thread(_read_until_closed, stalled)
        finally:
            stalled.close()
        # The events that made it before the cut-off; the client stands at the last one.
        texts = [json.loads(p) for op, p in server_frames(seen) if op == 1]
        got = [t["offset"] for t in texts if t["type"] == "load.tick"]
        assert got == list(range(1, len(got) + 1))
        last = len(got)
        assert last < BATCHES * PER_BATCH
        epoch = (await api.get(f"/api/v1/channels/{channel}/history?limit=1")).json()["position"][
            "epoch"
        ]
        async with ws_connect(srv, token("stalled")) as again:
            subscribed = await again.subscribe(channel, since={"offset": last, "epoch": epoch})
            assert subscribed["recovered"] is True
            rest = await again.events(BATCHES * PER_BATCH - last, seconds=30)
        assert [e["offset"] for e in rest] == list(range(last + 1, BATCHES * PER_BATCH + 1))


async def test_the_live_log_says_who_was_cut_off_and_why(srv: ServerProcess) -> None:
    channel = "tournament:slow-log"
    async with http(srv) as api, live_log(srv, player="stalled-2") as log:
        stalled = await asyncio.to_thread(raw_handshake, srv, token("stalled-2"), channel)
        try:
            await _load(api, channel)
            slow = await log.until(lambda r: r["kind"] == "slow_consumer")
            assert slow["messages"] > 16 or slow["outbox"] > 65536
            closed = await log.until(lambda r: r["kind"] == "connection.closed")
            assert closed["reason"] == "slow_consumer"
            assert closed["client"] == slow["client"]
        finally:
            stalled.close()
