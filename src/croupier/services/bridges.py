"""Bridges from existing publishers: Redis pub/sub and PostgreSQL NOTIFY.

Backends that already publish somewhere else keep doing so, unchanged; a bridge turns
what they publish into stored Croupier events, so those events become replayable.

* :class:`RedisBridge` pattern-subscribes (default ``SSE::*::*``) and turns each message
  ``{"brand_id","player_id","event_type","event_data"}`` published on
  ``SSE::{brand_id}::{player_id}`` into an ``event_type`` event on
  ``player:{brand_id}:{player_id}`` whose data is ``event_data``. A ``notification`` is a
  notification like any other: it goes through the player's notification centre (stored,
  deduplicated by ``message_id``, counted unread, then pushed).
* :class:`PostgresBridge` LISTENs on a channel (default ``new_event``) whose payloads are
  small JSON objects such as ``{"eventId":…,"tableId":…,"kind":…}``, fetches the row with the
  configured query and publishes it on ``table:{tableId}``, with the source event id as the
  idempotency key so a notification delivered twice never stores two events.

Both reconnect with capped exponential backoff when their connection is lost. A message that
cannot be used is logged and counted (``croupier_bridge_*_rejected``); it never stops the
bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import asyncpg
import msgspec
import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import PostgresBridgeSettings, RedisBridgeSettings
from ..core import jsonsafe
from ..errors import BadRequest, Conflict, PayloadTooLarge, Unavailable, shown
from ..gateway import Gateway, PublishRequest
from .notifications import NewNotification, NotificationsService
from .players import Player

__all__ = [
    "Bridge",
    "Bridges",
    "PostgresBridge",
    "RedisBridge",
    "Rejected",
    "json_default",
    "row_data",
]

log = logging.getLogger(__name__)

START_WAIT = 5.0  # seconds the node waits at start for each bridge's first subscription
PING_INTERVAL = 15.0  # an idle connection is checked this often, so a dead one is noticed
REDIS_PUBLISH_ATTEMPTS = 5  # a Redis message is dropped after this many failed publishes

# The Redis bridge lock: KEYS[1] = lock key, ARGV = (this node's token, ttl in ms).
_ACQUIRE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Rejected(Exception):
    """A message or row that cannot become an event; logged, counted, skipped."""


class Bridge(ABC):
    """What both bridges share: counters, backoff, and the run-forever loop.

    Subclasses implement :meth:`_session`, which connects, subscribes, sets
    :attr:`connected`, and handles messages until the connection is lost (by raising).
    """

    kind = "bridge"

    def __init__(
        self, gateway: Gateway, *, backoff_min: float = 0.5, backoff_max: float = 30.0
    ) -> None:
        self.gateway = gateway
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.connected = asyncio.Event()  # subscribed and handling messages
        self.started = asyncio.Event()  # connected once, or standing by for another node
        self.received = 0
        self.published = 0
        self.duplicates = 0
        self.rejected = 0
        self.failed = 0
        self.reconnects = 0
        # Named per process so an operator (or a test) can find this connection.
        self.client_name = f"croupier-bridge-{os.getpid()}"

    async def run(self) -> None:
        """Run until cancelled: connect, handle messages, and reconnect when the link drops."""
        delay = self.backoff_min
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                    exc = exc.exceptions[0]  # from a session's TaskGroup
                was_connected = self.connected.is_set()
                self.connected.clear()
                if was_connected:
                    self.reconnects += 1
                    delay = self.backoff_min
                    log.warning("%s bridge lost its connection (%s); reconnecting", self.kind, exc)
                else:
                    log.warning(
                        "%s bridge cannot connect (%s); retrying in %.1fs", self.kind, exc, delay
                    )
            else:  # pragma: no cover - sessions only end by raising
                self.connected.clear()
            # Jitter keeps many nodes from reconnecting in lockstep after an outage.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff_max)

    @abstractmethod
    async def _session(self) -> None:
        """Connect, subscribe, set :attr:`connected`, handle messages; raise when cut off."""

    def _reject(self, why: str, raw: object) -> None:
        self.rejected += 1
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        log.warning("%s bridge skipped a message: %s: %.300s", self.kind, why, text)

    async def _publish(self, request: PublishRequest, attempts: int | None) -> bool:
        """Publish, retrying while the log is unavailable (``attempts=None``: until it works).

        Returns whether the event was stored (or was already there).

        Raises:
            Rejected: the gateway refused the request itself (bad channel, type, size).
        """
        delay = self.backoff_min
        tried = 0
        while True:
            try:
                result = await self.gateway.publish(request)
            except (BadRequest, PayloadTooLarge) as exc:
                raise Rejected(exc.message) from exc
            except Unavailable as exc:
                tried += 1
                if attempts is not None and tried >= attempts:
                    self.failed += 1
                    log.error(
                        "%s bridge dropped an event for %s: %s", self.kind, request.channel, exc
                    )
                    return False
                log.warning("%s bridge cannot store an event yet: %s", self.kind, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except Exception as exc:
                # Whatever else went wrong concerns this message only; the bridge goes on.
                log.exception("%s bridge could not publish to %s", self.kind, request.channel)
                raise Rejected(f"publishing failed: {shown(exc)}") from exc
            if result.duplicate:
                self.duplicates += 1
            else:
                self.published += 1
            return True

    def counts(self) -> dict[str, tuple[str, float, str]]:
        """This bridge's metrics, in the shape :meth:`Metrics.add_source` reads."""
        prefix = f"croupier_bridge_{self.kind}"
        return {
            f"{prefix}_connected": (
                "gauge",
                1 if self.connected.is_set() else 0,
                f"1 while the {self.kind} bridge is subscribed.",
            ),
            f"{prefix}_received": ("counter", self.received, "Messages the bridge received."),
            f"{prefix}_published": ("counter", self.published, "Events the bridge stored."),
            f"{prefix}_duplicates": (
                "counter",
                self.duplicates,
                "Messages already stored under the same idempotency key.",
            ),
            f"{prefix}_rejected": (
                "counter",
                self.rejected,
                "Messages skipped because they could not become an event.",
            ),
            f"{prefix}_failed": (
                "counter",
                self.failed,
                "Events dropped because the log stayed unavailable.",
            ),
            f"{prefix}_reconnects": (
                "counter",
                self.reconnects,
                "Times the bridge lost its connection and reconnected.",
            ),
        }


# -- Redis ---------------------------------------------------------------------------------


class RedisBridge(Bridge):
    """``PSUBSCRIBE pattern`` on Redis; each message becomes an event on a player channel.

    The channel name's last two ``::`` parts are the brand and player ids. A message whose
    body names another brand or player, is not JSON, or lacks ``event_type`` or
    ``event_data`` is rejected. When ``event_data`` holds the configured idempotency field
    (``message_id`` by default), ``{event_type}:{value}`` is the idempotency key, so a
    notification published twice within the log's idempotency window is stored once.

    A ``notification`` whose ``event_data`` is a notification centre's notification
    (``event``, optional ``event_details`` and a UUID ``message_id``) is created in the
    player's centre, given one: stored (a repeated ``message_id`` is a no-op), counted
    unread, listed, and pushed by the centre as ``{message_id, event, event_details,
    is_read, time}``. One that is not (no ``event``, a ``message_id`` that is not a UUID) is
    published on the stream as it came, and logged.

    Redis pub/sub keeps nothing: messages published while the bridge is disconnected are
    lost, exactly as they were for the original consumers.

    Every node that subscribed would store each message again, so only the holder of a
    Redis lock (``lock_key``, renewed every third of ``lock_ttl``) subscribes; the other
    nodes stand by and one takes over when the holder stops (at once) or dies (after
    ``lock_ttl``; messages published in between are lost). An empty ``lock_key`` turns
    this off, for a deployment where exactly one node runs the bridge.
    """

    kind = "redis"

    def __init__(
        self,
        gateway: Gateway,
        settings: RedisBridgeSettings,
        notifications: NotificationsService | None = None,
    ) -> None:
        super().__init__(
            gateway, backoff_min=settings.backoff_min, backoff_max=settings.backoff_max
        )
        self.settings = settings
        self.notifications = notifications
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def _session(self) -> None:
        client = aioredis.from_url(
            self.settings.url,
            client_name=self.client_name,
            health_check_interval=PING_INTERVAL,
            socket_connect_timeout=5,
            socket_keepalive=True,
        )
        pubsub = client.pubsub()
        lock = self.settings.lock_key
        try:
            if lock:
                await self._lead(client, lock)
            await pubsub.psubscribe(self.settings.pattern)
            # The subscription is confirmed by the server's first reply; until then a
            # PUBLISH could still be missed, so "connected" waits for it.
            while True:
                reply = await pubsub.get_message(timeout=5)
                if reply is not None and reply["type"] == "psubscribe":
                    break
                if reply is None:
                    raise RedisTimeoutError("no reply to PSUBSCRIBE")
            self.connected.set()
            self.started.set()
            log.info("redis bridge subscribed to %s", self.settings.pattern)
            async with asyncio.TaskGroup() as group:
                if lock:
                    group.create_task(self._hold(client, lock))
                group.create_task(self._listen(pubsub))
        finally:
            if lock and self.connected.is_set():
                # Hand over at once instead of making the next node wait for the expiry.
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await client.eval(_RELEASE, 1, lock, self._token)
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await client.aclose()

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        while True:
            # Blocks until a message arrives; the finite timeout only lets the health
            # check PING an idle connection, so a silently dead one is noticed.
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=PING_INTERVAL
            )
            if message is None or message["type"] != "pmessage":
                continue
            self.received += 1
            await self._handle(message["channel"], message["data"])

    async def _lead(self, client: aioredis.Redis, lock: str) -> None:
        """Return once this node holds the bridge lock; stand by until then."""
        ttl = int(self.settings.lock_ttl * 1000)
        standing_by = False
        while not await client.eval(_ACQUIRE, 1, lock, self._token, ttl):
            if not standing_by:
                log.info("redis bridge standing by: another node holds %s", lock)
                standing_by = True
                self.started.set()
            await asyncio.sleep(self.settings.lock_ttl / 3)
        if standing_by:
            log.info("redis bridge took over %s", lock)

    async def _hold(self, client: aioredis.Redis, lock: str) -> None:
        ttl = int(self.settings.lock_ttl * 1000)
        while True:
            await asyncio.sleep(self.settings.lock_ttl / 3)
            if not await client.eval(_RENEW, 1, lock, self._token, ttl):
                raise ConnectionError(f"lost the bridge lock {lock} to another node")

    async def _handle(self, channel: bytes | str, data: bytes | str) -> None:
        try:
            request = self.request(channel, data)
            if request.type == "notification" and await self._keep(request):
                return
            await self._publish(request, REDIS_PUBLISH_ATTEMPTS)
        except Rejected as exc:
            self._reject(str(exc), data)

    async def _keep(self, request: PublishRequest) -> bool:
        """Create the notification of ``request`` in the player's centre.

        Returns False when there is no centre, the data is not a centre's notification, or
        the centre cannot store it now: the caller then publishes it as it came, so the
        player still sees it.
        """
        if self.notifications is None:
            return False
        doc = orjson.loads(request.payload)
        fields = (
            {k: doc[k] for k in ("event", "event_details", "message_id") if k in doc}
            if isinstance(doc, dict)
            else None
        )
        _, brand, player = request.channel.split(":", 2)
        try:
            item = msgspec.convert(fields, NewNotification)
            [(_, _, duplicate)] = await self.notifications.create([(Player(brand, player), item)])
        except (msgspec.ValidationError, BadRequest, PayloadTooLarge, Conflict) as exc:
            log.info("redis bridge: a notification not kept in the centre (%s)", exc)
            return False
        except Exception:
            log.exception("redis bridge: the notification centre failed; publishing as it came")
            return False
        if duplicate:
            self.duplicates += 1
        else:
            self.published += 1
        return True

    def request(self, channel: bytes | str, data: bytes | str) -> PublishRequest:
        """The publish request for one Redis message.

        Raises:
            Rejected: the message cannot become an event.
        """
        name = channel.decode(errors="replace") if isinstance(channel, bytes) else channel
        parts = name.split("::")
        if len(parts) < 3 or not parts[-2] or not parts[-1]:
            raise Rejected(f"channel {shown(name)} is not PREFIX::brand_id::player_id")
        brand, player = parts[-2], parts[-1]
        # The members stay raw, so event_data is published as the bytes that were sent.
        members = _members(data, self.gateway.settings.limits.max_json_depth)
        body = {k: orjson.loads(bytes(v)) for k, v in members.items() if k != "event_data"}
        for field, expected in (("brand_id", brand), ("player_id", player)):
            if field in body and str(body[field]) != expected:
                raise Rejected(f"{field} {shown(body[field])} does not match channel {shown(name)}")
        event_type = body.get("event_type")
        if not isinstance(event_type, str) or "event_data" not in members:
            raise Rejected("event_type (a string) and event_data are required")
        event_data = bytes(members["event_data"])
        key = None
        field = self.settings.idempotency_field
        if field and event_data[:1] == b"{":
            message_id = orjson.loads(event_data).get(field)
            if isinstance(message_id, str):
                key = f"{event_type}:{message_id}"[:200]
        return PublishRequest(f"player:{brand}:{player}", event_type, event_data, key)


_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _members(data: bytes | str, max_depth: int) -> dict[str, msgspec.Raw]:
    """The members of a JSON object, each value still encoded.

    Raises:
        Rejected: ``data`` is not JSON, not an object, too deep or holds an unsafe number.
    """
    try:
        jsonsafe.check(data, max_depth)
        return _OBJECT.decode(data)
    except BadRequest as exc:
        raise Rejected(exc.message) from None
    except msgspec.ValidationError:
        raise Rejected("not a JSON object") from None
    except (msgspec.DecodeError, UnicodeEncodeError) as exc:
        raise Rejected(f"not JSON ({exc})") from None


# -- PostgreSQL ----------------------------------------------------------------------------


def json_default(value: object) -> object:
    """orjson's ``default`` for column values it cannot encode (decimals, bytes, …)."""
    if isinstance(value, Decimal):
        # Keep integral amounts as numbers; anything else as a string, losing no digits.
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class PostgresBridge(Bridge):
    """``LISTEN channel`` on PostgreSQL; each notification names a row to publish.

    For a notification ``{"eventId":42,"tableId":7,"kind":"hand_start"}`` the bridge runs the
    configured query with ``$1 = 42``. When the query returns one column, its value (a
    ``json``/``jsonb`` value, or text holding JSON) is the event's data; with several
    columns, the row as an object is. The event goes to ``table:7`` (the ``target``
    template, filled from the notification) with type ``kind`` (taken from the data when it
    has a string ``kind``, otherwise from the notification) and idempotency key ``"42"``.

    Notifications are handled one at a time in the order PostgreSQL delivers them (commit
    order), so a table's events are stored in that order. While the log is unavailable the
    bridge retries the same notification and holds the rest behind it.

    When the connection drops, notifications sent meanwhile are gone. If ``catchup_query``
    is set, after reconnecting the bridge runs it with ``$1`` = the highest event id it has
    handled; it must return rows with the notification's fields (``eventId``, ``tableId``,
    ``kind``) for rows after that id, in order, which are then handled like notifications
    until it returns no new row. Rows are re-published under their idempotency keys, so
    overlap with live notifications is harmless. The cursor lives in memory: rows written
    while the node itself was stopped are not caught up.
    """

    kind = "postgres"

    def __init__(self, gateway: Gateway, settings: PostgresBridgeSettings) -> None:
        super().__init__(
            gateway, backoff_min=settings.backoff_min, backoff_max=settings.backoff_max
        )
        self.settings = settings
        self.last_id: Any = None  # the highest source event id handled, for the catch-up
        self._notes: deque[str] = deque()  # received, not yet handled; kept across reconnects

    async def _session(self) -> None:
        settings = self.settings
        conn = await asyncpg.connect(
            settings.url, timeout=10, server_settings={"application_name": self.client_name}
        )
        wake = asyncio.Event()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            self._notes.append(payload)
            wake.set()

        try:
            for codec in ("json", "jsonb"):
                await conn.set_type_codec(
                    codec,
                    encoder=lambda v: orjson.dumps(v).decode(),
                    decoder=orjson.loads,
                    schema="pg_catalog",
                )
            conn.add_termination_listener(lambda _conn: wake.set())
            # Notifications received before the connection dropped are older than anything
            # the catch-up finds, so they go first; the catch-up then runs before any
            # notification that arrives on this connection.
            backlog = len(self._notes)
            await conn.add_listener(settings.channel, on_notify)
            self.connected.set()
            self.started.set()
            log.info("postgres bridge listening on %s", settings.channel)
            for _ in range(backlog):
                await self._next(conn)
            if settings.catchup_query and self.last_id is not None:
                await self._catch_up(conn)
            while True:
                while not self._notes:
                    wake.clear()
                    if conn.is_closed():
                        raise ConnectionError("the connection was closed")
                    try:
                        await asyncio.wait_for(wake.wait(), PING_INTERVAL)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=10)
                await self._next(conn)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def _next(self, conn: Any) -> None:
        """Handle the oldest notification; it leaves the backlog only once handled."""
        payload = self._notes[0]
        self.received += 1
        try:
            depth = self.gateway.settings.limits.max_json_depth
            note = jsonsafe.loads(payload, depth, "the notification payload")
        except BadRequest as exc:
            self._reject(exc.message, payload)
        else:
            await self._handle(conn, note, payload)
        self._notes.popleft()

    async def _catch_up(self, conn: Any) -> None:
        caught = 0
        cursor = self.last_id
        while True:
            rows = await conn.fetch(self.settings.catchup_query, cursor, timeout=30)
            before = cursor
            for row in rows:
                note = dict(row)
                await self._handle(conn, note, note)
                caught += 1
                # The query returns rows in id order; a row it returned exists, so even a
                # rejected one is passed.
                cursor = note.get(self.settings.id_field, cursor)
            if not rows or cursor == before:
                break
        self._advance(cursor)
        if caught:
            log.info("postgres bridge caught up %d row(s) after reconnecting", caught)

    async def _handle(self, conn: Any, note: object, raw: object) -> None:
        try:
            request = await self.request(conn, note)
            await self._publish(request, None)
        except Rejected as exc:
            # The cursor stays: a notification naming a bogus id must not skip real rows.
            self._reject(str(exc), raw)
            return
        if isinstance(note, dict):
            self._advance(note[self.settings.id_field])

    def _advance(self, event_id: Any) -> None:
        last = self.last_id
        if last is None or not isinstance(event_id, type(last)):
            self.last_id = event_id
            return
        with contextlib.suppress(TypeError):
            if event_id > last:
                self.last_id = event_id

    async def request(self, conn: Any, note: object) -> PublishRequest:
        """The publish request for one notification, reading its row through ``conn``.

        Raises:
            Rejected: the notification or its row cannot become an event.
        """
        settings = self.settings
        if not isinstance(note, dict):
            raise Rejected("notification is not a JSON object")
        event_id = note.get(settings.id_field)
        if event_id is None or isinstance(event_id, dict | list | bool):
            raise Rejected(f"notification has no usable {shown(settings.id_field)}")
        try:
            channel = settings.target.format_map(_Strict(note))
        except (KeyError, ValueError, IndexError) as exc:
            raise Rejected(f"cannot fill target {shown(settings.target)}: {exc}") from exc
        try:
            row = await conn.fetchrow(settings.query, event_id, timeout=30)
        except asyncpg.PostgresError as exc:
            if conn.is_closed():
                raise  # the connection, not the query: reconnect and try this one again
            raise Rejected(f"the query failed: {exc}") from exc
        if row is None:
            raise Rejected(f"no row for {settings.id_field} {shown(event_id)}")
        data = row_data(row, self.gateway.settings.limits.max_json_depth)
        kind = data.get(settings.kind_field) if isinstance(data, dict) else None
        if not isinstance(kind, str):
            kind = note.get(settings.kind_field)
        if not isinstance(kind, str):
            raise Rejected(
                f"neither the row nor the notification has a {shown(settings.kind_field)}"
            )
        text = _json_text(row)
        try:
            # A JSON column is published as stored; other rows are encoded here.
            payload = (
                text.encode() if text is not None else orjson.dumps(data, default=json_default)
            )
        except TypeError as exc:
            raise Rejected(f"row is not JSON serialisable: {exc}") from exc
        return PublishRequest(channel, kind, payload, idempotency_key=str(event_id))


class _Strict(dict[str, Any]):
    """``format_map`` source that refuses missing fields instead of guessing."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def _json_text(row: Mapping[str, Any]) -> str | None:
    """The row's only column when it is JSON text (``json``/``jsonb``, or text)."""
    values = list(row.values())
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def row_data(row: Mapping[str, Any], max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH) -> Any:
    """An event's data from a polled row: its single JSON column, else the whole row.

    Raises:
        Rejected: the row's single text column is not JSON, or past the JSON limits.
    """
    text = _json_text(row)
    if text is not None:
        try:
            return jsonsafe.loads(text, max_depth, "the query's single column")
        except BadRequest as exc:
            raise Rejected(exc.message) from exc
    values = list(row.values())
    if len(values) == 1 and isinstance(values[0], dict | list):
        return values[0]
    return dict(row)


# -- lifecycle -----------------------------------------------------------------------------


class Bridges:
    """The bridges configured in the gateway's settings, run while the context is open.

    ``async with Bridges(gateway, notifications):`` starts each configured bridge and waits (up to
    :data:`START_WAIT` seconds each) for its first subscription, so a node that reports
    ready is already listening. A bridge that cannot connect does not stop the node: it
    keeps retrying in the background. Leaving the context stops them.
    """

    def __init__(self, gateway: Gateway, notifications: NotificationsService | None = None) -> None:
        self.gateway = gateway
        config = gateway.settings.bridges
        self.bridges: list[Bridge] = []
        if config.redis is not None:
            self.bridges.append(RedisBridge(gateway, config.redis, notifications))
        if config.postgres is not None:
            self.bridges.append(PostgresBridge(gateway, config.postgres))
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        for bridge in self.bridges:
            self.gateway.metrics.add_source(bridge.counts)
            self._tasks.append(asyncio.create_task(bridge.run(), name=f"bridge-{bridge.kind}"))
        waits: list[Awaitable[Any]] = [
            asyncio.wait_for(b.started.wait(), START_WAIT) for b in self.bridges
        ]
        for bridge, outcome in zip(
            self.bridges, await asyncio.gather(*waits, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, TimeoutError):
                log.warning("%s bridge is not connected yet; it keeps retrying", bridge.kind)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
