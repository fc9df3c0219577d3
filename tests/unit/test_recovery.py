"""The all-or-nothing resume decision (``croupier.core.recovery.can_recover``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.recovery import can_recover
from croupier.events import Position


@pytest.mark.parametrize(
    ("since", "top", "first", "max_events", "expected"),
    [
        # (since offset, top offset, first held, max): same epoch throughout
        (10, 10, 1, 100, True),  # up to date: nothing to replay, still recovered
        (0, 10, 1, 100, True),  # from the very beginning, all held
        (5, 10, 1, 100, True),
        (5, 10, 6, 100, True),  # exactly the first missing event is still held
        (5, 10, 7, 100, False),  # offset 6 was trimmed
        (10, 10, 11, 100, True),  # everything trimmed but nothing missed
        (9, 10, 11, 100, False),  # missed offset 10, which is gone
        (0, 0, 1, 100, True),  # an empty channel
        (11, 10, 1, 100, False),  # the client is ahead of the log: another history
        (-1, 10, 1, 100, False),
        (0, 100, 1, 100, True),  # exactly the bound
        (0, 101, 1, 100, False),  # one over the bound
        (90, 100, 1, 0, False),  # max 0 recovers only a client that missed nothing
        (100, 100, 1, 0, True),
    ],
)
def test_table(since: int, top: int, first: int, max_events: int, expected: bool) -> None:
    assert can_recover(Position(since, "e1"), Position(top, "e1"), first, max_events) is expected


def test_another_epoch_never_recovers() -> None:
    assert not can_recover(Position(10, "old"), Position(10, "new"), 1, 100)
    assert not can_recover(Position(0, "old"), Position(0, "new"), 1, 100)


offsets = st.integers(-5, 2000)
epochs = st.sampled_from(["a", "b"])


@given(offsets, epochs, st.integers(0, 2000), epochs, st.integers(0, 2000), st.integers(0, 2000))
def test_never_across_epochs(
    since: int, since_epoch: str, top: int, top_epoch: str, first_gap: int, max_events: int
) -> None:
    first = min(first_gap + 1, top + 1)
    result = can_recover(Position(since, since_epoch), Position(top, top_epoch), first, max_events)
    if since_epoch != top_epoch:
        assert result is False


@given(offsets, st.integers(0, 2000), st.integers(1, 2001), st.integers(0, 2000))
def test_recover_iff_everything_after_since_is_held(
    since: int, top: int, first: int, max_events: int
) -> None:
    first = min(first, top + 1)  # the log never holds offsets above its top
    expected = first - 1 <= since <= top and top - since <= max_events and since >= 0
    assert can_recover(Position(since, "e"), Position(top, "e"), first, max_events) is expected


@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(1, 2001), st.integers(0, 2000))
def test_recovered_range_is_exactly_what_the_log_holds(
    since: int, top: int, first: int, max_events: int
) -> None:
    """When it says yes, replaying offsets ``since+1 … top`` reads only held offsets."""
    first = min(first, top + 1)
    if can_recover(Position(since, "e"), Position(top, "e"), first, max_events):
        missed = range(since + 1, top + 1)
        assert all(first <= offset <= top for offset in missed)
        assert len(missed) <= max_events
