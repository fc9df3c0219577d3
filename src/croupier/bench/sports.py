"""``croupier bench sports``: many viewers on one match, reactions, and a score update a second.

This process holds every viewer: a picows WebSocket on ``/ws`` per viewer, each with its own
player token, subscribed to ``match:bench``. Some viewers (at most :data:`REACTORS`) publish
``reaction`` events, spread so the total is ``--reactions`` per second; a backend posts one
cricket ball a second over HTTP.

* **Score delivery**: the ball's comment carries the wall-clock time it was posted; the
  latency is the time each viewer got its ``score.updated``.
* **Summary delivery**: a ``reactions.summary`` says which window it covers; its latency is
  the time a viewer got it minus the window's start, the wait of the oldest reaction in it
  (so the 1 s window is included).
* **Sums**: the totals of the summaries one viewer got must equal the reactions the server
  accepted (answered ``published``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from datetime import datetime
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .fanout import _percentile
from .httpclient import HttpConnection, connect, post_request
from .procstat import cpu_split
from .server import API_KEY, BenchServer

__all__ = ["REACTORS", "SERVER_CONFIG", "run_sports"]

EVENT = "bench"
CHANNEL = f"match:{EVENT}"
REACTORS = 500
_CONNECT_AT_ONCE = 200
_EMOJIS = ("🔥", "👏", "😱", "🎉", "💯")
# Each reactor sends about rate/REACTORS a second: within the per-connection limit.
SERVER_CONFIG = """
[namespaces.match.client_publish.reaction]
max_bytes = 512
rate = 20
burst = 40
"""


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class _Tally:
    """What every viewer received, decoding each distinct message once."""

    def __init__(self) -> None:
        self.score_latencies = array("d")
        self.summary_latencies = array("d")
        self.scores = 0
        self.first_totals: dict[str, int] = {}  # one viewer's summaries: window -> total
        self.accepted = 0
        self.refused = 0
        self.counts: list[int] = []
        self.measuring = False
        self._cache: dict[bytes, tuple[str, Any]] = {}

    def message(self, viewer: _Viewer, raw: bytes) -> None:
        now = time.time()
        known = self._cache.get(raw)
        if known is None:
            known = self._decode(viewer, raw)
            if known is None:
                return
        kind, value = known
        if kind == "score.updated":
            if self.measuring and value is not None:
                self.score_latencies.append(now - value)
                self.scores += 1
        elif kind == "reactions.summary":
            start, total, key = value
            if self.measuring:
                self.summary_latencies.append(now - start)
            if viewer.index == 0:
                self.first_totals[key] = total

    def _decode(self, viewer: _Viewer, raw: bytes) -> tuple[str, Any] | None:
        doc: Any = orjson.loads(raw)
        kind = doc.get("type")
        if kind == "score.updated":
            comment = doc["data"]["update"].get("comment", "")
            sent = float(comment[2:]) if comment.startswith("t=") else None
            known: tuple[str, Any] = (kind, sent)
        elif kind == "reactions.summary":
            data = doc["data"]
            key = f"{data['window']['start']}/{data['window']['end']}/{doc['ts']}"
            known = (kind, (_seconds(data["window"]["start"]), data["total"], key))
        else:
            if kind == "subscribed" and not viewer.ready.done():
                viewer.ready.set_result(None)
            elif kind == "published":
                self.accepted += 1
            elif kind == "error":
                if doc.get("code") == "rate_limited":
                    self.refused += 1
                elif not viewer.ready.done():
                    viewer.ready.set_exception(ConnectionError(raw[:200].decode()))
            elif kind == "viewers.count" and viewer.index == 0:
                self.counts.append(doc["data"]["viewers"])
            return None
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[raw] = known
        return known


class _Viewer(WSListener):
    def __init__(self, tally: _Tally, index: int) -> None:
        super().__init__()
        self.tally = tally
        self.index = index
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: WSTransport | None = None
        self.sent = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(
            WSMsgType.TEXT, orjson.dumps({"type": "subscribe", "channel": CHANNEL, "id": 0})
        )

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.tally.message(self, frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected"))

    def react(self) -> None:
        if self.transport is None:
            return
        self.sent += 1
        emoji = _EMOJIS[self.sent % len(_EMOJIS)]
        data: dict[str, Any] = {"emoji": emoji}
        if self.sent % 10 == 0:
            data["comment"] = f"viewer {self.index} says hi"
        self.transport.send(
            WSMsgType.TEXT,
            orjson.dumps(
                {
                    "type": "publish",
                    "channel": CHANNEL,
                    "event": "reaction",
                    "data": data,
                    "id": self.sent,
                }
            ),
        )


async def _post(conn: HttpConnection, path: str, body: Any) -> Any:
    status, reply = await conn.request(post_request(path, orjson.dumps(body), API_KEY))
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {reply[:300]!r}")
    return orjson.loads(reply)


async def _open(server: BenchServer, count: int, tally: _Tally) -> list[_Viewer]:
    gate = asyncio.Semaphore(_CONNECT_AT_ONCE)
    viewers: list[_Viewer] = []

    async def one(index: int) -> None:
        url = f"ws://127.0.0.1:{server.port}/ws?token={server.token(f'viewer{index}')}"
        async with gate:
            _, listener = await ws_connect(
                lambda: _Viewer(tally, index),
                url,
                read_buffer_init_size=2048,
                websocket_handshake_timeout=30,
            )
            assert isinstance(listener, _Viewer)
            viewers.append(listener)
            await asyncio.wait_for(listener.ready, 30)

    await asyncio.gather(*(one(i) for i in range(count)))
    viewers.sort(key=lambda v: v.index)
    return viewers


async def _react(reactors: list[_Viewer], rate: float, until: float) -> int:
    """Send ``rate`` reactions a second, round robin over ``reactors``, until ``until``."""
    loop = asyncio.get_running_loop()
    sent = 0
    start = loop.time()
    while loop.time() < until:
        due = int((loop.time() - start) * rate)
        while sent < due:
            reactors[sent % len(reactors)].react()
            sent += 1
        await asyncio.sleep(0.005)
    return sent


async def _bowl(conn: HttpConnection, first: int, until: float) -> int:
    """Post a ball a second (each carrying its send time) until ``until``; return the count."""
    loop = asyncio.get_running_loop()
    n = first
    while loop.time() < until:
        n += 1
        await _post(
            conn,
            f"/api/v1/sports/events/{EVENT}/updates",
            {"ball": n, "score": f"{n}/0", "comment": f"t={time.time():.6f}"},
        )
        await asyncio.sleep(1.0)
    return n - first


async def run_sports(
    server: BenchServer,
    *,
    viewers: int,
    reactions: float,
    duration: float,
    warmup: float = 3.0,
) -> dict[str, Any]:
    """``viewers`` on one match for ``warmup + duration`` s with reactions and a ball a second."""
    loop = asyncio.get_running_loop()
    conn = await connect(server.port)
    await _post(
        conn,
        "/api/v1/sports/events",
        {"id": EVENT, "sport": "cricket", "title": "Bench XI v Load XI", "competitors": ["A", "B"]},
    )
    await _post(conn, f"/api/v1/sports/events/{EVENT}/status", {"status": "live"})
    tally = _Tally()
    started = time.perf_counter()
    opened = await _open(server, viewers, tally)
    connect_s = time.perf_counter() - started
    reactors = opened[: min(REACTORS, len(opened))]
    end = loop.time() + warmup + duration
    marks: dict[str, float] = {}

    async def measure() -> None:
        await asyncio.sleep(warmup)
        marks["user"], marks["sys"] = cpu_split(server.pid)
        marks["wall"] = time.perf_counter()
        marks["accepted"] = tally.accepted
        tally.measuring = True

    sent, balls, _ = await asyncio.gather(
        _react(reactors, reactions, end), _bowl(conn, 0, end), measure()
    )
    user, system = cpu_split(server.pid)
    wall = time.perf_counter() - marks["wall"]
    tally.measuring = False
    cpu = user - marks["user"] + system - marks["sys"]
    measured_reactions = tally.accepted - marks["accepted"]
    # The last reactions' summary, and the answers still on their way.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while sum(tally.first_totals.values()) < tally.accepted:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    viewer_count = orjson.loads(
        (
            await conn.request(
                f"GET /api/v1/sports/events/{EVENT}/viewers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {API_KEY}\r\n\r\n".encode()
            )
        )[1]
    )
    conn.close()
    for viewer in opened:
        if viewer.transport is not None:
            viewer.transport.disconnect(graceful=False)
    scores = sorted(tally.score_latencies)
    summaries = sorted(tally.summary_latencies)
    return {
        "bench": "sports",
        "viewers": viewers,
        "reactors": len(reactors),
        "reactions_per_s": round(measured_reactions / wall, 1) if wall else 0.0,
        "duration": duration,
        "connect_s": connect_s,
        "server_cpu_percent": cpu / wall * 100 if wall else float("nan"),
        "server_cpu_s": cpu,
        "score_updates": balls,
        "score_deliveries": tally.scores,
        "score_p50_ms": _percentile(scores, 0.50) * 1000,
        "score_p99_ms": _percentile(scores, 0.99) * 1000,
        "summary_deliveries": len(summaries),
        "summary_p50_ms": _percentile(summaries, 0.50) * 1000,
        "summary_p99_ms": _percentile(summaries, 0.99) * 1000,
        "reactions_sent": sent,
        "reactions_accepted": tally.accepted,
        "reactions_refused": tally.refused,
        "reactions_summarised": sum(tally.first_totals.values()),
        "viewers_counted": viewer_count["viewers"],
        "viewers_peak": viewer_count["peak"],
    }
