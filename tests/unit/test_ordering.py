"""The hub's ordering rules (croupier.core.ordering), driven directly: no hub, no log."""

from __future__ import annotations

from croupier.core.ordering import (
    RECENT_IDLE,
    Arrival,
    ChannelOrder,
    PendingTake,
    ReadRange,
    RecentHistory,
    continuing,
    history_after,
    pending_take,
    resume,
    settle,
)
from croupier.events import Event, History, Position

CHANNEL = "tournament:1"


def stored(offset: int) -> Event:
    return Event(CHANNEL, "t", b"{}", "", offset=offset, epoch="e")


def ephemeral() -> Event:
    return Event(CHANNEL, "reaction", b"{}", "")


def offsets(events: object) -> list[int | None]:
    return [e.offset for e in events]  # type: ignore[attr-defined]


def test_until_a_subscriber_has_read_the_log_stored_events_are_buffered() -> None:
    order = ChannelOrder()
    assert order.arrive(stored(5)) is Arrival.BUFFER
    assert order.arrive(ephemeral()) is Arrival.DELIVER
    assert order.position() is None
    order.vouch(4, "e")
    order.vouch(9, "e")  # a later subscriber does not move a known order
    assert order.position() == Position(4, "e")


def test_the_next_offset_is_delivered_and_a_repeat_dropped() -> None:
    order = ChannelOrder(last=4)
    assert order.arrive(stored(5)) is Arrival.DELIVER
    assert order.last == 5
    assert order.arrive(stored(5)) is Arrival.DROP
    assert order.arrive(stored(3)) is Arrival.DROP
    assert order.last == 5


def test_an_event_beyond_a_gap_is_held_and_the_gap_read_before_it() -> None:
    order = ChannelOrder(last=4)
    assert order.arrive(stored(7)) is Arrival.FILL
    assert order.arrive(stored(8)) is Arrival.HOLD  # while the read runs
    assert order.arrive(ephemeral()) is Arrival.DELIVER  # ephemeral events never wait
    assert order.wants_fill(catch_up=False)
    fill = order.next_fill(catch_up=False, recover_max=100)
    assert fill.read == ReadRange(after=4, limit=4)  # offsets 5..8, two of them arrived
    delivered = list(order.fill(fill, [stored(5), stored(6), stored(7)]))
    assert [(e.offset, skipped) for e, skipped in delivered] == [(5, 0), (6, 0), (7, 0), (8, 0)]
    assert order.last == 8
    assert not order.wants_fill(catch_up=False)
    order.filled()
    assert order.arrive(stored(9)) is Arrival.DELIVER


def test_when_the_broker_brings_the_whole_gap_no_read_is_needed() -> None:
    order = ChannelOrder(last=4)
    order.arrive(stored(6))
    order.arrive(stored(5))
    fill = order.next_fill(catch_up=False, recover_max=100)
    assert fill.read is None
    assert offsets(e for e, _ in order.fill(fill, [])) == [5, 6]


def test_offsets_gone_from_the_log_are_skipped_and_counted() -> None:
    order = ChannelOrder(last=4)
    order.arrive(stored(9))
    fill = order.next_fill(catch_up=False, recover_max=100)
    delivered = list(order.fill(fill, [stored(7), stored(8)]))  # 5 and 6 were trimmed
    assert [(e.offset, skipped) for e, skipped in delivered] == [(7, 2), (8, 0), (9, 0)]


def test_a_failed_read_holds_the_events_again_ahead_of_newer_ones() -> None:
    order = ChannelOrder(last=4)
    order.arrive(stored(7))
    fill = order.next_fill(catch_up=False, recover_max=100)
    order.arrive(stored(8))
    order.retry(fill)
    assert offsets(order.held) == [7, 8]
    again = order.next_fill(catch_up=False, recover_max=100)
    assert again.read == ReadRange(after=4, limit=4)


def test_after_a_broker_outage_the_channel_reads_to_the_end_of_the_log() -> None:
    unknown = ChannelOrder()
    assert not unknown.resync()  # nobody stands anywhere: nothing to catch up
    order = ChannelOrder(last=10)
    assert order.resync()
    assert order.filling
    fill = order.next_fill(catch_up=True, recover_max=500)
    assert fill.read == ReadRange(after=10, limit=500)
    assert offsets(e for e, _ in order.fill(fill, [stored(11), stored(12)])) == [11, 12]
    # A second outage while that read runs: the running fill goes on to the end.
    assert not order.resync()
    assert order.wants_fill(catch_up=False)


def test_a_resuming_subscriber_recovers_only_when_the_log_still_holds_its_gap() -> None:
    top = Position(45, "e")
    read = History((stored(42), stored(43)), top, 1)  # the log's read may stop short of top
    assert resume(Position(41, "e"), read, 100) == (True, 43)
    assert resume(Position(45, "e"), History((), top, 1), 100) == (True, 45)
    assert resume(Position(41, "other"), read, 100) == (False, 45)
    assert resume(Position(10, "e"), History(read.events, top, 20), 100) == (False, 45)
    assert resume(None, History((), top, 0), 100) == (False, 45)


def test_resumes_share_the_last_read_while_it_continues_and_is_used() -> None:
    read = History(tuple(stored(n) for n in range(11, 16)), Position(15, "e"), 1)
    recent = RecentHistory(read, now=100.0)
    assert recent.covers(12, "e")
    assert not recent.covers(9, "e")  # offsets 10 and before were not read
    assert not recent.covers(12, "other")
    assert offsets(recent.since(12, now=101.0).events) == [13, 14, 15]
    assert recent.keep(stored(16), now=105.0)  # the channel delivered 16: it extends
    assert offsets(recent.since(14, now=105.0).events) == [15, 16]
    assert not recent.keep(stored(18), now=105.0)  # does not continue: drop it
    idle = RecentHistory(read, now=100.0)
    assert not idle.keep(stored(16), now=100.0 + RECENT_IDLE + 1)
    further = RecentHistory(History((stored(9),), Position(9, "e"), 1), now=100.0)
    assert further.replaces(recent)
    assert not recent.replaces(further)
    assert offsets(history_after(read, 13).events) == [14, 15]


def test_a_new_subscriber_catches_up_to_what_the_channel_delivered() -> None:
    order = ChannelOrder(last=12)
    assert order.catch_up(12) is None
    assert order.catch_up(9) == ReadRange(after=9, limit=3)
    assert offsets(continuing(9, [stored(8), stored(10), ephemeral(), stored(11)])) == [10, 11]


def test_from_its_buffer_a_subscriber_takes_only_the_run_that_continues_it() -> None:
    settled = settle(4, [stored(7), ephemeral(), stored(5), stored(4), stored(8)])
    assert offsets(settled.now) == [None, 5]
    assert settled.top == 5
    assert offsets(settled.beyond) == [7, 8]


def test_a_subscriber_catching_up_joins_with_the_first_stored_event_past_it() -> None:
    assert pending_take(None, 7) is PendingTake.BUFFER
    assert pending_take(None, None) is PendingTake.SKIP
    assert pending_take(6, None) is PendingTake.PUSH
    assert pending_take(6, 7) is PendingTake.JOIN
    assert pending_take(6, 6) is PendingTake.SKIP
