"""The postMessage bridge between two origins in real Chromium.

A casino page (one loopback port) embeds a game (another port) and a foreign page (a third).
Both bridges load the SDK from the Croupier server (a fourth). The game asks for rebuys; the
casino page confirms each with its own endpoint and answers; what the foreign page posts to
either side is ignored and reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Pages, chromium, wait_for
from tests.support import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CASINO = """<!doctype html><meta charset="utf-8"><body><script type="module">
import { CasinoBridge } from "{sdk}";
window.got = []; window.rejected = []; window.sent = [];
const frame = document.createElement("iframe");
frame.src = "{game}/game.html";
document.body.append(frame);
const bridge = new CasinoBridge({
  gameOrigin: "{game}", frame, rebuyUrl: "/casino/rebuy",
  onRejected: (report) => window.rejected.push(report),
});
bridge.on("*", (message) => window.got.push(message));
bridge.on("sent", (message) => window.sent.push(message));
const foreign = document.createElement("iframe");
foreign.src = "{foreign}/foreign.html";
document.body.append(foreign);
</script></body>"""

GAME = """<!doctype html><meta charset="utf-8"><body><script type="module">
import { GameBridge } from "{sdk}";
window.answers = []; window.rejected = [];
const bridge = new GameBridge({
  casinoOrigin: "{casino}", onRejected: (report) => window.rejected.push(report),
});
bridge.on("*", (message) => window.answers.push(message));
window.bridge = bridge;
bridge.tournamentConnected({ tournamentId: "12345", playerId: "tp_player_456",
  playerInfo: { displayName: "Ann", position: 15, entryCount: 1 } });
const ask = { tournamentId: "12345", playerId: "tp_player_456", rebuyAmount: 10,
  currentEntries: 1, maxEntries: 3 };
window.first = await bridge.requestRebuy(ask, 20000);
window.second = await bridge.requestRebuy(ask, 20000);
</script></body>"""

# Pretends to be the game to the casino page, and the casino to the game (when told to).
FOREIGN = """<!doctype html><meta charset="utf-8"><script>
window.attack = () => {
const fake = { source: "game-platform", type: "rebuy.requested", tournamentId: "12345",
  playerId: "tp_player_456", requestId: "forged", rebuyAmount: 10 };
parent.postMessage({ ...fake, timestamp: new Date().toISOString() }, "*");
parent.frames[0].postMessage({ source: "casino-ui", type: "rebuy.success",
  tournamentId: "12345", playerId: "tp_player_456", requestId: "forged",
  newEntryCount: 99 }, "*");
};
</script>"""


def _frame(page: Any, origin: str) -> Any:
    for frame in page.frames:
        if frame.url.startswith(origin):
            return frame
    raise AssertionError(f"no frame from {origin}: {[f.url for f in page.frames]}")


def test_rebuy_round_trip_between_two_origins_ignores_a_foreign_one(tmp_path: Path) -> None:
    asked: list[dict[str, Any]] = []

    def rebuy(body: dict[str, Any]) -> dict[str, Any]:
        asked.append(body)
        if len(asked) == 1:
            return {
                "rebuyProcessed": True,
                "newEntryCount": 2,
                "remainingRebuys": 1,
                "newBalance": 90.0,
            }
        return {"rebuyProcessed": False, "error": "insufficient funds"}

    with (
        running_server(tmp_path) as server,
        Pages() as casino,
        Pages() as game,
        Pages() as foreign,
        chromium() as browser,
    ):
        sdk = server.url + "/sdk/croupier.js"
        fill = {"{sdk}": sdk, "{game}": game.origin, "{casino}": casino.origin}
        casino.pages["/casino.html"] = _fill(CASINO, {**fill, "{foreign}": foreign.origin})
        casino.posts["/casino/rebuy"] = rebuy
        game.pages["/game.html"] = _fill(GAME, fill)
        foreign.pages["/foreign.html"] = FOREIGN

        page = browser.new_page()
        page.goto(casino.origin + "/casino.html")
        wait_for(page, "window.sent && window.sent.length === 2", 20)
        inner = _frame(page, game.origin)
        wait_for(inner, "window.second !== undefined", 10)
        outside = _frame(page, foreign.origin)
        wait_for(outside, "window.attack !== undefined", 10)
        outside.evaluate("window.attack()")
        wait_for(page, "window.rejected.length >= 1", 10)
        wait_for(inner, "window.rejected.length >= 1", 10)
        got = page.evaluate("window.got")
        casino_rejected = page.evaluate("window.rejected")
        first = inner.evaluate("window.first")
        second = inner.evaluate("window.second")
        answers = inner.evaluate("window.answers")
        game_rejected = inner.evaluate("window.rejected")

    # The casino page heard the game, tagged and timestamped, and nothing else.
    assert [m["type"] for m in got] == [
        "tournament.connected",
        "rebuy.requested",
        "rebuy.requested",
    ]
    assert all(m["source"] == "game-platform" and m["timestamp"].endswith("Z") for m in got)
    assert got[0]["playerInfo"]["displayName"] == "Ann"
    # Its own endpoint confirmed exactly the game's two requests, never the forged one.
    assert [a["requestId"] for a in asked] == [got[1]["requestId"], got[2]["requestId"]]
    assert all(a["tournamentId"] == "12345" and a["rebuyAmount"] == 10 for a in asked)
    # The game got one answer per request, from the casino, with the casino's figures.
    assert first["type"] == "rebuy.success"
    assert first["source"] == "casino-ui"
    assert first["requestId"] == got[1]["requestId"]
    assert (first["newEntryCount"], first["remainingRebuys"]) == (2, 1)
    assert second["type"] == "rebuy.failed"
    assert second["error"] == "insufficient funds"
    assert [a["requestId"] for a in answers] == [got[1]["requestId"], got[2]["requestId"]]
    # The foreign page was ignored by both sides, and reported.
    assert {"origin": foreign.origin, "reason": "origin", "type": "rebuy.requested"} in (
        casino_rejected
    )
    assert game_rejected == [
        {"origin": foreign.origin, "reason": "origin", "type": "rebuy.success"}
    ]


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    return template


# The game page's side of the seed's LeaderboardSync: a score for each of 15 players in a
# burst, each followed by the whole board, as a game that keeps its own table would send it.
BOARD_BURST = """
async () => {
  const { GameBridge } = await import("/sdk/croupier.js");
  window.posted = [];
  const target = {
    postMessage: (message, origin) => window.posted.push([message, origin, performance.now()]),
  };
  const bridge = new GameBridge({ casinoOrigin: "https://casino.example.com", target });
  const board = [];
  for (let i = 0; i < 15; i++) {
    board.push({ playerId: `p${i}`, score: 100 + i, position: 0 });
    bridge.leaderboardUpdated({ tournamentId: "12345", leaderboard: board });
  }
}
"""


def test_the_bridge_sends_the_top_10_at_most_once_a_second(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.evaluate(BOARD_BURST)
        wait_for(page, "window.posted.length === 2", 10)
        page.wait_for_timeout(2200)  # a third message would be due by now
        posted = page.evaluate("window.posted")
    assert len(posted) == 2
    (first, origin, at_first), (second, _, at_second) = posted
    assert origin == "https://casino.example.com"
    assert at_second - at_first >= 999  # at most once a second
    # The first call went out at once; the other 14 were coalesced into the latest board.
    assert [e["playerId"] for e in first["leaderboard"]] == ["p0"]
    assert [e["score"] for e in second["leaderboard"]] == list(range(114, 104, -1))
    for message in (first, second):
        assert message["type"] == "leaderboard.updated"
        assert message["source"] == "game-platform"
        assert message["tournamentId"] == "12345"
        assert len(message["leaderboard"]) <= 10
        assert message["lastUpdated"].endswith("Z")
