"""The live log's bus: off unless watched, capped while watched, and bounded per watcher."""

from __future__ import annotations

import pytest

from croupier import debuglog
from croupier.debuglog import BACKLOG, DebugLog


async def test_nobody_watching_means_nothing_is_recorded() -> None:
    debug = DebugLog("n-1")
    assert debug.watching is False
    watcher = debug.watch()
    assert debug.watching is True
    debug.emit("published", channel="room:1", offset=3)
    debug.unwatch(watcher)
    assert debug.watching is False
    records = await watcher.take(0)
    assert [(r["kind"], r["channel"], r["node"]) for r in records] == [
        ("published", "room:1", "n-1")
    ]
    debug.emit("published", channel="room:2", offset=4)  # nobody watches any more
    assert await watcher.take(0) == []


async def test_the_rate_cap_says_how_much_it_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(debuglog.time, "monotonic", lambda: clock[0])
    debug = DebugLog("n-1", rate=1.0, burst=3)  # three records, then one a second
    watcher = debug.watch()
    for n in range(10):
        debug.emit("published", n=n)
    assert [r["n"] for r in await watcher.take(0)] == [0, 1, 2]
    assert debug.skipped == 7
    clock[0] += 1.0  # the bucket refilled by one
    debug.emit("published", n=10)
    (record,) = await watcher.take(0)
    assert record["n"] == 10
    assert record["skipped"] == 7


async def test_a_flood_of_publishes_does_not_crowd_out_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(debuglog.time, "monotonic", lambda: 1000.0)  # no refill at all
    debug = DebugLog("n-1", rate=1.0, burst=3)
    watcher = debug.watch()
    for n in range(50):
        debug.emit("published", n=n)
    debug.emit("slow_consumer", player="p1")
    kinds = [r["kind"] for r in await watcher.take(0)]
    assert kinds == ["published"] * 3 + ["slow_consumer"]


async def test_a_watcher_that_falls_behind_loses_the_oldest_and_is_told() -> None:
    debug = DebugLog("n-1", rate=1e9, burst=10**9)
    watcher = debug.watch()
    for n in range(BACKLOG + 5):
        debug.emit("published", n=n)
    records = await watcher.take(0)
    assert len(records) == BACKLOG
    assert records[0]["n"] == 5
    assert watcher.skipped == 5


async def test_another_nodes_lease_turns_recording_on_until_it_ends() -> None:
    debug = DebugLog("n-1")
    sent: list[list[dict[str, object]]] = []
    debug.connect(sent.append, lambda watching: None)
    debug.remote_lease("n-2", 30)
    assert debug.watching is True
    debug.remote_lease("n-1", 30)  # a node's own announcement is not a lease
    debug.emit("published", n=1)
    debug._send_batch()
    assert [[r["n"] for r in batch] for batch in sent] == [[1]]
    debug.remote_lease("n-2", 0)
    assert debug.watching is False
    debug.close()


async def test_records_from_other_nodes_reach_local_watchers_once() -> None:
    debug = DebugLog("n-1")
    watcher = debug.watch()
    debug.received([{"node": "n-2", "kind": "published"}, {"node": "n-1", "kind": "published"}])
    assert [r["node"] for r in await watcher.take(0)] == ["n-2"]
