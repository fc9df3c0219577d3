"""``croupier bench storm`` and ``croupier bench connect``: the client side of each run.

The clients live in one or two worker processes (:mod:`.stormclient`, at most
:data:`PER_PROCESS` clients each: a process may hold 20,000 open files), started on the
client core. This process drives them, publishes over HTTP and reads the server's CPU time
from ``/proc`` around each measured step.

* **storm**: N clients subscribe (each with its own token) and learn their positions; all
  are cut off at once; K events are published on their channels; all reconnect at once
  with ``since`` and are back when every missed event arrived exactly once, in order,
  after a ``recovered`` subscribe. The Node reference runs the same steps with bare
  connections that the server greets with K messages.
* **connect**: server CPU per new connection, for each kind of connection in turn.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from picows import WSListener, WSMsgType, ws_connect

from .clients import TICK
from .httpclient import connect, post_request
from .node import NodeReference
from .procstat import cpu_split, listen_overflows
from .server import API_KEY, SECRET, BenchServer, ServerProcess

__all__ = ["CONNECT_KINDS", "PER_PROCESS", "run_connect", "run_storm"]

PER_PROCESS = 9_000
_WARM_UP = 500


def _settle(clients: int) -> float:
    """Seconds for a server to finish with a step (presence, cleanup) before the next."""
    return min(2.0, 0.3 + clients / 5000)


# (name, worker kind, with a token, subscribed, subscribed in the connect URL)
CONNECT_KINDS: dict[str, tuple[str, bool, bool, bool]] = {
    "node-bare": ("node", False, False, False),
    # The Python floor (croupier.bench.floor): a bare upgrade, and one with a token and a channel.
    "floor-bare": ("node", False, False, False),
    "floor-token-url": ("ws", True, True, True),
    "ws-bare": ("ws", False, False, False),
    "ws-token": ("ws", True, False, False),
    "ws-token-subscribe": ("ws", True, True, False),
    "ws-token-url": ("ws", True, True, True),
    "sse-token-channel": ("sse", True, True, False),
}


class Workers:
    """The client processes; each command goes to every one, and their replies are summed."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Workers:
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "croupier.bench.stormclient",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.procs.append(proc)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.write(b'{"cmd":"exit"}\n')
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def call(self, commands: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Send ``commands[i]`` to worker ``i`` (all at once); the replies, summed."""

        async def one(proc: asyncio.subprocess.Process, command: dict[str, Any]) -> Any:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(orjson.dumps(command) + b"\n")
            await proc.stdin.drain()
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError("a client process exited")
            return orjson.loads(line)

        replies = await asyncio.gather(
            *(one(p, c) for p, c in zip(self.procs, commands, strict=True))
        )
        total: dict[str, Any] = {}
        for reply in replies:
            for key, value in reply.items():
                if isinstance(value, dict):
                    into = total.setdefault(key, {})
                    for k, v in value.items():
                        into[k] = into.get(k, 0) + v
                elif key in ("seconds", "half_back_s"):
                    total[key] = max(total.get(key, 0.0), value)
                else:
                    total[key] = total.get(key, 0) + value
        return total

    def split(self, clients: int, **command: Any) -> list[dict[str, Any]]:
        """One ``open`` command per worker, the clients shared out."""
        share = math.ceil(clients / self.count)
        out = []
        for i in range(self.count):
            first = i * share
            out.append({**command, "first": first, "clients": max(0, min(share, clients - first))})
        return out


def processes_for(clients: int, wanted: int = 0) -> int:
    return wanted or max(1, math.ceil(clients / PER_PROCESS))


async def _publish(port: int, channels: list[str], per_channel: int) -> dict[str, int]:
    """Publish ``per_channel`` ticks on each channel; return each channel's last offset."""
    conn = await connect(port)
    last: dict[str, int] = {}
    events: list[tuple[str, dict[str, Any]]] = [
        (c, {"channel": c, "type": TICK, "data": {"t": time.time(), "m": True, "i": i}})
        for i in range(per_channel)
        for c in channels
    ]
    try:
        for at in range(0, len(events), 1000):
            chunk = events[at : at + 1000]
            body = orjson.dumps({"events": [event for _, event in chunk]})
            status, reply = await conn.request(post_request("/api/v1/batch", body, API_KEY))
            if status != 200:
                raise RuntimeError(f"the batch publish failed: {status} {reply[:300]!r}")
            for (channel, _), result in zip(chunk, orjson.loads(reply)["results"], strict=True):
                last[channel] = max(last.get(channel, 0), result["offset"])
    finally:
        conn.close()
    return last


def _mark(pid: int) -> tuple[float, float, int]:
    """What :func:`_figures` measures from: the server's CPU and the host's accept drops."""
    return (*cpu_split(pid), listen_overflows())


def _figures(
    name: str, pid: int, before: tuple[float, float, int], reply: dict[str, Any], per: int
) -> dict[str, Any]:
    user, system = cpu_split(pid)
    user, system = user - before[0], system - before[1]
    return {
        "listen_overflows": listen_overflows() - before[2],
        "server": name,
        "server_cpu_s": user + system,
        "server_user_s": user,
        "server_sys_s": system,
        "server_cpu_us_per_client": (user + system) / per * 1e6 if per else float("nan"),
        **{k: v for k, v in reply.items() if k not in ("reasons", "seconds")},
        "reasons": ", ".join(f"{k}: {v}" for k, v in sorted(reply.get("reasons", {}).items()))
        or "-",
    }


async def run_storm(
    server: BenchServer,
    *,
    clients: int,
    missed: int,
    channels: int,
    processes: int,
    timeout: float,  # noqa: ASYNC109 - handed to the client processes
    in_url: bool = False,
) -> dict[str, Any]:
    """The storm against Croupier: subscribe, cut off, publish ``missed``, resume at once
    (with a ``subscribe`` message, or in the connect URL with ``in_url``)."""
    names = [f"table:storm-{time.monotonic_ns()}-{i}" for i in range(channels)]
    await _publish(server.port, names, 1)  # a position to subscribe at
    url = f"ws://127.0.0.1:{server.port}"
    async with Workers(processes_for(clients, processes)) as workers:
        opened = await workers.call(
            workers.split(
                clients,
                cmd="open",
                kind="ws",
                url=url,
                token=True,
                subscribe=True,
                in_url=in_url,
                secret=SECRET,
                channels=names,
                tag="storm",
                concurrency=200 // workers.count,
                timeout=timeout,
            )
        )
        if opened["failed"]:
            raise RuntimeError(f"the clients could not all subscribe: {opened}")
        await asyncio.sleep(_settle(clients))
        await workers.call([{"cmd": "drop"}] * workers.count)
        await asyncio.sleep(_settle(clients))
        targets = await _publish(server.port, names, missed)
        await asyncio.sleep(0.5)
        before = _mark(server.pid)
        started = time.perf_counter()
        reply = await workers.call(
            [{"cmd": "storm", "targets": targets, "timeout": timeout}] * workers.count
        )
        wall = time.perf_counter() - started
        result = _figures("croupier", server.pid, before, reply, clients)
    return {
        "bench": "storm",
        "clients": clients,
        "missed": missed,
        "channels": channels,
        "resume": "url" if in_url else "message",
        "client_processes": workers.count,
        "all_back_s": reply["seconds"] if not reply["failed"] else wall,
        **result,
    }


class _Greeter(WSListener):
    pass


async def run_storm_node(
    node: NodeReference,
    *,
    clients: int,
    missed: int,
    processes: int,
    timeout: float,  # noqa: ASYNC109
) -> dict[str, Any]:
    """The same storm against the Node reference: bare connections greeted with the events."""
    url = f"ws://127.0.0.1:{node.port}"
    async with Workers(processes_for(clients, processes)) as workers:
        opened = await workers.call(
            workers.split(
                clients, cmd="open", kind="node", url=url, concurrency=200 // workers.count
            )
        )
        if opened["failed"]:
            raise RuntimeError(f"the clients could not all connect to Node: {opened}")
        await asyncio.sleep(_settle(clients))
        await workers.call([{"cmd": "drop"}] * workers.count)
        # What a Croupier client receives for each missed event, as the greeting.
        greeting = [
            orjson.dumps(
                {
                    "type": TICK,
                    "channel": "table:storm",
                    "offset": i + 2,
                    "ts": "2026-01-01T00:00:00.000Z",
                    "data": {"t": time.time(), "m": True, "i": i},
                }
            ).decode()
            for i in range(missed)
        ]
        transport, _ = await ws_connect(_Greeter, url + "/")
        transport.send(WSMsgType.TEXT, orjson.dumps({"op": "greet", "messages": greeting}))
        transport.disconnect()
        await asyncio.sleep(_settle(clients))
        before = _mark(node.pid)
        started = time.perf_counter()
        reply = await workers.call(
            [{"cmd": "storm", "expect": missed, "timeout": timeout}] * workers.count
        )
        wall = time.perf_counter() - started
        result = _figures(node.name, node.pid, before, reply, clients)
    return {
        "bench": "storm",
        "clients": clients,
        "missed": missed,
        "channels": 0,
        "client_processes": workers.count,
        "all_back_s": reply["seconds"] if not reply["failed"] else wall,
        **result,
    }


async def run_connect(
    target: ServerProcess,
    kind: str,
    *,
    clients: int,
    processes: int,
    concurrency: int,
    timeout: float,  # noqa: ASYNC109 - handed to the client processes
) -> dict[str, Any]:
    """Server CPU per connection of ``kind`` (a key of :data:`CONNECT_KINDS`)."""
    worker_kind, token, subscribe, in_url = CONNECT_KINDS[kind]
    channel = f"table:connect-{time.monotonic_ns()}"
    name = target.name
    async with Workers(processes_for(clients, processes)) as workers:

        def opening(count: int) -> list[dict[str, Any]]:
            return workers.split(
                count,
                cmd="open",
                kind=worker_kind,
                url=f"ws://127.0.0.1:{target.port}",
                token=token,
                subscribe=subscribe,
                in_url=in_url,
                secret=SECRET,
                channels=[channel],
                tag=f"{kind}-{time.monotonic_ns()}-",
                concurrency=max(1, concurrency // workers.count),
                timeout=timeout,
            )

        # A warm-up round, not measured: each server's first connections also pay for
        # code being loaded and compiled (Node's JIT, Python's first imports).
        await workers.call(opening(min(clients, _WARM_UP)))
        await workers.call([{"cmd": "drop"}] * workers.count)
        await asyncio.sleep(_settle(clients))
        before = _mark(target.pid)
        started = time.perf_counter()
        reply = await workers.call(opening(clients))
        wall = time.perf_counter() - started
        await asyncio.sleep(0.5)  # work the server finishes after the last greeting
        result = _figures(name, target.pid, before, reply, clients)
        await workers.call([{"cmd": "drop"}] * workers.count)
        await asyncio.sleep(_settle(clients))
    return {
        "bench": "connect",
        "kind": kind,
        "clients": clients,
        "connects_per_s": clients / wall if wall else 0.0,
        **result,
    }
