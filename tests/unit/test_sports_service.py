"""The sports service in-process: numbering, the republish after a log outage, the snapshot
a newcomer starts from, and reactions never reaching the hub one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import orjson
import pytest

from croupier.config import Settings
from croupier.core.channels import Claims
from croupier.core.commands import Close, DoPublish, DoSubscribe, Pong, Refused
from croupier.core.session import Session
from croupier.errors import BadRequest, Conflict, NotFound, RateLimited, Unavailable
from croupier.events import Event
from croupier.gateway import Gateway
from croupier.hooks import Start
from croupier.logs import Append, Appended, MemoryLog
from croupier.services.sports import Sports
from croupier.services.sports.events_ws import EventsCodec
from croupier.services.sports.rules import Status
from croupier.storage import SQLiteDatabase


class FlakyLog(MemoryLog):
    """A MemoryLog whose appends fail while :attr:`down` is set."""

    down = False

    async def append(self, appends: Sequence[Append]) -> list[Appended]:
        if self.down:
            raise Unavailable("the log is down")
        return await super().append(appends)


@pytest.fixture
async def sports() -> AsyncIterator[tuple[Sports, FlakyLog]]:
    log = FlakyLog()
    async with (
        Gateway(Settings(database_url="memory://"), log=log) as gateway,
        SQLiteDatabase(":memory:") as db,
        Sports(gateway, db) as service,
    ):
        yield service, log


def ball(n: int) -> dict[str, Any]:
    return {f"ball {n}": f"{n}/0", "comment": f"ball {n}"}


async def _scores(log: MemoryLog, channel: str) -> list[int]:
    history = await log.read(channel, 0, 100)
    return [orjson.loads(e.payload)["seq"] for e in history.events if e.type == "score.updated"]


async def test_updates_are_numbered_and_an_unpublished_one_goes_out_before_the_next(
    sports: tuple[Sports, FlakyLog],
) -> None:
    service, log = sports
    await service.create("m1", "cricket", "A v B", ("A", "B"), None)
    with pytest.raises(Conflict):
        await service.update("m1", ball(1))  # scheduled: not taking updates yet
    await service.set_status("m1", Status.LIVE)
    await service.update("m1", ball(1))
    log.down = True
    with pytest.raises(Unavailable):
        await service.update("m1", ball(2))
    log.down = False
    event, published, findings = await service.update("m1", ball(3))
    assert (event.seq, findings) == (3, [])
    assert orjson.loads(published.payload)["seq"] == 3
    assert await _scores(log, "match:m1") == [1, 2, 3]
    # The update stored while the log was down goes out as the feed sent it, too.
    history = await log.read("match:m1", 0, 100)
    second = [orjson.loads(e.payload) for e in history.events if e.type == "score.updated"][1]
    assert second["ball 2"] == "2/0"
    assert second["update"] == {"ball": 2, "score": "2/0", "comment": "ball 2"}
    with pytest.raises(BadRequest):
        await service.update("m1", {"ball 4": "nonsense"})
    assert (await service.get("m1")).seq == 3
    with pytest.raises(NotFound):
        await service.update("nope", ball(1))
    assert service._locks == {}  # nothing kept per event once its changes are done


async def test_a_newcomer_starts_from_the_snapshot_s_own_update(
    sports: tuple[Sports, FlakyLog],
) -> None:
    service, log = sports
    await service.create("m1", "cricket", "A v B", ("A", "B"), None)
    await service.set_status("m1", Status.LIVE)
    start = await service.starting_point("match:m1")
    since, (frame,) = start.position, start.messages
    assert since is not None
    assert since.offset == 0  # nothing scored: every stored event is news
    assert orjson.loads(frame)["data"]["seq"] == 0
    for n in (1, 2):
        await service.update("m1", ball(n))
    start = await service.starting_point("match:m1")
    since, (frame,) = start.position, start.messages
    assert since is not None
    snapshot = orjson.loads(frame)["data"]
    assert snapshot["seq"] == 2
    assert snapshot["snapshot"]["score"] == "2/0"
    after = await log.read("match:m1", since.offset, 10)
    assert after.events == ()  # the snapshot's update is the channel's last event
    assert await service.starting_point("match:nothing") == Start()
    assert await service.starting_point("lobby") == Start()


async def test_reactions_are_tallied_not_fanned_out(sports: tuple[Sports, FlakyLog]) -> None:
    service, _ = sports
    seen: list[Event] = []
    service.gateway.hooks.on_publish(seen.extend)
    handler = service.gateway.hooks.client_handler("match:m1", "reaction")
    assert handler is not None
    assert service.gateway.hooks.client_handler("room:r1", "reaction") is None
    for emoji in ("🔥", "🔥", "👏"):
        handler("match:m1", orjson.dumps({"emoji": emoji, "from": {"id": "fan"}}))
    with pytest.raises(BadRequest):
        handler("match:m1", orjson.dumps({"emoji": "nope", "from": {"id": "fan"}}))
    assert seen == []
    (summary,) = service.local.drain().values()
    assert (summary.total, summary.counts) == (3, {"🔥": 2, "👏": 1})


def _session(claims: Claims | None = None) -> tuple[Session, EventsCodec]:
    def verify(token: str) -> Claims:
        raise AssertionError("no tokens here")

    # The codec's service is only asked for a join's viewers and snapshot, never here.
    codec = EventsCodec(Settings(), cast(Sports, None), claims)
    return Session(Settings(), verify, claims, 0.0, codec.authorize), codec


def _send(pair: tuple[Session, EventsCodec], raw: bytes, now: float = 0.0) -> list[Any]:
    session, codec = pair
    return session.receive(raw, now, codec.decode)


def _error(actions: list[Any]) -> str:
    (reply,) = actions
    assert isinstance(reply, Refused)
    return reply.code


def test_the_events_dialect_joins_first_then_reacts() -> None:
    pair = _session()
    assert _error(_send(pair, b'{"type":"reaction","emoji":"x"}')) == "not_joined"
    assert _error(_send(pair, b'{"id":"v1","eventId":"bad id"}')) == "bad_message"
    assert _error(_send(pair, b'{"eventId":"m1"}')) == "bad_message"  # who?
    (join,) = _send(pair, b'{"id":"v1","eventId":"m1"}')
    assert isinstance(join, DoSubscribe)
    assert join.channel == "match:m1"
    assert pair[1].viewer == "v1"
    assert pair[1].member(None) == {"id": "v1"}
    assert _error(_send(pair, b'{"id":"v1","eventId":"m2"}')) == "already_joined"
    # Reacting needs a player token, as every player publish does.
    assert _error(_send(pair, b'{"type":"reaction","emoji":"x"}')) == "unauthorized"
    assert _send(pair, b'{"type":"ping"}') == [Pong()]


def test_a_token_s_player_is_the_viewer_and_reactions_are_rate_limited() -> None:
    pair = _session(Claims(sub="fan7", brand="1001", name=None, channels=(), exp=None))
    (join,) = _send(pair, b'{"id":"someone-else","eventId":"m1"}')
    assert isinstance(join, DoSubscribe)
    assert pair[1].viewer == "fan7"
    taken = []
    for i in range(10):
        (action,) = _send(pair, orjson.dumps({"type": "reaction", "emoji": "🔥", "id": i}))
        taken.append(action)
    published = [a for a in taken if isinstance(a, DoPublish)]
    assert len(published) == 6  # the namespace's burst
    assert published[0].channel == "match:m1"
    assert orjson.loads(published[0].payload) == {"emoji": "🔥", "from": {"id": "fan7"}}
    assert _error(taken[-1:]) == RateLimited.code


def test_errors_in_a_row_close_an_events_connection_as_on_ws() -> None:
    pair = _session()
    limit = pair[0].limits.abuse_errors
    for i in range(limit - 1):
        assert _error(_send(pair, b'{"type":"reaction","emoji":"x"}', float(i))) == "not_joined"
    *_, last = _send(pair, b'{"type":"reaction","emoji":"x"}', 100.0)
    assert isinstance(last, Close)
    assert last.reason == "abuse"


def test_the_seed_s_reaction_without_a_type_is_taken_from_its_own_viewer() -> None:
    pair = _session(Claims(sub="fan7", brand="1001", name=None, channels=(), exp=None))
    _send(pair, b'{"id":"fan7","eventId":"m1"}')
    (action,) = _send(pair, b'{"id":"fan7","emoji":"x","comment":"what a shot"}')
    assert isinstance(action, DoPublish)
    assert action.type == "reaction"
    assert orjson.loads(action.payload)["comment"] == "what a shot"
    assert _error(_send(pair, b'{"id":"someone-else","emoji":"x"}')) == "not_your_viewer"
