"""The tournaments service: what each API call and clock tick does, and the events it sends.

Rules:

* Every decision about money or entries (registration, rebuy, prizes, refunds) runs in one
  database transaction that first locks the tournament row (``FOR UPDATE``), so concurrent
  calls, on one node or many, are applied one after the other.
* Events decided in such a transaction go to the outbox table in that same transaction and
  are published after it commits, again after a crash (idempotency keys make the repeat
  harmless): the completion, its prizes and the winners' notifications happen exactly once.
* Events that carry a live position (``tournament.connected``, ``player.score.updated``,
  ``player.eliminated``) are published after the commit with an idempotency key; a backend
  that retries the call after a failure sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...core.channels import Claims
from ...errors import BadRequest, Conflict, CroupierError, NotFound
from ...events import Event
from ...gateway import Gateway, PublishRequest
from ...hooks import Start
from ...logs import now_ts
from ...storage import Database, Transaction
from ...tasks import Background
from ..leaderboards import Leaderboards
from ..notifications import migrate_table
from . import rules, store
from . import schemas as s
from .batch import Batch
from .positions import LeaderboardPositions, Positions, TablePositions, board_of
from .rebuys import Rebuys
from .roster import Roster
from .rules import Action, InvalidTransition, Op, Status
from .settlement import refund, settle
from .store import Player, Tournament
from .values import config_of, iso, money, number

__all__ = ["Tournaments"]

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between two looks at the schedule


class Tournaments:
    """The service. Use as ``async with Tournaments(gateway, database):``."""

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        *,
        leaderboards: Leaderboards | None = None,
        positions: Positions | None = None,
        tick: float = TICK,
    ) -> None:
        self.gateway = gateway
        self.db = database
        self.leaderboards = leaderboards
        if positions is None:
            positions = (
                TablePositions(database)
                if leaderboards is None
                else LeaderboardPositions(leaderboards)
            )
        self.positions = positions
        self.tick = tick
        self._flush_lock = asyncio.Lock()
        self._unsent = True  # the outbox may hold events (at start, after a failure)
        self._background = Background()  # questions to players
        self._clock: asyncio.Task[None] | None = None
        self.roster = Roster(database)
        self.rebuys = Rebuys(database, self._tournament, self.flush, on_player=self.roster.note)

    # -- the Service face ------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Any]:
        from .api import OPERATIONS

        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        from .api import routes

        return routes(self)

    async def __aenter__(self) -> Self:
        await self.db.migrate("tournaments", store.MIGRATIONS)
        await migrate_table(self.db)  # a win is kept in the notification centre
        self.gateway.hooks.on_publish(self._published)
        self.gateway.hooks.on_fresh_subscribe("player", self.player_starting_point)
        self.gateway.hooks.on_fresh_subscribe(
            "tournament",
            self.starting_point if self.leaderboards is not None else None,
            greeting=self.greeting,
        )
        if self.leaderboards is not None:
            # A crash between a start and its watch would leave the board unwatched.
            for t in await store.list_tournaments(self.db, Status.RUNNING.value, 10_000):
                await self._watch(t)
        self._clock = asyncio.get_running_loop().create_task(self._run_clock())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._background.close(self._clock)

    # -- publishing ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Publish what the outbox holds, in order, and remove it once the log has it."""
        async with self._flush_lock:
            self._unsent = False
            try:
                while rows := await store.outgoing(self.db, 200):
                    await self.gateway.publish_many(
                        [
                            PublishRequest(
                                o.channel,
                                o.type,
                                o.data,
                                idempotency_key=f"tournament:{o.tournament_id}:{o.seq}",
                            )
                            for o in rows
                        ]
                    )
                    await store.remove_outgoing(self.db, rows)
            except Exception:
                self._unsent = True  # the clock tries again
                raise

    async def _publish_now(
        self, key: str, events: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> None:
        await self.gateway.publish_many(
            [
                PublishRequest(channel, type, orjson.dumps(data), idempotency_key=key)
                for channel, type, data in events
            ]
        )

    # -- the clock -------------------------------------------------------------------------

    async def _run_clock(self) -> None:
        while True:
            try:
                if self._unsent:
                    await self.flush()
                for tid in await store.due_tournaments(self.db, time.time()):
                    await self._on_clock(tid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tournament clock tick failed")
            await asyncio.sleep(self.tick)

    async def _on_clock(self, tid: str) -> None:
        now = time.time()
        async with self.db.transaction() as tx:
            t = await store.get_tournament(tx, tid, lock=True)
            if t is None:
                return
            what = rules.due(t.schedule(), now)
            if what is None:
                await store.save_tournament(tx, t, rules.next_due(t.schedule()))
                return
        with contextlib.suppress(Conflict, NotFound):  # another node (or the API) was first
            if what is Op.ADVANCE:
                await self.advance(tid, expected=t.current_round)
            elif isinstance(what, Action):
                await self.transition(tid, what, by_clock=True)

    # -- reading ---------------------------------------------------------------------------

    async def _tournament(self, tx: Transaction, tid: str, *, lock: bool = False) -> Tournament:
        t = await store.get_tournament(tx, tid, lock=lock)
        if t is None:
            raise NotFound(f"no tournament {tid}")
        return t

    async def get(self, tid: str) -> s.TournamentReply:
        return self.view(await self._tournament(self.db, tid))

    async def find(self, status: str | None, limit: int) -> s.TournamentsReply:
        found = await store.list_tournaments(self.db, status, limit)
        return s.TournamentsReply(tournaments=[self.view(t) for t in found])

    def view(self, t: Tournament) -> s.TournamentReply:
        c = t.config
        return s.TournamentReply(
            id=t.id,
            name=t.name,
            status=t.status.value,
            registration_opens_at=None if c.opens_at is None else iso(c.opens_at),
            starts_at=None if c.starts_at is None else iso(c.starts_at),
            ends_at=None if c.ends_at is None else iso(c.ends_at),
            started_at=None if t.started_at is None else iso(t.started_at),
            ended_at=None if t.ended_at is None else iso(t.ended_at),
            current_round=t.current_round,
            total_rounds=c.rounds,
            round_seconds=c.round_seconds,
            player_count=t.players,
            max_players=c.max_players,
            min_players=c.min_players,
            entry_fee=money(c.entry_fee),
            max_entries=c.max_entries,
            rebuy_price=money(c.rebuy_price),
            guaranteed_pool=money(c.guaranteed),
            prize_pool=money(rules.prize_pool(c.guaranteed, t.collected)),
            prizes=[
                s.PrizeBody(
                    from_rank=p.first,
                    to_rank=p.last,
                    amount=None if p.amount is None else money(p.amount),
                    percent=p.percent,
                )
                for p in c.prizes
            ],
            scoring=s.ScoringBody(
                rule=c.rule.scoring.value,
                min_bet=c.rule.min_bet,
                counting=c.rule.counting.value,
            ),
            ties=c.ties.value,
            template_id=c.template_id,
        )

    def _player_view(
        self, t: Tournament, p: Player, position: int, *, duplicate: bool = False
    ) -> s.PlayerReply:
        return s.PlayerReply(
            tournament_id=t.id,
            player_id=p.player_id,
            brand=p.brand,
            display_name=p.display_name,
            status="eliminated" if p.eliminated_at is not None else "active",
            score=p.score,
            position=position,
            entry_count=p.entries,
            remaining_rebuys=rules.remaining_rebuys(p.entries, t.config.max_entries),
            duplicate=duplicate,
        )

    async def player(self, tid: str, pid: str) -> s.PlayerReply:
        t = await self._tournament(self.db, tid)
        p = await store.get_player(self.db, tid, pid)
        if p is None:
            raise NotFound(f"player {pid} is not in tournament {tid}")
        return self._player_view(t, p, await self.positions.position(p))

    async def players(self, tid: str, limit: int) -> s.PlayersReply:
        t = await self._tournament(self.db, tid)
        everyone = {p.player_id: p for p in await store.players(self.db, tid)}
        ranked = rules.order(
            rules.Standing(p.player_id, p.score, p.reached_at) for p in everyone.values()
        )
        return s.PlayersReply(
            tournament_id=tid,
            players=[
                self._player_view(t, everyone[r.player], i + 1)
                for i, r in enumerate(ranked[:limit])
            ],
        )

    async def results(self, tid: str) -> s.ResultsReply:
        t = await self._tournament(self.db, tid)
        return await self._results(t)

    async def _results(self, t: Tournament) -> s.ResultsReply:
        return s.ResultsReply(
            tournament_id=t.id,
            status=t.status.value,
            prize_pool=money(rules.prize_pool(t.config.guaranteed, t.collected)),
            results=[
                s.ResultReply(
                    player_id=r["player_id"],
                    display_name=r["display_name"],
                    position=int(r["position"]),
                    points=float(r["points"]),
                    prize_amount=money(int(r["prize"])),
                )
                for r in await store.results(self.db, t.id)
            ],
            refunds=[
                s.RefundReply(player_id=r["player_id"], brand=r["brand"], amount=money(r["amount"]))
                for r in await store.refunds(self.db, t.id)
            ],
        )

    # -- the lifecycle ---------------------------------------------------------------------

    async def create(self, body: s.CreateBody) -> s.TournamentReply:
        config = config_of(body)
        tid = body.id or "t-" + secrets.token_hex(6)
        t = Tournament(
            id=tid,
            name=body.name,
            status=Status.SCHEDULED,
            config=config,
            current_round=0,
            round_started_at=None,
            players=0,
            collected=0,
            seq=0,
            created_at=time.time(),
            started_at=None,
            ended_at=None,
        )
        if not await store.insert_tournament(self.db, t, rules.next_due(t.schedule())):
            raise Conflict(f"tournament {tid} exists", code="tournament_exists")
        return self.view(t)

    async def transition(self, tid: str, action: Action, *, by_clock: bool = False) -> Tournament:
        """Apply ``action`` (open, start, complete, cancel) and send what it causes.

        Raises:
            NotFound: no such tournament.
            Conflict: the lifecycle table has no such move (``invalid_transition``), or a
                start without the minimum of players (``not_enough_players``).
        """
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            try:
                status = rules.transition(t.status, action)
            except InvalidTransition as exc:
                raise Conflict(str(exc), code="invalid_transition") from None
            if action is Action.START and t.players < max(t.config.min_players, 1):
                raise Conflict(
                    f"tournament {tid} has {t.players} players; it needs at least "
                    f"{max(t.config.min_players, 1)} to start",
                    code="not_enough_players",
                )
            batch = Batch(t)
            batch.add(
                t.channel,
                "tournament.status.changed",
                {
                    "tournamentId": t.id,
                    "previousStatus": t.status.value,
                    "status": status.value,
                    "changedAt": iso(now),
                    "by": "schedule" if by_clock else "api",
                },
            )
            t = replace(t, status=status)
            if action is Action.START:
                t = replace(t, current_round=1, round_started_at=now, started_at=now)
                batch.add(
                    t.channel,
                    "tournament.started",
                    {
                        "tournamentId": t.id,
                        "startTime": iso(now),
                        "playerCount": t.players,
                        "currentRound": 1,
                        "totalRounds": t.config.rounds,
                    },
                )
            elif action is Action.COMPLETE:
                t = replace(t, ended_at=now)
                await settle(tx, t, batch, now)
            elif action is Action.CANCEL:
                t = replace(t, ended_at=now)
                await refund(tx, t, batch, now)
            t = await batch.write(tx, t)
        self.roster.status(tid, status)
        await self.flush()
        if self.leaderboards is not None:
            if action is Action.START:
                await self._watch(t)
            elif status in (Status.COMPLETED, Status.CANCELLED):
                await self.leaderboards.unwatch(board_of(t.id))
        return t

    async def starting_point(self, channel: str) -> Start:
        """Where a new subscriber of ``channel`` starts: a running tournament's current top
        10, as a ``leaderboard.updated``, and the channel position it was read at, so the
        events after it follow (the same for every subscriber: see
        :data:`~croupier.gateway.ChannelStart`)."""
        t = await store.get_tournament(self.db, channel.removeprefix("tournament:"))
        if t is None or t.status is not Status.RUNNING or self.leaderboards is None:
            return Start()
        # The position first: whatever changes the board after it reaches the subscriber.
        since = await self.gateway.log.position(channel)
        data = await self.leaderboards.pushed(board_of(t.id), t.id)
        board = {"type": "leaderboard.updated", "channel": channel, "ts": now_ts(), "data": data}
        return Start(since, (orjson.dumps(board),))

    async def greeting(self, channel: str, claims: Claims | None) -> tuple[bytes, ...]:
        """What one new subscriber of a tournament's channel is told after the board: if the
        token's player is registered in it (same brand) and it is registering or running,
        their ``tournament.connected`` with their position now, so a player who subscribes
        after registering hears it here as on their own channel (see
        :data:`~croupier.gateway.Greeting`).

        It answers from the :class:`~.roster.Roster` (memory; one shared read per tournament
        per short window), not from the database per subscriber: see that module for why it
        stays right on several nodes. The position is the live ranking's when there is one
        (the leaderboards' boards are replicated on every node), else the roster's."""
        if claims is None:
            return ()
        p = await self.roster.player(channel.removeprefix("tournament:"), claims.sub)
        if p is None or p.brand != claims.brand:
            return ()
        if isinstance(self.positions, TablePositions):
            return (self._message(channel, p, self.roster.position(p)),)
        return (await self._connected_message(channel, p),)

    async def player_starting_point(self, channel: str) -> Start:
        """Where a new subscriber of a player's channel starts: if the player is registered
        in a tournament that is registering or running (the latest, if several), its
        ``tournament.connected`` with their position now, so a player who connects after
        registering still hears it; then the channel's events from where it stands."""
        parts = channel.split(":")
        if len(parts) != 3:
            return Start()
        p = await store.latest_active(self.db, parts[1], parts[2])
        if p is None:
            return Start()
        since = await self.gateway.log.position(channel)
        return Start(since, (await self._connected_message(channel, p),))

    async def _connected_message(self, channel: str, p: Player) -> bytes:
        """``tournament.connected`` of ``p`` on ``channel``, with their position now."""
        return self._message(channel, p, await self.positions.position(p))

    @staticmethod
    def _message(channel: str, p: Player, position: int) -> bytes:
        message = {
            "type": "tournament.connected",
            "channel": channel,
            "ts": now_ts(),
            "data": _connected(p, position),
        }
        return orjson.dumps(message)

    async def _watch(self, t: Tournament) -> None:
        assert self.leaderboards is not None
        await self.leaderboards.watch(board_of(t.id), t.channel, t.id)

    async def advance(self, tid: str, *, expected: int | None = None) -> s.TournamentReply:
        """Start the next round.

        Raises:
            Conflict: not running, already in the last round, or (``expected``) the round
                moved on meanwhile.
        """
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            _require(t, Op.ADVANCE)
            if expected is not None and t.current_round != expected:
                raise Conflict("the round has already advanced", code="round_moved")
            if t.current_round >= t.config.rounds:
                raise Conflict(
                    f"round {t.current_round} is the last; complete the tournament",
                    code="last_round",
                )
            t = replace(t, current_round=t.current_round + 1, round_started_at=now)
            batch = Batch(t)
            batch.add(
                t.channel,
                "round.started",
                {
                    "tournamentId": t.id,
                    "round": t.current_round,
                    "totalRounds": t.config.rounds,
                    "startedAt": iso(now),
                },
            )
            t = await batch.write(tx, t)
        await self.flush()
        return self.view(t)

    # -- players ---------------------------------------------------------------------------

    async def register(self, tid: str, body: s.RegisterBody) -> s.PlayerReply:
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            p = await store.get_player(tx, tid, body.player_id)
            duplicate = p is not None
            if p is None:
                _require(t, Op.REGISTER)
                limit = t.config.max_players
                if limit is not None and t.players >= limit:
                    raise Conflict(f"tournament {tid} is full ({limit})", code="tournament_full")
                fee = t.config.entry_fee
                p = Player(
                    tournament_id=tid,
                    player_id=body.player_id,
                    brand=body.brand,
                    display_name=body.display_name or body.player_id,
                    registered_at=now,
                    entries=1,
                    paid=fee,
                    entry_scores=(0.0,),
                    score=0.0,
                    reached_at=now,
                    eliminated_at=None,
                    elimination_round=None,
                    bets=0.0,
                    wins=0.0,
                )
                await store.insert_player(tx, p)
                t = replace(t, players=t.players + 1, collected=t.collected + fee)
                batch = Batch(t)
                batch.add(
                    t.channel,
                    "player.registered",
                    {
                        "tournamentId": tid,
                        "playerId": p.player_id,
                        "displayName": p.display_name,
                        "brand": p.brand,
                        "playerCount": t.players,
                        "entryCount": 1,
                        "registeredAt": iso(now),
                    },
                )
                t = await batch.write(tx, t)
        self.roster.note(p)
        await self.flush()
        position = await self.positions.update(p)
        connected = _connected(p, position)
        await self._publish_now(
            f"connected:{tid}:{p.player_id}",
            [
                (t.channel, "tournament.connected", connected),
                (p.channel, "tournament.connected", connected),
            ],
        )
        return self._player_view(t, p, position, duplicate=duplicate)

    async def score(self, tid: str, body: s.ScoreBody) -> s.ScoreReply:
        """Record one submission (idempotent by its id) and send the new score."""
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            seen = await store.get_submission(tx, tid, body.submission_id)
            if seen is not None:
                if seen["player_id"] != body.player_id:
                    raise Conflict(
                        f"submission {body.submission_id} was for another player",
                        code="submission_reused",
                    )
                points = seen["points"]
                round = int(seen["round"])
            else:
                _require(t, Op.SCORE)
            p = await store.get_player(tx, tid, body.player_id, lock=True)
            if p is None:
                raise NotFound(f"player {body.player_id} is not in tournament {tid}")
            if seen is None:
                if p.eliminated_at is not None:
                    raise Conflict(f"player {p.player_id} is eliminated", code="player_eliminated")
                try:
                    points = rules.submission_points(
                        t.config.rule, points=body.points, bet=body.bet, win=body.win
                    )
                except ValueError as exc:
                    raise BadRequest(str(exc), code="bad_submission") from None
                round = t.current_round
                await store.insert_submission(
                    tx, tid, body.submission_id, p.player_id, points, round, now
                )
                entries = (*p.entry_scores[:-1], p.entry_scores[-1] + (points or 0.0))
                score = rules.player_score(t.config.rule, entries)
                p = replace(
                    p,
                    entry_scores=entries,
                    score=score,
                    reached_at=now if score != p.score else p.reached_at,
                    bets=p.bets + (body.bet or 0.0),
                    wins=p.wins + (body.win or 0.0),
                )
                await store.save_player(tx, p)
        self.roster.note(p)
        position = await self.positions.update(p)
        if points is not None:
            update = {
                "tournamentId": tid,
                "playerId": p.player_id,
                "score": number(p.score),
                "position": position,
                "round": round,
            }
            await self._publish_now(
                f"score:{tid}:{body.submission_id}",
                [
                    (t.channel, "player.score.updated", update),
                    (p.channel, "player.score.updated", update),
                ],
            )
        return s.ScoreReply(
            tournament_id=tid,
            submission_id=body.submission_id,
            player_id=p.player_id,
            points=points,
            qualified=points is not None,
            score=p.score,
            position=position,
            round=round,
            duplicate=seen is not None,
        )

    async def eliminate(self, tid: str, pid: str) -> s.PlayerReply:
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            p = await store.get_player(tx, tid, pid, lock=True)
            if p is None:
                raise NotFound(f"player {pid} is not in tournament {tid}")
            duplicate = p.eliminated_at is not None
            if not duplicate:
                _require(t, Op.ELIMINATE)
                p = replace(p, eliminated_at=now, elimination_round=t.current_round)
                await store.save_player(tx, p)
        self.roster.note(p)
        position = await self.positions.position(p)
        assert p.eliminated_at is not None
        event = {
            "tournamentId": tid,
            "playerId": pid,
            "eliminatedAt": iso(p.eliminated_at),
            "finalPosition": position,
            "finalPoints": number(p.score),
            "eliminationRound": p.elimination_round,
        }
        await self._publish_now(
            f"eliminated:{tid}:{pid}:{p.entries}",
            [(t.channel, "player.eliminated", event), (p.channel, "player.eliminated", event)],
        )
        return self._player_view(t, p, position, duplicate=duplicate)

    def _published(self, events: list[Event]) -> None:
        """A player's ``rebuy.request`` over WebSocket becomes a rebuy request."""
        for event in events:
            if event.type == "rebuy.request" and event.channel.startswith("tournament:"):
                try:
                    sender = orjson.loads(event.payload)["from"]["id"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                self._background.spawn(self._ask(event.channel.split(":", 1)[1], str(sender)))

    async def _ask(self, tid: str, pid: str) -> None:
        try:
            await self.rebuys.request(tid, pid)
        except CroupierError as exc:
            log.info("rebuy request of %s in %s refused: %s", pid, tid, exc.message)
        except Exception:
            log.exception("rebuy request of %s in %s failed", pid, tid)


def _connected(p: Player, position: int) -> dict[str, Any]:
    """The data of ``tournament.connected`` for ``p`` at ``position``."""
    return {
        "tournamentId": p.tournament_id,
        "playerId": p.player_id,
        "status": "active" if p.eliminated_at is None else "eliminated",
        "playerInfo": {
            "displayName": p.display_name,
            "position": position,
            "entryCount": p.entries,
        },
    }


def _require(t: Tournament, op: Op) -> None:
    try:
        rules.require(t.status, op)
    except InvalidTransition as exc:
        raise Conflict(str(exc), code="invalid_state") from None
