"""Many gateway processes on one PostgreSQL log, with Redis or PostgreSQL as the broker.

Each test has its own database and (for the Redis broker) its own redis-server, so it may
kill, restart and cut them off at will. What every test checks in the end is the same: a
subscriber gets each acknowledged event exactly once, in offset order, with the data that
was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.services import fresh_postgres_database
from tests.support import ServerProcess, timeout, token

from .cluster import RedisServer, TcpProxy, cluster, private_redis, through_proxy
from .wsclient import CLOSED, WsClient, http, metric, ws_connect

pytestmark = pytest.mark.e2e

BROKERS = ["redis", "postgres"]
_ids = itertools.count(1)


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database("croupier_mn") as url:
        yield url


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path) as server:
        yield server


def _env(broker: str, database_url: str, redis: RedisServer | None) -> dict[str, str]:
    if broker == "redis":
        assert redis is not None
        return {"CROUPIER_DATABASE_URL": database_url, "CROUPIER_BROKER_URL": redis.url}
    return {"CROUPIER_DATABASE_URL": database_url, "CROUPIER_BROKER_URL": database_url}


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer | None]:
    """The broker under test: a private Redis for ``redis``, nothing extra for ``postgres``."""
    if request.param == "redis":
        with private_redis(tmp_path) as server:
            yield server
    else:
        yield None


def _broker_env(redis: RedisServer | None, database_url: str) -> dict[str, str]:
    return _env("redis" if redis is not None else "postgres", database_url, redis)


def _channel(name: str) -> str:
    return f"tournament:mn-{name}-{next(_ids)}"


# -- publishing ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every publish attempt's answer: acknowledged offsets with their data, and refusals."""

    acked: dict[int, dict[str, Any]] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)  # status codes other than 200

    def expected(self) -> list[tuple[int, dict[str, Any]]]:
        return sorted(self.acked.items())


async def publish_one(
    api: httpx.AsyncClient, ledger: Ledger, channel: str, data: dict[str, Any]
) -> int:
    """Publish; record the answer; return the status code (200 or 503 only, else fail)."""
    response = await api.post(
        "/api/v1/publish", json={"channel": channel, "type": "mn.tick", "data": data}
    )
    if response.status_code == 200:
        offset = response.json()["offset"]
        assert offset not in ledger.acked, f"offset {offset} acknowledged twice"
        ledger.acked[offset] = data
    else:
        # Unavailable is the only acceptable refusal of a valid publish.
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"], response.text
        ledger.refused.append(response.status_code)
    return response.status_code


async def publish_many(
    nodes: Sequence[ServerProcess],
    ledger: Ledger,
    channel: str,
    count: int,
    *,
    tag: str,
    concurrency: int = 8,
    pace: float = 0.0,
) -> None:
    """Publish ``count`` events round-robin over ``nodes``, ``concurrency`` in flight.

    ``pace`` spaces the starts out so that a stream lasts long enough to break something
    in the middle of it.
    """
    clients = [http(node) for node in nodes]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            status = await publish_one(clients[i % len(clients)], ledger, channel, {tag: i})
            assert status == 200, f"publish {tag}={i} refused"

    try:
        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(one(i)))
            if pace:
                await asyncio.sleep(pace)
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()


# -- subscribing -----------------------------------------------------------------------------


@dataclass(eq=False)  # followers are keys: each is its own player
class Follower:
    """One player following a channel, reconnecting to the next node when a node dies.

    It reads until offset :attr:`until` has arrived; a test that does not know the final
    offset up front sets it later.
    """

    channel: str
    until: int | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    epoch: str | None = None
    subscribes: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> int:
        return int(self.received[-1]["offset"]) if self.received else 0

    @property
    def done(self) -> bool:
        return self.until is not None and self.last >= self.until

    def got(self) -> list[tuple[int, Any]]:
        return [(int(e["offset"]), e["data"]) for e in self.received]

    async def follow(self, nodes: Sequence[ServerProcess]) -> None:
        """Read the channel on ``nodes[0]``; when that node goes away, resume on the next one
        with ``since`` (which must recover)."""
        for node in nodes:
            async with ws_connect(node, token("p1")) as c:
                since = None
                if self.epoch is not None:
                    since = {"offset": self.last, "epoch": self.epoch}
                subscribed = await c.subscribe(self.channel, since=since)
                self.subscribes.append(subscribed)
                if self.epoch is None:
                    self.epoch = subscribed["position"]["epoch"]
                else:
                    assert subscribed["recovered"] is True, subscribed
                self.ready.set()
                if await self._read(c):
                    return
        raise AssertionError(f"every node went away; last offset {self.last}")

    async def _read(self, c: WsClient) -> bool:
        """Read until done (True) or the connection is gone (False); fail on a long stall."""
        loop = asyncio.get_running_loop()
        stalled = loop.time() + timeout(20)
        while not self.done:
            assert loop.time() < stalled, f"no event for a long while after {self.last}"
            try:
                message = await c.ws.receive(timeout=0.2)
            except TimeoutError:
                continue  # look at ``until`` again
            if message.type in CLOSED or message.type is aiohttp.WSMsgType.ERROR:
                return False
            assert message.type is aiohttp.WSMsgType.TEXT, message
            doc = json.loads(message.data)
            if "offset" in doc:
                assert doc["channel"] == self.channel
                self.received.append(doc)
                stalled = loop.time() + timeout(20)
        return True


@contextlib.asynccontextmanager
async def following(
    followers: Mapping[Follower, Sequence[ServerProcess]],
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the followers in the background, once each has subscribed."""
    tasks = [asyncio.create_task(f.follow(nodes)) for f, nodes in followers.items()]
    try:
        ready = asyncio.ensure_future(asyncio.gather(*(f.ready.wait() for f in followers)))
        await asyncio.wait([ready, *tasks], timeout=timeout(10), return_when="FIRST_COMPLETED")
        for task in tasks:
            if task.done():
                task.result()  # a follower that failed to subscribe fails the test here
        if not ready.done():
            ready.cancel()
            raise AssertionError("a follower did not subscribe")
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def finish(tasks: Sequence[asyncio.Task[None]], seconds: float = 30) -> None:
    await asyncio.wait_for(asyncio.gather(*tasks), timeout(seconds))


def assert_exactly(follower: Follower, ledger: Ledger) -> None:
    """Every acknowledged event once, in order, and nothing that is not in the log."""
    got = follower.got()
    offsets = [o for o, _ in got]
    assert offsets == list(range(1, len(offsets) + 1)), f"gap or duplicate: {offsets}"
    received = dict(got)
    missing = sorted(set(ledger.acked) - set(received))
    assert not missing, f"acknowledged but never delivered: {missing[:20]}"
    for offset, data in ledger.acked.items():
        assert received[offset] == data, (offset, received[offset], data)


async def log_holds(node: ServerProcess, channel: str, ledger: Ledger) -> None:
    """Read the channel's history back: every acknowledged event is durably there."""
    stored: dict[int, Any] = {}
    after = 0
    async with http(node) as api:
        while True:
            response = await api.get(
                f"/api/v1/channels/{channel}/history", params={"since": after, "limit": 1000}
            )
            assert response.status_code == 200, response.text
            events = response.json()["events"]
            if not events:
                break
            stored.update((e["offset"], e["data"]) for e in events)
            after = events[-1]["offset"]
    for offset, data in ledger.acked.items():
        assert stored.get(offset) == data, f"offset {offset} acknowledged but not stored"


async def until_true(check: Any, seconds: float, what: str) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# -- 1. fan-out in order ---------------------------------------------------------------------


async def test_subscribers_on_other_nodes_get_every_event_in_order(
    tmp_path: Path, database: str, broker: RedisServer | None
) -> None:
    channel = _channel("order")
    ledger = Ledger()
    with cluster(tmp_path, 3, _broker_env(broker, database)) as nodes:
        a, b, c = nodes
        followers = {
            Follower(channel, 450): [b],
            Follower(channel, 450): [c],
            Follower(channel, 450): [c],
        }
        async with following(followers) as tasks:
            # One publisher on one node, then all three nodes at once on the same channel.
            await publish_many([a], ledger, channel, 150, tag="one")
            await publish_many(nodes, ledger, channel, 300, tag="all", concurrency=24)
            await finish(tasks)
        assert sorted(ledger.acked) == list(range(1, 451))
        for follower in followers:
            assert_exactly(follower, ledger)
            assert len(follower.received) == 450


# -- 2. a node dies mid-stream ---------------------------------------------------------------


async def test_clients_of_a_killed_node_resume_on_another(
    tmp_path: Path, database: str, broker: RedisServer | None
) -> None:
    channel = _channel("kill")
    total = 400
    ledger = Ledger()
    with cluster(tmp_path, 3, _broker_env(broker, database)) as nodes:
        a, b, c = nodes
        followers = {
            Follower(channel, total): [c, a],
            Follower(channel, total): [c, b],
            Follower(channel, total): [c, a],
            Follower(channel, total): [b],  # a bystander on a node that stays up
        }
        async with following(followers) as tasks:
            publisher = asyncio.create_task(
                publish_many([a, b], ledger, channel, total, tag="k", concurrency=4, pace=0.003)
            )
            first = next(iter(followers))
            await until_true(_at_least(first, 100), 20, "100 events on the doomed node")
            assert not publisher.done(), "publishing ended before the kill: pace it slower"
            await asyncio.to_thread(c.kill)
            await asyncio.wait_for(publisher, timeout(30))
            await finish(tasks)
        for follower, route in followers.items():
            assert_exactly(follower, ledger)
            assert len(follower.received) == total
            if len(route) > 1:
                assert len(follower.subscribes) == 2, "the client never had to reconnect"


def _at_least(follower: Follower, count: int) -> Any:
    async def check() -> bool:
        return len(follower.received) >= count

    return check


# -- 3. Redis restarts -----------------------------------------------------------------------


async def test_redis_restart_loses_no_stored_event(
    tmp_path: Path, database: str, redis_server: RedisServer
) -> None:
    channel = _channel("redis")
    ledger = Ledger()
    with cluster(tmp_path, 3, _env("redis", database, redis_server)) as nodes:
        a, b, c = nodes
        followers = {Follower(channel, 600): [b], Follower(channel, 600): [c]}
        async with following(followers) as tasks:
            publisher = asyncio.create_task(
                publish_many([a, b], ledger, channel, 600, tag="r", concurrency=4, pace=0.002)
            )
            await until_true(_acked(ledger, 150), 20, "150 acknowledged publishes")
            await asyncio.to_thread(redis_server.kill)
            # Keep publishing against a dead Redis for a while: the log takes every event.
            await until_true(_acked(ledger, 300), 20, "300 acknowledged publishes")
            await asyncio.to_thread(redis_server.start)
            assert not publisher.done(), "publishing ended before Redis came back: slow it"
            await asyncio.wait_for(publisher, timeout(30))
            await finish(tasks)
        assert sorted(ledger.acked) == list(range(1, 601))
        for follower in followers:
            assert_exactly(follower, ledger)
        async with http(a) as api:
            failures = metric((await api.get("/metrics")).text, "croupier_broker_failures_total")
        assert failures > 0, "no publish ever met the dead Redis"


def _acked(ledger: Ledger, count: int) -> Any:
    async def check() -> bool:
        return len(ledger.acked) >= count

    return check


# -- 4. PostgreSQL goes away -----------------------------------------------------------------


async def test_postgres_outage_refuses_publishes_then_recovers(
    tmp_path: Path, database: str, broker: RedisServer | None
) -> None:
    channel = _channel("pg")
    ledger = Ledger()
    host_port = database.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    with TcpProxy(host, int(port)) as proxy:
        proxied = through_proxy(database, proxy)
        with cluster(tmp_path, 3, _broker_env(broker, proxied)) as nodes:
            a, b, c = nodes
            followers = {Follower(channel): [b], Follower(channel): [c]}
            async with following(followers) as tasks:
                await publish_many([a, b], ledger, channel, 100, tag="before")
                await asyncio.to_thread(proxy.cut)

                async with http(a) as api_a, http(b) as api_b:
                    # While PostgreSQL is unreachable, no publish is acknowledged.
                    for i in range(20):
                        api = (api_a, api_b)[i % 2]
                        status = await publish_one(api, ledger, channel, {"during": i})
                        assert status == 503, "acknowledged while the log was unreachable"
                        assert (await api.get("/readyz")).status_code == 503
                    assert (await api_a.get("/healthz")).status_code == 200
                    await asyncio.to_thread(proxy.restore)

                    # Back: publishing recovers on its own (the pools reconnect).
                    async def recovered() -> bool:
                        return await publish_one(api_a, ledger, channel, {"probe": 1}) == 200

                    await until_true(recovered, 20, "publishing to recover")
                    await until_true(_ready(api_b), 20, "node b to be ready again")
                await publish_many([a, b], ledger, channel, 100, tag="after")
                top = await _top(a, channel)
                # Whatever was stored, acknowledged or not, arrives in order up to the
                # channel's top, which is at least the last acknowledged offset.
                assert top >= max(ledger.acked)
                for follower in followers:
                    follower.until = top
                await finish(tasks)
            assert len(ledger.refused) >= 20
            for follower in followers:
                assert_exactly(follower, ledger)
            await log_holds(c, channel, ledger)


def _ready(api: httpx.AsyncClient) -> Any:
    async def check() -> bool:
        return (await api.get("/readyz")).status_code == 200

    return check


async def _top(node: ServerProcess, channel: str) -> int:
    async with http(node) as api:
        response = await api.get(f"/api/v1/channels/{channel}/history", params={"limit": 1})
        assert response.status_code == 200, response.text
        return int(response.json()["position"]["offset"])


# -- 5. presence across nodes ----------------------------------------------------------------


async def test_presence_counts_across_nodes_and_forgets_a_dead_one(
    tmp_path: Path, database: str, redis_server: RedisServer
) -> None:
    channel = _channel("presence")
    env = _env("redis", database, redis_server)
    env["CROUPIER_PRESENCE_URL"] = redis_server.url + "?ttl=2"
    with cluster(tmp_path, 3, env) as nodes:
        a, b, c = nodes
        async with (
            ws_connect(a, token("p1")) as on_a,
            ws_connect(b, token("p2")) as on_b,
            http(c) as api,
        ):
            await on_a.subscribe(channel)
            await on_b.subscribe(channel)

            def count_is(n: int) -> Any:
                async def check() -> dict[str, Any] | None:
                    response = await api.get(f"/api/v1/channels/{channel}/presence")
                    assert response.status_code == 200, response.text
                    doc: dict[str, Any] = response.json()
                    return doc if doc["count"] == n else None

                return check

            doc = await until_true(count_is(2), 10, "a count of 2 on the third node")
            assert {m["client"] for m in doc["members"]} == {
                on_a.connected["client"],
                on_b.connected["client"],
            }
            await asyncio.to_thread(b.kill)
            # No leave was ever sent for b's client: its entry has to expire. a's client
            # stays, since a keeps refreshing it.
            doc = await until_true(count_is(1), 10, "b's entry to expire")
            assert [m["client"] for m in doc["members"]] == [on_a.connected["client"]]
            await asyncio.sleep(timeout(2.5))  # past another ttl: a's entry is still fresh
            assert (await count_is(1)()) is not None
