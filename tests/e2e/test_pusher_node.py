"""Pusher client protocol 7 (issue 20) with pusher-js under Node and the server SDKs.

Each test runs a real server with one Pusher app, a backend whose auth endpoint signs with
the ``pusher`` SDK from PyPI, and pusher-js clients under Node (``js/pusher/client.js``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.support import ServerProcess, running_server, timeout, token

from .pusherjs import (
    APP_ID,
    CONFIG,
    JS,
    KEY,
    MALLORY,
    SECRET,
    Backend,
    node_or_skip,
    pusher_js,
    sdk,
)
from .wsclient import history, http, write_config, ws_connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = write_config(tmp_path / "croupier.toml", CONFIG)
    with running_server(tmp_path, config=config) as srv:
        yield srv


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend() as b:
        yield b


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with http(server) as client:
        yield client


@asynccontextmanager
async def sse_events(server: ServerProcess, channel: str, reader: str) -> AsyncIterator[Any]:
    """An SSE stream of ``channel``: ``await stream.get()`` is its next event (not a notice)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=timeout(30)) as client,
            aconnect_sse(client, "GET", "/sse", params={"channel": channel, "token": reader}) as es,
        ):
            async for message in es.aiter_sse():
                doc = json.loads(message.data)
                if doc.get("type") == "connected":
                    opened.set()
                elif doc.get("channel") == channel and not doc["type"].startswith("presence."):
                    await queue.put(doc)

    task = asyncio.create_task(read())
    try:
        async with asyncio.timeout(timeout(10)):
            await opened.wait()
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def raw_pusher(server: ServerProcess, path: str) -> AsyncIterator[list[dict[str, Any]]]:
    """What the server sends a bare WebSocket on ``path`` until it closes, and the close code."""
    frames: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url + path) as ws:
        async with asyncio.timeout(timeout(10)):
            async for message in ws:
                frames.append(json.loads(message.data))
        frames.append({"close": ws.close_code})
        yield frames


async def trigger(
    server: ServerProcess, channels: list[str], event: str, data: object, **kw: object
) -> None:
    await asyncio.to_thread(sdk(server).trigger, channels, event, data, **kw)


async def test_public_channel_gets_what_the_python_sdk_triggers(
    server: ServerProcess, backend: Backend
) -> None:
    async with pusher_js(server, backend) as ann:
        assert ann.socket_id.count(".") == 1
        await ann.subscribe("orders")
        await trigger(server, ["orders"], "order.paid", {"id": 7})
        event = await ann.event("orders", "order.paid")
        assert event["data"] == {"id": 7}


async def test_private_channel_needs_the_backends_signature(
    server: ServerProcess, backend: Backend
) -> None:
    async with pusher_js(server, backend) as ann, pusher_js(server, backend, MALLORY) as mallory:
        await ann.subscribe("private-tournament-42")
        await trigger(server, ["private-tournament-42"], "App\\Events\\ScoreUpdated", {"score": 9})
        event = await ann.event("private-tournament-42", "App\\Events\\ScoreUpdated")
        assert event["data"] == {"score": 9}
        # Signed with another secret: the server refuses it.
        await mallory.send(op="subscribe", channel="private-tournament-42")
        refused = await mallory.event("private-tournament-42", "pusher:subscription_error")
        assert refused["data"]["status"] == 401
        assert "invalid signature" in refused["data"]["error"]
        # Refused by the backend itself: pusher-js never asks the server.
        await ann.send(op="subscribe", channel="private-forbidden")
        denied = await ann.event("private-forbidden", "pusher:subscription_error")
        assert denied["data"]["status"] == 403


async def test_presence_with_two_users_members_and_client_events(
    server: ServerProcess, backend: Backend
) -> None:
    room = "presence-room"
    async with pusher_js(server, backend, "ann") as ann:
        joined = await ann.subscribe(room)
        assert joined["data"]["members"] == {"ann": {"name": "Ann"}}
        assert joined["data"]["me"] == "ann"
        async with pusher_js(server, backend, "bob") as bob:
            both = await bob.subscribe(room)
            assert both["data"]["count"] == 2
            assert set(both["data"]["members"]) == {"ann", "bob"}
            added = await ann.event(room, "pusher:member_added")
            assert added["data"] == {"id": "bob", "info": {"name": "Bob"}}
            # A client event reaches the others, not its sender.
            await bob.send(op="trigger", channel=room, event="client-typing", data={"who": "bob"})
            typing = await ann.event(room, "client-typing")
            assert typing["data"] == {"who": "bob"}
            await ann.send(op="trigger", channel=room, event="client-typing", data={"who": "ann"})
            await bob.event(room, "client-typing")
            assert not ann.seen(room, "client-typing")
        removed = await ann.event(room, "pusher:member_removed", seconds=15)
        assert removed["data"]["id"] == "bob"
        users = await asyncio.to_thread(sdk(server).users_info, room)
        assert users == {"users": [{"id": "ann"}]}


async def test_client_events_are_refused_on_public_channels_and_rate_limited(
    server: ServerProcess, backend: Backend
) -> None:
    async with pusher_js(server, backend) as ann, pusher_js(server, backend, "bob") as bob:
        await ann.subscribe("orders")
        await ann.send(op="trigger", channel="orders", event="client-x", data={})
        error = await ann.next(lambda d: d["kind"] == "error")
        assert "private and presence" in json.dumps(error)
        await ann.subscribe("private-chat")
        await bob.subscribe("private-chat")
        for n in range(20):  # the app allows 5 a second, burst 10
            await ann.send(op="trigger", channel="private-chat", event="client-msg", data={"n": n})
        limited = await ann.next(lambda d: d["kind"] == "error" and "4301" in json.dumps(d))
        assert "limited" in json.dumps(limited)
        first = await bob.event("private-chat", "client-msg")
        assert first["data"] == {"n": 0}


async def test_socket_id_exclusion_and_the_node_sdk(
    server: ServerProcess, backend: Backend
) -> None:
    node = node_or_skip()
    async with pusher_js(server, backend, "ann") as ann, pusher_js(server, backend, "bob") as bob:
        await ann.subscribe("orders")
        await bob.subscribe("orders")
        script = (
            "const Pusher = require('pusher');"
            f"const p = new Pusher({{appId: '{APP_ID}', key: '{KEY}', secret: '{SECRET}',"
            f" host: '127.0.0.1', port: '{server.port}', useTLS: false}});"
            f"p.trigger('orders', 'from-node', {{n: 1}}, {{socket_id: '{ann.socket_id}'}})"
            ".then(r => console.log(r.status), e => { console.error(e); process.exit(1); });"
        )
        done = await asyncio.to_thread(
            subprocess.run, [node, "-e", script], cwd=JS, capture_output=True, timeout=timeout(20)
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == b"200"
        event = await bob.event("orders", "from-node")
        assert event["data"] == {"n": 1}
        # The Python SDK's trigger, after: ann's next event is this one, not from-node.
        await trigger(server, ["orders"], "after", {})
        await ann.event("orders", "after")
        assert not ann.seen("orders", "from-node")


async def test_a_mixed_audience_and_history(
    server: ServerProcess, backend: Backend, api: httpx.AsyncClient
) -> None:
    reader = token("reader", channels=["pusher:*"])
    async with (
        pusher_js(server, backend) as ann,
        ws_connect(server, reader) as native,
        sse_events(server, "pusher:orders", reader) as sse,
    ):
        await ann.subscribe("orders")
        await native.subscribe("pusher:orders")
        await trigger(server, ["orders"], "order.paid", {"id": 1, "total": 30})
        from_pusher = await ann.event("orders", "order.paid")
        from_native = await native.expect("order.paid")
        async with asyncio.timeout(timeout(10)):
            from_sse = await sse.get()
        assert (
            from_pusher["data"] == from_native["data"] == from_sse["data"] == {"id": 1, "total": 30}
        )
        stored = await history(api, "pusher:orders")
        assert [(e["type"], e["offset"]) for e in stored["events"]] == [("order.paid", 1)]
        assert from_native["offset"] == from_sse["offset"] == 1
        # And the other way: a Croupier publish reaches the Pusher client.
        published = await api.post(
            "/api/v1/publish",
            json={"channel": "pusher:orders", "type": "order.shipped", "data": {"id": 1}},
        )
        assert published.status_code == 200
        shipped = await ann.event("orders", "order.shipped")
        assert shipped["data"] == {"id": 1}


async def test_terminate_a_users_connections(server: ServerProcess, backend: Backend) -> None:
    async with pusher_js(server, backend, "ann") as ann, pusher_js(server, backend, "bob") as bob:
        await ann.subscribe("presence-room")
        await bob.subscribe("presence-room")
        await asyncio.to_thread(sdk(server).terminate_user_connections, "ann")
        error = await ann.next(lambda d: d["kind"] == "error")
        assert "4009" in json.dumps(error)
        await ann.next(
            lambda d: (
                d["kind"] == "state" and d["current"] in ("failed", "unavailable", "disconnected")
            )
        )
        await trigger(server, ["presence-room"], "still-here", {})
        await bob.event("presence-room", "still-here")


async def test_unknown_key_is_refused_with_4001(server: ServerProcess) -> None:
    async with raw_pusher(server, "/app/nope?protocol=7") as frames:
        assert frames[0]["event"] == "pusher:error"
        assert frames[0]["data"]["code"] == 4001
        assert frames[-1] == {"close": 4001}
    async with raw_pusher(server, f"/app/{KEY}?protocol=4") as frames:
        assert frames[-1] == {"close": 4007}


async def test_a_quiet_pusher_js_client_is_kept_by_its_pongs(
    tmp_path: Path, backend: Backend
) -> None:
    """pusher-js sends nothing while it hears from the server: the server's pings (answered
    with pongs) must keep it, however many idle periods pass."""
    config = write_config(tmp_path / "croupier.toml", CONFIG + "[limits]\nping_interval = 0.3\n")
    with running_server(tmp_path, config=config) as quick:
        async with pusher_js(quick, backend) as ann:
            await ann.subscribe("orders")
            await asyncio.sleep(timeout(2))  # more than six idle periods of 0.3 s
            await trigger(quick, ["orders"], "still", {})
            await ann.event("orders", "still")
            states = [d["current"] for d in ann.reports if d["kind"] == "state"]
            assert states == ["connected"]  # the first connect only: never dropped since
