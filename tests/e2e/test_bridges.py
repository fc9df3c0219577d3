"""The Redis and PostgreSQL bridges, against real servers and a real ``croupier serve``.

Existing publishers are imitated as they are: casino backends ``PUBLISH`` on
``SSE::{brand}::{player}``; the poker backend's trigger fires ``pg_notify('new_event', …)``
after each insert into its ``events`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from tests.services import fresh_postgres_database, postgres_url, redis_url
from tests.support import ServerProcess, running_server, timeout, token

from .sseclient import RawStream, data_of
from .wsclient import http

pytestmark = pytest.mark.e2e

POKER_SCHEMA = """
CREATE TABLE events (
    event_id   bigserial PRIMARY KEY,
    table_id   integer NOT NULL,
    kind       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_new_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('new_event', json_build_object(
        'eventId', NEW.event_id,
        'tableId', NEW.table_id,
        'kind', NEW.kind
    )::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER event_notify_trigger
    AFTER INSERT ON events
    FOR EACH ROW
    EXECUTE FUNCTION notify_new_event();
"""


# -- fixtures ------------------------------------------------------------------------------


def _write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def _redis_config(path: Path, lock_key: str, lock_ttl: float = 10.0) -> Path:
    return _write_config(
        path,
        f"""
[bridges.redis]
url = "{redis_url()}"
pattern = "SSE::*::*"
lock_key = "{lock_key}"
lock_ttl = {lock_ttl}
backoff_min = 0.2
backoff_max = 1.0
""",
    )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("bridge-redis")
    # A lock of its own, so a run never waits on another run's node.
    config = _redis_config(tmp / "croupier.toml", f"croupier-test:bridge:{secrets.token_hex(4)}")
    with running_server(tmp, config=config) as server:
        yield server


@pytest.fixture(scope="module")
def poker_db() -> Iterator[str]:
    postgres_url()  # skip (or fail in CI) before creating anything
    with fresh_postgres_database("croupier_bridge") as url:

        async def create() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(POKER_SCHEMA)
            finally:
                await conn.close()

        asyncio.run(create())
        yield url


@pytest.fixture(scope="module")
def pg_server(poker_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("bridge-pg")
    config = _write_config(
        tmp / "croupier.toml",
        f"""
[bridges.postgres]
url = "{poker_db}"
channel = "new_event"
query = "SELECT payload FROM events WHERE event_id = $1"
catchup_query = '''
    SELECT event_id AS "eventId", table_id AS "tableId", kind
    FROM events WHERE event_id > $1 ORDER BY event_id LIMIT 2'''
backoff_min = 1.0
backoff_max = 2.0
""",
    )
    with running_server(tmp, config=config) as server:
        yield server


@pytest.fixture
async def poker(poker_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(poker_db)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def publisher() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url())
    try:
        yield client
    finally:
        await client.aclose()


# -- helpers -------------------------------------------------------------------------------


class Subscriber:
    """A WebSocket client subscribed to one channel, reading its stored events."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, channel: str, reply: dict[str, Any]
    ) -> None:
        self.ws = ws
        self.channel = channel
        self.reply = reply  # the "subscribed" message

    async def event(self, within: float = 10) -> dict[str, Any]:
        """The next stored event on the channel (control messages are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout(within)
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no event on {self.channel} within {within}s")
            try:
                message = await self.ws.receive_json(timeout=left)
            except TimeoutError:
                continue
            if message.get("channel") == self.channel and "offset" in message:
                return message


@contextlib.asynccontextmanager
async def subscribed(
    server: ServerProcess, channel: str, jwt: str, since: dict[str, Any] | None = None
) -> AsyncIterator[Subscriber]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.ws_url}?token={jwt}") as ws,
    ):
        first = await ws.receive_json(timeout=timeout(5))
        assert first["type"] == "connected", first
        request: dict[str, Any] = {"type": "subscribe", "channel": channel, "id": 1}
        if since is not None:
            request["since"] = since
        await ws.send_json(request)
        while True:
            reply = await ws.receive_json(timeout=timeout(5))
            if reply.get("id") == 1:
                assert reply["type"] == "subscribed", reply
                break
        yield Subscriber(ws, channel, reply)


def history(server: ServerProcess, channel: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.url}/api/v1/channels/{channel}/history", headers=server.headers, timeout=5
    )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def unique_id() -> int:
    return 100_000 + secrets.randbelow(900_000_000)


# -- Redis ---------------------------------------------------------------------------------


async def test_redis_message_becomes_a_stored_player_event(
    redis_server: ServerProcess, publisher: aioredis.Redis
) -> None:
    brand, player = unique_id(), unique_id()
    channel = f"player:{brand}:{player}"
    data = {"balance": 1500, "total_received": 5000.5, "total_redeemed": 3500}
    message = {
        "brand_id": brand,
        "player_id": player,
        "event_type": "gamification_balance_update",
        "event_data": data,
    }
    jwt = token(str(player), brand=str(brand))
    async with subscribed(redis_server, channel, jwt) as sub:
        await publisher.publish(f"SSE::{brand}::{player}", orjson.dumps(message))
        event = await sub.event()
        epoch = sub.reply["position"]["epoch"]
    assert event["type"] == "gamification_balance_update"
    assert event["data"] == data  # numbers stay numbers
    assert event["offset"] == 1

    stored = history(redis_server, channel)
    assert [(e["type"], e["data"]) for e in stored] == [("gamification_balance_update", data)]

    # Replayable: a client that was away gets it on resume, which the Redis original could not.
    async with subscribed(redis_server, channel, jwt, {"offset": 0, "epoch": epoch}) as again:
        assert again.reply["recovered"] is True
        replayed = await again.event()
    assert (replayed["offset"], replayed["data"]) == (1, data)


async def test_redis_bad_messages_are_skipped_and_counted(
    redis_server: ServerProcess, publisher: aioredis.Redis
) -> None:
    brand, player = unique_id(), unique_id()
    channel = f"player:{brand}:{player}"
    rejected = metric(redis_server, "croupier_bridge_redis_rejected_total")
    source = f"SSE::{brand}::{player}"
    async with subscribed(redis_server, channel, token(str(player), brand=str(brand))) as sub:
        await publisher.publish(source, b"not json at all")
        await publisher.publish(source, orjson.dumps(["a", "list"]))
        await publisher.publish(source, orjson.dumps({"event_type": "notification"}))
        await publisher.publish(
            source,
            orjson.dumps(
                {"brand_id": brand + 1, "player_id": player, "event_type": "x", "event_data": {}}
            ),
        )
        await publisher.publish(source, orjson.dumps({"event_type": "bad type!", "event_data": 1}))
        good = {"event_type": "notification", "event_data": {"event": "kyc_approved"}}
        await publisher.publish(source, orjson.dumps(good))
        event = await sub.event()
    assert (event["type"], event["offset"]) == ("notification", 1)
    # A notification goes through the player's centre, which gives it an id and a time.
    assert event["data"]["event"] == "kyc_approved"
    assert event["data"]["is_read"] is False
    assert len(event["data"]["message_id"]) == 36
    assert metric(redis_server, "croupier_bridge_redis_rejected_total") == rejected + 5


async def test_redis_notification_published_twice_is_stored_once(
    redis_server: ServerProcess, publisher: aioredis.Redis
) -> None:
    brand, player = unique_id(), unique_id()
    channel = f"player:{brand}:{player}"
    note = {
        "brand_id": brand,
        "player_id": player,
        "event_type": "notification",
        "event_data": {"message_id": secrets.token_hex(8), "event": "bonus_granted"},
    }
    after = {"brand_id": brand, "player_id": player, "event_type": "ping", "event_data": {}}
    async with subscribed(redis_server, channel, token(str(player), brand=str(brand))) as sub:
        for body in (note, note, after):
            await publisher.publish(f"SSE::{brand}::{player}", orjson.dumps(body))
        first, second = await sub.event(), await sub.event()
    assert (first["type"], second["type"]) == ("notification", "ping")
    assert [e["type"] for e in history(redis_server, channel)] == ["notification", "ping"]


async def test_a_bridged_notification_is_in_the_player_s_notification_centre(
    redis_server: ServerProcess, publisher: aioredis.Redis
) -> None:
    """The casino player stream seed's backend publishes its notification (twice); its
    front end reads it on the stream once, and the centre keeps it once, unread."""
    brand, player = unique_id(), unique_id()
    message_id = str(uuid.uuid4())
    body = {
        "brand_id": brand,
        "player_id": player,
        "event_type": "notification",
        "event_data": {
            "message_id": message_id,
            "event": "bonus_granted",
            "event_details": {"bonus_amount": 100, "bonus_type": "welcome", "currency": "USD"},
            "is_read": False,
            "time": "2025-10-22 14:30:45",
        },
    }
    after = {"brand_id": brand, "player_id": player, "event_type": "ping", "event_data": {}}
    headers = {"x-auth-token": token(str(player), brand=str(brand))}
    stream = RawStream(redis_server, f"/gateway/sse/{brand}/stream", headers)
    try:
        assert stream.status == 200
        assert data_of(stream.next_message())["type"] == "connected"
        for doc in (body, body, after):
            await publisher.publish(f"SSE::{brand}::{player}", orjson.dumps(doc))
        first, second = data_of(stream.next_message(10)), data_of(stream.next_message(10))
    finally:
        stream.close()
    assert (first["brand_id"], first["player_id"]) == (brand, player)
    assert first["event_type"] == "notification"
    note = first["event_data"]
    assert (note["message_id"], note["event"], note["is_read"]) == (
        message_id,
        "bonus_granted",
        False,
    )
    assert note["event_details"] == body["event_data"]["event_details"]  # type: ignore[index]
    assert second["event_type"] == "ping"  # the repeat was not pushed again

    base = f"/api/v1/players/{brand}/{player}/notifications"
    async with http(redis_server) as api:
        listed = (await api.get(base)).json()
        unread = (await api.get(base + "/unread-count")).json()
    assert [n["message_id"] for n in listed["notifications"]] == [message_id]
    assert listed["unread"] == 1
    assert unread == {"unread": 1}


async def test_redis_bridge_resubscribes_after_its_connection_is_killed(
    redis_server: ServerProcess, publisher: aioredis.Redis
) -> None:
    assert redis_server.proc is not None
    name = f"croupier-bridge-{redis_server.proc.pid}"
    clients = await publisher.client_list()
    ids = [c["id"] for c in clients if c.get("name") == name]
    assert ids, f"no Redis client named {name}"
    for client_id in ids:
        await publisher.client_kill_filter(_id=client_id)

    brand, player = unique_id(), unique_id()
    channel = f"player:{brand}:{player}"
    async with subscribed(redis_server, channel, token(str(player), brand=str(brand))) as sub:
        # Pub/sub keeps nothing while the bridge is away, so publish until one gets through.
        deadline = asyncio.get_running_loop().time() + timeout(15)
        event = None
        i = 0
        while event is None:
            assert asyncio.get_running_loop().time() < deadline, "bridge did not come back"
            i += 1
            body = {"event_type": "tick", "event_data": {"i": i}}
            await publisher.publish(f"SSE::{brand}::{player}", orjson.dumps(body))
            with contextlib.suppress(AssertionError):
                event = await sub.event(within=0.3)
    assert event["type"] == "tick"
    assert redis_server.proc.poll() is None


# -- PostgreSQL ----------------------------------------------------------------------------


async def _insert(conn: asyncpg.Connection, table: int, *kinds: str) -> list[int]:
    ids = []
    async with conn.transaction():
        for i, kind in enumerate(kinds):
            payload = {"kind": kind, "table": {"id": table, "name": f"Table {table}"}, "seq": i}
            if kind == "hand_action":
                payload["action"] = {"type": "RAISE", "amount": "1000000000", "seatNumber": 3}
            ids.append(
                await conn.fetchval(
                    "INSERT INTO events (table_id, kind, payload) VALUES ($1, $2, $3::jsonb)"
                    " RETURNING event_id",
                    table,
                    kind,
                    orjson.dumps(payload).decode(),
                )
            )
    return ids


async def test_trigger_notifications_become_table_events_in_order(
    pg_server: ServerProcess, poker: asyncpg.Connection
) -> None:
    table = unique_id()
    channel = f"table:{table}"
    async with subscribed(pg_server, channel, token("p1")) as sub:
        await _insert(poker, table, "join_table", "hand_start", "hand_action")
        await _insert(poker, table, "community_cards")
        await _insert(poker, table, "hand_end")
        events = [await sub.event() for _ in range(5)]
    kinds = ["join_table", "hand_start", "hand_action", "community_cards", "hand_end"]
    assert [e["type"] for e in events] == kinds
    assert [e["offset"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["data"]["kind"] for e in events] == kinds
    assert events[2]["data"]["action"] == {"type": "RAISE", "amount": "1000000000", "seatNumber": 3}
    assert events[0]["data"]["table"] == {"id": table, "name": f"Table {table}"}


async def test_a_replayed_notification_never_doubles_an_event(
    pg_server: ServerProcess, poker: asyncpg.Connection
) -> None:
    table = unique_id()
    channel = f"table:{table}"
    async with subscribed(pg_server, channel, token("p1")) as sub:
        (first,) = await _insert(poker, table, "hand_start")
        assert (await sub.event())["type"] == "hand_start"
        note = orjson.dumps({"eventId": first, "tableId": table, "kind": "hand_start"}).decode()
        for _ in range(3):
            await poker.execute("SELECT pg_notify('new_event', $1)", note)
        # Notifications are handled in order, so once this one arrives the replays are done.
        await _insert(poker, table, "hand_end")
        following = await sub.event()
    assert (following["type"], following["offset"]) == ("hand_end", 2)
    assert [e["type"] for e in history(pg_server, channel)] == ["hand_start", "hand_end"]


async def test_notifications_that_cannot_be_used_are_skipped(
    pg_server: ServerProcess, poker: asyncpg.Connection
) -> None:
    table = unique_id()
    channel = f"table:{table}"
    rejected = metric(pg_server, "croupier_bridge_postgres_rejected_total")
    async with subscribed(pg_server, channel, token("p1")) as sub:
        for payload in (
            "not json",
            orjson.dumps({"tableId": table, "kind": "hand_start"}).decode(),  # no eventId
            orjson.dumps({"eventId": 2**40, "tableId": table, "kind": "x"}).decode(),  # no row
        ):
            await poker.execute("SELECT pg_notify('new_event', $1)", payload)
        await _insert(poker, table, "hand_start")
        event = await sub.event()
    assert (event["type"], event["offset"]) == ("hand_start", 1)
    assert metric(pg_server, "croupier_bridge_postgres_rejected_total") == rejected + 3


async def test_rows_written_while_disconnected_are_caught_up(
    pg_server: ServerProcess, poker: asyncpg.Connection
) -> None:
    assert pg_server.proc is not None
    table = unique_id()
    channel = f"table:{table}"
    async with subscribed(pg_server, channel, token("p1")) as sub:
        await _insert(poker, table, "join_table")
        assert (await sub.event())["type"] == "join_table"
        reconnects = metric(pg_server, "croupier_bridge_postgres_reconnects_total")

        killed = await poker.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            f"croupier-bridge-{pg_server.proc.pid}",
        )
        assert killed == 1
        # The bridge waits about a second before reconnecting: these land in the gap (the
        # catch-up query pages two rows at a time, so it needs several rounds).
        await _insert(poker, table, "hand_start", "hand_action")
        await _insert(poker, table, "community_cards")
        await _insert(poker, table, "hand_end")
        caught = [await sub.event(within=15) for _ in range(4)]
        await _insert(poker, table, "leave_table")
        live = await sub.event()
    assert [e["type"] for e in caught] == [
        "hand_start",
        "hand_action",
        "community_cards",
        "hand_end",
    ]
    assert (live["type"], live["offset"]) == ("leave_table", 6)
    assert metric(pg_server, "croupier_bridge_postgres_reconnects_total") == reconnects + 1
    assert [e["offset"] for e in history(pg_server, channel)] == [1, 2, 3, 4, 5, 6]


async def test_one_node_at_a_time_stores_redis_messages(
    tmp_path: Path, publisher: aioredis.Redis
) -> None:
    config = _redis_config(
        tmp_path / "croupier.toml", f"croupier-test:bridge:{secrets.token_hex(4)}", lock_ttl=1.5
    )
    brand, player = unique_id(), unique_id()
    channel = f"player:{brand}:{player}"
    source = f"SSE::{brand}::{player}"
    first = ServerProcess(tmp_path / "a.db", config=config).start()
    second = None
    try:
        second = ServerProcess(tmp_path / "b.db", config=config).start()
        assert metric(first, "croupier_bridge_redis_connected") == 1
        assert metric(second, "croupier_bridge_redis_connected") == 0  # standing by
        await publisher.publish(source, orjson.dumps({"event_type": "one", "event_data": {}}))
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while not history(first, channel):
            assert asyncio.get_running_loop().time() < deadline, "the lock holder stored nothing"
            await asyncio.sleep(0.05)
        assert history(second, channel) == []

        first.stop()  # releases the lock: the other node takes over within a renewal period
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while not history(second, channel):
            assert asyncio.get_running_loop().time() < deadline, "no node took over"
            body = {"event_type": "two", "event_data": {}}
            await publisher.publish(source, orjson.dumps(body))
            await asyncio.sleep(0.1)
        assert metric(second, "croupier_bridge_redis_connected") == 1
        assert {e["type"] for e in history(second, channel)} == {"two"}
    finally:
        first.stop()
        if second is not None:
            second.stop()
