"""The Tournaments service over a real Database (SQLite and PostgreSQL) and an in-memory
gateway, with positions from its own table and from the leaderboards service: the same
answers, money decisions under concurrency, exactly-once settlement, the schedule clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from croupier.config import Settings
from croupier.core.channels import Claims
from croupier.errors import Conflict
from croupier.events import Event
from croupier.gateway import Gateway
from croupier.services.leaderboards import Leaderboards
from croupier.services.tournaments import Tournaments, store
from croupier.services.tournaments import schemas as s
from croupier.services.tournaments.rules import Action
from croupier.storage import database_from_url
from tests.services import fresh_postgres_database
from tests.support import timeout


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'services.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture(params=["table", "leaderboards"])
def seam(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recorder:
    def __init__(self, gateway: Gateway) -> None:
        self.events: list[Event] = []
        gateway.hooks.on_publish(self.events.extend)

    def of(self, type: str, channel: str | None = None) -> list[Any]:
        return [
            e.data
            for e in self.events
            if e.type == type and (channel is None or e.channel == channel)
        ]


@asynccontextmanager
async def service(
    url: str, seam: str = "table", *, tick: float = 0.05
) -> AsyncIterator[tuple[Tournaments, Recorder]]:
    gateway = Gateway(Settings(database_url="memory://"))
    database = database_from_url(url)
    async with gateway, database, AsyncExitStack() as stack:
        leaderboards = None
        if seam == "leaderboards":
            leaderboards = await stack.enter_async_context(Leaderboards(gateway, database))
        recorder = Recorder(gateway)
        yield (
            await stack.enter_async_context(
                Tournaments(gateway, database, leaderboards=leaderboards, tick=tick)
            ),
            recorder,
        )


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait (bounded) until ``check()`` holds: the clock acts on its own schedule."""
    async with asyncio.timeout(timeout(seconds)):
        while not await check():  # noqa: ASYNC110 - a bounded poll of the database
            await asyncio.sleep(0.02)


def body(**fields: Any) -> s.CreateBody:
    return msgspec.convert({"name": "Cup", **fields}, s.CreateBody)


def reg(pid: str) -> s.RegisterBody:
    return s.RegisterBody(player_id=pid, brand="7", display_name=pid.upper())


def points(sid: str, pid: str, value: float) -> s.ScoreBody:
    return s.ScoreBody(submission_id=sid, player_id=pid, points=value)


async def running(svc: Tournaments, players: list[str], **fields: Any) -> str:
    t = await svc.create(body(minPlayers=1, **fields))
    await svc.transition(t.id, Action.OPEN)
    for pid in players:
        await svc.register(t.id, reg(pid))
    await svc.transition(t.id, Action.START)
    return t.id


async def test_positions_scores_and_settlement(database_url: str, seam: str) -> None:
    async with service(database_url, seam) as (svc, rec):
        tid = await running(
            svc,
            ["a", "b", "c"],
            entryFee=10.0,
            prizes=[{"fromRank": 1, "toRank": 2, "percent": 50.0}],
            ties="split",
        )
        assert (await svc.score(tid, points("1", "a", 5.0))).position == 1
        assert (await svc.score(tid, points("2", "b", 9.0))).position == 1
        third = await svc.score(tid, points("3", "c", 9.0))
        assert third.position == 2  # b reached 9 first
        again = await svc.score(tid, points("3", "c", 100.0))
        assert again.duplicate
        assert again.score == 9.0
        with pytest.raises(Conflict):
            await svc.score(tid, points("3", "a", 1.0))  # the id was c's
        standing = await svc.players(tid, 10)
        assert [p.player_id for p in standing.players] == ["b", "c", "a"]
        await svc.transition(tid, Action.COMPLETE)
        results = await svc.results(tid)
        assert [(r.player_id, r.position, r.prize_amount) for r in results.results] == [
            ("b", 1, 15.0),  # b and c split positions 1 and 2: (15 + 15) / 2
            ("c", 1, 15.0),
            ("a", 3, 0.0),
        ]
        with pytest.raises(Conflict):
            await svc.transition(tid, Action.COMPLETE)
        assert len(rec.of("tournament.completed", f"tournament:{tid}")) == 1
        notes = rec.of("notification")
        assert sorted(n["event_details"]["player_id"] for n in notes) == ["b", "c"]
        assert rec.of("player.score.updated", "player:7:c")[-1]["position"] == 2


async def test_a_crowd_of_greetings_reads_the_store_once(
    database_url: str, seam: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service(database_url, seam) as (svc, _):
        tid = await running(svc, ["ann", "bob"])
        await svc.score(tid, points("s1", "bob", 5))
    async with service(database_url, seam) as (svc, _):  # another node: nothing in memory yet
        reads: list[str] = []
        for name in ("active_players", "players", "get_player", "get_tournament"):
            real = getattr(store, name)

            def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                reads.append(_name)
                return _real(*args, **kw)

            monkeypatch.setattr(store, name, counted)
        channel = f"tournament:{tid}"

        async def greeted(pid: str, brand: str = "7") -> list[Any]:
            said = await svc.greeting(channel, Claims(pid, brand=brand))
            return [orjson.loads(m) for m in said]

        crowd = await asyncio.gather(
            *(
                greeted(pid, brand)
                for pid, brand in [("ann", "7"), ("bob", "7"), ("ann", "8"), ("cy", "7")] * 25
            )
        )
        assert reads == ["active_players"]
        for (pid, brand), said in zip(
            [("ann", "7"), ("bob", "7"), ("ann", "8"), ("cy", "7")] * 25, crowd, strict=True
        ):
            if brand != "7" or pid == "cy":
                assert said == []  # another brand's namesake, a player not registered
                continue
            [message] = said
            assert message["type"] == "tournament.connected"
            assert message["channel"] == channel
            assert message["data"]["playerId"] == pid
            assert message["data"]["playerInfo"]["position"] == {"bob": 1, "ann": 2}[pid]

        # This node's own changes are in memory at once: no new read.
        reads.clear()
        await svc.score(tid, points("s2", "ann", 9))
        await svc.eliminate(tid, "bob")
        reads.clear()
        [ann] = await greeted("ann")
        [bob] = await greeted("bob")
        assert reads == []
        assert ann["data"]["playerInfo"]["position"] == 1
        assert (bob["data"]["status"], bob["data"]["playerInfo"]["position"]) == ("eliminated", 2)

        await svc.transition(tid, Action.COMPLETE)
        assert await greeted("ann") == []  # a completed tournament greets nobody


async def test_concurrent_confirmations_never_exceed_the_maximum(database_url: str) -> None:
    async with service(database_url) as (svc, rec):
        tid = await running(svc, ["a"], entryFee=2.0, maxEntries=3)
        total = 0
        for _ in range(2):
            ask = await svc.rebuys.request(tid, "a")
            replies = await asyncio.gather(
                *(svc.rebuys.confirm(tid, ask.request_id) for _ in range(10))
            )
            assert sum(not r.duplicate for r in replies) == 1
            total += 1
        assert (await svc.player(tid, "a")).entry_count == 1 + total
        with pytest.raises(Conflict, match="entries"):
            await svc.rebuys.request(tid, "a")
        assert len(rec.of("rebuy.success", f"tournament:{tid}")) == 2
        assert (await svc.get(tid)).prize_pool == 6.0


async def test_state_and_unsent_events_survive_a_restart(database_url: str) -> None:
    async with service(database_url) as (svc, _):
        tid = await running(svc, ["a", "b"], rounds=2)
        await svc.score(tid, points("1", "a", 3.0))
        # A crash between a commit and its publish: the outbox still holds the event.
        await svc.db.execute(
            "INSERT INTO tournament_outbox (tournament_id, seq, channel, type, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            tid,
            10_000,
            f"tournament:{tid}",
            "round.started",
            orjson.dumps({"tournamentId": tid, "round": 9}).decode(),
        )
    async with service(database_url) as (svc, rec):

        async def republished() -> bool:
            return bool(rec.of("round.started"))

        await eventually(republished)
        t = await svc.get(tid)
        assert (t.status, t.player_count, t.current_round) == ("running", 2, 1)
        assert (await svc.score(tid, points("1", "a", 3.0))).duplicate
        assert (await svc.advance(tid)).current_round == 2


async def test_the_clock_opens_starts_advances_and_completes(database_url: str) -> None:
    async with service(database_url) as (svc, rec):
        now = time.time()

        def at(seconds: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + seconds))

        t = await svc.create(
            body(startsAt=at(3), rounds=2, roundSeconds=0.5, minPlayers=1, id="clock")
        )
        empty = await svc.create(body(startsAt=at(1), minPlayers=1, entryFee=1.0, id="empty"))

        def status_is(status: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await svc.get(t.id)).status == status

            return check

        await eventually(status_is("registering"))
        await svc.register(t.id, reg("a"))
        await eventually(status_is("completed"), 10)

        def statuses() -> list[str]:
            return [d["status"] for d in rec.of("tournament.status.changed", "tournament:clock")]

        async def announced() -> bool:
            # The row is completed at commit; its events leave the outbox just after.
            return len(statuses()) >= 3

        await eventually(announced)
        assert statuses() == ["registering", "running", "completed"]
        assert [d["round"] for d in rec.of("round.started", "tournament:clock")] == [2]
        assert (await svc.get(empty.id)).status == "cancelled"  # nobody registered
