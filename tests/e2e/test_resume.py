"""Resuming with ``since`` while publishing goes on: every event exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import ServerProcess, running_server, timeout, token

from .wsclient import WsClient, http, publish, ws_connect

pytestmark = pytest.mark.e2e

TOTAL = 500
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("resume")) as server:
        yield server


async def _publish_all(srv: ServerProcess, channel: str, count: int) -> list[int]:
    async with http(srv) as api:
        return [(await publish(api, channel, "seq.tick", {"i": i}))["offset"] for i in range(count)]


async def _read_some(c: WsClient, want: int, last: int, received: list[dict[str, Any]]) -> int:
    """Read up to ``want`` stored events; return the last offset seen."""
    deadline = asyncio.get_running_loop().time() + timeout(20)
    got = 0
    while got < want and last < TOTAL:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"stuck at offset {last}"
        doc = await c.recv_quiet(left)
        if "offset" in doc:
            received.append(doc)
            last = doc["offset"]
            got += 1
    return last


async def test_reconnects_with_since_while_publishing(srv: ServerProcess) -> None:
    channel = f"tournament:resume-{next(_ids)}"
    received: list[dict[str, Any]] = []
    async with ws_connect(srv, token("p1")) as c:
        subscribed = await c.subscribe(channel)
        epoch = subscribed["position"]["epoch"]
        publisher = asyncio.create_task(_publish_all(srv, channel, TOTAL))
        last = await _read_some(c, 37, 0, received)
    reconnects = 0
    while_publishing = 0
    results = []
    try:
        # Reconnect again and again, each time at a different point of the stream, some
        # connections closed cleanly and some dropped without a close handshake.
        for round_ in itertools.count():
            if last >= TOTAL:
                break
            async with ws_connect(srv, token("p1")) as c:
                subscribed = await c.subscribe(channel, since={"offset": last, "epoch": epoch})
                results.append(subscribed)
                reconnects += 1
                while_publishing += not publisher.done()
                last = await _read_some(c, 23 + 17 * (round_ % 5), last, received)
                if round_ % 2:
                    c.drop()
        offsets = await asyncio.wait_for(publisher, timeout(30))
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
    assert offsets == list(range(1, TOTAL + 1))
    assert reconnects >= 5
    assert while_publishing >= 3, "the publisher finished before the client reconnected"
    assert all(s["recovered"] for s in results), [s for s in results if not s["recovered"]]
    assert all(s["position"]["epoch"] == epoch for s in results)
    assert [e["offset"] for e in received] == list(range(1, TOTAL + 1))
    assert [e["data"]["i"] for e in received] == list(range(TOTAL))


async def test_resume_from_the_top_replays_nothing(srv: ServerProcess) -> None:
    channel = f"tournament:resume-{next(_ids)}"
    async with http(srv) as api:
        for i in range(3):
            await publish(api, channel, "seq.tick", {"i": i})
        async with ws_connect(srv, token("p1")) as c:
            first = await c.subscribe(channel)
            position = first["position"]
            assert position["offset"] == 3
        async with ws_connect(srv, token("p1")) as c:
            again = await c.subscribe(channel, since=position)
            assert again["recovered"] is True
            assert await c.barrier() == []
            await publish(api, channel, "seq.tick", {"i": 3})
            assert [e["offset"] for e in await c.events(1)] == [4]


@pytest.mark.parametrize(
    "since",
    [
        {"offset": 1, "epoch": "not-the-epoch"},
        {"offset": 99, "epoch": None},  # beyond the top: filled with the real epoch below
    ],
)
async def test_unrecoverable_since_replays_nothing(
    srv: ServerProcess, since: dict[str, Any]
) -> None:
    channel = f"tournament:resume-{next(_ids)}"
    async with http(srv) as api:
        results = [await publish(api, channel, "seq.tick", {"i": i}) for i in range(3)]
        if since["epoch"] is None:
            since = {**since, "epoch": results[0]["epoch"]}
        async with ws_connect(srv, token("p1")) as c:
            subscribed = await c.subscribe(channel, since=since)
            assert subscribed["recovered"] is False
            assert subscribed["position"] == {"offset": 3, "epoch": results[0]["epoch"]}
            # Nothing partial: no event of the channel before live ones.
            assert await c.barrier() == []
            await publish(api, channel, "seq.tick", {"i": 3})
            assert [e["offset"] for e in await c.events(1)] == [4]


async def test_joining_mid_stream_loses_nothing(srv: ServerProcess) -> None:
    """Subscribers arriving while events flow get everything after their ``position``."""
    channel = f"tournament:resume-{next(_ids)}"
    total = 300
    async with contextlib.AsyncExitStack() as stack:
        watcher = await stack.enter_async_context(ws_connect(srv, token("w")))
        await watcher.subscribe(channel)
        publisher = asyncio.create_task(_publish_all(srv, channel, total))
        joined: list[tuple[WsClient, int]] = []
        seen = 0
        # Join at several points of the stream, some with since=position (same thing).
        while seen < total:
            seen = (await watcher.events(1))[0]["offset"]
            if seen % 40 == 1 and seen < total - 20:
                c = await stack.enter_async_context(ws_connect(srv, token(f"j{seen}")))
                subscribed = await c.subscribe(channel)
                joined.append((c, subscribed["position"]["offset"]))
        await asyncio.wait_for(publisher, timeout(30))
        assert len(joined) >= 5
        for c, start in joined:
            got = await c.events(total - start)
            assert [e["offset"] for e in got] == list(range(start + 1, total + 1))
            assert await c.barrier() == []


async def test_unsubscribe_and_resubscribe_on_one_connection(srv: ServerProcess) -> None:
    channel = f"tournament:resume-{next(_ids)}"
    total = 200
    received: list[int] = []
    async with ws_connect(srv, token("p1")) as c:
        subscribed = await c.subscribe(channel)
        epoch = subscribed["position"]["epoch"]
        publisher = asyncio.create_task(_publish_all(srv, channel, total))
        for round_ in itertools.count(2):
            for event in await c.events(min(25, total - len(received))):
                received.append(event["offset"])
            if len(received) == total:
                break
            await c.send({"type": "unsubscribe", "channel": channel, "id": round_})
            # Events already queued before the unsubscribe still arrive; keep them.
            while (doc := await c.recv_quiet())["type"] != "unsubscribed":
                received.append(doc["offset"])
            since = {"offset": received[-1], "epoch": epoch}
            assert (await c.subscribe(channel, since=since, id=round_))["recovered"] is True
        await asyncio.wait_for(publisher, timeout(30))
    assert received == list(range(1, total + 1))


async def test_concurrent_publishers_deliver_in_offset_order(srv: ServerProcess) -> None:
    """Many publishers at once: offsets are assigned in one order and delivered in it."""
    channel = f"tournament:resume-{next(_ids)}"
    writers, each = 12, 40
    async with ws_connect(srv, token("a")) as a, ws_connect(srv, token("b")) as b:
        await a.subscribe(channel)
        await b.subscribe(channel)

        async def writer(w: int) -> list[int]:
            async with http(srv) as api:
                return [
                    (await publish(api, channel, "w.tick", {"w": w, "i": i}))["offset"]
                    for i in range(each)
                ]

        results = await asyncio.wait_for(
            asyncio.gather(*(writer(w) for w in range(writers))), timeout(30)
        )
        total = writers * each
        assert sorted(o for r in results for o in r) == list(range(1, total + 1))
        for c in (a, b):
            got = await c.events(total)
            assert [e["offset"] for e in got] == list(range(1, total + 1))
            # Each writer's own events keep the order it published them in.
            for w in range(writers):
                assert [e["data"]["i"] for e in got if e["data"]["w"] == w] == list(range(each))
            assert await c.barrier() == []
