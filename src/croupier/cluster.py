"""Questions and notices between gateway nodes, carried by the broker.

The broker already reaches every node, so the nodes talk over it on two reserved channels
whose names no client can subscribe to (a client channel cannot contain ``!``):

* :data:`CONTROL`, which every node listens to: each node says it is alive every
  :data:`ANNOUNCE_EVERY` seconds (and whether a console watches its live log), and asks
  and answers questions (a player's connections, disconnect them, a channel's subscribers).
* :data:`LOG`, which only nodes with a live-log watcher listen to: the other nodes forward
  their records there in batches while a watcher's lease lasts.

An answer comes from every node that knows it is alive; :meth:`Cluster.ask` waits for the
nodes heard from lately, and no longer than its ``wait``. With the local broker the only
node is this one, and it answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import orjson

from .brokers.base import Broker
from .debuglog import DebugLog, Record
from .errors import Unavailable
from .events import Event
from .hub import Hub
from .logs import now_ts
from .tasks import Background

__all__ = ["ANNOUNCE_EVERY", "CONTROL", "LOG", "Cluster", "NodeAnswer"]

log = logging.getLogger(__name__)

CONTROL = "!croupier.control"
LOG = "!croupier.log"
ANNOUNCE_EVERY = 5.0
LEASE = 3 * ANNOUNCE_EVERY  # a node not heard from for this long is gone

# What a node answers: a JSON-serialisable value, or an awaitable of one.
Answer = Callable[[dict[str, Any]], Any]
NodeAnswer = tuple[str, Any]  # (node, its answer)


class Cluster:
    """This node's side of the talk between nodes. Use as ``async with cluster:``."""

    def __init__(self, node: str, hub: Hub, broker: Broker, debug: DebugLog) -> None:
        self.node = node
        self._hub = hub
        self._broker = broker
        self._debug = debug
        self._answers: dict[str, Answer] = {}
        self._waiting: dict[str, tuple[list[NodeAnswer], asyncio.Event]] = {}
        self._peers: dict[str, float] = {}  # node -> when last heard (monotonic)
        self._background = Background()  # messages to the other nodes, log taps, answers
        self._beat: asyncio.Task[None] | None = None
        self._log_tapped = False

    async def __aenter__(self) -> Self:
        await self._hub.tap(CONTROL, self._on_control)
        self._debug.connect(self._forward, self._watchers_changed)
        self._beat = asyncio.ensure_future(self._announce_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._debug.close()
        await self._background.close(self._beat)

    def answer(self, op: str, handler: Answer) -> None:
        """Answer the question ``op`` on this node with ``handler(body)``."""
        self._answers[op] = handler

    @property
    def peers(self) -> list[str]:
        """The nodes heard from lately, this one included."""
        now = time.monotonic()
        alive = {n for n, seen in self._peers.items() if now - seen < LEASE}
        return sorted(alive | {self.node})

    async def ask(self, op: str, body: dict[str, Any], *, wait: float = 2.0) -> list[NodeAnswer]:
        """Ask every node; return ``(node, answer)`` from each that answered within ``wait``
        seconds (this node first). A node whose handler failed answers ``None``.

        Raises:
            Unavailable: the broker could not carry the question.
        """
        ask_id = secrets.token_hex(8)
        expected = set(self.peers)
        got: list[NodeAnswer] = []
        done = asyncio.Event()
        self._waiting[ask_id] = (got, done)
        try:
            await self._send("ask", {"id": ask_id, "op": op, "body": body})
            deadline = asyncio.get_running_loop().time() + wait
            while not expected <= {node for node, _ in got}:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                done.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await done.wait()
        finally:
            del self._waiting[ask_id]
        got.sort(key=lambda pair: (pair[0] != self.node, pair[0]))
        return got

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, kind: str, doc: dict[str, Any], channel: str = CONTROL) -> None:
        doc["from"] = self.node
        await self._broker.publish([Event(channel, kind, orjson.dumps(doc), now_ts())])

    def _send_soon(self, kind: str, doc: dict[str, Any], channel: str = CONTROL) -> None:
        self._background.spawn(self._send_quietly(kind, doc, channel))

    async def _send_quietly(self, kind: str, doc: dict[str, Any], channel: str) -> None:
        try:
            await self._send(kind, doc, channel)
        except Unavailable as exc:
            log.warning("could not tell the other nodes (%s): %s", kind, exc)

    def _say_alive(self) -> None:
        """Tell every node this one is here, and whether a console watches its live log."""
        self._send_soon("alive", {"watching": self._debug.watchers > 0})

    async def _announce_forever(self) -> None:
        while True:
            self._say_alive()
            await asyncio.sleep(ANNOUNCE_EVERY)

    # -- the live log ----------------------------------------------------------------------

    def _forward(self, records: list[Record]) -> None:
        self._send_soon("log", {"records": records}, LOG)

    def _watchers_changed(self, watching: bool) -> None:
        self._say_alive()
        self._background.spawn(self._tap_log(watching))

    async def _tap_log(self, watching: bool) -> None:
        if watching and not self._log_tapped:
            self._log_tapped = True
            try:
                await self._hub.tap(LOG, self._on_log)
            except Unavailable as exc:
                self._log_tapped = False
                log.warning("cannot hear other nodes' live log: %s", exc)
        elif not watching and self._log_tapped and self._debug.watchers == 0:
            self._log_tapped = False
            await self._hub.untap(LOG)

    def _on_log(self, event: Event) -> None:
        try:
            records = orjson.loads(event.payload)["records"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        self._debug.received(records)

    # -- receiving -------------------------------------------------------------------------

    def _on_control(self, event: Event) -> None:
        try:
            doc = orjson.loads(event.payload)
            sender = doc["from"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed node message: %.200r", event.payload)
            return
        now = time.monotonic()
        if sender != self.node and now - self._peers.get(sender, -LEASE) >= LEASE:
            # A node new to this one (or back) may have started after this one's last word:
            # answer at once, so it need not wait an announce period to know this one is here.
            self._say_alive()
        self._peers[sender] = now
        kind = event.type
        if kind == "alive":
            self._debug.remote_lease(sender, LEASE if doc.get("watching") else 0)
        elif kind == "ask":
            self._background.spawn(self._answer(doc))
        elif kind == "reply":
            waiting = self._waiting.get(doc.get("to", ""))
            if waiting is not None:
                waiting[0].append((sender, doc.get("answer")))
                waiting[1].set()

    async def _answer(self, doc: dict[str, Any]) -> None:
        handler = self._answers.get(doc.get("op", ""))
        if handler is None:
            return  # a node that does not know the question does not answer it
        try:
            answer = handler(doc.get("body") or {})
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception:
            log.exception("answering %s failed", doc.get("op"))
            answer = None
        await self._send_quietly("reply", {"to": doc.get("id"), "answer": answer}, CONTROL)
