"""Tournament values as the casino UI has them (money in minor units, scores, timestamps),
and the stored settings of a create request."""

from __future__ import annotations

from datetime import UTC, datetime

from ...errors import Conflict, shown
from . import rules
from . import schemas as s
from .rules import PrizeRange
from .store import Config

__all__ = ["casino_id", "casino_time", "cents", "config_of", "iso", "money", "number"]


def cents(amount: float) -> int:
    return round(amount * 100)


def money(minor: int) -> float:
    return minor / 100


def number(value: float) -> float | int:
    """Integral scores as integers (1250, not 1250.0)."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def casino_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: str | None, name: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        # The pattern admits the 30th of February: a date that contradicts the calendar.
        problems.append(f"{name} {shown(value)} is not a date")
        return None


def casino_id(value: str) -> int | str:
    """Numeric ids as numbers, as the casino player stream has them."""
    return int(value) if value.isdigit() and len(value) < 16 else value


def config_of(body: s.CreateBody) -> Config:
    """The stored settings of a create request.

    Raises:
        Conflict: settings that contradict one another (``conflicting_settings``).
    """
    problems: list[str] = []
    opens = _seconds(body.registration_opens_at, "registrationOpensAt", problems)
    starts = _seconds(body.starts_at, "startsAt", problems)
    ends = _seconds(body.ends_at, "endsAt", problems)
    if starts is not None and ends is not None and ends <= starts:
        problems.append("endsAt must be after startsAt")
    if opens is not None and starts is not None and opens > starts:
        problems.append("registrationOpensAt must not be after startsAt")
    if body.max_players is not None and body.max_players < body.min_players:
        problems.append("maxPlayers is below minPlayers")
    prizes = tuple(
        PrizeRange(
            int(p.from_rank),
            int(p.to_rank),
            None if p.amount is None else cents(p.amount),
            p.percent,
        )
        for p in body.prizes
    )
    try:
        rules.check_prizes(prizes)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise Conflict("; ".join(problems), code="conflicting_settings")
    fee = cents(body.entry_fee)
    return Config(
        opens_at=opens,
        starts_at=starts,
        ends_at=ends,
        rounds=int(body.rounds),
        round_seconds=body.round_seconds,
        max_players=None if body.max_players is None else int(body.max_players),
        min_players=int(body.min_players),
        entry_fee=fee,
        max_entries=int(body.max_entries),
        rebuy_price=fee if body.rebuy_price is None else cents(body.rebuy_price),
        guaranteed=cents(body.guaranteed_pool),
        prizes=prizes,
        rule=rules.PointsRule(
            rules.Scoring(body.scoring.rule),
            body.scoring.min_bet,
            rules.Counting(body.scoring.counting),
        ),
        ties=rules.TieMode(body.ties),
        template_id=body.template_id,
    )
