"""Notifications and coin balances over a real server: the casino player stream, resume,
the player's own access, and concurrent redeems on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sseclient import RawStream, data_of, id_of
from tests.services import fresh_postgres_database
from tests.support import API_KEY, ServerProcess, running_server, timeout, token

pytestmark = pytest.mark.e2e

BASE = "/api/v1/players/1001/12345"
KEY = {"Authorization": f"Bearer {API_KEY}"}


def _call(
    server: ServerProcess,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.request(
        method,
        server.url + path,
        json=body,
        headers=KEY if headers is None else headers,
        timeout=timeout(10),
    )


def _notify(server: ServerProcess, event: str, **details: Any) -> str:
    message_id = str(uuid.uuid4())
    body = {"message_id": message_id, "event": event, "event_details": details}
    r = _call(server, "POST", BASE + "/notifications", body)
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    return message_id


def _stream(server: ServerProcess, headers: dict[str, str]) -> RawStream:
    stream = RawStream(server, "/gateway/sse/1001/stream", headers)
    assert stream.status == 200
    assert data_of(stream.next_message())["type"] == "connected"
    return stream


def test_the_player_gets_misses_resumes_lists_and_marks(server: ServerProcess) -> None:
    mine = {"x-auth-token": token("12345", brand="1001")}
    stream = _stream(server, mine)
    first = _notify(server, "bonus_granted", bonus_amount=100, currency="USD")
    block = stream.next_message()
    doc = data_of(block)
    assert list(doc) == ["brand_id", "player_id", "event_type", "event_data"]
    assert (doc["brand_id"], doc["player_id"], doc["event_type"]) == (1001, 12345, "notification")
    event_data = doc["event_data"]
    assert list(event_data) == ["message_id", "event", "event_details", "is_read", "time"]
    assert event_data["message_id"] == first
    assert event_data["event"] == "bonus_granted"
    assert event_data["event_details"] == {"bonus_amount": 100, "currency": "USD"}
    assert event_data["is_read"] is False

    r = _call(server, "POST", BASE + "/coins/earn", {"amount": 1500, "idempotency_key": "e1"})
    assert r.status_code == 200, r.text
    block = stream.next_message()
    assert data_of(block) == {
        "brand_id": 1001,
        "player_id": 12345,
        "event_type": "gamification_balance_update",
        "event_data": {"balance": 1500, "total_received": 1500, "total_redeemed": 0},
    }
    last = id_of(block)
    assert last is not None
    stream.close()

    missed = [_notify(server, "deposit_success", amount=i) for i in range(3)]
    stream = _stream(server, {**mine, "Last-Event-ID": last})
    got = [data_of(stream.next_message())["event_data"]["message_id"] for _ in missed]
    assert got == missed
    stream.close()

    r = _call(server, "GET", BASE + "/notifications?limit=3", headers=mine)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [n["message_id"] for n in page["notifications"]] == missed[::-1]
    assert page["unread"] == 4
    r = _call(server, "GET", BASE + f"/notifications?cursor={page['next_cursor']}", headers=mine)
    assert [n["message_id"] for n in r.json()["notifications"]] == [first]

    r = _call(server, "POST", BASE + "/notifications/read", {"message_ids": missed[:2]}, mine)
    assert r.json() == {"marked": 2, "unread": 2}
    r = _call(server, "GET", BASE + "/notifications?unread=true", headers=mine)
    assert [n["message_id"] for n in r.json()["notifications"]] == [missed[2], first]
    r = _call(server, "POST", BASE + "/notifications/read", {"all": True}, mine)
    assert r.json() == {"marked": 2, "unread": 0}
    assert _call(server, "GET", BASE + "/notifications/unread-count", headers=mine).json() == {
        "unread": 0
    }
    # A player token in Authorization works too.
    bearer = {"Authorization": f"Bearer {token('12345', brand='1001')}"}
    assert _call(server, "GET", BASE + "/coins", headers=bearer).json()["balance"] == 1500

    # Someone else's token: refused on every one of this player's resources.
    other = {"x-auth-token": token("777", brand="1001")}
    other_brand = {"x-auth-token": token("12345", brand="2002")}
    for headers in (other, other_brand):
        for method, path, body in (
            ("GET", "/notifications", None),
            ("GET", "/notifications/unread-count", None),
            ("POST", "/notifications/read", {"all": True}),
            ("GET", "/coins", None),
            ("GET", "/coins/ledger", None),
        ):
            r = _call(server, method, BASE + path, body, headers)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden"
    # Only backends create notifications and move coins.
    r = _call(server, "POST", BASE + "/notifications", {"event": "x"}, mine)
    assert r.status_code == 401
    r = _call(server, "POST", BASE + "/coins/earn", {"amount": 1, "idempotency_key": "k"}, mine)
    assert r.status_code == 401


def test_a_repeated_message_id_is_not_shown_twice(server: ServerProcess) -> None:
    mine = {"x-auth-token": token("12345", brand="1001")}
    message_id = _notify(server, "kyc_approved")
    body = {"message_id": message_id, "event": "kyc_approved"}
    r = _call(server, "POST", BASE + "/notifications", body)
    assert r.json()["duplicate"] is True
    assert (r.json()["brand_id"], r.json()["player_id"]) == (1001, 12345)
    r = _call(server, "GET", BASE + "/notifications", headers=mine)
    assert [n["message_id"] for n in r.json()["notifications"]] == [message_id]
    r = _call(server, "POST", "/api/v1/players/1001/777/notifications", body)
    assert r.status_code == 409


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    if request.param == "sqlite":
        with running_server(tmp_path) as server:
            yield server
        return
    with (
        fresh_postgres_database() as url,
        running_server(tmp_path, env={"CROUPIER_DATABASE_URL": url}) as server,
    ):
        yield server


async def test_concurrent_redeems_only_the_ones_that_fit(any_server: ServerProcess) -> None:
    server = any_server
    r = _call(server, "POST", BASE + "/coins/earn", {"amount": 100, "idempotency_key": "seed"})
    assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=timeout(30)) as client:

        async def redeem(i: int) -> httpx.Response:
            body = {"amount": 15, "idempotency_key": f"redeem-{i}"}
            return await client.post(BASE + "/coins/redeem", json=body)

        replies = await asyncio.gather(*(redeem(i) for i in range(20)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * 6 + [409] * 14, [r.text for r in replies if r.status_code >= 500]
    refused = next(r for r in replies if r.status_code == 409)
    assert refused.json()["error"]["code"] == "insufficient_balance"
    balance = _call(server, "GET", BASE + "/coins").json()
    assert balance == {  # ids that are digits are numbers, as on the player stream
        "brand_id": 1001,
        "player_id": 12345,
        "balance": 10,
        "total_received": 100,
        "total_redeemed": 90,
    }
    ledger = _call(server, "GET", BASE + "/coins/ledger?limit=200").json()["entries"]
    assert [e["seq"] for e in ledger] == list(range(7, 0, -1))
    assert [e["balance"] for e in ledger[::-1]] == [100, 85, 70, 55, 40, 25, 10]
    # A repeat of a redeem that went through returns its first result, changing nothing.
    done = next(r.json()["entry"] for r in replies if r.status_code == 200)
    again = _call(
        server,
        "POST",
        BASE + "/coins/redeem",
        {"amount": 15, "idempotency_key": done["idempotency_key"]},
    ).json()
    assert again["duplicate"] is True
    assert again["entry"] == done
    assert _call(server, "GET", BASE + "/coins").json()["balance"] == 10
    # The pushed events end with the final balance, in order.
    history = _call(server, "GET", "/api/v1/channels/player:1001:12345/history").json()
    pushed = [e["data"]["balance"] for e in history["events"]]
    assert pushed == [100, 85, 70, 55, 40, 25, 10]


def test_wallet_updates_are_relayed_as_given(server: ServerProcess) -> None:
    stream = _stream(server, {"x-auth-token": token("12345", brand="1001")})
    body = {"balance": "250.00", "currency": "USD", "change": -20, "transaction_id": "t-1"}
    r = _call(server, "POST", BASE + "/wallet", body)
    assert r.json() == {"brand_id": 1001, "player_id": 12345, "duplicate": False}
    assert _call(server, "POST", BASE + "/wallet", body).json()["duplicate"] is True
    doc = data_of(stream.next_message())
    assert doc["event_type"] == "wallet_balance_update"
    assert doc["event_data"] == body
    r = _call(server, "POST", BASE + "/wallet", {"balance": "lots", "currency": "USD"})
    assert r.status_code == 400
    stream.close()
