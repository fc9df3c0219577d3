"""The poker seed's front end, unchanged, against a live server.

Its client opens ``EventSource('/api/tables/{tableId}/events?lastEventId=N')`` with no token,
reads ``: connected``, then ``id:`` / ``data: {"kind":…}`` pairs, and after a drop opens a new
stream with ``lastEventId`` set to the last id it saw: the events it missed come first, then
the live ones, none twice. The raw bytes are checked on a socket and the behaviour through
Chromium's own ``EventSource``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.browser import chromium, wait_for
from tests.e2e.sseclient import RawStream, publish, write_config
from tests.support import ServerProcess, running_server, token

pytestmark = pytest.mark.e2e


def hand(kind: str, n: int) -> dict[str, object]:
    return {"kind": kind, "table": {"id": 7, "name": "Table 7"}, "hand": {"id": n}}


def frame(payload: object, offset: int) -> bytes:
    return b"id: %d\ndata: " % offset + orjson.dumps(payload) + b"\n\n"


def test_the_seed_stream_needs_no_token_and_resumes_from_last_event_id(
    server: ServerProcess,
) -> None:
    publish(server, "table:7", "hand_start", hand("hand_start", 1))
    publish(server, "table:7", "hand_action", hand("hand_action", 1))
    raw = RawStream(server, "/api/tables/7/events?lastEventId=0")  # no token, as the seed
    try:
        assert raw.status_line == "HTTP/1.1 200 OK"
        body = raw.read_until(frame(hand("hand_action", 1), 2))
    finally:
        raw.close()
    assert body.startswith(b": connected\n\n")
    assert body.endswith(frame(hand("hand_start", 1), 1) + frame(hand("hand_action", 1), 2))

    publish(server, "table:7", "hand_end", hand("hand_end", 1))
    raw = RawStream(server, "/api/tables/7/events?lastEventId=2")  # the seed's reconnect
    try:
        body = raw.read_until(frame(hand("hand_end", 1), 3))
        publish(server, "table:7", "hand_start", hand("hand_start", 2))
        live = raw.read_until(frame(hand("hand_start", 2), 4))
    finally:
        raw.close()
    assert body.startswith(b": connected\n\n")
    assert b"hand_action" not in body  # only what it missed
    assert live == frame(hand("hand_start", 2), 4)


SEED_CLIENT = """
([url]) => {
  // What the seed's hook does: one EventSource per (re)connect, lastEventId in the URL,
  // each message's kind handled in order.
  window.got = window.got || [];
  window.opens = (window.opens || 0);
  const source = new EventSource(url);
  source.onopen = () => { window.opens += 1; };
  source.onmessage = (e) => {
    const event = JSON.parse(e.data);
    window.got.push({id: e.lastEventId, kind: event.kind, hand: event.hand && event.hand.id});
  };
  window.source = source;
}
"""


@pytest.mark.browser
def test_the_seed_client_in_chromium_sees_every_hand_event_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[limits]\nsse_keepalive = 60\n")
    with running_server(tmp_path, config=config) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")  # the front end is served beside the stream
        publish(server, "table:8", "hand_start", hand("hand_start", 1))
        page.evaluate(SEED_CLIENT, ["/api/tables/8/events?lastEventId=0"])
        wait_for(page, "window.opens === 1 && window.got.length === 1", 10)
        publish(server, "table:8", "hand_action", hand("hand_action", 1))
        wait_for(page, "window.got.length === 2", 10)

        # The connection drops; the seed's client reconnects with the last id it saw.
        page.evaluate("window.source.close()")
        last = page.evaluate("window.got[window.got.length - 1].id")
        publish(server, "table:8", "hand_end", hand("hand_end", 1))
        publish(server, "table:8", "hand_start", hand("hand_start", 2))
        page.evaluate(SEED_CLIENT, [f"/api/tables/8/events?lastEventId={last}"])
        wait_for(page, "window.opens === 2 && window.got.length === 4", 10)
        publish(server, "table:8", "hand_action", hand("hand_action", 2))
        wait_for(page, "window.got.length >= 5", 10)
        time.sleep(0.3)  # a duplicate would show up now
        got = page.evaluate("window.got")
    assert last == "2"
    assert got == [
        {"id": "1", "kind": "hand_start", "hand": 1},
        {"id": "2", "kind": "hand_action", "hand": 1},
        {"id": "3", "kind": "hand_end", "hand": 1},
        {"id": "4", "kind": "hand_start", "hand": 2},
        {"id": "5", "kind": "hand_action", "hand": 2},
    ]


def test_an_operator_can_require_a_token_for_tables(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[namespaces.table]\nsubscribe = "token"\n')
    with running_server(tmp_path, config=config) as server:
        r = httpx.get(server.url + "/api/tables/7/events", params={"lastEventId": "0"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        raw = RawStream(server, f"/api/tables/7/events?lastEventId=0&token={token('p1')}")
        try:
            assert raw.status_line == "HTTP/1.1 200 OK"
            assert raw.read_until(b": connected\n\n").startswith(b": connected")
        finally:
            raw.close()
