"""Single-elimination brackets for every count from 2 to 65."""

from __future__ import annotations

import pytest

from croupier.core.brackets import (
    BracketError,
    bracket_order,
    build_bracket,
    report_result,
    seed_players,
)


def players(n: int) -> list[str]:
    return [f"p{i}" for i in range(1, n + 1)]  # p1 is seed 1


@pytest.mark.parametrize("n", range(2, 66))
def test_every_count_makes_a_sound_bracket(n: int) -> None:
    b = build_bracket(players(n))
    size = b.size
    assert size >= n
    assert size & (size - 1) == 0
    assert size < 2 * n
    first = b.rounds[0]
    placed = [p for m in first for p in m.players if p is not None]
    assert sorted(placed) == sorted(players(n)), "each player once, all in round 1"
    byes = [m for m in first if m.bye]
    assert len(byes) == size - n
    # Byes go to the top seeds, and only in round 1.
    assert {m.winner for m in byes} == set(players(size - n))
    assert all(not m.bye for r in b.rounds[1:] for m in r)
    assert all(None not in m.players or m.bye for m in first)
    assert len(b.rounds[-1]) == 1
    assert len(b.rounds[-1][0].players) == 2
    # Play it out: the better seed always wins; winners advance to the final.
    for r in range(len(b.rounds)):
        for m in b.rounds[r]:
            if m.bye:
                continue
            a, c = m.players
            assert a is not None
            assert c is not None
            winner = min(a, c, key=players(n).index)
            b = report_result(b, m.id, winner)
            if r + 1 < len(b.rounds):
                nxt = b.rounds[r + 1][m.index // 2]
                assert nxt.players[m.index % 2] == winner
    assert b.champion == "p1"
    assert set(b.rounds[-1][0].players) == {"p1", "p2"}


def test_seed_order_keeps_the_top_two_apart() -> None:
    assert bracket_order(8) == [1, 8, 4, 5, 2, 7, 3, 6]
    order = bracket_order(64)
    assert order.index(1) < 32 <= order.index(2)


def test_seeding_by_rating_and_by_random_seed() -> None:
    ranked = seed_players([("a", 1200), ("b", 1900), ("c", None), ("d", 1500)])
    assert ranked == ["b", "d", "a", "c"]
    field = [(f"x{i}", None) for i in range(16)]
    once = seed_players(field, random_seed=42)
    assert once == seed_players(field, random_seed=42)
    assert once != seed_players(field, random_seed=43)
    assert sorted(once) == sorted(p for p, _ in field)


def test_results_are_checked() -> None:
    b = build_bracket(players(3))  # p1 has a bye; p2 v p3
    with pytest.raises(BracketError):
        report_result(b, "r1m0", "p1")  # a bye is not played
    with pytest.raises(BracketError):
        report_result(b, "r2m0", "p1")  # the final has one player so far
    with pytest.raises(BracketError):
        report_result(b, "r1m1", "p1")  # not in that match
    with pytest.raises(BracketError):
        report_result(b, "r9m9", "p1")
    b = report_result(b, "r1m1", "p3")
    assert report_result(b, "r1m1", "p3") == b  # the same report twice is a no-op
    with pytest.raises(BracketError):
        report_result(b, "r1m1", "p2")  # results are final
    b = report_result(b, "r2m0", "p3")
    assert b.champion == "p3"


def test_too_few_or_repeated_players_are_refused() -> None:
    with pytest.raises(BracketError):
        build_bracket(["solo"])
    with pytest.raises(BracketError):
        build_bracket(["a", "a"])
    with pytest.raises(BracketError):
        seed_players([("a", 1.0), ("a", 2.0)])
