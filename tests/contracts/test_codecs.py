"""One contract suite over every codec of the connection core.

The same scenarios run through each wire protocol on the real connection core, gateway, hub
and memory log, with a recording transport instead of a socket: a live event arrives once
after the subscription; a resume replays what was missed, in order; a resume history cannot
cover tells the client to reload; a refused request is answered and the connection stays; a
subscriber is in presence (where the protocol's clients are players) and leaves it when the
socket goes; a server close says why, after what was queued, with the protocol's own code.

Adding a protocol: write a :class:`Driver` for it (how it connects and subscribes, and how
its output reads as neutral records) and add it to ``DRIVERS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import pytest

from croupier.config import Limits, PusherApp, PusherChannelRule, Settings
from croupier.core.channels import Claims
from croupier.core.commands import Since, Subscribe
from croupier.events import Position
from croupier.gateway import Gateway, PublishRequest
from croupier.services.rooms.engine import Room
from croupier.services.rooms.socket import RoomCodec
from croupier.services.sports.events_ws import EventsCodec
from croupier.services.tournaments.listener import ALL_GROUPS, ListenerCodec
from croupier.transports.centrifugo import WIRE as CENTRIFUGO_WIRE
from croupier.transports.centrifugo import CentrifugoCodec
from croupier.transports.centrifugo import encode_event as encode_centrifugo
from croupier.transports.codec import BaseCodec
from croupier.transports.compat import CASINO, POKER, encode_casino, encode_poker
from croupier.transports.connection import Connection
from croupier.transports.native import NativeCodec
from croupier.transports.pusher import WIRE as PUSHER_WIRE
from croupier.transports.pusher import PusherCodec, pusher_endpoint
from croupier.transports.sse import NATIVE, SseCodec, Want, close_sse, encode_sse
from croupier.transports.websocket import close_websocket
from tests.e2e.wsclient import server_frames
from tests.unit.fake_transport import FakeTransport

PLAYER = Claims("p1", brand="1001", name="Ann")
TYPE = "player.score.updated"  # a type every protocol shows (and the listener's groups hold)

Record = tuple[Any, ...]


def _ws_docs(transport: FakeTransport) -> tuple[list[dict[str, Any]], int | None]:
    frames = server_frames(bytes(transport.data))
    docs = [orjson.loads(p) for op, p in frames if op == 1]
    closes = [p for op, p in frames if op == 8]
    return docs, int.from_bytes(closes[0][:2], "big") if closes else None


def _sse_messages(transport: FakeTransport) -> list[tuple[str | None, str | None, str | None]]:
    """(id, data, comment) of each message in an event stream."""
    out = []
    for block in bytes(transport.data).decode().split("\n\n"):
        ident = data = note = None
        for line in block.split("\n"):
            if line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line.startswith(": "):
                note = line[2:]
        if ident or data or note:
            out.append((ident, data, note))
    return out


class Driver:
    """How one protocol connects, subscribes and reads, for the contract scenarios."""

    name: ClassVar[str]
    namespace: ClassVar[str] = "tournament"
    resumes: ClassVar[bool] = True
    in_presence: ClassVar[bool] = True
    close_codes: ClassVar[bool] = True  # a WebSocket: the close frame carries a code
    backend: ClassVar[bool] = False  # a backend listener: hears events meant for one player

    def channel(self, tag: str) -> str:
        return f"{self.namespace}:{tag}"

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        raise NotImplementedError

    async def connect(
        self, gateway: Gateway, channel: str, since: Position | None = None
    ) -> tuple[Connection, FakeTransport]:
        """A player's connection, subscribed to ``channel`` (from ``since``)."""
        transport = FakeTransport()
        codec = self.codec(gateway, channel, since)
        conn = Connection(gateway, codec, PLAYER, close_websocket, transport=transport)  # type: ignore[arg-type]
        conn.open()
        await self.subscribe(conn, channel, since)
        await settle()
        return conn, transport

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        message: dict[str, Any] = {"type": "subscribe", "channel": channel, "id": 1}
        if since is not None:
            message["since"] = since.as_dict()
        conn.receive(orjson.dumps(message))

    def refuse(self, conn: Connection) -> None:
        """Ask for something this player may not have."""
        conn.receive(orjson.dumps({"type": "subscribe", "channel": "player:1001:someone-else"}))

    def records(self, transport: FakeTransport) -> list[Record]:
        docs, code = _ws_docs(transport)
        out: list[Record] = []
        for doc in docs:
            kind = doc.get("type")
            if kind in ("subscribed", "joined"):
                out.append(("subscribed", doc.get("recovered")))
            elif kind == "error":
                out.append(("error", doc["code"]))
            elif kind == "disconnect":
                out.append(("disconnect", doc["code"]))
            elif kind == "reset":
                out.append(("reset",))
            elif "offset" in doc:
                out.append(("event", kind, doc["offset"]))
        if code is not None:
            out.append(("close", code))
        return out


class NativeDriver(Driver):
    name = "native"

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        return NativeCodec(gateway.settings)


class RoomDriver(Driver):
    name = "room"
    namespace = "room"

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        room = Room(id=channel[5:], game="nim", players=("p1", "p2"))
        return RoomCodec(gateway.settings, room, "p1", None, 0 if since is None else since.offset)

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        """The URL names the room: the codec's opening subscribed it."""


class SportsDriver(Driver):
    name = "sports"
    namespace = "match"

    class _Book:
        def count(self, event_id: str) -> int:
            return 1

    class _Service:
        """What the codec asks of the sports service when a join is answered."""

        def __init__(self) -> None:
            self.book = SportsDriver._Book()

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        codec = EventsCodec(gateway.settings, self._Service(), PLAYER)  # type: ignore[arg-type]
        codec.start = None  # no sporting event behind these channels: no snapshot
        return codec

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        join: dict[str, Any] = {"id": "p1", "eventId": channel[6:]}
        if since is not None:
            join["since"] = since.as_dict()
        conn.receive(orjson.dumps(join))


class ListenerDriver(Driver):
    name = "tournament-listener"
    in_presence = False  # a backend, not a player
    backend = True

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        return ListenerCodec(gateway.settings, channel)

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        message: dict[str, Any] = {"type": "subscribe", "events": sorted(ALL_GROUPS), "id": 1}
        if since is not None:
            message["since"] = since.as_dict()
        conn.receive(orjson.dumps(message))

    def refuse(self, conn: Connection) -> None:
        conn.receive(orjson.dumps({"type": "subscribe", "events": ["no.such.group"]}))


class SseDriver(Driver):
    """An event stream: subscribed as it opens, before its headers; no client messages."""

    name = "sse"
    dialect = NATIVE
    close_codes = False

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        rules = gateway.settings.rules_for(channel.split(":", 1)[0])
        assert rules is not None
        resume = None if since is None else Since(since.offset, since.epoch)
        return SseCodec(gateway.settings, self.dialect, [Want(channel, rules, resume)])

    async def connect(
        self, gateway: Gateway, channel: str, since: Position | None = None
    ) -> tuple[Connection, FakeTransport]:
        codec = self.codec(gateway, channel, since)
        conn = Connection(gateway, codec, PLAYER, close_sse, reads=False, kind="sse")
        conn.open()
        await conn.run_opening()
        transport = FakeTransport()
        conn.attach(transport, b"")  # type: ignore[arg-type]
        await settle()
        return conn, transport

    def refuse(self, conn: Connection) -> None:
        """A stream's channels are its URL's: a refusal is a stream of a forbidden one."""
        codec = conn.codec
        assert isinstance(codec, SseCodec)
        for outcome in conn.session.handle(Subscribe("player:1001:someone-else"), 0.0):
            conn.send(codec.encode(outcome))  # type: ignore[arg-type]

    kind_field = "type"  # the member naming what a message is
    event_field = "type"  # the member naming an event's kind
    noted_disconnects = False  # whether a disconnect comes as an SSE comment

    def failure(self, doc: dict[str, Any]) -> Record | None:
        """The error or disconnect ``doc`` reports, or None when it is neither."""
        kind = doc.get("type")
        if kind in ("error", "disconnect"):
            return (kind, doc["code"])
        return None

    def records(self, transport: FakeTransport) -> list[Record]:
        out: list[Record] = []
        for ident, data, note in _sse_messages(transport):
            if self.noted_disconnects and note is not None and note.startswith("disconnect "):
                out.append(("disconnect", note.split(" ", 1)[1]))
            if data is None:
                continue
            doc = orjson.loads(data)
            failure = self.failure(doc)
            if failure is not None:
                out.append(failure)
            elif doc.get(self.kind_field) == "reset":
                out.append(("reset",))
            elif ident is not None:
                out.append(("event", doc[self.event_field], int(ident)))
        return out


class PokerDriver(SseDriver):
    name = "sse.poker"
    namespace = "table"
    dialect = POKER
    kind_field = event_field = "kind"
    noted_disconnects = True

    def failure(self, doc: dict[str, Any]) -> Record | None:
        return ("error", doc["code"]) if doc.get("kind") == "error" else None


class CasinoDriver(SseDriver):
    name = "sse.casino"
    namespace = "player"
    in_presence = False  # the namespace keeps no presence
    dialect = CASINO

    def channel(self, tag: str) -> str:
        return "player:1001:p1"  # the token's own stream

    event_field = "event_type"

    def failure(self, doc: dict[str, Any]) -> Record | None:
        if doc.get("type") != "error":
            return None
        message: str = doc["message"]
        if message.startswith("disconnected: "):
            return ("disconnect", message[14:].split(";")[0])
        return ("error", message)


class PusherDriver(Driver):
    """Pusher's protocol: the public Pusher channel ``t-{tag}`` is ``tournament:{tag}``.

    Pusher has no resume (its clients start at the live edge) and its events carry no
    offset: the published ``n`` stands for it (1, 2, 3 … on a fresh channel).
    """

    name = "pusher"
    resumes = False
    APP = PusherApp("1", "key", "secret", channels=(PusherChannelRule("t-", "tournament"),))

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        settings = gateway.settings.with_overrides(pusher_apps=(self.APP,))
        gateway.hub.add_wire(PUSHER_WIRE, pusher_endpoint(settings).wires[PUSHER_WIRE])
        return PusherCodec(gateway.settings, self.APP)

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        name = "t-" + channel.split(":", 1)[1]
        conn.receive(orjson.dumps({"event": "pusher:subscribe", "data": {"channel": name}}))

    def refuse(self, conn: Connection) -> None:
        """A private channel without the backend's signature."""
        message = {"event": "pusher:subscribe", "data": {"channel": "private-t-x"}}
        conn.receive(orjson.dumps(message))

    def records(self, transport: FakeTransport) -> list[Record]:
        docs, code = _ws_docs(transport)
        out: list[Record] = []
        for i, doc in enumerate(docs):
            kind = doc["event"]
            if kind == "pusher_internal:subscription_succeeded":
                out.append(("subscribed", None))
            elif kind == "pusher:error" and code is not None and i == len(docs) - 1:
                out.append(("disconnect", doc["data"]["message"]))  # the last words
            elif kind in ("pusher:error", "pusher:subscription_error"):
                out.append(("error", kind))
            elif kind == TYPE:
                out.append(("event", kind, orjson.loads(doc["data"])["n"]))
        if code is not None:
            out.append(("close", code))
        return out


class CentrifugoDriver(Driver):
    """Centrifugo's client protocol: connect and subscribe in one frame, as its SDKs send
    them; recovered publications come inside the subscribe reply; a close frame alone says
    why the server closed (its reason text is the protocol's)."""

    name = "centrifugo"
    REASONS: ClassVar[dict[str, str]] = {
        "shutdown": "shutdown",
        "slow": "slow_consumer",
        "no pong": "idle_timeout",
        "connection expired": "token_expired",
    }

    def codec(self, gateway: Gateway, channel: str, since: Position | None) -> BaseCodec:
        gateway.hub.add_wire(CENTRIFUGO_WIRE, encode_centrifugo)
        return CentrifugoCodec(gateway.settings, gateway.auth.verify_token)

    async def subscribe(self, conn: Connection, channel: str, since: Position | None) -> None:
        subscribe: dict[str, Any] = {"channel": channel}
        if since is not None:
            subscribe.update(recover=True, offset=since.offset, epoch=since.epoch)
        frame = [{"id": 1, "connect": {}}, {"id": 2, "subscribe": subscribe}]
        conn.receive(b"\n".join(orjson.dumps(command) for command in frame))

    def refuse(self, conn: Connection) -> None:
        conn.receive(orjson.dumps({"id": 9, "subscribe": {"channel": "player:1001:someone-else"}}))

    def records(self, transport: FakeTransport) -> list[Record]:
        frames = server_frames(bytes(transport.data))
        out: list[Record] = []
        for op, payload in frames:
            if op == 8:
                reason = payload[2:].decode()
                out.append(("disconnect", self.REASONS.get(reason, reason)))
                out.append(("close", int.from_bytes(payload[:2], "big")))
                continue
            for line in payload.split(b"\n"):
                doc = orjson.loads(line)
                if "subscribe" in doc:
                    out.append(("subscribed", doc["subscribe"].get("recovered", False)))
                    for pub in doc["subscribe"].get("publications", ()):
                        out.append(("event", pub["tags"]["type"], pub["offset"]))
                elif "error" in doc:
                    out.append(("error", doc["error"]["code"]))
                elif "pub" in doc.get("push", {}):
                    pub = doc["push"]["pub"]
                    if "offset" in pub:
                        out.append(("event", pub["tags"]["type"], pub["offset"]))
        return out


DRIVERS = [
    NativeDriver(),
    RoomDriver(),
    SportsDriver(),
    ListenerDriver(),
    SseDriver(),
    PokerDriver(),
    CasinoDriver(),
    PusherDriver(),
    CentrifugoDriver(),
]


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


@dataclass
class World:
    gateway: Gateway
    driver: Driver
    tags: int = 0

    def fresh(self) -> str:
        self.tags += 1
        return self.driver.channel(f"c{self.tags}")

    async def burst(self, channel: str, numbers: range) -> None:
        """Several events published at once: they reach the hub in one loop turn."""
        await self.gateway.publish_many(
            [PublishRequest(channel, TYPE, orjson.dumps({"kind": TYPE, "n": n})) for n in numbers]
        )

    async def publish(self, channel: str, n: int) -> Position:
        result = await self.gateway.publish_json(channel, TYPE, {"kind": TYPE, "n": n})
        position = result.event.position
        assert position is not None
        return position


# The protocols whose clients resume (Pusher's do not): the resume tests run on these.
RESUMING = [d for d in DRIVERS if d.resumes]
on_resuming_protocols = pytest.mark.parametrize(
    "world", RESUMING, ids=[d.name for d in RESUMING], indirect=True
)


@pytest.fixture(params=DRIVERS, ids=[d.name for d in DRIVERS])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    settings = Settings(database_url="memory://", limits=Limits(outbox_messages=4))
    async with Gateway(settings) as gateway:
        hub = gateway.hub
        hub.add_wire("sse", encode_sse)
        hub.add_wire(POKER.wire, encode_poker)
        hub.add_wire(CASINO.wire, encode_casino)
        yield World(gateway, request.param)


def events(records: list[Record]) -> list[int]:
    return [r[2] for r in records if r[0] == "event" and r[1] == TYPE]


async def test_a_live_event_arrives_once_after_the_subscription(world: World) -> None:
    channel = world.fresh()
    conn, transport = await world.driver.connect(world.gateway, channel)
    await world.publish(channel, 1)
    await settle()
    records = world.driver.records(transport)
    assert events(records) == [1]
    subscribed = [i for i, r in enumerate(records) if r[0] == "subscribed"]
    assert all(i < records.index(("event", TYPE, 1)) for i in subscribed)
    assert not [r for r in records if r[0] in ("error", "reset", "disconnect")]
    assert not conn.closed


async def test_an_event_for_one_player_reaches_that_player_and_backends_only(
    world: World,
) -> None:
    channel = world.fresh()
    _, transport = await world.driver.connect(world.gateway, channel)
    for player in ("1001/p2", PLAYER.player, "p1"):  # another player; this one; no brand
        data = {"kind": TYPE, "n": 0, "to": f"only-{player}"}
        request = PublishRequest(channel, TYPE, orjson.dumps(data), only=player)
        assert (await world.gateway.publish(request)).event.offset is None  # never stored
    await world.publish(channel, 1)
    await settle()
    sent = bytes(transport.data)
    assert [n for n in events(world.driver.records(transport)) if n] == [1]  # n 0: Pusher's
    assert b"only-1001/p1" in sent
    assert (b"only-1001/p2" in sent) is world.driver.backend
    assert (b"only-p1" in sent) is world.driver.backend


@on_resuming_protocols
async def test_a_resume_replays_what_was_missed_in_order(world: World) -> None:
    channel = world.fresh()
    first = await world.publish(channel, 1)
    await world.publish(channel, 2)
    await world.publish(channel, 3)
    _, transport = await world.driver.connect(world.gateway, channel, since=first)
    await world.publish(channel, 4)
    await settle()
    records = world.driver.records(transport)
    assert events(records) == [2, 3, 4]
    assert ("subscribed", False) not in records
    assert ("reset",) not in records


@on_resuming_protocols
async def test_a_resume_history_cannot_cover_says_reload(world: World) -> None:
    channel = world.fresh()
    await world.publish(channel, 1)
    # Another epoch, and ahead of the channel (for a protocol that sends no epoch).
    stale = Position(50, "another-epoch")
    _, transport = await world.driver.connect(world.gateway, channel, since=stale)
    records = world.driver.records(transport)
    assert events(records) == []
    assert ("subscribed", False) in records or ("reset",) in records


async def test_a_refusal_is_answered_and_the_connection_stays(world: World) -> None:
    channel = world.fresh()
    conn, transport = await world.driver.connect(world.gateway, channel)
    world.driver.refuse(conn)
    await settle()
    records = world.driver.records(transport)
    assert [r for r in records if r[0] == "error"], records
    assert not conn.closed
    await world.publish(channel, 1)
    await settle()
    assert events(world.driver.records(transport)) == [1]


async def test_presence_holds_a_player_while_connected(world: World) -> None:
    channel = world.fresh()
    conn, _ = await world.driver.connect(world.gateway, channel)
    presence = world.gateway.presence
    expected = 1 if world.driver.in_presence else 0
    assert await presence.count(channel) == expected
    conn.lost()
    await settle()
    assert await presence.count(channel) == 0
    assert world.gateway.hub.subscribers(channel) == 0
    assert conn not in world.gateway.connections


async def test_a_server_close_says_why_after_what_was_queued(world: World) -> None:
    channel = world.fresh()
    conn, transport = await world.driver.connect(world.gateway, channel)
    await world.publish(channel, 1)
    await settle()
    conn.disconnect("shutdown", reconnect=True)
    await world.publish(channel, 2)  # after the close: never written
    await settle()
    records = world.driver.records(transport)
    assert events(records) == [1]
    tail = [r for r in records if r[0] in ("disconnect", "close")]
    assert tail[0] == ("disconnect", "shutdown")
    if world.driver.close_codes:
        assert tail[-1] == ("close", conn.codec.close_code("shutdown"))
    assert transport.eof


async def test_a_slow_consumer_is_cut_by_the_same_bound(world: World) -> None:
    channel = world.fresh()
    conn, transport = await world.driver.connect(world.gateway, channel)
    transport.buffered = 1  # the client stopped reading
    for n in range(10):
        await world.publish(channel, n)
    await settle()
    assert conn.closed
    assert world.gateway.metrics.slow_consumers == 1
    records = world.driver.records(transport)
    assert ("disconnect", "slow_consumer") in records
    assert len(events(records)) <= world.gateway.settings.limits.outbox_messages
    if world.driver.close_codes:
        assert records[-1] == ("close", conn.codec.close_code("slow_consumer"))


async def test_a_burst_arrives_complete_in_order_and_in_one_write(world: World) -> None:
    channel = world.fresh()
    _, transport = await world.driver.connect(world.gateway, channel)
    before = len(transport.writes)
    await world.burst(channel, range(1, 6))
    await settle()
    assert events(world.driver.records(transport)) == [1, 2, 3, 4, 5]
    assert len(transport.writes) == before + 1  # one write per connection per turn


@on_resuming_protocols
async def test_a_resume_racing_a_burst_gets_each_event_once_in_order(world: World) -> None:
    # The burst lands at a different point of the resume each time: before it reads the
    # log, while it reads, as it settles, after.
    for turns in (0, 1, 2, 3, 5, 8):
        channel = world.fresh()  # one channel for every round on a player's own stream
        base = (await world.gateway.log.position(channel)).offset  # n is the event's offset
        first = await world.publish(channel, base + 1)
        await world.burst(channel, range(base + 2, base + 6))
        resume = asyncio.ensure_future(world.driver.connect(world.gateway, channel, since=first))
        for _ in range(turns):
            await asyncio.sleep(0)
        await world.burst(channel, range(base + 6, base + 16))
        _, transport = await resume
        await world.burst(channel, range(base + 16, base + 21))
        await settle()
        got = events(world.driver.records(transport))
        assert got == list(range(base + 2, base + 21)), turns


async def test_a_slow_consumer_under_bursts_is_cut_by_the_same_bound(world: World) -> None:
    channel = world.fresh()
    conn, transport = await world.driver.connect(world.gateway, channel)
    transport.buffered = 1  # the client stopped reading
    await world.burst(channel, range(1, 11))
    await settle()
    assert conn.closed
    assert world.gateway.metrics.slow_consumers == 1
    records = world.driver.records(transport)
    assert events(records) == list(range(1, 1 + len(events(records))))
    assert len(events(records)) <= world.gateway.settings.limits.outbox_messages
    assert ("disconnect", "slow_consumer") in records
