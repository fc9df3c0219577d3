"""The server is killed (SIGKILL) and restarted on the same SQLite file: nothing acknowledged
is lost, offsets continue, the epoch stays, and clients resume with ``since``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ServerProcess, timeout, token

from .wsclient import history, http, publish, ws_connect

pytestmark = pytest.mark.e2e

CHANNELS = ("tournament:crash-a", "room:crash-b")


async def _publish_until_refused(
    srv: ServerProcess, acked: dict[str, list[int]], started: asyncio.Event
) -> None:
    """Publish round-robin until the server goes away; record every acknowledged offset."""
    async with http(srv) as api:
        for i in range(100_000):
            channel = CHANNELS[i % len(CHANNELS)]
            try:
                response = await api.post(
                    "/api/v1/publish",
                    json={"channel": channel, "type": "crash.tick", "data": {"i": i}},
                )
            except httpx.TransportError:
                return
            if response.status_code != 200:
                return
            acked[channel].append(response.json()["offset"])
            if i == 200:
                started.set()


BATCH_CHANNEL = "match:crash-batch"
BATCH = 20


async def _batch_until_refused(srv: ServerProcess, acked: list[int]) -> None:
    """Publish batches until the server goes away; record the acknowledged batch numbers."""
    async with http(srv) as api:
        for b in range(100_000):
            events = [
                {"channel": BATCH_CHANNEL, "type": "crash.batch", "data": {"b": b, "k": k}}
                for k in range(BATCH)
            ]
            try:
                response = await api.post("/api/v1/batch", json={"events": events})
            except httpx.TransportError:
                return
            if response.status_code != 200:
                return
            acked.append(b)


async def test_kill_and_restart_loses_nothing(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "croupier.db").start()
    try:
        acked: dict[str, list[int]] = {c: [] for c in CHANNELS}
        seen: dict[str, list[dict[str, Any]]] = {c: [] for c in CHANNELS}
        started = asyncio.Event()
        async with ws_connect(srv, token("p1")) as c:
            epochs = {}
            for i, channel in enumerate(CHANNELS):
                epochs[channel] = (await c.subscribe(channel, id=i))["position"]["epoch"]
            publisher = asyncio.create_task(_publish_until_refused(srv, acked, started))
            batches: list[int] = []
            batcher = asyncio.create_task(_batch_until_refused(srv, batches))
            await asyncio.wait_for(started.wait(), timeout(20))
            # Read a little, then crash the server under load.
            for event in await c.events(50):
                seen[event["channel"]].append(event)
            await asyncio.to_thread(srv.kill)
            await asyncio.wait_for(publisher, timeout(10))
            await asyncio.wait_for(batcher, timeout(10))
            # What the socket still held before it died.
            with contextlib.suppress(AssertionError, TimeoutError):
                while True:
                    doc = await c.recv_quiet(1)
                    if "offset" in doc:
                        seen[doc["channel"]].append(doc)
        assert all(len(v) > 50 for v in acked.values()), {k: len(v) for k, v in acked.items()}

        await asyncio.to_thread(srv.start)
        async with http(srv) as api:
            tops = {}
            for channel in CHANNELS:
                doc = await history(api, channel, limit=1000)
                stored = [e["offset"] for e in doc["events"]]
                # Every acknowledged publish survived, and the offsets have no gap.
                assert set(acked[channel]) <= set(stored)
                assert stored == list(range(1, len(stored) + 1))
                assert doc["position"]["epoch"] == epochs[channel]
                tops[channel] = doc["position"]["offset"]
            # A batch is one transaction: after the crash it is there whole or not at all.
            assert len(batches) > 3
            stored_batches: dict[int, list[int]] = {}
            since = 0
            while page := (await history(api, BATCH_CHANNEL, since=since, limit=1000))["events"]:
                for e in page:
                    stored_batches.setdefault(e["data"]["b"], []).append(e["data"]["k"])
                since = page[-1]["offset"]
            assert set(batches) <= set(stored_batches)
            assert all(ks == list(range(BATCH)) for ks in stored_batches.values())

            async with ws_connect(srv, token("p1")) as c:
                for i, channel in enumerate(CHANNELS):
                    last = seen[channel][-1]["offset"] if seen[channel] else 0
                    subscribed = await c.subscribe(
                        channel, since={"offset": last, "epoch": epochs[channel]}, id=i
                    )
                    assert subscribed["recovered"] is True
                    assert subscribed["position"] == {
                        "offset": tops[channel],
                        "epoch": epochs[channel],
                    }
                    seen[channel] += await c.events(tops[channel] - last)
                # Offsets continue after the restart, under the same epoch.
                for channel in CHANNELS:
                    result = await publish(api, channel, "crash.after", {"after": True})
                    assert result["offset"] == tops[channel] + 1
                    assert result["epoch"] == epochs[channel]
                    (event,) = await c.events(1)
                    seen[channel].append(event)
        for channel in CHANNELS:
            assert [e["offset"] for e in seen[channel]] == list(range(1, tops[channel] + 2))
    finally:
        srv.stop()
