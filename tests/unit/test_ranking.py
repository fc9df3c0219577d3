"""Ranking: the order, the update modes, and replicas fed entries in any order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from croupier.core.ranking import MODES, Entry, Mode, Ranking, Standing, apply_mode


def _brute(entries: dict[str, Entry]) -> list[Entry]:
    return sorted(entries.values(), key=lambda e: (-e.score, e.achieved_at, e.player))


def test_score_descending_then_earlier_achievement_then_player() -> None:
    r = Ranking()
    r.update("c", 10, at=5.0)
    r.update("a", 10, at=7.0)
    r.update("b", 10, at=5.0)
    r.update("d", 20, at=9.0)
    assert [s.player for s in r.top(10)] == ["d", "b", "c", "a"]
    assert [r.rank(p) for p in "abcd"] == [4, 2, 3, 1]
    assert r.rank("nobody") is None
    assert len(r) == 4


def test_modes() -> None:
    r = Ranking()
    assert r.update("p", 5, mode="add", at=1.0).score == 5  # a new player starts at 0
    assert r.update("p", 3, mode="add", at=2.0) == Entry("p", 8, 2.0, None, 2)
    assert r.update("p", 0, mode="add", at=3.0).achieved_at == 2.0  # no change, no move
    assert r.update("p", 6, mode="max", at=4.0) == Entry("p", 8, 2.0, None, 4)
    assert r.update("p", 9, mode="max", at=5.0).achieved_at == 5.0
    assert r.update("p", 9, mode="set", at=6.0, display_name="Ann").achieved_at == 5.0
    assert r.update("p", 1, at=7.0) == Entry("p", 1, 7.0, "Ann", 7)
    with pytest.raises(ValueError, match="unknown mode"):
        r.update("p", 1, mode="min", at=8.0)  # type: ignore[arg-type]


def test_top_and_around_are_ranked_slices() -> None:
    r = Ranking(Entry(f"p{i}", 100 - i, 0.0, None, 1) for i in range(10))
    assert r.top(3) == [Standing(i + 1, f"p{i}", 100 - i, 0.0) for i in range(3)]
    assert r.top(0) == []
    assert len(r.top(50)) == 10
    assert [s.rank for s in r.around("p5", 2)] == [4, 5, 6, 7, 8]
    assert [s.rank for s in r.around("p0", 2)] == [1, 2, 3]
    assert [s.rank for s in r.around("p9", 2)] == [8, 9, 10]
    assert r.around("nobody", 2) == []
    assert r.standing("p3") == Standing(4, "p3", 97, 0.0)
    assert [e.player for e in r] == [f"p{i}" for i in range(10)]
    assert r.remove("p0") is not None
    assert r.rank("p1") == 1
    assert r.remove("p0") is None


def test_put_keeps_the_newest_version() -> None:
    r = Ranking()
    assert r.put(Entry("p", 5, 1.0, None, 2))
    assert not r.put(Entry("p", 9, 1.0, None, 1))  # older: ignored
    assert not r.put(Entry("p", 9, 1.0, None, 2))  # same version: ignored
    assert not r.put(Entry("p", 5, 1.0, None, 3))  # newer, same values: taken, no change
    assert r.get("p") == Entry("p", 5, 1.0, None, 3)
    assert r.put(Entry("p", 6, 1.0, None, 4))


_ops = st.lists(
    st.tuples(
        st.sampled_from([f"p{i}" for i in range(12)]),
        st.integers(-5, 5),  # small range: many ties
        st.sampled_from(MODES),
        st.integers(0, 6),  # few distinct times: ties on time too
        st.one_of(st.none(), st.sampled_from(["Ann", "Bob"])),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(_ops, st.integers(0, 15))
def test_matches_a_brute_force_sort(
    ops: list[tuple[str, int, Mode, int, str | None]], n: int
) -> None:
    r = Ranking()
    model: dict[str, Entry] = {}
    for player, score, mode, at, name in ops:
        model[player] = apply_mode(model.get(player), player, score, mode, float(at), name)
        assert (
            r.update(player, score, mode=mode, at=float(at), display_name=name) == (model[player])
        )
        order = _brute(model)
        assert [s.player for s in r.top(len(model))] == [e.player for e in order]
    order = _brute(model)
    assert [(s.rank, s.player) for s in r.top(n)] == [
        (i + 1, e.player) for i, e in enumerate(order[:n])
    ]
    for i, entry in enumerate(order):
        assert r.rank(entry.player) == i + 1
        assert r.get(entry.player) == entry
        around = r.around(entry.player, n)
        assert [s.player for s in around] == [e.player for e in order[max(i - n, 0) : i + n + 1]]


@settings(max_examples=100, deadline=None)
@given(_ops, st.randoms(use_true_random=False))
def test_replicas_converge_whatever_the_delivery_order(
    ops: list[tuple[str, int, Mode, int, str | None]], rnd: random.Random
) -> None:
    source = Ranking()
    sent = [
        source.update(player, score, mode=mode, at=float(at), display_name=name)
        for player, score, mode, at, name in ops
    ]
    shuffled = sent + rnd.sample(sent, len(sent) // 2)  # some delivered twice
    rnd.shuffle(shuffled)
    replica = Ranking()
    for entry in shuffled:
        replica.put(entry)
    assert list(replica) == list(source)
