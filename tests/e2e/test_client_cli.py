"""The Python client and the ``croupier`` command against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from croupier.client import Client, ClientError
from tests.support import API_KEY, SECRET, ServerProcess, running_server, timeout, token

from .wsclient import http, publish, ws_connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("client")) as srv:
        yield srv


async def _wait_for(items: list[Any], count: int, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout(seconds)
    while len(items) < count:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{len(items)} of {count}: {items[-3:]}"
        )
        await asyncio.sleep(0.02)


async def _subscribed(client: Client, channels: tuple[str, ...]) -> None:
    """Wait until every one of ``channels`` has a position (its subscription stands)."""
    deadline = asyncio.get_running_loop().time() + timeout(10)
    while len(client.positions) < len(channels):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_client_subscribe_resumes_across_a_server_restart(server: ServerProcess) -> None:
    channels = ("tournament:cli-a", "player:1001:p1")
    received: list[dict[str, Any]] = []

    async def consume(client: Client) -> None:
        async for event in client.subscribe(*channels):
            received.append(event)

    async with Client(server.url, api_key=API_KEY, token=token("p1"), max_backoff=0.5) as client:
        consumer = asyncio.create_task(consume(client))
        try:
            # Wait until both subscriptions stand, so the first events are live ones.
            await _subscribed(client, channels)
            for i in range(20):
                await client.publish(channels[i % 2], "seq.tick", {"i": i})
            await _wait_for(received, 20)
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            # Published while the client is still reconnecting: it must get these too.
            for i in range(20, 40):
                await client.publish(channels[i % 2], "seq.tick", {"i": i})
            await _wait_for(received, 40)
            # And live ones after it has resumed.
            for i in range(40, 50):
                await client.publish(channels[i % 2], "seq.tick", {"i": i})
            await _wait_for(received, 50)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    assert not [e for e in received if e["type"] == "reset"]
    for n, channel in enumerate(channels):
        mine = [e for e in received if e["channel"] == channel]
        assert [e["offset"] for e in mine] == list(range(1, 26))
        assert [e["data"]["i"] for e in mine] == list(range(n, 50, 2))
    assert client.positions["tournament:cli-a"]["offset"] == 25


async def test_client_subscribes_to_more_channels_than_a_url_holds(server: ServerProcess) -> None:
    # 40 names of 120 characters: over the client's URL budget, so each is a message.
    channels = tuple(f"lobby:{i:03d}-" + "x" * 110 for i in range(40))
    received: list[dict[str, Any]] = []

    async def consume(client: Client) -> None:
        async for event in client.subscribe(*channels):
            received.append(event)

    async with Client(server.url, api_key=API_KEY, token=token("p1")) as client:
        consumer = asyncio.create_task(consume(client))
        try:
            await _subscribed(client, channels)
            for channel in channels:
                await client.publish(channel, "seq.tick", {"c": channel})
            await _wait_for(received, len(channels))
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    assert sorted(e["channel"] for e in received) == sorted(channels)


async def test_client_past_the_servers_subscription_limit_is_told_which_limit(
    tmp_path: Path,
) -> None:
    # Three channels fit the client's URL budget, but this server takes two per connection:
    # the upgrade naming all three is refused (400), and the client then sends them as
    # messages, so the refusal it raises is the server's own, with the limit in it.
    config = tmp_path / "croupier.toml"
    config.write_text("[limits]\nmax_subscriptions = 2\n")
    with running_server(tmp_path, config=config) as srv:
        async with Client(srv.url, api_key=API_KEY, token=token("p1")) as client:
            with pytest.raises(ClientError) as refused:
                async for _ in client.subscribe("lobby:a", "lobby:b", "lobby:c"):
                    pass
    assert refused.value.code == "too_many_subscriptions"
    assert refused.value.status == 400
    assert "at most 2 subscriptions" in str(refused.value)


async def test_client_yields_reset_when_history_is_lost(tmp_path: Path) -> None:
    """A server back with another log (new epoch): the client is told to reload state."""
    srv = ServerProcess(tmp_path / "first.db").start()
    received: list[dict[str, Any]] = []
    try:
        async with Client(srv.url, api_key=API_KEY, token=token("p1"), max_backoff=0.5) as client:

            async def consume() -> None:
                async for event in client.subscribe("tournament:lost"):
                    received.append(event)

            consumer = asyncio.create_task(consume())
            try:
                deadline = asyncio.get_running_loop().time() + timeout(10)
                while not client.positions:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.02)
                for i in range(3):
                    await client.publish("tournament:lost", "a.b", {"i": i})
                await _wait_for(received, 3)
                old_epoch = received[0]["epoch"]
                await asyncio.to_thread(srv.kill)
                srv.db = tmp_path / "second.db"
                await asyncio.to_thread(srv.start)
                await _wait_for(received, 4)
                await client.publish("tournament:lost", "a.b", {"i": "new"})
                await _wait_for(received, 5)
            finally:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
    finally:
        srv.stop()
    assert received[3] == {"type": "reset", "channel": "tournament:lost"}
    assert (received[4]["offset"], received[4]["data"]) == (1, {"i": "new"})
    assert received[4]["epoch"] != old_epoch


async def test_client_publish_history_and_errors(server: ServerProcess) -> None:
    async with Client(server.url, api_key=API_KEY) as client:
        first = await client.publish("tournament:cli-b", "a.b", {"n": 1}, idempotency_key="k")
        again = await client.publish("tournament:cli-b", "a.b", {"n": 1}, idempotency_key="k")
        assert (first["offset"], again["offset"], again["duplicate"]) == (1, 1, True)
        results = await client.publish_batch(
            [{"channel": "tournament:cli-b", "type": "a.b", "data": {"n": i}} for i in range(2, 4)]
        )
        assert [r["offset"] for r in results] == [2, 3]
        doc = await client.history("tournament:cli-b", since=1)
        assert [e["data"]["n"] for e in doc["events"]] == [2, 3]
        with pytest.raises(ClientError) as info:
            await client.publish("nowhere:1", "a.b", {})
        assert (info.value.status, info.value.code) == (400, "unknown_namespace")
    async with Client(server.url, api_key="wrong") as client:
        with pytest.raises(ClientError) as info:
            await client.publish("tournament:cli-b", "a.b", {})
        assert info.value.status == 401


async def test_client_admin_helpers_find_disconnect_and_log(server: ServerProcess) -> None:
    async with Client(server.url, api_key="wrong") as client:
        with pytest.raises(ClientError) as info:
            async for _ in client.live_log():
                pass
        assert (info.value.status, info.value.code) == (401, "invalid_key")
    async with (
        Client(server.url, api_key=API_KEY) as client,
        ws_connect(server, token("p-admin", brand="1001")) as ws,
    ):
        found = await client.connections("p-admin")
        assert [c["id"] for c in found["connections"]] == [ws.connected["client"]]
        records = client.live_log(kind="disconnect.requested")
        hello = await asyncio.wait_for(anext(records), timeout(10))
        assert hello["kind"] == "hello"
        done = await client.disconnect("p-admin", reason="maintenance", reconnect=False)
        assert done["disconnected"] == 1
        record = await asyncio.wait_for(anext(records), timeout(10))
        await records.aclose()
        assert (record["kind"], record["player"], record["reason"]) == (
            "disconnect.requested",
            "p-admin",
            "maintenance",
        )
        messages = await ws.wait_closed()
        assert {"type": "disconnect", "code": "maintenance", "reconnect": False} in messages


async def test_client_subscribe_refused_raises(server: ServerProcess) -> None:
    async with Client(server.url, token=token("p1")) as client:
        with pytest.raises(ClientError) as info:
            async for _ in client.subscribe("player:1001:someone-else"):
                pass
        assert info.value.code == "forbidden"


async def test_client_subscribe_with_a_bad_token_raises(server: ServerProcess) -> None:
    """A refused token is not retried forever: reconnecting would not fix it."""

    async def drain(client: Client) -> None:
        async for _ in client.subscribe("tournament:cli-a"):
            pass

    async with Client(server.url, token="not-a-token", max_backoff=0.2) as client:
        with pytest.raises(ClientError) as info:
            await asyncio.wait_for(drain(client), timeout(10))
    assert (info.value.status, info.value.code) == (401, "unauthorized")


@contextlib.asynccontextmanager
async def _croupier(*args: str, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "croupier",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def test_cli_tail_prints_events_as_json_lines(server: ServerProcess) -> None:
    channel = "tournament:tail"
    async with (
        http(server) as api,
        _croupier("tail", channel, "--url", server.url, "--token", token("p1")) as tail,
    ):
        assert tail.stdout is not None
        # The tail subscribes on its own schedule; publish until its first line shows up,
        # then check that it printed every event from that one on.
        sent: list[dict[str, Any]] = []
        first: dict[str, Any] | None = None
        deadline = asyncio.get_running_loop().time() + timeout(20)
        while first is None:
            assert asyncio.get_running_loop().time() < deadline, "tail printed nothing"
            sent.append(await publish(api, channel, "tail.tick", {"i": len(sent)}))
            with contextlib.suppress(TimeoutError):
                first = json.loads(await asyncio.wait_for(tail.stdout.readline(), 0.2))
        lines = [first]
        for i in range(len(sent), len(sent) + 5):
            sent.append(await publish(api, channel, "tail.tick", {"i": i}))
        while lines[-1]["offset"] < sent[-1]["offset"]:
            line = await asyncio.wait_for(tail.stdout.readline(), timeout(10))
            lines.append(json.loads(line))
    assert [e["offset"] for e in lines] == list(range(first["offset"], sent[-1]["offset"] + 1))
    assert all(e["type"] == "tail.tick" and e["channel"] == channel for e in lines)
    assert lines[-1]["data"] == {"i": len(sent) - 1}
    assert set(lines[-1]) == {"type", "channel", "offset", "epoch", "ts", "data"}


@pytest.mark.parametrize(
    ("channel", "tok", "code"),
    [("player:1001:other", token("p1"), "forbidden"), ("tournament:x", "bad", "unauthorized")],
)
async def test_cli_tail_refused_exits_with_a_message(
    server: ServerProcess, channel: str, tok: str, code: str
) -> None:
    async with _croupier("tail", channel, "--url", server.url, "--token", tok) as tail:
        out, err = await asyncio.wait_for(tail.communicate(), timeout(20))
    assert tail.returncode == 1
    assert out == b""
    assert code in err.decode()
    assert "Traceback" not in err.decode()


async def test_cli_publish_and_token(server: ServerProcess) -> None:
    async with _croupier(
        "publish",
        "tournament:cli-pub",
        "cli.said",
        '{"hello": "world"}',
        "--url",
        server.url,
        CROUPIER_API_KEY=API_KEY,
    ) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert (result["channel"], result["offset"], result["duplicate"]) == (
        "tournament:cli-pub",
        1,
        False,
    )
    async with _croupier(
        "publish", "nowhere:1", "cli.said", "--url", server.url, CROUPIER_API_KEY=API_KEY
    ) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert (proc.returncode, out) == (1, b"")
    assert "unknown_namespace" in err.decode()
    assert "Traceback" not in err.decode()
    async with _croupier("token", "p7", "--brand", "1001", CROUPIER_JWT_SECRET=SECRET) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 0, err
    minted = out.decode().strip()
    async with ws_connect(server, minted) as c:
        assert (await c.subscribe("player:1001:p7"))["channel"] == "player:1001:p7"
    # Without a secret, the server mints it (with an admin key).
    async with _croupier(
        "token", "p8", "--brand", "1001", "--url", server.url, CROUPIER_API_KEY=API_KEY
    ) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 0, err
    async with ws_connect(server, out.decode().strip()) as c:
        assert (await c.subscribe("player:1001:p8"))["channel"] == "player:1001:p8"
    async with _croupier("token", "p9", "--url", server.url, CROUPIER_API_KEY="wrong") as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert (proc.returncode, out) == (1, b"")
    assert "--key" in err.decode()
    assert "--secret" in err.decode()
    assert "Traceback" not in err.decode()


async def test_cli_connections_disconnect_and_log(server: ServerProcess) -> None:
    key = {"CROUPIER_API_KEY": API_KEY}
    async with (
        _croupier("log", "--player", "p-cli", "--url", server.url, **key) as log,
        ws_connect(server, token("p-cli")) as ws,
    ):
        assert log.stdout is not None
        hello = json.loads(await asyncio.wait_for(log.stdout.readline(), timeout(20)))
        assert hello["kind"] == "hello"
        await ws.subscribe("tournament:cli-conn")
        async with _croupier("connections", "p-cli", "--url", server.url, **key) as proc:
            out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
        assert proc.returncode == 0, err
        assert ws.connected["client"] in out.decode()
        assert "tournament:cli-conn@0" in out.decode()
        assert "1 connections on 1 nodes" in err.decode()

        args = ("disconnect", "p-cli", "--reason", "maintenance", "--url", server.url)
        async with _croupier(*args, **key) as proc:
            out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
        assert proc.returncode == 0, err
        assert out.decode().startswith("disconnected 1")
        told = await ws.wait_closed()
        assert {"type": "disconnect", "code": "maintenance", "reconnect": True} in told

        kinds = []
        while "connection.closed" not in kinds:
            line = await asyncio.wait_for(log.stdout.readline(), timeout(20))
            kinds.append(json.loads(line)["kind"])
        assert "disconnect.requested" in kinds

    async with _croupier("disconnect", "--url", server.url, **key) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 2
    assert "give a PLAYER" in err.decode()
