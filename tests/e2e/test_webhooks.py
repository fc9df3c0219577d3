"""Webhooks against a real local HTTP receiver (an aiohttp server on loopback, in the test).

Croupier runs as a real server process; the receiver records what arrives and answers with
whatever status the test sets. Shown: signatures verify (and a tampered body does not), a
receiver that is down for a while gets every delivery once it is back, a server SIGKILLed
during retries loses nothing, dead letters are listed and redelivered, and with a receiver
answering 2xx each delivery id arrives exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from croupier.services.webhooks import verify
from tests.support import ServerProcess, free_port, timeout

pytestmark = pytest.mark.e2e

FAST = {
    "CROUPIER_WEBHOOK_BACKOFF_BASE": "0.05",
    "CROUPIER_WEBHOOK_BACKOFF_MAX": "0.3",
    "CROUPIER_WEBHOOK_TIMEOUT": "1",
    "CROUPIER_WEBHOOK_POLL_INTERVAL": "0.05",
    "CROUPIER_WEBHOOK_REFRESH_INTERVAL": "0.5",
    "CROUPIER_WEBHOOK_MAX_ATTEMPTS": "1000",
    "CROUPIER_WEBHOOK_CONCURRENCY": "16",  # whatever the environment says: these deliver
}


class Receiver:
    """An HTTP server on loopback that records every POST and answers ``status``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.status
        if 200 <= status < 300:
            self.received.append((dict(request.headers), body))
        return web.json_response({"ok": status < 300}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> Counter[str]:
        return Counter(headers["Croupier-Webhook-Id"] for headers, _ in self.received)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    servers: list[ServerProcess] = []

    def make(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / "croupier.db", env={**FAST, **env}).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


class Api:
    def __init__(self, server: ServerProcess) -> None:
        self.client = httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=timeout(10)
        )

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = await self.client.request(method, path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    async def register(self, url: str, types: list[str], **extra: Any) -> dict[str, Any]:
        doc: dict[str, Any] = await self.call(
            "POST", "/api/v1/webhooks", {"url": url, "event_types": types, **extra}
        )
        return doc

    async def publish(self, channel: str, type: str, data: Any) -> None:
        await self.call("POST", "/api/v1/publish", {"channel": channel, "type": type, "data": data})

    async def deliveries(self, endpoint: str, status: str | None = None) -> list[dict[str, Any]]:
        query = f"?status={status}&limit=1000" if status else "?limit=1000"
        doc = await self.call("GET", f"/api/v1/webhooks/{endpoint}/deliveries{query}")
        found: list[dict[str, Any]] = doc["deliveries"]
        return found


@pytest.fixture
async def api_for() -> AsyncIterator[Callable[[ServerProcess], Api]]:
    made: list[Api] = []

    def make(server: ServerProcess) -> Api:
        made.append(Api(server))
        return made[-1]

    yield make
    for api in made:
        await api.client.aclose()


async def test_signed_deliveries_verify(
    make_server: Callable[..., ServerProcess],
    api_for: Callable[[ServerProcess], Api],
    receiver: Receiver,
) -> None:
    api = api_for(make_server())
    created = await api.register(receiver.url, ["tournament.completed", "*_balance_update"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    shown = await api.call("GET", f"/api/v1/webhooks/{created['id']}")
    assert "secret" not in shown
    assert shown["event_types"] == created["event_types"]

    await api.publish("tournament:42", "tournament.completed", {"tournament_id": "42"})
    await api.publish("player:1001:p1", "wallet_balance_update", {"balance": "10.50"})
    await api.publish("tournament:42", "leaderboard.updated", {"top": []})  # not subscribed

    async def two() -> bool:
        return len(receiver.received) >= 2

    await eventually(two, 10, "two deliveries")
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 2
    by_type = {
        headers["Croupier-Webhook-Event"]: (headers, body) for headers, body in receiver.received
    }
    assert set(by_type) == {"tournament.completed", "wallet_balance_update"}
    headers, body = by_type["tournament.completed"]
    doc = orjson.loads(body)
    assert doc["id"] == headers["Croupier-Webhook-Id"]
    assert (doc["type"], doc["channel"], doc["data"]) == (
        "tournament.completed",
        "tournament:42",
        {"tournament_id": "42"},
    )
    assert doc["offset"] >= 1
    assert doc["ts"]
    timestamp = headers["Croupier-Webhook-Timestamp"]
    signature = headers["Croupier-Webhook-Signature"]
    assert abs(int(timestamp) - time.time()) < 60
    # What a receiver does, without Croupier's code:
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(signature, "v1=" + expected.hexdigest())
    assert verify(secret, timestamp, body, signature, now=time.time())
    tampered = body.replace(b'"42"}', b'"43"}')
    assert tampered != body
    assert not verify(secret, timestamp, tampered, signature, now=time.time())
    assert not verify("whsec_someone-else-entirely", timestamp, body, signature, now=time.time())

    [delivered] = [
        d for d in await api.deliveries(created["id"], "delivered") if d["id"] == doc["id"]
    ]
    assert delivered["attempts"] == 1
    assert delivered["last_status"] == 200
    detail = await api.call("GET", f"/api/v1/webhooks/{created['id']}/deliveries/{doc['id']}")
    assert orjson.loads(detail["body"]) == doc
    [attempt] = detail["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["duration_ms"] >= 0


async def test_receiver_down_then_up_gets_everything_once(
    make_server: Callable[..., ServerProcess], api_for: Callable[[ServerProcess], Api]
) -> None:
    api = api_for(make_server())
    receiver = Receiver()  # its port is chosen, but nothing listens yet
    created = await api.register(receiver.url, ["notification"])
    for i in range(30):
        await api.publish(f"player:1001:p{i % 3}", "notification", {"n": i})

    async def retrying() -> bool:
        pending = await api.deliveries(created["id"], "pending")
        return len(pending) == 30 and all(d["attempts"] >= 2 for d in pending)

    await eventually(retrying, 15, "failed attempts while the receiver is down")
    [one] = (await api.deliveries(created["id"]))[:1]
    detail = await api.call("GET", f"/api/v1/webhooks/{created['id']}/deliveries/{one['id']}")
    assert detail["attempts"][0]["status_code"] is None
    assert detail["attempts"][0]["error"]  # connection refused, recorded

    await receiver.start()
    try:

        async def all_arrived() -> bool:
            return len(receiver.ids()) == 30

        await eventually(all_arrived, 15, "every delivery after the receiver came back")
        await asyncio.sleep(0.5)
        assert max(receiver.ids().values()) == 1, "a delivery arrived twice"
        assert sorted(orjson.loads(b)["data"]["n"] for _, b in receiver.received) == list(range(30))
        delivered = await api.deliveries(created["id"], "delivered")
        assert len(delivered) == 30
    finally:
        await receiver.stop()


async def test_server_killed_during_retries_loses_nothing(
    make_server: Callable[..., ServerProcess],
    api_for: Callable[[ServerProcess], Api],
    receiver: Receiver,
) -> None:
    server = make_server()
    api = api_for(server)
    receiver.status = 503
    created = await api.register(receiver.url, ["rebuy.requested", "tournament.*"])
    for i in range(20):
        await api.publish(
            "tournament:7", "rebuy.requested" if i % 2 else "tournament.completed", {"i": i}
        )

    async def retrying() -> bool:
        pending = await api.deliveries(created["id"], "pending")
        return len(pending) == 20 and all(d["attempts"] >= 1 for d in pending)

    await eventually(retrying, 15, "deliveries being retried")
    await asyncio.to_thread(server.kill)  # SIGKILL: mid-retry, leases held, nothing flushed
    receiver.status = 200
    await asyncio.to_thread(server.start)

    async def all_arrived() -> bool:
        return len(receiver.ids()) == 20

    await eventually(all_arrived, 30, "every delivery after the restart")
    await asyncio.sleep(0.5)
    assert max(receiver.ids().values()) == 1
    assert sorted(orjson.loads(b)["data"]["i"] for _, b in receiver.received) == list(range(20))
    assert len(await api.deliveries(created["id"], "delivered")) == 20


async def test_dead_letters_are_listed_and_redelivered(
    make_server: Callable[..., ServerProcess],
    api_for: Callable[[ServerProcess], Api],
    receiver: Receiver,
) -> None:
    api = api_for(make_server(CROUPIER_WEBHOOK_MAX_ATTEMPTS="3"))
    receiver.status = 500
    created = await api.register(receiver.url, ["gamification_balance_update"], secret="s" * 32)
    endpoint = created["id"]
    assert created["secret"] == "s" * 32
    for i in range(3):
        await api.publish("player:1001:p1", "gamification_balance_update", {"balance": i})

    async def dead() -> bool:
        return len(await api.deliveries(endpoint, "dead")) == 3

    await eventually(dead, 15, "three dead letters")
    letters = await api.deliveries(endpoint, "dead")
    detail = await api.call("GET", f"/api/v1/webhooks/{endpoint}/deliveries/{letters[0]['id']}")
    assert detail["delivery"]["attempts"] == 3
    assert [a["status_code"] for a in detail["attempts"]] == [500, 500, 500]
    assert all(a["error"] == "HTTP 500" for a in detail["attempts"])
    assert receiver.received == []

    receiver.status = 200
    path = f"/api/v1/webhooks/{endpoint}/deliveries/{letters[0]['id']}/redeliver"
    assert await api.call("POST", path) == {"redelivered": 1}

    async def first() -> bool:
        return len(receiver.received) == 1

    await eventually(first, 10, "the redelivered letter")
    assert receiver.ids() == Counter({letters[0]["id"]: 1})
    assert await api.call("POST", f"/api/v1/webhooks/{endpoint}/redeliver") == {"redelivered": 2}

    async def rest() -> bool:
        return len(receiver.ids()) == 3

    await eventually(rest, 10, "the other two")
    assert await api.call("POST", f"/api/v1/webhooks/{endpoint}/redeliver") == {"redelivered": 0}
    assert await api.deliveries(endpoint, "dead") == []
    assert max(receiver.ids().values()) == 1
    detail = await api.call("GET", f"/api/v1/webhooks/{endpoint}/deliveries/{letters[0]['id']}")
    assert [a["status_code"] for a in detail["attempts"]] == [500, 500, 500, 200]


async def test_management_api(
    make_server: Callable[..., ServerProcess],
    api_for: Callable[[ServerProcess], Api],
    receiver: Receiver,
) -> None:
    api = api_for(make_server())
    for url in ("ftp://example.test/x", "http://", "javascript:alert(1)", "http://a b/"):
        await api.call("POST", "/api/v1/webhooks", {"url": url, "event_types": ["*"]}, 400)
    await api.call("POST", "/api/v1/webhooks", {"url": receiver.url, "event_types": []}, 400)
    bad_type = {"url": receiver.url, "event_types": ["a b"]}
    await api.call("POST", "/api/v1/webhooks", bad_type, 400)
    await api.call("POST", "/api/v1/webhooks", {**bad_type, "secret": "short"}, 400)
    await api.call("GET", "/api/v1/webhooks/wh_000000000000000000000000", status=404)
    await api.call("GET", "/api/v1/webhooks/nonsense", status=404)
    await api.call("GET", "/api/v1/webhooks", status=200)
    no_key = await api.client.get("/api/v1/webhooks", headers={"Authorization": ""})
    assert no_key.status_code == 401

    created = await api.register(receiver.url, ["notification", "notification"])
    assert created["event_types"] == ["notification"]
    endpoint = created["id"]
    paused = await api.call("PATCH", f"/api/v1/webhooks/{endpoint}", {"active": False})
    assert paused["active"] is False
    await api.call("GET", f"/api/v1/webhooks/{endpoint}/deliveries?status=lost", status=400)
    await api.publish("player:1001:p1", "notification", {"n": 1})  # not enqueued: inactive
    await asyncio.sleep(0.5)
    assert receiver.received == []
    assert await api.deliveries(endpoint) == []

    await api.call("PATCH", f"/api/v1/webhooks/{endpoint}", {"active": True, "event_types": ["*"]})
    await api.publish("lobby", "anything.at.all", {"n": 2})

    async def arrived() -> bool:
        return len(receiver.received) == 1

    await eventually(arrived, 10, "a delivery after reactivation")
    listed = await api.call("GET", "/api/v1/webhooks")
    assert [w["id"] for w in listed["webhooks"]] == [endpoint]
    assert await api.call("DELETE", f"/api/v1/webhooks/{endpoint}") == {
        "id": endpoint,
        "deleted": True,
    }
    await api.call("DELETE", f"/api/v1/webhooks/{endpoint}", status=404)
    await api.call("GET", f"/api/v1/webhooks/{endpoint}/deliveries", status=404)


async def test_graceful_stop_right_after_publishing_loses_nothing(
    make_server: Callable[..., ServerProcess],
    api_for: Callable[[ServerProcess], Api],
    receiver: Receiver,
) -> None:
    server = make_server()
    api = api_for(server)
    receiver.status = 503  # nothing is delivered before the stop
    await api.register(receiver.url, ["notification"])
    await asyncio.gather(
        *(api.publish("player:1001:p1", "notification", {"n": i}) for i in range(50))
    )
    assert await asyncio.to_thread(server.stop) == 0  # SIGTERM: the queue is written first
    receiver.status = 200
    await asyncio.to_thread(server.start)

    async def all_arrived() -> bool:
        return len(receiver.ids()) == 50

    await eventually(all_arrived, 20, "every delivery after a graceful stop")
    assert max(receiver.ids().values()) == 1
