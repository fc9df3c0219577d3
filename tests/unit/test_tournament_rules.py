"""Tournament rules without I/O: the lifecycle table, the clock, points, prizes and ties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.services.tournaments.rules import (
    ALLOWED,
    TRANSITIONS,
    Action,
    Counting,
    InvalidTransition,
    Op,
    PointsRule,
    PrizeRange,
    Schedule,
    Scoring,
    Standing,
    Status,
    TieMode,
    check_prizes,
    due,
    group_of,
    next_due,
    player_score,
    prize_pool,
    prizes_by_position,
    require,
    settle,
    submission_points,
    transition,
)

# -- the lifecycle table -----------------------------------------------------------------------

VALID = {
    (Status.SCHEDULED, Action.OPEN): Status.REGISTERING,
    (Status.SCHEDULED, Action.CANCEL): Status.CANCELLED,
    (Status.REGISTERING, Action.START): Status.RUNNING,
    (Status.REGISTERING, Action.CANCEL): Status.CANCELLED,
    (Status.RUNNING, Action.COMPLETE): Status.COMPLETED,
    (Status.RUNNING, Action.CANCEL): Status.CANCELLED,
}


@pytest.mark.parametrize(("status", "action"), list(itertools.product(Status, Action)))
def test_every_status_and_action_is_allowed_or_refused(status: Status, action: Action) -> None:
    if (status, action) in VALID:
        assert transition(status, action) is VALID[(status, action)]
    else:
        with pytest.raises(InvalidTransition, match=f"cannot {action.value}"):
            transition(status, action)


def test_the_table_is_exactly_the_lifecycle() -> None:
    assert TRANSITIONS == VALID


@pytest.mark.parametrize("final", [Status.COMPLETED, Status.CANCELLED])
def test_final_states_have_no_way_out(final: Status) -> None:
    for action in Action:
        with pytest.raises(InvalidTransition):
            transition(final, action)


def test_operations_by_status() -> None:
    require(Status.REGISTERING, Op.REGISTER)
    for op in (Op.SCORE, Op.ELIMINATE, Op.REBUY, Op.ADVANCE):
        require(Status.RUNNING, op)
        with pytest.raises(InvalidTransition):
            require(Status.REGISTERING, op)
    with pytest.raises(InvalidTransition, match="cannot register players in a tournament"):
        require(Status.RUNNING, Op.REGISTER)
    assert all(Status.COMPLETED not in allowed for allowed in ALLOWED.values())


# -- the clock ---------------------------------------------------------------------------------


def _schedule(status: Status, **kw: object) -> Schedule:
    base: dict[str, object] = {
        "opens_at": None,
        "starts_at": None,
        "ends_at": None,
        "round_seconds": None,
        "round_started_at": None,
        "current_round": 0,
        "total_rounds": 3,
        "players": 0,
        "min_players": 2,
    }
    base.update(kw)
    return Schedule(status, **base)  # type: ignore[arg-type]


def test_clock_opens_starts_or_cancels_and_completes() -> None:
    s = _schedule(Status.SCHEDULED, opens_at=10.0, starts_at=20.0)
    assert due(s, 9.0) is None
    assert next_due(s) == 10.0
    assert due(s, 10.0) is Action.OPEN
    s = _schedule(Status.REGISTERING, starts_at=20.0, players=1)
    assert due(s, 19.0) is None
    assert due(s, 20.0) is Action.CANCEL  # below the minimum of 2
    assert due(_schedule(Status.REGISTERING, starts_at=20.0, players=2), 20.0) is Action.START
    s = _schedule(Status.RUNNING, ends_at=50.0, current_round=1)
    assert due(s, 49.0) is None
    assert due(s, 50.0) is Action.COMPLETE


def test_clock_advances_rounds_then_completes() -> None:
    s = _schedule(Status.RUNNING, round_seconds=5.0, round_started_at=100.0, current_round=2)
    assert next_due(s) == 105.0
    assert due(s, 104.9) is None
    assert due(s, 105.0) is Op.ADVANCE
    last = _schedule(Status.RUNNING, round_seconds=5.0, round_started_at=100.0, current_round=3)
    assert due(last, 105.0) is Action.COMPLETE


def test_clock_leaves_api_only_and_final_tournaments_alone() -> None:
    assert next_due(_schedule(Status.SCHEDULED)) is None
    assert next_due(_schedule(Status.COMPLETED, ends_at=1.0)) is None
    assert due(_schedule(Status.CANCELLED, starts_at=1.0), 100.0) is None


# -- points ------------------------------------------------------------------------------------


def test_raw_points() -> None:
    rule = PointsRule()
    assert submission_points(rule, points=120.0, bet=None, win=None) == 120.0
    with pytest.raises(ValueError, match="send points"):
        submission_points(rule, points=None, bet=1.0, win=2.0)


def test_win_over_bet_multiplier() -> None:
    rule = PointsRule(Scoring.MULTIPLIER)
    assert submission_points(rule, points=None, bet=2.0, win=9.5) == 4.75
    assert submission_points(rule, points=None, bet=3.0, win=1.0) == 0.3333
    with pytest.raises(ValueError, match="positive bet"):
        submission_points(rule, points=None, bet=0.0, win=1.0)


def test_minimum_bet_to_qualify() -> None:
    rule = PointsRule(Scoring.MULTIPLIER, min_bet=1.0)
    assert submission_points(rule, points=None, bet=0.5, win=50.0) is None
    assert submission_points(rule, points=None, bet=1.0, win=50.0) == 50.0
    assert submission_points(PointsRule(min_bet=1.0), points=9.0, bet=None, win=None) is None


def test_entries_add_up_or_the_best_counts() -> None:
    assert player_score(PointsRule(counting=Counting.SUM), [10.0, 30.0, 5.0]) == 45.0
    assert player_score(PointsRule(counting=Counting.BEST), [10.0, 30.0, 5.0]) == 30.0
    assert player_score(PointsRule(), []) == 0.0


# -- prizes ------------------------------------------------------------------------------------


def test_prize_table_amounts_and_percentages() -> None:
    table = [PrizeRange(1, 1, percent=50.0), PrizeRange(2, 3, percent=10.0), PrizeRange(4, 5, 500)]
    assert prizes_by_position(table, 10_000, 6) == [5000, 1000, 1000, 500, 500, 0]
    assert prizes_by_position(table, 10_000, 2) == [5000, 1000]  # fewer players than prizes
    assert prizes_by_position(table, 333, 1) == [166]  # percentages round down


def test_pool_is_never_below_the_guarantee() -> None:
    assert prize_pool(guaranteed=50_000, collected=12_000) == 50_000
    assert prize_pool(guaranteed=50_000, collected=87_000) == 87_000


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([PrizeRange(3, 1, 100)], "reversed"),
        ([PrizeRange(1, 3, 100), PrizeRange(3, 4, 100)], "overlap"),
        ([PrizeRange(1, 1)], "amount or a percent"),
        ([PrizeRange(1, 1, 100, 5.0)], "amount or a percent"),
        ([PrizeRange(1, 3, percent=40.0)], "pays 120%"),
    ],
)
def test_bad_prize_tables(table: list[PrizeRange], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_prizes(table)


# -- final standings and ties ------------------------------------------------------------------


def test_ties_split_the_prizes_of_the_positions_they_cover() -> None:
    standings = [
        Standing("a", 100.0, 5.0),
        Standing("b", 80.0, 1.0),
        Standing("c", 80.0, 2.0),
        Standing("d", 10.0, 0.0),
    ]
    placed = settle(standings, [5000, 3000, 1001], TieMode.SPLIT)
    assert [(p.player, p.position, p.prize) for p in placed] == [
        ("a", 1, 5000),
        ("b", 2, 2001),  # (3000 + 1001) / 2, the odd cent to the earlier achiever
        ("c", 2, 2000),
        ("d", 4, 0),
    ]


def test_ties_ranked_by_who_got_there_first() -> None:
    standings = [Standing("late", 80.0, 9.0), Standing("early", 80.0, 1.0)]
    placed = settle(standings, [3000, 1000], TieMode.FIRST)
    assert [(p.player, p.position, p.prize) for p in placed] == [
        ("early", 1, 3000),
        ("late", 2, 1000),
    ]


def test_a_tie_at_the_same_instant_falls_back_to_player_id() -> None:
    placed = settle([Standing("b", 5.0, 1.0), Standing("a", 5.0, 1.0)], [10, 0], TieMode.FIRST)
    assert [p.player for p in placed] == ["a", "b"]


@given(
    scores=st.lists(st.integers(0, 5), min_size=1, max_size=30),
    prizes=st.lists(st.integers(0, 10_000), max_size=30),
    ties=st.sampled_from(TieMode),
)
def test_settling_pays_exactly_the_filled_positions(
    scores: list[int], prizes: list[int], ties: TieMode
) -> None:
    standings = [Standing(f"p{i:02}", float(s), float(i)) for i, s in enumerate(scores)]
    placed = settle(standings, prizes, ties)
    assert sum(p.prize for p in placed) == sum(prizes[: len(scores)])
    assert sorted(p.player for p in placed) == sorted(s.player for s in standings)
    positions = [p.position for p in placed]
    assert positions == sorted(positions)
    assert positions[0] == 1
    if ties is TieMode.FIRST:
        assert positions == list(range(1, len(scores) + 1))
    for a, b in itertools.pairwise(placed):  # equal points share a position only when split
        assert (a.position == b.position) == (ties is TieMode.SPLIT and a.points == b.points)


def test_listener_groups() -> None:
    assert group_of("tournament.status.changed") == "tournament.status"
    assert group_of("tournament.completed") == "tournament.status"
    assert group_of("player.registered") == "player.updates"
    assert group_of("rebuy.success") == "player.updates"
    assert group_of("leaderboard.updated") == "game.events"
    assert group_of("round.started") == "game.events"
