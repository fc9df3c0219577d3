"""The matchmaking service: queues per game mode, the matching pass, rooms for the matched.

Rules:

* Tickets live in the services' database, so a player may queue on any node. One node at a
  time runs a queue's matching passes: the one holding the queue's lease (renewed by every
  pass); a pass runs in one transaction that locks the queue's row, so a cancel and a match
  of the same ticket cannot both win.
* A player with a waiting ticket or a match still in play (its room open or playing), in any
  mode, is never queued again: joining answers what they have (``matchmaking.queued`` or
  ``matchmaking.matched`` once more), over WebSocket and HTTP alike. Joins in one mode are
  serialised by the queue's row lock (on SQLite every transaction is); a match made while a
  join looks at the rooms is new, so in play.
* Players queue over WebSocket by publishing ``matchmaking.join`` (``{"mode", "properties"}``)
  or ``matchmaking.cancel`` (``{"mode"}``) on their own channel ``player:{brand}:{player}``;
  every answer comes on that channel: ``matchmaking.queued``, ``matchmaking.position``
  (ephemeral, when the position changes), ``matchmaking.matched``, ``matchmaking.timeout``,
  ``matchmaking.cancelled``, or an ephemeral ``error``. Ratings are never taken from a
  player: backends give them over HTTP.
* A match opens a room of the queue's game with the group as its players, started at once;
  the room's id is the match id.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...core.matching import (
    InvalidTicketTransition,
    MatchPass,
    QueueRules,
    Throughput,
    Ticket,
    TicketStatus,
    estimate_wait,
    match_pass,
    ticket_transition,
)
from ...errors import BadRequest, Conflict, CroupierError, NotFound
from ...events import Event
from ...gateway import Gateway, PublishRequest
from ...storage import Database
from ...tasks import Background
from ..leaderboards import check_board
from ..rooms import Rooms
from ..rooms.engine import RoomStatus
from . import store
from .brackets import Brackets
from .store import Queue, StoredTicket

__all__ = ["DEFAULT_MODE", "Matchmaking"]

log = logging.getLogger(__name__)

DEFAULT_MODE = "default"
PASS_INTERVAL = 1.0
LEASE_SECONDS = 5.0
MAX_PROPERTIES = 8
ROOM_GRACE = 60.0  # seconds a match without a room yet counts as in play (being opened)


def player_channel(brand: str | None, player: str) -> str | None:
    return f"player:{brand}:{player}" if brand else None


def _matched_data(t: StoredTicket) -> dict[str, Any]:
    """The data of ``matchmaking.matched`` for the matched ticket ``t``."""
    return {
        "matchId": t.match_id,
        "players": t.players,
        "roomId": t.room_id,
        "mode": t.mode,
        "ticketId": t.ticket.id,
    }


class Matchmaking:
    """The service. Use as ``async with Matchmaking(gateway, database, rooms=…):``."""

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        *,
        rooms: Rooms | None = None,
        pass_interval: float = PASS_INTERVAL,
    ) -> None:
        self.gateway = gateway
        self.db = database
        self.rooms = rooms
        self.pass_interval = pass_interval
        self.node = secrets.token_hex(6)
        self.brackets = Brackets(gateway, database)
        self._pace: dict[str, Throughput] = {}
        self._positions: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._background = Background()  # players' requests
        self._loop: asyncio.Task[None] | None = None

    # -- the Service face ------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Any]:
        from .api import OPERATIONS

        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        from .api import routes

        return routes(self)

    async def __aenter__(self) -> Self:
        await self.db.migrate("matchmaking", store.MIGRATIONS)
        if await store.get_queue(self.db, DEFAULT_MODE) is None:
            await store.put_queue(self.db, Queue(DEFAULT_MODE, QueueRules(), "nim", {}))
        self.gateway.hooks.on_publish(self._published)
        if self.rooms is not None:
            await self._open_missing_rooms()
        self._loop = asyncio.get_running_loop().create_task(self._passes())
        return self

    async def _open_missing_rooms(self) -> None:
        """Open the rooms of matches whose node stopped between the match and its room."""
        rows = await self.db.fetch(
            "SELECT t.match_id, t.mode, t.player, t.brand FROM matchmaking_tickets t "
            "LEFT JOIN rooms r ON r.id = t.room_id "
            "WHERE t.status = 'matched' AND r.id IS NULL AND t.updated_at > $1 "
            "ORDER BY t.match_id, t.queued_at",
            time.time() - 3600,
        )
        groups: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        for r in rows:
            groups.setdefault((r["match_id"], r["mode"]), []).append((r["player"], r["brand"]))
        for (match_id, mode), players in groups.items():
            queue = await store.get_queue(self.db, mode)
            if queue is None or self.rooms is None:
                continue
            try:
                await self.rooms.create(match_id, queue.game, players, queue.options, start=True)
            except CroupierError as exc:
                if exc.code != "exists":  # another node opened it meanwhile
                    log.error("match %s: its room could not be opened: %s", match_id, exc.message)
            else:
                log.info("match %s: opened its room after a restart", match_id)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._background.close(self._loop)

    # -- queues ----------------------------------------------------------------------------

    async def configure(
        self,
        mode: str,
        rules: QueueRules,
        game: str,
        options: Mapping[str, Any],
        *,
        rating_board: str | None = None,
    ) -> Queue:
        """Create or change a queue.

        Raises:
            BadRequest: an unknown game or options it does not take.
        """
        if self.rooms is not None:
            handler = self.rooms.check_options(game, options)
            if not handler.min_players <= rules.group_size <= handler.max_players:
                raise BadRequest(
                    f"{game} takes {handler.min_players}-{handler.max_players} players; "
                    f"groupSize is {rules.group_size}"
                )
        if rating_board is not None:
            check_board(rating_board)
        queue = Queue(mode, rules, game, dict(options), rating_board)
        await store.put_queue(self.db, queue)
        return queue

    async def queue(self, mode: str) -> Queue:
        found = await store.get_queue(self.db, mode)
        if found is None:
            raise NotFound(f"no queue {mode}")
        return found

    async def waiting_count(self, mode: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM matchmaking_tickets WHERE mode = $1 AND status = 'waiting'",
            mode,
        )
        return int(row["n"]) if row else 0

    # -- tickets ---------------------------------------------------------------------------

    async def position(self, t: StoredTicket) -> int | None:
        if t.status is not TicketStatus.WAITING:
            return None
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM matchmaking_tickets WHERE mode = $1 AND "
            "status = 'waiting' AND queued_at <= $2",
            t.mode,
            t.ticket.queued_at,
        )
        return int(row["n"]) if row else None

    def estimate(self, mode: str, position: int | None, waited: float) -> float | None:
        if position is None:
            return None
        return estimate_wait(position, waited, self._pace.get(mode, Throughput()), time.time())

    async def join(
        self,
        mode: str,
        player: str,
        *,
        brand: str | None = None,
        rating: float | None = None,
        properties: Mapping[str, str] | None = None,
        match_now: bool = True,
    ) -> StoredTicket:
        """Queue ``player`` in ``mode``, unless they hold a waiting ticket or a match still in
        play, in any mode: then answer that and queue nothing, so no path (WebSocket or
        HTTP, repeated or concurrent) puts a player into a second match.

        The player's channel hears ``matchmaking.queued`` for a waiting ticket (new or held)
        and ``matchmaking.matched`` again for a match in play.

        Raises:
            NotFound: no such queue.
        """
        now = time.time()
        props = tuple(sorted((properties or {}).items()))
        # Which of their matches are over is asked of the rooms outside the transaction; a
        # match made after this look is young, so in play by definition.
        over = {
            t.ticket.id
            for t in await store.newest_tickets(self.db, player)
            if t.status is TicketStatus.MATCHED and not await self._in_play(t, now)
        }
        async with self.db.transaction() as tx:
            if await store.get_queue(tx, mode, lock=True) is None:
                raise NotFound(f"no queue {mode}")
            held = next(
                (
                    t
                    for t in await store.newest_tickets(tx, player)
                    if t.status is TicketStatus.WAITING
                    or (t.status is TicketStatus.MATCHED and t.ticket.id not in over)
                ),
                None,
            )
            if held is None:
                ticket = Ticket(f"t-{secrets.token_hex(8)}", player, now, rating, props, brand)
                await store.insert_ticket(tx, mode, ticket)
                stored = StoredTicket(ticket, mode, TicketStatus.WAITING, None, None, [], now)
            else:
                stored, ticket = held, held.ticket
        channel = player_channel(brand, player)
        if stored.status is TicketStatus.MATCHED:
            if channel is not None:
                await self._tell(channel, "matchmaking.matched", _matched_data(stored))
            return stored
        position = await self.position(stored)
        if channel is not None:
            await self._tell(
                channel,
                "matchmaking.queued",
                {
                    "ticketId": ticket.id,
                    "mode": stored.mode,
                    "position": position,
                    "estimatedWait": self.estimate(stored.mode, position, now - ticket.queued_at),
                },
            )
        if match_now and held is None:
            await self.run_pass(mode)
            found = await store.get_ticket(self.db, ticket.id)
            if found is not None:
                return found
        return stored

    async def _in_play(self, t: StoredTicket, now: float) -> bool:
        """Whether the match of the matched ticket ``t`` is still on: its room is open or
        playing, or (no room yet) it was made in the last :data:`ROOM_GRACE` seconds and its
        room is being opened."""
        if self.rooms is None or t.room_id is None:
            return False
        try:
            room, _ = await self.rooms.get(t.room_id)
        except NotFound:
            return now - t.updated_at < ROOM_GRACE
        return room.status in (RoomStatus.OPEN, RoomStatus.PLAYING)

    async def ticket(self, ticket_id: str) -> StoredTicket:
        found = await store.get_ticket(self.db, ticket_id)
        if found is None:
            raise NotFound(f"no ticket {ticket_id}")
        return found

    async def cancel(self, ticket_id: str) -> StoredTicket:
        """Cancel a waiting ticket (``matchmaking.cancelled`` to the player).

        Raises:
            NotFound: no such ticket. Conflict: it is no longer waiting.
        """
        found = await self.ticket(ticket_id)
        async with self.db.transaction() as tx:
            await store.get_queue(tx, found.mode, lock=True)
            current = await store.get_ticket(tx, ticket_id)
            try:
                ticket_transition(
                    current.status if current else found.status, TicketStatus.CANCELLED
                )
            except InvalidTicketTransition as exc:
                raise Conflict(f"ticket {ticket_id}: {exc}", code="invalid_state") from None
            await store.set_status(tx, ticket_id, TicketStatus.CANCELLED, time.time())
        self._positions.pop(ticket_id, None)
        channel = player_channel(found.ticket.brand, found.ticket.player)
        if channel is not None:
            await self._tell(
                channel, "matchmaking.cancelled", {"ticketId": ticket_id, "mode": found.mode}
            )
        return await self.ticket(ticket_id)

    async def simple(
        self,
        username: str,
        mode: str,
        *,
        brand: str | None,
        rating: float | None,
        properties: Mapping[str, str] | None,
    ) -> tuple[StoredTicket, int | None]:
        """The one-call form: the player's match if it is still in play, else their waiting
        ticket (queued now if need be), with its position."""
        t = await self.join(mode, username, brand=brand, rating=rating, properties=properties)
        return t, await self.position(t)

    # -- the matching pass -----------------------------------------------------------------

    async def _passes(self) -> None:
        while True:
            await asyncio.sleep(self.pass_interval)
            try:
                for mode in await store.all_modes(self.db):
                    await self.run_pass(mode)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matching pass failed")

    async def run_pass(self, mode: str) -> MatchPass | None:
        """Run one matching pass over ``mode`` if this node holds (or can take) its lease."""
        lock = self._locks.setdefault(mode, asyncio.Lock())
        async with lock:
            now = time.time()
            if not await store.take_lease(self.db, mode, self.node, now + LEASE_SECONDS, now):
                return None
            async with self.db.transaction() as tx:
                queue = await store.get_queue(tx, mode, lock=True)
                if queue is None:
                    return None
                tickets = await store.waiting(tx, mode)
                result = match_pass(tickets, queue.rules, now)
                rows: list[tuple[str, str, str | None, str | None, str | None, float]] = []
                groups: list[tuple[str, tuple[Ticket, ...]]] = []
                for group in result.matches:
                    match_id = f"m-{secrets.token_hex(6)}"
                    players = orjson.dumps([t.player for t in group]).decode()
                    groups.append((match_id, group))
                    rows.extend(
                        (t.id, TicketStatus.MATCHED.value, match_id, match_id, players, now)
                        for t in group
                    )
                rows.extend(
                    (t.id, TicketStatus.TIMED_OUT.value, None, None, None, now)
                    for t in result.timed_out
                )
                if rows:
                    await store.finish_many(tx, rows)
            if groups:
                self._pace[mode] = self._pace.get(mode, Throughput()).record(
                    [now - t.queued_at for _, g in groups for t in g], now
                )
            for match_id, group in groups:
                await self._matched(queue, match_id, group)
            for t in result.timed_out:
                self._positions.pop(t.id, None)
                channel = player_channel(t.brand, t.player)
                if channel is not None:
                    await self._tell(
                        channel,
                        "matchmaking.timeout",
                        {"ticketId": t.id, "mode": mode, "waited": round(now - t.queued_at, 1)},
                    )
            await self._tell_positions(mode, result.waiting, now)
            return result

    async def _matched(self, queue: Queue, match_id: str, group: tuple[Ticket, ...]) -> None:
        players = [t.player for t in group]
        if self.rooms is not None:
            try:
                await self.rooms.create(
                    match_id,
                    queue.game,
                    [(t.player, t.brand) for t in group],
                    queue.options,
                    start=True,
                )
            except CroupierError as exc:
                log.error("match %s: its room could not be opened: %s", match_id, exc.message)
        for t in group:
            self._positions.pop(t.id, None)
            channel = player_channel(t.brand, t.player)
            if channel is not None:
                stored = StoredTicket(
                    t, queue.mode, TicketStatus.MATCHED, match_id, match_id, players
                )
                await self._tell(channel, "matchmaking.matched", _matched_data(stored))

    async def _tell_positions(self, mode: str, waiting: Sequence[Ticket], now: float) -> None:
        requests = []
        pace = self._pace.get(mode, Throughput())
        for i, t in enumerate(waiting):
            position = i + 1
            if self._positions.get(t.id) == position:
                continue
            self._positions[t.id] = position
            channel = player_channel(t.brand, t.player)
            if channel is None:
                continue
            data = {
                "ticketId": t.id,
                "mode": mode,
                "position": position,
                "estimatedWait": estimate_wait(position, now - t.queued_at, pace, now),
                "waited": round(now - t.queued_at, 1),
            }
            requests.append(
                PublishRequest(channel, "matchmaking.position", orjson.dumps(data), ephemeral=True)
            )
        for i in range(0, len(requests), 500):
            try:
                await self.gateway.publish_many(requests[i : i + 500])
            except CroupierError as exc:
                log.warning("queue positions not sent: %s", exc.message)

    async def _tell(
        self, channel: str, type: str, data: dict[str, Any], *, ephemeral: bool = False
    ) -> None:
        try:
            await self.gateway.publish(
                PublishRequest(channel, type, orjson.dumps(data), ephemeral=ephemeral)
            )
        except CroupierError as exc:
            log.warning("%s to %s not sent: %s", type, channel, exc.message)

    # -- players over WebSocket ------------------------------------------------------------

    def _published(self, events: list[Event]) -> None:
        for event in events:
            if event.type in ("matchmaking.join", "matchmaking.cancel") and (
                event.channel.startswith("player:") and event.offset is None
            ):
                parts = event.channel.split(":")
                if len(parts) != 3:
                    continue
                try:
                    doc = orjson.loads(event.payload)
                    sender = doc["from"]["id"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                if sender != parts[2]:
                    continue  # a grant to another player's channel does not queue them
                self._background.spawn(self._from_player(event.type, parts[1], parts[2], doc))

    async def _rating(self, mode: str, player: str) -> float | None:
        """A self-queued player's rating: their score on the queue's rating board, if any."""
        queue = await store.get_queue(self.db, mode)
        if queue is None or queue.rating_board is None:
            return None
        board = self.rooms.leaderboards if self.rooms is not None else None
        if board is None:
            return None
        standing = await board.standing(queue.rating_board, player)
        return None if standing is None else standing.score

    async def _from_player(self, kind: str, brand: str, player: str, doc: dict[str, Any]) -> None:
        channel = f"player:{brand}:{player}"
        try:
            mode = doc.get("mode", DEFAULT_MODE)
            if not isinstance(mode, str) or not 0 < len(mode) <= 64:
                raise BadRequest("mode must be a queue's name", code="bad_message")
            if kind == "matchmaking.cancel":
                latest = await store.latest_ticket(self.db, mode, player)
                if latest is None or latest.status is not TicketStatus.WAITING:
                    raise Conflict(f"no waiting ticket in {mode}", code="not_waiting")
                await self.cancel(latest.ticket.id)
                return
            props = doc.get("properties", {})
            if (
                not isinstance(props, dict)
                or len(props) > MAX_PROPERTIES
                or not all(
                    isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 64
                    for k, v in props.items()
                )
            ):
                raise BadRequest(
                    f"properties are at most {MAX_PROPERTIES} string pairs (64 characters)",
                    code="bad_message",
                )
            await self.join(
                mode,
                player,
                brand=brand,
                rating=await self._rating(mode, player),
                properties=props,
            )
        except CroupierError as exc:
            await self._tell(
                channel,
                "error",
                {"code": exc.code, "message": exc.message, "request": kind},
                ephemeral=True,
            )
        except Exception:
            log.exception("%s of %s failed", kind, player)
