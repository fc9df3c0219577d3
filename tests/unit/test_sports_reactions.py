"""Reactions: what counts as an emoji and a comment, and the tallies that summarise them."""

from __future__ import annotations

import pytest

from croupier.errors import BadRequest
from croupier.services.sports.reactions import (
    SAMPLES,
    Reaction,
    Summary,
    Tally,
    is_emoji,
    validate_reaction,
)


@pytest.mark.parametrize(
    "emoji",
    ["🔥", "👏", "👏🏽", "❤️", "🇮🇳", "👨‍👩‍👧", "1️⃣", "#️⃣", "⚽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", ":)", "<3"],
)
def test_emoji(emoji: str) -> None:
    assert is_emoji(emoji)


@pytest.mark.parametrize("text", ["", "a", "🔥a", "fire", "1", "🔥" * 11, "\u200d", "🏽", ":-)"])
def test_not_emoji(text: str) -> None:
    assert not is_emoji(text)


def test_a_reaction_keeps_emoji_and_trimmed_comment_only() -> None:
    reaction = validate_reaction(
        "fan1", {"emoji": "🔥", "comment": "  lesssgoooo ", "from": {"id": "fan1"}}
    )
    assert reaction == Reaction("fan1", "🔥", "lesssgoooo")
    assert validate_reaction("fan1", {"emoji": "🔥", "comment": "  "}).comment is None


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"emoji": 1},
        {"emoji": "hello"},
        {"emoji": "🔥", "comment": 5},
        {"emoji": "🔥", "comment": "x" * 141},
        {"emoji": "🔥", "comment": "bell\x07"},
        ["🔥"],
    ],
)
def test_bad_reactions(data: object) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_reaction("fan1", data)
    assert caught.value.code == "bad_reaction"


def test_a_tally_counts_per_emoji_and_keeps_a_few_samples_one_per_viewer() -> None:
    tally = Tally()
    for i in range(20):
        tally.add("m1", Reaction(f"fan{i % 7}", "🔥" if i % 3 else "😱", f"c{i}"), 10.0, 11.0)
    tally.add("m2", Reaction("fan1", "👏"), 10.0, 11.0)
    drained = tally.drain()
    assert not tally
    m1 = drained["m1"]
    assert m1.total == 20
    assert m1.counts == {"😱": 7, "🔥": 13}
    assert len(m1.samples) == SAMPLES
    assert len({s["id"] for s in m1.samples}) == SAMPLES
    assert drained["m2"].samples == []  # no comment, no sample
    assert tally.drain() == {}


def test_merged_partials_add_up_whatever_their_windows() -> None:
    nodes = [Tally(), Tally(), Tally()]
    sent = 0
    for n, node in enumerate(nodes):
        for i in range(10 * (n + 1)):
            node.add(
                "m1", Reaction(f"n{n}v{i}", "🔥" if i % 2 else "👏", "hey"), 10.0 + n, 11.0 + n
            )
            sent += 1
    merged = Tally()
    for node in nodes:
        for event_id, part in node.drain().items():
            merged.merge(event_id, part)
    (summary,) = merged.drain().values()
    assert summary.total == sent == 60
    assert summary.counts == {"🔥": 30, "👏": 30}
    assert (summary.start, summary.end) == (10.0, 13.0)  # a late partial widens the window
    assert len(summary.samples) == SAMPLES
    merged.merge("m1", Summary(20.0, 21.0, 1, {"🎉": 1}, []))
    assert merged.drain()["m1"].as_dict() == {
        "total": 1,
        "counts": {"🎉": 1},
        "samples": [],
        "start": 20.0,
        "end": 21.0,
    }
