"""Benchmark subscribers: WebSocket (picows: native, Pusher or Centrifugo protocol) and SSE (a raw
asyncio stream reader).

Every subscriber of a run reports to one :class:`Tally`, which checks each subscriber's
offsets for gaps and repeats and records publish→receive latency from the ``t`` timestamp the
publisher put in each event's data. All subscribers receive the same bytes for one event, so
the tally decodes each distinct message once and looks the rest up.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from typing import Any, cast

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport

__all__ = [
    "TICK",
    "CentrifugoSubscriber",
    "PusherSubscriber",
    "SseSubscriber",
    "Subscriber",
    "Tally",
    "WsSubscriber",
]

TICK = "bench.tick"
_CACHE_MAX = 512
_Tick = tuple[int, float, bool]  # offset, publish time, in the measured window


class Subscriber:
    """What the tally keeps per connection."""

    __slots__ = ("failed", "last", "ready")

    def __init__(self) -> None:
        self.last: int | None = None  # the last offset received (or the subscribe position)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failed: str | None = None

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))


class Tally:
    """Deliveries, gaps, repeats and latencies over every subscriber of one run."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.deliveries = 0  # measured deliveries
        self.received = 0  # every tick received, warm-up included
        self.lost = 0
        self.duplicates = 0
        self.disconnects = 0
        self.expected = -1  # measured deliveries that complete the run
        self.done = asyncio.Event()
        self._cache: dict[bytes, _Tick] = {}  # ticks only

    def message(self, sub: Subscriber, raw: bytes, offset: int | None = None) -> None:
        """Take one message; ``offset`` overrides the one in the JSON (SSE ``id:``)."""
        tick = self._cache.get(raw)
        if tick is None:
            tick = self._decode(sub, raw, offset)
        if tick is not None:
            self.tick(sub, tick)

    def _decode(self, sub: Subscriber, raw: bytes, offset: int | None) -> _Tick | None:
        doc: Any = orjson.loads(raw)
        if isinstance(doc, dict) and "event" in doc:
            return self._decode_pusher(sub, raw, doc)
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == TICK:
            data = doc["data"]
            return self._remember(raw, (offset or doc["offset"], data["t"], data["m"]))
        if kind == "subscribed":
            position = doc.get("position") or {}
            if sub.last is None:
                sub.last = position.get("offset")
            if not sub.ready.done():
                sub.ready.set_result(None)
        elif kind == "connected" and "timestamp" in doc:  # the SSE greeting
            if not sub.ready.done():
                sub.ready.set_result(None)
        elif kind == "disconnect":
            self.disconnects += 1
        elif kind in ("error", "reset"):
            sub.fail(f"{kind}: {raw[:200]!r}")
        return None

    def _remember(self, raw: bytes, tick: _Tick) -> _Tick:
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[raw] = tick
        return tick

    def _decode_pusher(self, sub: Subscriber, raw: bytes, doc: dict[str, Any]) -> _Tick | None:
        """A Pusher protocol message: its events carry no offset, so the publisher's index
        (``i``, from 0 on a fresh channel) stands for it."""
        kind = doc["event"]
        if kind == TICK:
            data = orjson.loads(doc["data"])
            return self._remember(raw, (data["i"] + 1, data["t"], data["m"]))
        if kind == "pusher_internal:subscription_succeeded":
            if sub.last is None:
                sub.last = 0
            if not sub.ready.done():
                sub.ready.set_result(None)
        elif kind == "pusher:error":
            sub.fail(f"pusher:error {doc.get('data')!r}"[:200])
        return None

    def centrifugo(self, sub: Subscriber, raw: bytes) -> None:
        """Take one frame of Centrifugo's protocol (replies and pushes, one per line)."""
        tick = self._cache.get(raw)
        if tick is None:
            tick = self._decode_centrifugo(sub, raw)
        if tick is not None:
            self.tick(sub, tick)

    def _decode_centrifugo(self, sub: Subscriber, raw: bytes) -> _Tick | None:
        for line in raw.split(b"\n"):
            doc: Any = orjson.loads(line)
            push = doc.get("push")
            if push is not None:
                pub = push.get("pub")
                if pub is not None and (pub.get("tags") or {}).get("type") == TICK:
                    data = pub["data"]
                    return self._remember(raw, (pub["offset"], data["t"], data["m"]))
            elif "subscribe" in doc:
                if sub.last is None:
                    sub.last = doc["subscribe"].get("offset", 0)
                if not sub.ready.done():
                    sub.ready.set_result(None)
            elif "error" in doc:
                sub.fail(f"error: {line[:200]!r}")
        return None

    def tick(self, sub: Subscriber, tick: _Tick) -> None:
        offset, sent, measured = tick
        last = sub.last
        if last is not None:
            if offset <= last:
                self.duplicates += 1
                return
            if offset != last + 1:
                self.lost += offset - last - 1
        sub.last = offset
        self.received += 1
        if measured:
            self.latencies.append(time.time() - sent)
            self.deliveries += 1
            if self.deliveries == self.expected:
                self.done.set()

    def finish(self, subscribers: list[Subscriber], final: int) -> None:
        """Count what each subscriber is still missing once ``final`` was the last offset."""
        for sub in subscribers:
            if sub.last is None:
                self.lost += final
            elif sub.last < final:
                self.lost += final - sub.last


class WsSubscriber(WSListener):
    """A picows client that subscribes to one channel once connected."""

    def __init__(self, tally: Tally, subscribe: bytes) -> None:
        super().__init__()
        self.tally = tally
        self.sub = Subscriber()
        self.subscribe = subscribe
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(WSMsgType.TEXT, self.subscribe)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.tally.message(self.sub, frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            self.sub.fail("closed by the server")
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.sub.fail("disconnected")


class PusherSubscriber(WsSubscriber):
    """A picows client of ``/app/{key}``: subscribes once the connection is established."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport  # the subscribe waits for pusher:connection_established

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT and not self.sub.ready.done():
            payload = frame.get_payload_as_bytes()
            if b"pusher:connection_established" in payload:
                transport.send(WSMsgType.TEXT, self.subscribe)
                return
        super().on_ws_frame(transport, frame)


class CentrifugoSubscriber(WsSubscriber):
    """A picows client of ``/connection/websocket``: sends connect and subscribe in one
    frame, as the SDKs do, and answers the server's pings."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            raw = frame.get_payload_as_bytes()
            if raw == b"{}":
                transport.send(WSMsgType.TEXT, b"{}")  # pong
            else:
                self.tally.centrifugo(self.sub, raw)
        elif frame.msg_type is WSMsgType.CLOSE:
            self.sub.fail("closed by the server")
            transport.disconnect()


class SseSubscriber(asyncio.Protocol):
    """``GET /sse?channel=…&token=…`` read as a raw stream: ``id:``/``data:`` messages."""

    def __init__(self, tally: Tally, request: bytes) -> None:
        self.tally = tally
        self.sub = Subscriber()
        self.request = request
        self.transport: asyncio.Transport | None = None
        self._head: bytearray | None = bytearray()
        self._chunked = False
        self._raw = bytearray()  # undecoded chunked body
        self._text = bytearray()  # event-stream text not yet split into messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sub.fail("disconnected")

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._head[:end]).lower()
            data = bytes(self._head[end + 4 :])
            self._head = None
            if head[9:12] != b"200":
                self.sub.fail(f"HTTP {head[9:12].decode()}: {data[:200]!r}")
                return
            self._chunked = b"transfer-encoding: chunked" in head
            at = head.find(b"croupier-last-event-id:")
            if at >= 0:
                value = head[at + 23 :].split(b"\r\n", 1)[0].strip()
                if value.isdigit():
                    self.sub.last = int(value)
        if self._chunked:
            self._dechunk(data)
        else:
            self._text += data
        self._messages()

    def _dechunk(self, data: bytes) -> None:
        raw = self._raw
        raw += data
        while True:
            line = raw.find(b"\r\n")
            if line < 0:
                return
            size = int(raw[:line].split(b";", 1)[0], 16)
            if len(raw) < line + 2 + size + 2:
                return
            self._text += raw[line + 2 : line + 2 + size]
            del raw[: line + 2 + size + 2]

    def _messages(self) -> None:
        text = self._text
        while True:
            end = text.find(b"\n\n")
            if end < 0:
                return
            block = bytes(text[:end])
            del text[: end + 2]
            offset = None
            data = b""
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data = line[5:].lstrip()
                elif line.startswith(b"id:"):
                    value = line[3:].strip()
                    offset = int(value) if value.isdigit() else None
            if data:
                self.tally.message(self.sub, data, offset)
