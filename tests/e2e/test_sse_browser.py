"""Chromium's own ``EventSource`` resumes through ``Last-Event-ID`` across server restarts.

The page is opened on the Croupier server itself (same origin as the stream), events keep
being published while the server is stopped gracefully and then killed, and the browser's
automatic reconnects must between them deliver every event exactly once, in order.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.sseclient import write_config
from tests.support import API_KEY, IN_CI, ServerProcess, running_server, timeout, token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

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
TOTAL = 90
CHANNEL = "tournament:browser"

LISTEN = """
([url]) => {
  window.got = [];
  window.opens = [];
  const source = new EventSource(url);
  source.onopen = () => window.opens.push(window.got.length);
  source.onmessage = (e) => {
    const doc = JSON.parse(e.data);
    if (doc.type === "t.tick") window.got.push({id: e.lastEventId, offset: doc.offset,
                                                n: doc.data.n});
  };
  window.source = source;
}
"""


def _chromium_or_skip() -> None:
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


class Publisher(threading.Thread):
    """Publishes ``TOTAL`` events in order, retrying each until the server takes it.

    Each event has an idempotency key, so a retry of one the server stored just before it
    went down is not stored twice.
    """

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.sent = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=timeout(5)) as client:
                for n in range(1, TOTAL + 1):
                    self._publish(client, n)
                    self.sent = n
                    time.sleep(0.02)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _publish(self, client: httpx.Client, n: int) -> None:
        body = {"channel": CHANNEL, "type": "t.tick", "data": {"n": n}, "idempotency_key": f"n{n}"}
        deadline = time.monotonic() + timeout(30)
        while not self.stop.is_set():
            try:
                r = client.post(
                    self.server.url + "/api/v1/publish",
                    content=orjson.dumps(body),
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not publish event {n}")
            time.sleep(0.05)


def _wait(page: Any, expression: str, seconds: float) -> None:
    page.wait_for_function(expression, timeout=timeout(seconds) * 1000)


def test_eventsource_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    config = write_config(tmp_path, "[limits]\nsse_keepalive = 1\nsse_retry_ms = 200\n")
    with running_server(tmp_path, config=config) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        publisher = Publisher(server)
        try:
            page = browser.new_page()
            page.goto(server.url + "/healthz")
            page.evaluate(LISTEN, [f"/sse?channel={CHANNEL}&token={token('fan')}"])
            _wait(page, "window.opens.length === 1", 10)
            publisher.start()

            _wait(page, "window.got.length >= 25", 20)
            server.stop()  # graceful: the stream is told to reconnect, then closes
            server.start()
            _wait(page, "window.got.length >= 55", 30)
            server.restart()  # a crash: the connection just drops
            publisher.join(timeout(60))
            assert publisher.error is None, publisher.error
            assert publisher.sent == TOTAL
            _wait(page, f"window.got.length >= {TOTAL}", 30)
            time.sleep(0.3)  # anything extra (a duplicate) would show up now
            got = page.evaluate("window.got")
            opens = page.evaluate("window.opens")
        finally:
            publisher.stop.set()
            browser.close()
    assert [g["n"] for g in got] == list(range(1, TOTAL + 1))
    assert [g["offset"] for g in got] == list(range(1, TOTAL + 1))
    assert all(g["id"] == str(g["offset"]) for g in got)
    assert len(opens) >= 3, opens  # it really did reconnect, twice
