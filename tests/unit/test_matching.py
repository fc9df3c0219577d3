"""The matching rules, driven directly: windows, grouping, time-outs, positions, the table."""

from __future__ import annotations

import random

import pytest

from croupier.core.matching import (
    InvalidTicketTransition,
    QueueRules,
    Throughput,
    Ticket,
    TicketStatus,
    estimate_wait,
    match_pass,
    ticket_transition,
    window_of,
)

RULES = QueueRules(group_size=2, window=100, widen_by=50, widen_every=5, max_window=300, timeout=60)
NOW = 1_000.0


def t(id: str, rating: float | None, waited: float = 0.0, **props: str) -> Ticket:
    return Ticket(id, f"p-{id}", NOW - waited, rating, tuple(sorted(props.items())))


def groups(result: object) -> set[frozenset[str]]:
    return {frozenset(x.id for x in g) for g in result.matches}  # type: ignore[attr-defined]


def test_the_window_widens_in_steps_up_to_its_maximum() -> None:
    assert window_of(RULES, 0) == 100
    assert window_of(RULES, 4.9) == 100
    assert window_of(RULES, 5) == 150
    assert window_of(RULES, 12) == 200
    assert window_of(RULES, 10_000) == 300


def test_players_outside_each_others_window_wait_until_it_has_widened() -> None:
    a, b = t("a", 1000), t("b", 1180)
    assert match_pass([a, b], RULES, NOW).matches == ()
    # After 10 s both windows are 200: a spread of 180 is accepted.
    later = match_pass([a, b], RULES, NOW + 10)
    assert groups(later) == {frozenset({"a", "b"})}


def test_a_group_needs_every_members_window_not_just_one() -> None:
    old = t("old", 1000, waited=30)  # window 300
    new = t("new", 1200)  # window 100
    assert match_pass([old, new], RULES, NOW).matches == ()


def test_closest_ratings_are_paired() -> None:
    tickets = [t("a", 1000), t("b", 1010), t("c", 1090), t("d", 1095)]
    assert groups(match_pass(tickets, RULES, NOW)) == {
        frozenset({"a", "b"}),
        frozenset({"c", "d"}),
    }


def test_only_equal_properties_are_grouped() -> None:
    tickets = [t("a", 1000, region="eu"), t("b", 1001, region="us"), t("c", 1002, region="eu")]
    result = match_pass(tickets, RULES, NOW)
    assert groups(result) == {frozenset({"a", "c"})}
    assert [x.id for x in result.waiting] == ["b"]


def test_groups_of_four() -> None:
    rules = QueueRules(group_size=4, window=50, timeout=60)
    tickets = [t(str(i), 1000 + i) for i in range(10)]
    result = match_pass(tickets, rules, NOW)
    assert len(result.matches) == 2
    assert all(len(g) == 4 for g in result.matches)
    assert len(result.waiting) == 2
    seen = [x.id for g in result.matches for x in g] + [x.id for x in result.waiting]
    assert sorted(seen) == sorted(x.id for x in tickets)


def test_unrated_tickets_match_each_other_first_come_first_served() -> None:
    tickets = [t("late", None, 1), t("early", None, 9), t("mid", None, 5), t("r", 1000)]
    result = match_pass(tickets, RULES, NOW)
    assert groups(result) == {frozenset({"early", "mid"})}
    assert {x.id for x in result.waiting} == {"late", "r"}


def test_tickets_time_out_and_are_not_matched() -> None:
    tickets = [t("a", 1000, waited=60), t("b", 1001, waited=59)]
    result = match_pass(tickets, RULES, NOW)
    assert [x.id for x in result.timed_out] == ["a"]
    assert result.matches == ()
    assert [x.id for x in result.waiting] == ["b"]


def test_positions_follow_waiting_time() -> None:
    tickets = [t("c", 1000, 1), t("a", 5000, 9), t("b", 9000, 5)]
    result = match_pass(tickets, RULES, NOW)
    assert [x.id for x in result.waiting] == ["a", "b", "c"]


def test_no_ticket_is_used_twice_and_none_is_lost() -> None:
    rng = random.Random(7)
    tickets = [
        t(str(i), rng.gauss(1500, 300), rng.uniform(0, 70), region=rng.choice("ab"))
        for i in range(2_000)
    ]
    result = match_pass(tickets, RULES, NOW)
    ids = [x.id for g in result.matches for x in g]
    ids += [x.id for x in result.timed_out] + [x.id for x in result.waiting]
    assert sorted(ids) == sorted(x.id for x in tickets)
    for g in result.matches:
        ratings = [x.rating or 0.0 for x in g]
        spread = max(ratings) - min(ratings)
        assert all(spread <= window_of(RULES, NOW - x.queued_at) for x in g)
        assert len({x.properties for x in g}) == 1
    assert len(result.matches) > 500


def test_the_ticket_lifecycle_table() -> None:
    assert ticket_transition(TicketStatus.WAITING, TicketStatus.MATCHED) is TicketStatus.MATCHED
    with pytest.raises(InvalidTicketTransition):
        ticket_transition(TicketStatus.MATCHED, TicketStatus.CANCELLED)
    with pytest.raises(InvalidTicketTransition):
        ticket_transition(TicketStatus.TIMED_OUT, TicketStatus.WAITING)


def test_estimated_wait() -> None:
    assert estimate_wait(3, 0, Throughput(), NOW) is None
    few = Throughput().record([8.0, 10.0], NOW)
    assert estimate_wait(1, 2.0, few, NOW) == 8.0  # typical wait 10, 2 already waited
    pace = Throughput()
    for i in range(10):
        pace = pace.record([5.0, 5.0], NOW - 10 + i)
    estimate = estimate_wait(4, 0, pace, NOW)
    assert estimate is not None
    assert 1.0 < estimate < 3.0


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        QueueRules(group_size=1)
    with pytest.raises(ValueError, match="max_window"):
        QueueRules(window=500, max_window=100)
