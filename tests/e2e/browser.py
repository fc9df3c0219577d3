"""Helpers for the Chromium tests: launching Debian's Chromium, a publisher, static pages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest

from tests.support import API_KEY, IN_CI, ServerProcess, free_port, timeout

CHROMIUM = os.environ.get("CROUPIER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Loads the SDK (from the page's origin) and follows `channels` with `options` (`refresh`
# names a function of the page that gives a fresh token), recording every event, state
# change, reset, subscription and refusal.
FOLLOW = """
async ([channels, token, options]) => {
  const { Client } = await import("/sdk/croupier.js");
  window.got = {};
  window.states = [];
  window.resets = [];
  window.subscribed = [];
  window.errors = [];
  const { refresh, ...rest } = options;
  if (refresh) rest.refreshToken = () => window[refresh]();
  const client = new Client({ token, backoff: { initial: 200, max: 2000 }, ...rest });
  window.client = client;
  client.on("state", (s) => window.states.push([s.state, s.transport || client.transport]));
  for (const channel of channels) {
    window.got[channel] = [];
    const sub = client.subscribe(channel);
    sub.on("t.tick", (data, e) => window.got[channel].push([data.n, e.offset]));
    sub.on("reset", (r) => window.resets.push([channel, r.recovered, r.position]));
    sub.on("subscribed", (s) => window.subscribed.push([channel, s.recovered, s.resumed]));
    sub.on("error", (e) => window.errors.push([channel, e.code]));
  }
}
"""


def chromium_or_skip() -> None:
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (install the chromium package)"
    if missing is not None:
        if IN_CI:
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's sync API)."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for(page: Any, expression: str, seconds: float, arg: Any = None) -> None:
    page.wait_for_function(expression, arg=arg, timeout=timeout(seconds) * 1000)


def publish(server: ServerProcess, channel: str, type: str, data: Any, **extra: Any) -> Any:
    body = {"channel": channel, "type": type, "data": data, **extra}
    r = httpx.post(
        server.url + "/api/v1/publish",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=timeout(10),
    )
    assert r.status_code == 200, r.text
    return r.json()


class Publisher(threading.Thread):
    """Publishes ``total`` events ``{"n": 1…total}`` on each of ``channels`` in order,
    retrying each until the server takes it (idempotency keys make a retry safe)."""

    def __init__(
        self, server: ServerProcess, channels: list[str], total: int, interval: float = 0.02
    ) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.server = server
        self.channels = channels
        self.total = total
        self.sent = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=timeout(5)) as client:
                for n in range(1, self.total + 1):
                    for channel in self.channels:
                        self._publish(client, channel, n)
                    self.sent = n
                    time.sleep(self.interval)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _publish(self, client: httpx.Client, channel: str, n: int) -> None:
        body = {"channel": channel, "type": "t.tick", "data": {"n": n}, "idempotency_key": f"n{n}"}
        deadline = time.monotonic() + timeout(30)
        while not self.stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                r = client.post(
                    self.server.url + "/api/v1/publish",
                    content=orjson.dumps(body),
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                if r.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not publish event {n} on {channel}")
            time.sleep(0.05)


class Pages:
    """A static web server on a loopback port: ``pages[path] = html`` and JSON handlers.

    A subclass answers other requests by overriding :meth:`get` and :meth:`post`, and adds
    ``headers`` to every answer."""

    headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.port = free_port()
        self.pages: dict[str, str] = {}
        self.posts: dict[str, Callable[[Any], Any]] = {}
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(pages.get(self.path.split("?")[0]))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(pages.post(self.path, self.rfile.read(length)))

            def _answer(self, answer: tuple[int, str, bytes] | None) -> None:
                if answer is None:
                    self.send_error(404)
                    return
                status, media, body = answer
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                for name, value in pages.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def get(self, path: str) -> tuple[int, str, bytes] | None:
        """The answer to ``GET path`` (status, media type, body); None: 404."""
        page = self.pages.get(path)
        if page is None:
            return None
        return 200, "text/html; charset=utf-8", page.encode()

    def post(self, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        """The answer to ``POST path`` with ``body``; None: 404."""
        handler = self.posts.get(path)
        if handler is None:
            return None
        return 200, "application/json", orjson.dumps(handler(orjson.loads(body or b"null")))

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class LoopbackProxy(threading.Thread):
    """A loopback TCP proxy to ``target_port`` running its own event loop in a thread; a
    subclass says what to do with each client in :meth:`_client`."""

    def __init__(self, target_port: int) -> None:
        super().__init__(daemon=True)
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def _head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The request head, or None (and the client closed) when there is none."""
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return None

    async def _pass(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tap: Callable[[bytes], None] | None = None,
    ) -> None:
        """Send ``head`` and then everything else both ways; ``tap`` sees what the client
        sends after the head."""
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        up_writer.write(head)

        async def pipe(
            src: asyncio.StreamReader,
            dst: asyncio.StreamWriter,
            tap: Callable[[bytes], None] | None = None,
        ) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    if tap is not None:
                        tap(data)
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, tap), pipe(up_reader, writer))

    def __enter__(self) -> Self:
        self.start()
        self.ready.wait(timeout(10))
        return self

    def __exit__(self, *exc: object) -> None:
        def shut() -> None:
            if self._server is not None:
                self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shut)
        self.join(timeout(10))


class NoUpgradeProxy(LoopbackProxy):
    """A loopback HTTP proxy to ``target_port`` that refuses every WebSocket upgrade with
    ``403`` (as some corporate proxies do) and passes everything else through. Set
    :attr:`refusing` to False to let upgrades through too."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.refused = 0
        self.refusing = True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await self._head(reader, writer)
        if head is None:
            return
        if self.refusing and b"upgrade: websocket" in head.lower():
            self.refused += 1
            body = b'{"error":{"code":"forbidden","message":"no WebSocket through this proxy"}}'
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
            )
            await writer.drain()
            writer.close()
            return
        await self._pass(head, reader, writer)


class ClientFrames:
    """The messages in a browser's side of a WebSocket, fed its bytes as they pass: masked
    text frames (RFC 6455 §5.2), decoded as JSON, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._buffer = b""
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while (frame := self._frame()) is not None:
            opcode, fin, payload = frame
            if opcode in (0x0, 0x1):
                self._parts.append(payload)
                if fin:
                    self.messages.append(orjson.loads(b"".join(self._parts)))
                    self._parts = []

    def _frame(self) -> tuple[int, bool, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        length, at = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, at = int.from_bytes(buf[2:4]), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, at = int.from_bytes(buf[2:10]), 10
        masked = buf[1] & 0x80
        end = at + (4 if masked else 0) + length
        if len(buf) < end:
            return None
        payload = buf[end - length : end]
        if masked:
            key = buf[at : at + 4]
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self._buffer = buf[end:]
        return buf[0] & 0x0F, bool(buf[0] & 0x80), payload


class Upgrade:
    """One WebSocket upgrade the proxy passed on: its request target (path and query) and
    the messages the client sent on it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.frames = ClientFrames()

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.target.partition("?")[2], keep_blank_values=True)

    @property
    def sent(self) -> list[Any]:
        return list(self.frames.messages)


class WatchingProxy(LoopbackProxy):
    """A loopback proxy to ``target_port`` that passes everything through and records what
    the server receives on each WebSocket upgrade (:attr:`upgrades`). :meth:`block` cuts
    every connection and refuses new ones, as a lost network does, until :meth:`unblock`."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.upgrades: list[Upgrade] = []
        self.blocked = False
        self._live: set[asyncio.StreamWriter] = set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        self._live.add(writer)
        try:
            head = await self._head(reader, writer)
            if head is None:
                return
            tap = None
            if b"upgrade: websocket" in head.lower():
                upgrade = Upgrade(head.split(b" ", 2)[1].decode())
                self.upgrades.append(upgrade)
                tap = upgrade.frames.feed
            await self._pass(head, reader, writer, tap)
        finally:
            self._live.discard(writer)

    def block(self) -> None:
        async def cut() -> None:
            self.blocked = True
            for writer in list(self._live):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(cut(), self.loop).result(timeout(10))

    def unblock(self) -> None:
        self.blocked = False

    def upgrades_to(self, path: str) -> list[Upgrade]:
        return [u for u in self.upgrades if u.path == path]
