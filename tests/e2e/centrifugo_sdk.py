"""The real ``centrifuge`` npm SDK, under Node (with ``ws``) or in Chromium, under remote
control: the test sends commands, the SDK's events and the calls' outcomes come back as
dicts (see ``js/centrifugo/driver.cjs``). Both runners offer the same synchronous methods,
so one scenario runs on both. Also: the server the SDK tests share, and :class:`Recorder`,
which keeps what ``centrifuge-python`` reports."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from centrifuge import (
    ClientEventHandler,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from tests import support
from tests.support import ServerProcess, running_server, timeout

from .sseclient import write_config

JS_DIR = Path(__file__).parent / "js" / "centrifugo"
Event = dict[str, Any]

# The server the SDK tests share: a namespace with a short history (trimmed quickly), for
# recoveries that cannot be made.
CONFIG = """
[server]
trim_interval = 0.2

[namespaces.short]
history_size = 3
subscribe = "public"
"""
_ids = itertools.count(1)


def fresh(namespace: str) -> str:
    """A channel of ``namespace`` that no other test uses."""
    return f"{namespace}:sdk-{next(_ids)}"


@contextlib.contextmanager
def shared_server(tmp: Path) -> Iterator[ServerProcess]:
    with running_server(tmp, config=write_config(tmp, CONFIG)) as server:
        yield server


def node_or_skip() -> str:
    return support.node_or_skip(JS_DIR, "centrifuge", "the Centrifugo SDK tests")


def ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/connection/websocket"


class Sdk:
    """What the scenarios use; a runner provides :meth:`_send` and :meth:`_snapshot`."""

    name = "sdk"

    def __init__(self) -> None:
        self._refs = itertools.count(1)

    def _send(self, command: dict[str, Any]) -> None:
        raise NotImplementedError

    def _snapshot(self) -> list[Event]:
        raise NotImplementedError

    def do(self, op: str, **fields: Any) -> None:
        self._send({"op": op, **fields})

    def connect(self, server: ServerProcess, token: str | None = None, **fields: Any) -> None:
        self.do("connect", url=ws_url(server), token=token, **fields)

    def call(self, op: str, seconds: float = 10.0, **fields: Any) -> Event:
        """Run ``op`` and return its outcome: ``{"ok": …}`` or ``{"error": {code, …}}``."""
        ref = next(self._refs)
        self._send({"op": op, "ref": ref, **fields})
        return self.wait(lambda e: e.get("reply") == ref or e.get("ref") == ref, seconds)

    @property
    def events(self) -> list[Event]:
        return self._snapshot()

    def wait(self, match: Callable[[Event], bool], seconds: float = 10.0, start: int = 0) -> Event:
        """The first event (from index ``start``) that ``match`` accepts."""
        deadline = time.monotonic() + timeout(seconds)
        while True:
            events = self._snapshot()
            for event in events[start:]:
                if match(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no matching event in {events[-12:]}")
            time.sleep(0.02)

    def wait_event(self, kind: str, seconds: float = 10.0, start: int = 0, **fields: Any) -> Event:
        return self.wait(
            lambda e: e.get("event") == kind and all(e.get(k) == v for k, v in fields.items()),
            seconds,
            start,
        )

    def count(self, kind: str, **fields: Any) -> int:
        return sum(
            1
            for e in self._snapshot()
            if e.get("event") == kind and all(e.get(k) == v for k, v in fields.items())
        )

    def publications(self, channel: str) -> list[Event]:
        return [
            e
            for e in self._snapshot()
            if e.get("event") == "publication" and e.get("channel") == channel
        ]

    def wait_publications(self, channel: str, count: int, seconds: float = 20.0) -> list[Event]:
        deadline = time.monotonic() + timeout(seconds)
        while len(pubs := self.publications(channel)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {len(pubs)} of {count} publications; last events "
                    f"{self._snapshot()[-8:]}"
                )
            time.sleep(0.02)
        return pubs


class NodeSdk(Sdk):
    name = "node"

    def __init__(self, node: str) -> None:
        super().__init__()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [node, "node.mjs"],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_event("ready")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                doc = {"event": "stderr", "text": line.decode(errors="replace")}
            with self._lock:
                self._events.append(doc)

    def _send(self, command: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(command) + b"\n")
        self._proc.stdin.flush()

    def _snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout(5))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout(5))
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class BrowserSdk(Sdk):
    """The SDK's browser bundle in a Chromium page opened on the server's own origin."""

    name = "chromium"

    def __init__(self, page: Any, server: ServerProcess) -> None:
        super().__init__()
        self.page = page
        page.goto(server.url + "/healthz")
        page.add_script_tag(
            path=str(JS_DIR / "node_modules" / "centrifuge" / "dist" / "centrifuge.js")
        )
        page.add_script_tag(path=str(JS_DIR / "driver.cjs"))
        page.evaluate(
            "() => { window.events = [];"
            " window.driver = createDriver(Centrifuge, {}, (e) => window.events.push(e)); }"
        )

    def _send(self, command: dict[str, Any]) -> None:
        self.page.evaluate("(c) => window.driver.handle(c)", command)

    def _snapshot(self) -> list[Event]:
        events: list[Event] = self.page.evaluate("() => window.events")
        return events


@contextlib.contextmanager
def node_sdk() -> Iterator[NodeSdk]:
    sdk = NodeSdk(node_or_skip())
    try:
        yield sdk
    finally:
        sdk.close()


class Recorder(ClientEventHandler, SubscriptionEventHandler):  # type: ignore[misc]
    """Every event the SDK reports, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def _add(self, kind: str, ctx: Any) -> None:
        async with self._changed:
            self.events.append((kind, ctx))
            self._changed.notify_all()

    async def on_connected(self, ctx: Any) -> None:
        await self._add("connected", ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        await self._add("disconnected", ctx)

    async def on_error(self, ctx: ErrorContext) -> None:
        await self._add("error", ctx)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        await self._add("subscribed", ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        await self._add("unsubscribed", ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self._add("publication", ctx)

    def of(self, kind: str) -> list[Any]:
        return [ctx for k, ctx in self.events if k == kind]

    async def wait(self, kind: str, count: int = 1, seconds: float = 10.0) -> list[Any]:
        async with asyncio.timeout(timeout(seconds)), self._changed:
            await self._changed.wait_for(lambda: len(self.of(kind)) >= count)
        return self.of(kind)
