"""Per-sport score updates: good and bad payloads, scoreboards, the status table."""

from __future__ import annotations

from typing import Any

import pytest

from croupier.errors import BadRequest, Conflict
from croupier.services.sports.rules import (
    Finding,
    Status,
    fold,
    is_fen,
    is_san,
    is_uci,
    transition,
    validate_update,
)

START = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1"
TEAMS = ("Arsenal", "Chelsea")

# -- cricket -------------------------------------------------------------------------------


def test_a_cricket_ball_in_the_feed_shape_is_taken_and_made_canonical() -> None:
    update = validate_update(
        "cricket",
        {
            "ball 12": "13/1",
            "comment": "Bumrah has drawn the first blood",
            "batsman": {"name": "rohit", "runs": "100", "balls": "96"},
            "bowler": {"name": "yuvi", "overs": "3.6", "runs": "10", "maiden": "1", "wickets": "1"},
        },
    )
    assert update == {
        "ball": 12,
        "score": "13/1",
        "comment": "Bumrah has drawn the first blood",
        "batsman": {"name": "rohit", "runs": 100, "balls": 96},
        "bowler": {"name": "yuvi", "overs": "3.6", "runs": 10, "maiden": 1, "wickets": 1},
    }
    assert validate_update("cricket", {"ball": 1, "score": "0/0"}) == {"ball": 1, "score": "0/0"}


@pytest.mark.parametrize(
    "doc",
    [
        {"ball 12": "13-1"},  # not runs/wickets
        {"ball 12": "13/11"},  # eleven wickets
        {"ball 0": "0/0"},  # balls count from 1
        {"ball 1": "0/0", "ball 2": "1/0"},  # two balls in one update
        {"score": "1/0"},  # which ball?
        {"ball 3": "4/0", "batsman": {"name": "rohit", "runs": -1, "balls": 2}},
        {
            "ball 3": "4/0",
            "bowler": {"name": "b", "overs": "3.7", "runs": 1, "maiden": 0, "wickets": 0},
        },  # 3.6 ends an over; there is no 3.7
        {"ball 3": "4/0", "umpire": "dharmasena"},  # unknown field
        {"ball 3": "4/0", "comment": "x" * 281},
        ["ball 3", "4/0"],
    ],
)
def test_bad_cricket_balls_are_refused(doc: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_update("cricket", doc)
    assert caught.value.code == "bad_update"


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_the_cricket_scoreboard_follows_the_balls_and_a_correction_is_a_warning() -> None:
    board: dict[str, Any] = {}
    for n, score in ((1, "0/0"), (2, "4/0"), (3, "4/1")):
        update = validate_update(
            "cricket",
            {f"ball {n}": score, "batsman": {"name": "rohit", "runs": n, "balls": n}},
        )
        board, findings = fold("cricket", board, update, ())
        assert findings == []
    assert board["ball"] == 3
    assert (board["runs"], board["wickets"], board["score"]) == (4, 1, "4/1")
    assert board["batsmen"] == {"rohit": {"runs": 3, "balls": 3}}
    # A feed that goes back (a correction) is taken, its own figures win, and it is told.
    back, findings = fold("cricket", board, validate_update("cricket", {"ball 2": "5/1"}), ())
    assert codes(findings) == ["ball_order"]
    assert (back["ball"], back["score"]) == (2, "5/1")
    fell, findings = fold("cricket", board, validate_update("cricket", {"ball 4": "3/1"}), ())
    assert codes(findings) == ["score_fell"]
    assert fell["runs"] == 3


def test_a_bowler_with_more_wickets_than_the_innings_is_a_warning_not_a_refusal() -> None:
    seed = {  # the sports feed's own example, string values and all
        "ball 12": "13/1",
        "comment": "Bumrah has drawn the first blood",
        "batsman": {"name": "rohit", "runs": "100", "balls": "96"},
        "bowler": {"name": "yuvi", "overs": "3.6", "runs": "10", "maiden": "1", "wickets": "2"},
    }
    board, findings = fold("cricket", {}, validate_update("cricket", seed), ())
    assert codes(findings) == ["bowler_wickets"]
    assert "yuvi" in findings[0].message
    assert board["bowlers"]["yuvi"]["wickets"] == 2
    assert (board["ball"], board["runs"], board["wickets"]) == (12, 13, 1)


# -- chess ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "move",
    ["e4", "Nf3", "exd5", "O-O", "O-O-O", "Qxe7+", "e8=Q#", "Nbd7", "R1a3", "Qh4xe1", "axb8=N"],
)
def test_san_moves(move: str) -> None:
    assert is_san(move)


@pytest.mark.parametrize("move", ["e9", "Nf", "Kx", "Pe4x", "e7=Q", "O-O-O-O", "xe4", "Zf3", ""])
def test_not_san(move: str) -> None:
    assert not is_san(move)


@pytest.mark.parametrize(
    ("move", "ok"),
    [
        ("e2e4", True),
        ("e7e8q", True),
        ("e2e2", False),
        ("e2e9", False),
        ("e7e8k", False),
        ("E2E4", False),
    ],
)
def test_uci_moves(move: str, ok: bool) -> None:
    assert is_uci(move) is ok


def test_fen_positions() -> None:
    assert is_fen(START)
    assert is_fen("8/8/8/8/8/8/8/K6k w - - 0 1")
    assert not is_fen("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBN b KQkq e3 0 1")  # 7 files
    assert not is_fen("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP w KQkq - 0 1")  # 7 ranks
    assert not is_fen("8/8/8/8/8/8/8/8 w - - 0 1")  # no kings
    assert not is_fen(START.replace(" b ", " x "))
    assert not is_fen(START.replace("KQkq", "QKkq"))
    assert not is_fen(START.replace("e3", "e4"))


def test_chess_moves_fold_into_a_board_with_clocks() -> None:
    first = validate_update(
        "chess",
        {"move": "e2e4", "ply": 1, "position": START, "clocks": {"white": 299000, "black": 300000}},
    )
    board, findings = fold("chess", {}, first, ())
    assert findings == []
    assert board == {
        "ply": 1,
        "lastMove": "e2e4",
        "turn": "black",
        "position": START,
        "clocks": {"white": 299000, "black": 300000},
    }
    board, _ = fold("chess", board, validate_update("chess", {"move": "c5"}), ())
    assert (board["ply"], board["turn"], board["lastMove"]) == (2, "white", "c5")
    again, findings = fold("chess", board, validate_update("chess", {"move": "Nf3", "ply": 2}), ())
    assert codes(findings) == ["ply_order"]
    assert (again["ply"], again["lastMove"]) == (2, "Nf3")  # the feed's ply wins
    over, _ = fold("chess", board, validate_update("chess", {"move": "Qxf7#", "result": "1-0"}), ())
    late, findings = fold("chess", over, validate_update("chess", {"move": "Kxf7"}), ())
    assert codes(findings) == ["game_over"]
    assert late["lastMove"] == "Kxf7"


@pytest.mark.parametrize(
    "doc",
    [
        {"move": "e2-e4"},
        {"move": "castles"},
        {"move": "e4", "position": "not a fen"},
        {"move": "e4", "clocks": {"white": -1, "black": 0}},
        {"move": "e4", "clocks": {"white": 1}},
        {"move": "e4", "result": "2-0"},
        {"position": START},
    ],
)
def test_bad_chess_moves_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        validate_update("chess", doc)


# -- football ------------------------------------------------------------------------------


def test_football_incidents_keep_the_score() -> None:
    board: dict[str, Any] = {}
    for doc in (
        {"type": "foul", "minute": 3, "team": "Chelsea", "player": "Kante"},
        {"type": "goal", "minute": 12, "team": "home", "player": "Saka"},
        {"type": "card", "minute": 30, "team": "away", "player": "Kante", "card": "yellow"},
        {
            "type": "substitution",
            "minute": 60,
            "team": "Arsenal",
            "playerIn": "Nketiah",
            "playerOut": "Saka",
        },
        {
            "type": "goal",
            "minute": 77,
            "team": "Chelsea",
            "player": "Palmer",
            "score": {"home": 1, "away": 1},
        },
    ):
        board, findings = fold("football", board, validate_update("football", doc, TEAMS), TEAMS)
        assert findings == []
    assert board["score"] == {"home": 1, "away": 1}
    assert board["minute"] == 77
    assert board["goals"] == [
        {"minute": 12, "player": "Saka", "team": "home"},
        {"minute": 77, "player": "Palmer", "team": "away"},
    ]
    assert board["cards"] == {"away.yellow": 1}
    wrong = validate_update(
        "football",
        {
            "type": "goal",
            "minute": 80,
            "team": "home",
            "player": "Saka",
            "score": {"home": 3, "away": 1},
        },
        TEAMS,
    )
    corrected, findings = fold("football", board, wrong, TEAMS)
    assert codes(findings) == ["score_mismatch"]
    assert "3-1" in findings[0].message
    assert "2-1" in findings[0].message
    assert corrected["score"] == {"home": 3, "away": 1}  # a missed goal: the feed's score wins
    earlier = validate_update(
        "football", {"type": "foul", "minute": 10, "team": "home", "player": "x"}, TEAMS
    )
    _, findings = fold("football", board, earlier, TEAMS)
    assert codes(findings) == ["minute_order"]


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "goal", "minute": 12, "team": "Spurs", "player": "Kane"},  # not playing
        {"type": "goal", "minute": 12, "team": "home"},  # who scored?
        {"type": "card", "minute": 12, "team": "home", "player": "x"},  # which card?
        {"type": "card", "minute": 12, "team": "home", "player": "x", "card": "green"},
        {"type": "foul", "minute": 12, "team": "home", "player": "x", "card": "red"},
        {"type": "substitution", "minute": 60, "team": "home", "playerIn": "a"},
        {"type": "corner", "minute": 12, "team": "home"},
        {"type": "goal", "minute": 131, "team": "home", "player": "x"},
        {"type": "goal", "team": "home", "player": "x"},
    ],
)
def test_bad_football_incidents_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        validate_update("football", doc, TEAMS)


# -- generic -------------------------------------------------------------------------------


def test_any_other_sport_takes_the_generic_shape() -> None:
    board, _ = fold("tennis", {}, validate_update("tennis", {"score": {"Alcaraz": 2}}), ())
    board, _ = fold(
        "tennis",
        board,
        validate_update("tennis", {"score": {"Sinner": 1}, "period": "set 3", "clock": "1:42"}),
        (),
    )
    assert board == {"score": {"Alcaraz": 2, "Sinner": 1}, "period": "set 3", "clock": "1:42"}
    for bad in ({"score": {"Alcaraz": "two"}}, {"serve": "Alcaraz"}, {"period": "x" * 33}, 7):
        with pytest.raises(BadRequest):
            validate_update("tennis", bad)


# -- status --------------------------------------------------------------------------------


def test_the_status_table() -> None:
    assert transition(Status.SCHEDULED, Status.LIVE) is Status.LIVE
    assert transition(Status.LIVE, Status.FINISHED) is Status.FINISHED
    assert transition(Status.SCHEDULED, Status.FINISHED) is Status.FINISHED
    for current, wanted in (
        (Status.LIVE, Status.SCHEDULED),
        (Status.FINISHED, Status.LIVE),
        (Status.LIVE, Status.LIVE),
    ):
        with pytest.raises(Conflict):
            transition(current, wanted)
