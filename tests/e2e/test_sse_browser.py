"""Chromium's own ``EventSource`` resumes through ``Last-Event-ID`` across server restarts.

The page is opened on the Croupier server itself (same origin as the stream), events keep
being published while the server is stopped gracefully and then killed, and the browser's
automatic reconnects must between them deliver every event exactly once, in order.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.browser import Publisher, chromium, wait_for
from tests.e2e.sseclient import write_config
from tests.support import running_server, timeout, token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

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


def test_eventsource_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[limits]\nsse_keepalive = 1\nsse_retry_ms = 200\n")
    with running_server(tmp_path, config=config) as server, chromium() as browser:
        publisher = Publisher(server, [CHANNEL], TOTAL)
        try:
            page = browser.new_page()
            page.goto(server.url + "/healthz")
            page.evaluate(LISTEN, [f"/sse?channel={CHANNEL}&token={token('fan')}"])
            wait_for(page, "window.opens.length === 1", 10)
            publisher.start()

            wait_for(page, "window.got.length >= 25", 20)
            server.stop()  # graceful: the stream is told to reconnect, then closes
            server.start()
            wait_for(page, "window.got.length >= 55", 30)
            server.restart()  # a crash: the connection just drops
            publisher.join(timeout(60))
            assert publisher.error is None, publisher.error
            assert publisher.sent == TOTAL
            wait_for(page, f"window.got.length >= {TOTAL}", 30)
            time.sleep(0.3)  # anything extra (a duplicate) would show up now
            got = page.evaluate("window.got")
            opens = page.evaluate("window.opens")
        finally:
            publisher.stop.set()
    assert [g["n"] for g in got] == list(range(1, TOTAL + 1))
    assert [g["offset"] for g in got] == list(range(1, TOTAL + 1))
    assert all(g["id"] == str(g["offset"]) for g in got)
    assert len(opens) >= 3, opens  # it really did reconnect, twice
