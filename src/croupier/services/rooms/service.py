"""The rooms service: runs the rooms this node holds the lease of.

Rules:

* A room in play is applied by one node at a time: the one holding its lease (a row in the
  services' database, renewed every few seconds). A node takes over a room whose lease ran
  out; a single node (the local broker) takes every room in play back at start.
* Players' ``player.action`` events reach the owner through the hub and the broker, from
  whichever node the player is connected to. Each room has one task that applies its
  inputs (actions, deadlines) one after the other.
* Every step's events are published in one log append, stored on ``room:{id}``; the step's
  ``room.state`` event carries the action. The snapshot (the room row) is written at most
  every :data:`SNAPSHOT_EVERY` seconds, at every round end and status change. Restoring
  loads the snapshot and replays the actions logged after its offset: nothing acknowledged
  is lost.
* A refused action is answered with an ephemeral ``error`` event on the player's own
  channel ``player:{brand}:{player}`` (on the room channel, with ``playerId``, for players
  without a brand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...errors import BadRequest, Conflict, CroupierError, NotFound, shown
from ...events import Event
from ...gateway import Gateway, PublishRequest
from ...storage import Database
from ...tasks import Background
from ..leaderboards import Leaderboards, check_board
from . import engine, store
from .engine import Room, RoomStatus, Step
from .handler import ActionRejected, Move, RoomHandler
from .live import LiveRoom
from .nim import Nim
from .recovery import replay_log

__all__ = ["LEASE_SECONDS", "SNAPSHOT_EVERY", "Rooms"]

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 5.0  # seconds: the most a snapshot lags behind the log
LEASE_SECONDS = 10.0
RENEW_EVERY = 3.0
ENDED_GRACE = 60.0  # seconds a finished room still answers late actions with an error


class Rooms:
    """The service. Use as ``async with Rooms(gateway, database):``."""

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        *,
        leaderboards: Leaderboards | None = None,
        handlers: Sequence[RoomHandler] = (Nim(),),
    ) -> None:
        self.gateway = gateway
        self.db = database
        self.leaderboards = leaderboards
        self.handlers: dict[str, RoomHandler] = {h.name: h for h in handlers}
        self.node = secrets.token_hex(6)
        self.single = gateway.settings.broker_url.split(":", 1)[0] == "local"
        self._live: dict[str, LiveRoom] = {}
        self._ended: dict[str, LiveRoom] = {}  # finished or closed here lately: late actions
        self._background = Background()  # saves, results, refusals
        self._keeper: asyncio.Task[None] | None = None

    # -- the Service face ------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Any]:
        from .api import OPERATIONS

        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        from .api import routes

        return routes(self)

    async def __aenter__(self) -> Self:
        await self.db.migrate("rooms", store.MIGRATIONS)
        await self._take_over(any_owner=self.single)
        for rid in await store.unposted_rooms(self.db, 1000):
            self._background.spawn(self._post_results(rid))
        self._keeper = asyncio.get_running_loop().create_task(self._keep_leases())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for live in self._live.values():
            for handle in (live.timer, live.save_timer):
                if handle is not None:
                    handle.cancel()
        await self._background.close(self._keeper, *(live.task for live in self._live.values()))
        for rid in list(self._ended):
            ended = self._ended[rid]
            if ended.timer is not None:
                ended.timer.cancel()
            self._forget(rid)
        for rid, live in list(self._live.items()):
            with contextlib.suppress(Exception):
                await self._save(live)
                await store.release(self.db, rid, self.node)
            self.gateway.hub.unlisten(live.room.channel, self._received)
        self._live.clear()

    # -- reading ---------------------------------------------------------------------------

    def handler(self, game: str) -> RoomHandler:
        found = self.handlers.get(game)
        if found is None:
            raise BadRequest(
                f"no game {shown(game, 64)}; games: {', '.join(sorted(self.handlers))}",
                code="unknown_game",
            )
        return found

    def check_options(self, game: str, options: Mapping[str, Any]) -> RoomHandler:
        """The handler of ``game``, once ``options`` are known to suit it and the room.

        Raises:
            BadRequest: an unknown game, or options it (or the room) cannot take.
        """
        handler = self.handler(game)
        turn = options.get("turnSeconds", engine.DEFAULT_TURN_SECONDS)
        if isinstance(turn, bool) or not isinstance(turn, int | float) or not 0.2 <= turn <= 3600:
            raise BadRequest("turnSeconds must be a number from 0.2 to 3600", code="bad_options")
        board = options.get("leaderboard")
        if board is not None:
            try:
                check_board(board)
            except BadRequest as exc:
                raise BadRequest(f"leaderboard: {exc.message}", code="bad_options") from None
        try:
            handler.check_options(options)
        except ValueError as exc:
            raise BadRequest(str(exc), code="bad_options") from None
        return handler

    async def get(self, room_id: str) -> tuple[Room, dict[str, str | None]]:
        """The room as this node knows it best: live if it runs here, else its snapshot."""
        live = self._live.get(room_id)
        if live is not None:
            return live.room, live.brands
        stored = await store.get_room(self.db, room_id)
        if stored is None:
            raise NotFound(f"no room {room_id}")
        return stored.room, stored.brands

    def turn_of(self, room: Room) -> dict[str, Any] | None:
        if room.status is not RoomStatus.PLAYING:
            return None
        turn = self.handler(room.game).turn(room.values)
        return None if turn is None else engine.required(room, turn)

    # -- creating, joining, starting -------------------------------------------------------

    async def create(
        self,
        room_id: str | None,
        game: str,
        players: Sequence[tuple[str, str | None]],
        options: Mapping[str, Any],
        *,
        max_players: int | None = None,
        start: bool = False,
    ) -> Room:
        """Create a room (open), seated with ``players`` (id, brand); ``start`` plays at once.

        Raises:
            BadRequest: unknown game, bad options, a player twice, too many players.
            Conflict: the id is taken; or ``start`` with too few players.
        """
        handler = self.check_options(game, options)
        ids = [p for p, _ in players]
        if len(set(ids)) != len(ids):
            raise Conflict("each player may be seated only once", code="duplicate_player")
        most = min(max_players or handler.max_players, handler.max_players)
        if len(ids) > most:
            raise Conflict(f"this room seats at most {most} players", code="room_full")
        if start and len(ids) < handler.min_players:
            raise Conflict(
                f"{game} needs at least {handler.min_players} players", code="too_few_players"
            )
        rid = room_id or f"r-{secrets.token_hex(6)}"
        room = Room(rid, game, tuple(ids), dict(options), max_players=most)
        brands = dict(players)
        if not await store.insert_room(self.db, room, brands, time.time()):
            raise Conflict(f"room {rid} already exists", code="exists")
        if start:
            return await self.start(rid)
        return room

    async def _change_open(
        self, room_id: str, change: Callable[[Room], Room], brand: tuple[str, str | None] | None
    ) -> Room:
        async with self.db.transaction() as tx:
            stored = await store.get_room(tx, room_id, lock=True)
            if stored is None:
                raise NotFound(f"no room {room_id}")
            try:
                room = change(stored.room)
            except ActionRejected as exc:
                raise Conflict(exc.message, code=exc.code) from None
            brands = dict(stored.brands)
            if brand is not None:
                brands[brand[0]] = brand[1]
            brands = {p: brands.get(p) for p in room.players}
            await store.save_room(tx, room, brands=brands, now=time.time())
            return room

    async def join(self, room_id: str, player: str, brand: str | None) -> Room:
        return await self._change_open(room_id, lambda r: engine.join(r, player), (player, brand))

    async def leave(self, room_id: str, player: str) -> Room:
        return await self._change_open(room_id, lambda r: engine.leave(r, player), None)

    async def start(self, room_id: str) -> Room:
        """Start an open room on this node.

        Raises:
            NotFound, Conflict: no such room; not open, or too few players.
        """
        now = time.time()
        async with self.db.transaction() as tx:
            stored = await store.get_room(tx, room_id, lock=True)
            if stored is None:
                raise NotFound(f"no room {room_id}")
            handler = self.handler(stored.room.game)
            try:
                step = engine.start(stored.room, handler, now)
            except ActionRejected as exc:
                raise Conflict(exc.message, code=exc.code) from None
            await store.save_room(tx, step.room, now=now)
            await tx.execute(
                "UPDATE rooms SET owner = $2, lease_until = $3 WHERE id = $1",
                room_id,
                self.node,
                now + LEASE_SECONDS,
            )
        live = LiveRoom(step.room, handler, stored.brands)
        await self._run(live)
        await self._publish(live, step, "start")
        await self._save(live)
        return live.room

    async def close(self, room_id: str) -> Room:
        """Call a room off (open or in play)."""
        live = self._live.get(room_id)
        if live is not None:
            done: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
            live.inbox.put_nowait(("close", done))
            room: Room = await done
            return room
        async with self.db.transaction() as tx:
            stored = await store.get_room(tx, room_id, lock=True)
            if stored is None:
                raise NotFound(f"no room {room_id}")
            if stored.room.status is RoomStatus.PLAYING and stored.lease_until > time.time():
                raise Conflict(
                    f"room {room_id} is played on another node; close it there",
                    code="other_node",
                )
            try:
                step = engine.close(stored.room)
            except ActionRejected as exc:
                raise Conflict(exc.message, code=exc.code) from None
            await store.save_room(tx, step.room, now=time.time())
        await self._publish_events(step.room, step.events, "close")
        return step.room

    # -- running rooms ---------------------------------------------------------------------

    async def _run(self, live: LiveRoom) -> None:
        """Start serving ``live``: subscribe to its channel, start its task and deadline."""
        rid = live.room.id
        self._live[rid] = live
        await self.gateway.hub.listen(live.room.channel, self._received)
        live.task = asyncio.get_running_loop().create_task(self._serve(live))

    def _received(self, event: Event) -> None:
        """A room channel's event (from this node or, through the broker, any other): its
        ``player.action`` events go to the room's inbox."""
        if event.type != "player.action":
            return
        rid = event.channel[5:]
        live = self._live.get(rid)
        doc = orjson.loads(event.payload)
        if live is not None:
            live.inbox.put_nowait(("action", doc))
            return
        ended = self._ended.get(rid)
        sender = doc.get("from", {}).get("id") if isinstance(doc, dict) else None
        if ended is not None and isinstance(sender, str):
            # Late clicks on a finished game: say so, rather than drop them silently.
            status = ended.room.status.value
            refusal = ActionRejected("not_playing", f"room {rid} is {status}")
            self._background.spawn(self._reject(ended, sender, refusal, doc.get("action")))

    async def _serve(self, live: LiveRoom) -> None:
        while True:
            kind, what = await live.inbox.get()
            try:
                if kind == "action":
                    await self._action(live, what)
                elif kind == "deadline":
                    await self._deadline(live, what)
                elif kind == "close":
                    await self._close_live(live, what)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room %s: handling %s failed", live.room.id, kind)
            if live.room.status in (RoomStatus.FINISHED, RoomStatus.CLOSED):
                await self._retire(live)
                return

    async def _action(self, live: LiveRoom, doc: Any) -> None:
        sender = doc.get("from", {}).get("id") if isinstance(doc, dict) else None
        if not isinstance(sender, str):
            return
        action = doc.get("action")
        data = doc.get("data", {})
        claimed = doc.get("playerId")
        try:
            if claimed is not None and claimed != sender:
                raise ActionRejected("not_your_player", "playerId must be your own player id")
            if not isinstance(action, str) or not isinstance(data, dict):
                raise ActionRejected(
                    "bad_action",
                    'player.action data is {"action": name, "data": {…}, "playerId": you}',
                )
            step = engine.act(live.room, live.handler, sender, Move(action, data), time.time())
        except ActionRejected as exc:
            await self._reject(live, sender, exc, action if isinstance(action, str) else None)
            return
        await self._publish(live, step)

    async def _deadline(self, live: LiveRoom, seq: int) -> None:
        room = live.room
        if room.seq != seq or room.status is not RoomStatus.PLAYING:
            return  # someone acted in time
        turn = live.handler.turn(room.values)
        if turn is None:
            return
        step = engine.act(room, live.handler, turn.player, turn.default, time.time(), default=True)
        await self._publish(live, step)

    async def _close_live(self, live: LiveRoom, done: asyncio.Future[Room]) -> None:
        try:
            step = engine.close(live.room)
        except ActionRejected as exc:
            done.set_exception(Conflict(exc.message, code=exc.code))
            return
        await self._publish(live, step, "close")
        done.set_result(live.room)

    async def _publish(self, live: LiveRoom, step: Step, key: str | None = None) -> None:
        """Publish a step's events together; then arm the deadline and schedule the save.

        ``key`` names the step for idempotency (an action's is its ``seq``).
        """
        before = live.room
        results = await self._publish_events(step.room, step.events, key or f"a{step.room.seq}")
        live.room = step.room
        for r in results:
            if r.event.type == "room.state" and r.event.offset is not None:
                live.offset, live.epoch = r.event.offset, r.event.epoch
        self._arm(live)
        if before.round != live.room.round or before.status != live.room.status:
            await self._save(live)
        elif live.save_timer is None:
            loop = asyncio.get_running_loop()
            live.save_timer = loop.call_later(
                SNAPSHOT_EVERY, lambda: self._background.spawn(self._save(live))
            )

    async def _publish_events(
        self, room: Room, events: Sequence[tuple[str, dict[str, Any]]], key: str
    ) -> list[Any]:
        # One append: a step's events are stored all together or not at all. The keys make
        # a repeat after a failure harmless.
        return await self.gateway.publish_many(
            [
                PublishRequest(
                    room.channel,
                    type,
                    orjson.dumps(data),
                    idempotency_key=f"room:{room.id}:{key}:{i}",
                )
                for i, (type, data) in enumerate(events)
            ]
        )

    def _arm(self, live: LiveRoom) -> None:
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        room = live.room
        if room.deadline is None or room.status is not RoomStatus.PLAYING:
            return
        loop = asyncio.get_running_loop()
        delay = max(room.deadline - time.time(), 0.0)
        live.timer = loop.call_later(delay, live.inbox.put_nowait, ("deadline", room.seq))

    async def _save(self, live: LiveRoom) -> None:
        if live.save_timer is not None:
            live.save_timer.cancel()
            live.save_timer = None
        async with self.db.transaction() as tx:
            await store.save_room(
                tx, live.room, log_offset=live.offset, log_epoch=live.epoch, now=time.time()
            )
        live.saved_seq = live.room.seq

    async def _retire(self, live: LiveRoom) -> None:
        rid = live.room.id
        # From here on, actions for the room are answered as late ones (see _received);
        # those already waiting in its inbox are answered the same way.
        self._live.pop(rid, None)
        self._ended[rid] = live
        if live.timer is not None:
            live.timer.cancel()
        live.timer = asyncio.get_running_loop().call_later(ENDED_GRACE, self._forget, rid)
        refusal = ActionRejected("not_playing", f"room {rid} is {live.room.status.value}")
        while not live.inbox.empty():
            kind, what = live.inbox.get_nowait()
            if kind == "action" and isinstance(what, dict):
                sender = what.get("from", {}).get("id")
                if isinstance(sender, str):
                    await self._reject(live, sender, refusal, what.get("action"))
            elif kind == "close":
                what.set_exception(Conflict(refusal.message, code="invalid_state"))
        await self._save(live)
        await store.release(self.db, rid, self.node)
        if live.room.status is RoomStatus.FINISHED:
            await self._post_results(rid)

    def _forget(self, room_id: str) -> None:
        ended = self._ended.pop(room_id, None)
        if ended is not None:
            self.gateway.hub.unlisten(ended.room.channel, self._received)

    async def _post_results(self, room_id: str) -> None:
        """Put a finished room's totals on its leaderboard (``options.leaderboard``, by
        default ``rooms.{game}``), once: each player's total goes in with a key of the room
        and the player, so posting again after a crash in between changes nothing."""
        if self.leaderboards is None:
            return
        try:
            stored = await store.get_room(self.db, room_id)
            if stored is None or stored.posted:
                return
            room = stored.room
            board = str(room.options.get("leaderboard") or f"rooms.{room.game}")
            for player in room.players:
                await self.leaderboards.submit(
                    board,
                    player,
                    room.totals.get(player, 0.0),
                    mode="add",
                    key=f"room:{room_id}:{player}",  # a retry after a crash adds nothing
                )
            async with self.db.transaction() as tx:
                await store.save_room(tx, room, posted=True, now=time.time())
        except Exception:
            log.exception("room %s: results not posted to the leaderboard", room_id)

    async def _reject(self, live: LiveRoom, player: str, exc: ActionRejected, action: Any) -> None:
        brand = live.brands.get(player)
        data = {
            "code": exc.code,
            "message": exc.message,
            "roomId": live.room.id,
            "playerId": player,
            "action": action if isinstance(action, str) else None,
        }
        channel = f"player:{brand}:{player}" if brand else live.room.channel
        try:
            await self.gateway.publish(
                PublishRequest(channel, "error", orjson.dumps(data), ephemeral=True)
            )
        except CroupierError as err:
            log.info(
                "room %s: could not tell %s of a refused action: %s",
                live.room.id,
                player,
                err.message,
            )

    # -- leases and restore ----------------------------------------------------------------

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await store.renew(self.db, self.node, time.time() + LEASE_SECONDS)
                await self._take_over(any_owner=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room leases: renewal failed")

    async def _take_over(self, *, any_owner: bool) -> None:
        now = time.time()
        for rid in await store.expired_rooms(self.db, now, 1000, any_owner=any_owner):
            if rid in self._live:
                continue
            stored = await store.claim(
                self.db, rid, self.node, now + LEASE_SECONDS, now, force=any_owner
            )
            if stored is None:
                continue
            try:
                await self._restore(stored)
            except Exception:
                log.exception("room %s could not be restored", rid)
                await store.release(self.db, rid, self.node)

    async def _restore(self, stored: store.Stored) -> None:
        """Run a room from its snapshot and the actions logged after it."""
        room = stored.room
        handler = self.handler(room.game)
        live = LiveRoom(
            room, handler, dict(stored.brands), offset=stored.log_offset, epoch=stored.log_epoch
        )
        self._live[room.id] = live  # actions arriving from here on wait in its inbox
        await self.gateway.hub.listen(room.channel, self._received)
        back = await replay_log(
            self.gateway.log, room, handler, stored.log_offset, stored.log_epoch
        )
        room, live.offset, live.epoch = back.room, back.offset, back.epoch
        live.room = room
        log.info("room %s restored at step %d (%d replayed)", room.id, room.seq, back.replayed)
        await self._save(live)
        live.task = asyncio.get_running_loop().create_task(self._serve(live))
        if room.status is not RoomStatus.PLAYING:
            live.inbox.put_nowait(("noop", None))
            return
        turn = handler.turn(room.values)
        if turn is not None:
            # The deadline ran while no node held the room: the player gets a fresh one.
            live.room = replace(room, deadline=time.time() + room.turn_seconds)
            await self._publish_events(
                live.room,
                [("player.action.required", engine.required(live.room, turn))],
                f"{room.seq}:restored:{self.node}",
            )
        self._arm(live)
