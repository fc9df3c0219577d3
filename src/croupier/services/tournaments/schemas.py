"""What the tournaments API takes and answers, as msgspec Structs (and so as JSON Schema)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "ID_PATTERN",
    "TIME_PATTERN",
    "TOURNAMENT_PATTERN",
    "CreateBody",
    "DeclineBody",
    "PlayerReply",
    "PlayersReply",
    "PrizeBody",
    "RebuyReply",
    "RefundReply",
    "RegisterBody",
    "ResultReply",
    "ResultsReply",
    "ScoreBody",
    "ScoreReply",
    "ScoringBody",
    "TournamentReply",
    "TournamentsReply",
]

# Ids become parts of channel names (``tournament:{id}``, ``player:{brand}:{player}``) and
# of the leaderboard's board name (``tournament:{id}``, which takes no ``@`` or ``=``).
TOURNAMENT_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
ID_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"
Id = Annotated[str, Meta(pattern=ID_PATTERN, min_length=1, max_length=64)]
TournamentId = Annotated[str, Meta(pattern=TOURNAMENT_PATTERN, min_length=1, max_length=64)]
Money = Annotated[float, Meta(ge=0, le=1e12, description="In currency units; cents kept.")]
TIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
Time = Annotated[
    str, Meta(pattern=TIME_PATTERN, description="ISO-8601 time, e.g. 2025-01-15T20:00:00Z.")
]
# JSON Schema counts 3.0 as an integer, so the server does too: whole-number floats.
Count = Annotated[float, Meta(ge=1, le=1_000_000, multiple_of=1)]
Rounds = Annotated[float, Meta(ge=1, le=10_000, multiple_of=1)]
MinPlayers = Annotated[float, Meta(ge=0, le=1_000_000, multiple_of=1)]
Entries = Annotated[float, Meta(ge=1, le=1000, multiple_of=1)]
Score = Annotated[float, Meta(ge=0, le=1e12)]  # scores only grow: see positions.py


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class _Reply(msgspec.Struct, rename="camel", kw_only=True):
    pass


class PrizeBody(_Body):
    """Positions ``fromRank``..``toRank`` each win ``amount`` or ``percent`` of the pool."""

    from_rank: Count
    to_rank: Count
    amount: Money | None = None
    percent: Annotated[float, Meta(ge=0, le=100)] | None = None


class ScoringBody(_Body):
    rule: Literal["points", "multiplier"] = "points"
    min_bet: Money = 0.0
    counting: Literal["sum", "best"] = "sum"


class CreateBody(_Body):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    id: TournamentId | None = None
    registration_opens_at: Time | None = None
    starts_at: Time | None = None
    ends_at: Time | None = None
    rounds: Rounds = 1
    round_seconds: Annotated[float, Meta(gt=0, le=31_536_000)] | None = None
    max_players: Count | None = None
    min_players: MinPlayers = 1
    entry_fee: Money = 0.0
    max_entries: Entries = 1
    rebuy_price: Money | None = None
    guaranteed_pool: Money = 0.0
    prizes: Annotated[list[PrizeBody], Meta(max_length=100)] = []
    scoring: ScoringBody = msgspec.field(default_factory=ScoringBody)
    ties: Literal["split", "first"] = "split"
    template_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                description="The casino's template this tournament was made from; "
                "carried as `template_id` in the winners' `tournament_win` notifications.",
            ),
        ]
        | None
    ) = None


class RegisterBody(_Body):
    player_id: Id
    brand: Id
    display_name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class ScoreBody(_Body):
    submission_id: Annotated[str, Meta(min_length=1, max_length=128)]
    player_id: Id
    points: Score | None = None
    bet: Annotated[float, Meta(ge=0, le=1e12)] | None = None
    win: Annotated[float, Meta(ge=0, le=1e12)] | None = None


class DeclineBody(_Body):
    error: Annotated[str, Meta(min_length=1, max_length=500)]


class TournamentReply(_Reply):
    id: str
    name: str
    status: str
    registration_opens_at: str | None
    starts_at: str | None
    ends_at: str | None
    started_at: str | None
    ended_at: str | None
    current_round: int
    total_rounds: int
    round_seconds: float | None
    player_count: int
    max_players: int | None
    min_players: int
    entry_fee: float
    max_entries: int
    rebuy_price: float
    guaranteed_pool: float
    prize_pool: float
    prizes: list[PrizeBody]
    scoring: ScoringBody
    ties: str
    template_id: str | None


class TournamentsReply(_Reply):
    tournaments: list[TournamentReply]


class PlayerReply(_Reply):
    tournament_id: str
    player_id: str
    brand: str
    display_name: str
    status: Literal["active", "eliminated"]
    score: float
    position: int
    entry_count: int
    remaining_rebuys: int
    duplicate: bool = False


class PlayersReply(_Reply):
    tournament_id: str
    players: list[PlayerReply]


class ScoreReply(_Reply):
    tournament_id: str
    submission_id: str
    player_id: str
    points: float | None
    qualified: bool
    score: float
    position: int
    round: int
    duplicate: bool


class RebuyReply(_Reply):
    tournament_id: str
    request_id: str
    player_id: str
    status: Literal["pending", "confirmed", "declined", "failed"]
    rebuy_amount: float
    entry_count: int
    max_entries: int
    remaining_rebuys: int
    error: str | None = None
    duplicate: bool = False


class ResultReply(_Reply):
    player_id: str
    display_name: str
    position: int
    points: float
    prize_amount: float


class RefundReply(_Reply):
    player_id: str
    brand: str
    amount: float


class ResultsReply(_Reply):
    tournament_id: str
    status: str
    prize_pool: float
    results: list[ResultReply]
    refunds: list[RefundReply]
