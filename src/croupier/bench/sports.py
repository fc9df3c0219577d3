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

The latencies are read by a few *probe* viewers in a separate process, connected last (so
the server writes to them last in each fan-out): the process holding the other viewers is
busy draining thousands of sockets at the moment each event arrives, and its own receive
times measure that client more than the server. Its figures are reported too, as
``load_client_*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from array import array
from datetime import datetime
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .httpclient import HttpConnection, connect, post_request
from .measures import percentile
from .procstat import cpu_split
from .server import API_KEY, SECRET, BenchServer

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


async def _open(port: int, count: int, tally: _Tally, prefix: str = "viewer") -> list[_Viewer]:
    from ..auth import mint_token

    gate = asyncio.Semaphore(_CONNECT_AT_ONCE)
    viewers: list[_Viewer] = []

    async def one(index: int) -> None:
        token = mint_token(SECRET, f"{prefix}{index}", brand="1001", ttl=3600)
        url = f"ws://127.0.0.1:{port}/ws?token={token}"
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


async def _react(reactors: list[_Viewer] | list[_NoReactor], rate: float, until: float) -> int:
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


async def _bowl(conn: HttpConnection, first: int, until: float, answers: list[float]) -> int:
    """Post a ball a second (each carrying its send time) until ``until``; return the count.

    ``answers`` gets the seconds each post took to be answered.
    """
    loop = asyncio.get_running_loop()
    n = first
    while loop.time() < until:
        n += 1
        sent = loop.time()
        await _post(
            conn,
            f"/api/v1/sports/events/{EVENT}/updates",
            {"ball": n, "score": f"{n}/0", "comment": f"t={time.time():.6f}"},
        )
        answers.append(loop.time() - sent)
        await asyncio.sleep(max(0.0, sent + 1.0 - loop.time()))
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
    probes = max(1, min(50, viewers // 10))
    started = time.perf_counter()
    opened = await _open(server.port, viewers - probes, tally) if viewers > probes else []
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "croupier.bench.sports",
        str(server.port),
        str(probes),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    stdin, stdout = probe.stdin, probe.stdout
    assert stdin is not None
    assert stdout is not None
    if await stdout.readline() != b"ready\n":
        raise RuntimeError("the probe viewers could not connect")
    connect_s = time.perf_counter() - started
    reactors: list[_Viewer] | list[_NoReactor] = opened[:REACTORS] or [_NoReactor()]
    end = loop.time() + warmup + duration
    marks: dict[str, float] = {}
    posts: list[float] = []

    async def measure() -> None:
        await asyncio.sleep(warmup)
        marks["user"], marks["sys"] = cpu_split(server.pid)
        marks["wall"] = time.perf_counter()
        marks["accepted"] = tally.accepted
        tally.measuring = True
        stdin.write(b"measure\n")

    sent, balls, _ = await asyncio.gather(
        _react(reactors, reactions, end), _bowl(conn, 0, end, posts), measure()
    )
    user, system = cpu_split(server.pid)
    wall = time.perf_counter() - marks["wall"]
    tally.measuring = False
    stdin.write(b"stop\n")
    await stdin.drain()
    probed = orjson.loads(await stdout.readline())
    await probe.wait()
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
    scores = sorted(probed["scores"])
    summaries = sorted(probed["summaries"])
    load_scores = sorted(tally.score_latencies)
    load_summaries = sorted(tally.summary_latencies)
    return {
        "bench": "sports",
        "viewers": viewers,
        "reactors": len(opened[:REACTORS]),
        "reactions_per_s": round(measured_reactions / wall, 1) if wall else 0.0,
        "duration": duration,
        "connect_s": connect_s,
        "server_cpu_percent": cpu / wall * 100 if wall else float("nan"),
        "server_cpu_s": cpu,
        "probe_viewers": probes,
        "score_updates": balls,
        "score_deliveries": tally.scores + len(scores),
        "score_p50_ms": percentile(scores, 0.50) * 1000,
        "score_p99_ms": percentile(scores, 0.99) * 1000,
        "score_post_answer_p50_ms": percentile(sorted(posts), 0.50) * 1000,
        "summary_deliveries": len(summaries) + len(load_summaries),
        "summary_p50_ms": percentile(summaries, 0.50) * 1000,
        "summary_p99_ms": percentile(summaries, 0.99) * 1000,
        "load_client_score_p99_ms": percentile(load_scores, 0.99) * 1000,
        "load_client_summary_p99_ms": percentile(load_summaries, 0.99) * 1000,
        "reactions_sent": sent,
        "reactions_accepted": tally.accepted,
        "reactions_refused": tally.refused,
        "reactions_summarised": sum(tally.first_totals.values()),
        "viewers_counted": viewer_count["viewers"],
        "viewers_peak": viewer_count["peak"],
    }


class _NoReactor:
    """Stands in when every viewer is a probe (a run with one viewer): nobody reacts."""

    def react(self) -> None:
        pass


async def _probe(port: int, count: int) -> None:
    """The probe process: ``count`` viewers; measures between ``measure`` and ``stop``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tally = _Tally()
    viewers = await _open(port, count, tally, prefix="probe")
    print("ready", flush=True)
    while (line := await reader.readline()) not in (b"stop\n", b""):
        if line == b"measure\n":
            tally.measuring = True
    print(
        orjson.dumps(
            {"scores": list(tally.score_latencies), "summaries": list(tally.summary_latencies)}
        ).decode(),
        flush=True,
    )
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.disconnect(graceful=False)


if __name__ == "__main__":
    import uvloop

    uvloop.run(_probe(int(sys.argv[1]), int(sys.argv[2])))
