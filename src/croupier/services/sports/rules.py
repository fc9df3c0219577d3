"""Sporting events as plain rules: per-sport score updates, scoreboards, the status table. No I/O.

Rules:

* A score update is validated against its sport's shape (:func:`validate_update`) and folded
  into the event's scoreboard (:func:`fold`); the folded scoreboard is the snapshot a
  newcomer gets. Validation and folding never touch the stored state: a bad update changes
  nothing.
* Cricket is per ball, chess per move (SAN or UCI, an optional FEN position and the clocks),
  football per incident (goal, card, foul or substitution, at a minute, for one of the two
  teams; a goal moves the score by one). Any other sport is generic: a score per
  competitor, period, clock, comment.
* Two kinds of problem. A structural one (wrong types, missing fields, a malformed move) is
  refused: :class:`~croupier.errors.BadRequest`. A consistency one (a ball from the past, a
  falling score, a bowler with more wickets than the innings, a ply out of turn, a football
  score that disagrees with the goals seen) is a :class:`Finding`: a live feed that sends a
  correction or missed an event must not freeze the match, so the update is folded anyway,
  the feed's own figures win, and the finding goes back to the publisher.
* Status moves only along :data:`TRANSITIONS`; score updates are taken only while ``live``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from ...errors import BadRequest, Conflict

__all__ = [
    "MAX_UPDATE_BYTES",
    "TRANSITIONS",
    "ChessMove",
    "CricketBall",
    "Finding",
    "FootballIncident",
    "GenericUpdate",
    "Status",
    "fold",
    "is_fen",
    "is_san",
    "is_uci",
    "transition",
    "validate_update",
]

MAX_UPDATE_BYTES = 8 * 1024


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    FINISHED = "finished"


# Rules: a match is scheduled, goes live once, and finishes once; nothing comes back.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.LIVE, Status.FINISHED}),
    Status.LIVE: frozenset({Status.FINISHED}),
    Status.FINISHED: frozenset(),
}


def transition(current: Status, wanted: Status) -> Status:
    """The status after asking to move from ``current`` to ``wanted``.

    Raises:
        Conflict: the table does not allow it.
    """
    if wanted not in TRANSITIONS[current]:
        raise Conflict(f"a {current.value} event cannot become {wanted.value}")
    return wanted


@dataclass(frozen=True, slots=True)
class Finding:
    """A consistency finding on an update that was taken anyway: ``code`` names the rule."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# -- shapes --------------------------------------------------------------------------------

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Comment = Annotated[str, msgspec.Meta(max_length=280)]
Count = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class Batsman(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    runs: Count
    balls: Count


class Bowler(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    overs: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,3}(\.[0-6])?$")]
    runs: Count
    maiden: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    wickets: Annotated[int, msgspec.Meta(ge=0, le=10)]


class CricketBall(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ball: ``{"ball 12": "13/1", …}`` or ``{"ball": 12, "score": "13/1", …}``."""

    ball: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    score: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,4}/([0-9]|10)$")]
    comment: Comment = ""
    batsman: Batsman | None = None
    bowler: Bowler | None = None


class Clocks(msgspec.Struct, forbid_unknown_fields=True):
    white: Annotated[int, msgspec.Meta(ge=0, description="Milliseconds left.")]
    black: Annotated[int, msgspec.Meta(ge=0, description="Milliseconds left.")]


class ChessMove(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    move: Annotated[str, msgspec.Meta(min_length=2, max_length=10)]
    ply: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    position: Annotated[str, msgspec.Meta(max_length=100, description="FEN.")] | None = None
    clocks: Clocks | None = None
    comment: Comment = ""
    result: Literal["1-0", "0-1", "1/2-1/2"] | None = None


class Score(msgspec.Struct, forbid_unknown_fields=True):
    home: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    away: Annotated[int, msgspec.Meta(ge=0, le=1000)]


class FootballIncident(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["goal", "card", "foul", "substitution"]
    minute: Annotated[int, msgspec.Meta(ge=0, le=130)]
    team: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    player: Name | None = None
    card: Literal["yellow", "red"] | None = None
    player_in: Name | None = msgspec.field(default=None, name="playerIn")
    player_out: Name | None = msgspec.field(default=None, name="playerOut")
    score: Score | None = None
    comment: Comment = ""


class GenericUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    score: dict[Name, Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]] | None = None
    period: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    clock: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    comment: Comment = ""


_SHAPES: dict[str, type[msgspec.Struct]] = {
    "cricket": CricketBall,
    "chess": ChessMove,
    "football": FootballIncident,
    "generic": GenericUpdate,
}
_BALL_KEY = re.compile(r"ball ?([0-9]{1,5})")
_NUMERIC = re.compile(r"[0-9]{1,6}")

# -- chess notation ------------------------------------------------------------------------

_SAN = re.compile(
    r"(?:O-O(?:-O)?|0-0(?:-0)?|[KQRBN][a-h]?[1-8]?x?[a-h][1-8]|(?:[a-h]x)?[a-h][1-8](?:=?[QRBN])?)"
    r"[+#]?[!?]{0,2}"
)
_UCI = re.compile(r"[a-h][1-8][a-h][1-8][qrbn]?")
_RANK = re.compile(r"[pnbrqkPNBRQK1-8]{1,8}")


def is_san(move: str) -> bool:
    """Whether ``move`` is Standard Algebraic Notation (syntax only: ``Nf3``, ``exd5``, ``O-O``)."""
    if not _SAN.fullmatch(move):
        return False
    # A pawn promotes only on the last rank, and only a pawn move names a bare target square.
    promo = re.search(r"([a-h])([1-8])=?[QRBN]", move)
    return promo is None or promo.group(2) in "18"


def is_uci(move: str) -> bool:
    """Whether ``move`` is a UCI long-algebraic move (``e2e4``, ``e7e8q``)."""
    return bool(_UCI.fullmatch(move)) and move[0:2] != move[2:4]


def is_fen(fen: str) -> bool:
    """Whether ``fen`` is a syntactically valid Forsyth-Edwards position."""
    fields = fen.split(" ")
    if len(fields) != 6:
        return False
    board, side, castling, en_passant, halfmove, fullmove = fields
    ranks = board.split("/")
    if len(ranks) != 8:
        return False
    for rank in ranks:
        if not _RANK.fullmatch(rank):
            return False
        if sum(int(c) if c.isdigit() else 1 for c in rank) != 8:
            return False
    if board.count("K") != 1 or board.count("k") != 1:
        return False
    if side not in ("w", "b"):
        return False
    if castling != "-" and (
        not re.fullmatch(r"K?Q?k?q?", castling) or not castling
    ):  # order KQkq, each at most once
        return False
    if en_passant != "-" and not re.fullmatch(r"[a-h][36]", en_passant):
        return False
    return halfmove.isdigit() and fullmove.isdigit() and int(fullmove) >= 1


# -- validation ----------------------------------------------------------------------------


def _number(key: str, value: Any) -> Any:
    if key not in ("name", "overs") and isinstance(value, str) and _NUMERIC.fullmatch(value):
        return int(value)
    return value


def _normalise_cricket(doc: dict[str, Any]) -> dict[str, Any]:
    """Accept the ``"ball 12": "13/1"`` form and numbers sent as digit strings."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        found = _BALL_KEY.fullmatch(key) if key != "ball" else None
        if found is not None:
            if "ball" in out or "ball" in doc:
                raise BadRequest("a ball update names exactly one ball", code="bad_update")
            out["ball"] = int(found.group(1))
            out["score"] = value
        else:
            out[key] = value
    for who in ("batsman", "bowler"):
        person = out.get(who)
        if isinstance(person, dict):
            out[who] = {k: _number(k, v) for k, v in person.items()}
    bowler = out.get("bowler")
    if isinstance(bowler, dict) and isinstance(bowler.get("overs"), int | float):
        bowler["overs"] = str(bowler["overs"])
    if isinstance(out.get("ball"), str) and _NUMERIC.fullmatch(out["ball"]):
        out["ball"] = int(out["ball"])
    return out


def validate_update(sport: str, doc: Any, competitors: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check ``doc`` against ``sport``'s update shape; return it in its canonical form.

    Raises:
        BadRequest: the update is not of the sport's shape (code ``bad_update``).
    """
    if not isinstance(doc, dict):
        raise BadRequest("a score update is a JSON object", code="bad_update")
    shape = _SHAPES.get(sport, GenericUpdate)
    if sport == "cricket":
        doc = _normalise_cricket(doc)
    try:
        value = msgspec.convert(doc, shape, str_keys=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid {sport} update: {exc}", code="bad_update") from None
    if isinstance(value, ChessMove):
        if not (is_san(value.move) or is_uci(value.move)):
            raise BadRequest(
                f'move "{value.move}" is neither SAN (Nf3, exd5, O-O) nor UCI (e2e4)',
                code="bad_update",
            )
        if value.position is not None and not is_fen(value.position):
            raise BadRequest("position must be a FEN string", code="bad_update")
    elif isinstance(value, FootballIncident):
        _check_incident(value, competitors)
    canonical: dict[str, Any] = msgspec.to_builtins(value)
    return {k: v for k, v in canonical.items() if v is not None and v != ""}


def _check_incident(value: FootballIncident, competitors: tuple[str, ...]) -> None:
    sides = ("home", "away", *competitors)
    if value.team not in sides:
        raise BadRequest(
            f"team must be home, away or one of {list(competitors)}", code="bad_update"
        )
    if value.type == "card" and value.card is None:
        raise BadRequest("a card incident names the card: yellow or red", code="bad_update")
    if value.type != "card" and value.card is not None:
        raise BadRequest("only a card incident has a card", code="bad_update")
    if value.type == "substitution" and (value.player_in is None or value.player_out is None):
        raise BadRequest("a substitution names playerIn and playerOut", code="bad_update")
    if value.type in ("goal", "card", "foul") and value.player is None:
        raise BadRequest(f"a {value.type} names the player", code="bad_update")


# -- scoreboards ---------------------------------------------------------------------------


def _side(team: str, competitors: tuple[str, ...]) -> str:
    if team in ("home", "away"):
        return team
    return "home" if competitors and team == competitors[0] else "away"


def fold(
    sport: str, snapshot: Mapping[str, Any], update: Mapping[str, Any], competitors: tuple[str, ...]
) -> tuple[dict[str, Any], list[Finding]]:
    """The scoreboard after ``update`` (already validated) on ``snapshot``, and what in the
    update disagrees with the scoreboard (a ball from the past, a falling score, a football
    score that disagrees with the goals). Disagreements never stop the fold: the update's own
    figures win, since a feed's correction or a missed event must not freeze the match.
    """
    findings: list[Finding] = []
    if sport == "cricket":
        board = _fold_cricket(snapshot, update, findings)
    elif sport == "chess":
        board = _fold_chess(snapshot, update, findings)
    elif sport == "football":
        board = _fold_football(snapshot, update, competitors, findings)
    else:
        board = _fold_generic(snapshot, update)
    return board, findings


def _fold_cricket(
    snap: Mapping[str, Any], up: Mapping[str, Any], findings: list[Finding]
) -> dict[str, Any]:
    runs, wickets = (int(x) for x in up["score"].split("/"))
    if up["ball"] < snap.get("ball", 0):
        findings.append(Finding("ball_order", f"ball {up['ball']} comes after ball {snap['ball']}"))
    if runs < snap.get("runs", 0) or wickets < snap.get("wickets", 0):
        findings.append(Finding("score_fell", f"score {up['score']} is below {snap.get('score')}"))
    bowler = up.get("bowler")
    if bowler is not None and bowler["wickets"] > wickets:
        findings.append(
            Finding(
                "bowler_wickets",
                f"the bowler {bowler['name']} has {bowler['wickets']} wickets, "
                f"the innings {wickets}",
            )
        )
    out = dict(snap)
    out.update(ball=up["ball"], score=up["score"], runs=runs, wickets=wickets)
    if "comment" in up:
        out["comment"] = up["comment"]
    for who, table in (("batsman", "batsmen"), ("bowler", "bowlers")):
        person = up.get(who)
        if person is not None:
            out[who] = person
            people = dict(out.get(table, {}))
            people[person["name"]] = {k: v for k, v in person.items() if k != "name"}
            out[table] = people
    return out


def _fold_chess(
    snap: Mapping[str, Any], up: Mapping[str, Any], findings: list[Finding]
) -> dict[str, Any]:
    if snap.get("result") is not None:
        findings.append(Finding("game_over", f"a move after the result {snap['result']}"))
    ply = snap.get("ply", 0) + 1
    if "ply" in up and up["ply"] != ply:
        findings.append(Finding("ply_order", f"expected ply {ply}, not {up['ply']}"))
        ply = up["ply"]
    out = dict(snap)
    out.update(ply=ply, lastMove=up["move"], turn="white" if ply % 2 == 0 else "black")
    for key in ("position", "clocks", "comment", "result"):
        if key in up:
            out[key] = up[key]
    return out


def _fold_football(
    snap: Mapping[str, Any],
    up: Mapping[str, Any],
    competitors: tuple[str, ...],
    findings: list[Finding],
) -> dict[str, Any]:
    score = dict(snap.get("score", {"home": 0, "away": 0}))
    side = _side(up["team"], competitors)
    if up["minute"] < snap.get("minute", 0):
        findings.append(
            Finding("minute_order", f"minute {up['minute']} comes after minute {snap['minute']}")
        )
    out = dict(snap)
    if up["type"] == "goal":
        score[side] += 1
        goals = [*out.get("goals", ()), {k: up[k] for k in ("minute", "player") if k in up}]
        goals[-1]["team"] = side
        out["goals"] = goals
    elif up["type"] == "card":
        cards = dict(out.get("cards", {}))
        key = f"{side}.{up['card']}"
        cards[key] = cards.get(key, 0) + 1
        out["cards"] = cards
    if "score" in up and up["score"] != score:
        findings.append(
            Finding(
                "score_mismatch",
                f"score {up['score']['home']}-{up['score']['away']} disagrees with the goals "
                f"seen ({score['home']}-{score['away']}); the feed's score is kept",
            )
        )
        score = dict(up["score"])
    out.update(score=score, minute=up["minute"], last=dict(up, team=side))
    return out


def _fold_generic(snap: Mapping[str, Any], up: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(snap)
    if "score" in up:
        out["score"] = {**snap.get("score", {}), **up["score"]}
    for key in ("period", "clock", "comment"):
        if key in up:
            out[key] = up[key]
    return out
