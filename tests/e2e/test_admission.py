"""Admission under overload: a node takes ``limits.admit_rate`` new connections a second and
tells the rest when to come back; a reconnect storm far over that budget still ends with every
client back and every missed event delivered exactly once. No timing assertions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from croupier.client import Client
from tests.support import ServerProcess, running_server, timeout, token

from .wsclient import http

CHANNEL = "table:storm"
CLIENTS = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"CROUPIER_ADMIT_RATE": "20", "CROUPIER_ADMIT_BURST": "5"}
    with running_server(tmp_path, env=env) as srv:
        yield srv


async def refused(server: ServerProcess) -> float:
    async with aiohttp.ClientSession() as s, s.get(server.url + "/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith("croupier_refused_connections_total "):
            return float(line.split()[1])
    raise AssertionError("no croupier_refused_connections metric")


async def publish(server: ServerProcess, n: int) -> None:
    async with http(server) as api:
        for i in range(n):
            r = await api.post(
                "/api/v1/publish", json={"channel": CHANNEL, "type": "t.x", "data": {"i": i}}
            )
            assert r.status_code == 200, r.text


async def test_over_the_budget_the_websocket_is_told_when_to_come_back(
    server: ServerProcess,
) -> None:
    async with aiohttp.ClientSession() as s:
        told = []
        sockets = []
        for _ in range(15):
            ws = await s.ws_connect(server.ws_url)
            sockets.append(ws)
            message = await ws.receive_json(timeout=timeout(10))
            if message["type"] == "disconnect":
                told.append(message)
                closed = await ws.receive(timeout=timeout(10))
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1013
        for ws in sockets:
            await ws.close()
    assert told, "15 connections at once over a budget of 5"
    for message in told:
        assert message["code"] == "overloaded"
        assert message["reconnect"] is True
        assert message["retry_after"] >= 1


async def test_over_the_budget_a_stream_gets_503_and_retry_after(server: ServerProcess) -> None:
    statuses = []
    async with aiohttp.ClientSession() as s:
        for _ in range(15):
            url = f"{server.url}/sse?channel={CHANNEL}&token={token()}"
            async with s.get(url, timeout=aiohttp.ClientTimeout(sock_read=0.5)) as r:
                statuses.append(r.status)
                if r.status == 503:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert (await r.json())["error"]["code"] == "overloaded"
    assert 503 in statuses
    assert 200 in statuses


async def test_a_storm_over_the_budget_ends_with_everyone_back_exactly_once(
    server: ServerProcess,
) -> None:
    await publish(server, 3)
    seen: dict[int, list[int]] = {i: [] for i in range(CLIENTS)}
    resets: list[int] = []

    async def player(i: int) -> None:
        async with Client(server.url, token=token(f"p{i}")) as client:
            async for event in client.subscribe(CHANNEL):
                if event["type"] == "reset":
                    resets.append(i)
                elif event["type"] == "t.x":
                    seen[i].append(event["offset"])

    async def until(condition: object, seconds: float) -> None:
        async with asyncio.timeout(timeout(seconds)):
            while not condition():  # type: ignore[operator]  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(player(i)) for i in range(CLIENTS)]
    try:
        # Subscribing without a position replays nothing: publish once everyone is in.
        async with http(server) as api:

            async def present() -> int:
                r = await api.get(f"/api/v1/channels/{CHANNEL}/presence")
                return int(r.json()["count"])

            async with asyncio.timeout(timeout(60)):
                while await present() < CLIENTS:  # noqa: ASYNC110 - an HTTP poll
                    await asyncio.sleep(0.1)
        await publish(server, 2)
        await until(lambda: all(s and s[-1] == 5 for s in seen.values()), 60)
        before = {i: list(s) for i, s in seen.items()}
        # A node restart: every client reconnects at once, far over 20 a second.
        server.restart()
        await publish(server, 5)
        await until(lambda: all(s[-1] == 10 for s in seen.values()), 90)
        for i, offsets in seen.items():
            start = before[i][0]
            assert offsets == list(range(start, 11)), f"client {i}: exactly once, in order"
        assert resets == []
        assert await refused(server) > 0, "the storm went over the budget"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
