"""Viewer counting: one viewer per id, and the grace period that hides a quick reconnect."""

from __future__ import annotations

from croupier.services.sports.viewers import GRACE, ViewerBook


def test_a_viewer_is_counted_on_join_and_uncounted_after_the_grace_period() -> None:
    book = ViewerBook()
    assert book.join("m1", "v1")
    assert book.join("m1", "v2")
    assert book.count("m1") == 2
    book.leave("m1", "v1", now=100.0)
    assert book.count("m1") == 2  # still counted during the grace period
    assert book.expire(100.0 + GRACE - 0.01) == []
    assert book.expire(100.0 + GRACE) == [("m1", "v1")]
    assert book.count("m1") == 1
    book.leave("m1", "v2", now=200.0)
    assert book.expire(300.0) == [("m1", "v2")]
    assert book.count("m1") == 0
    assert list(book.events()) == []


def test_a_viewer_back_within_the_grace_period_was_never_gone() -> None:
    book = ViewerBook()
    assert book.join("m1", "v1")
    book.leave("m1", "v1", now=100.0)
    assert not book.join("m1", "v1")  # not a new viewer
    assert book.expire(200.0) == []
    assert book.count("m1") == 1


def test_two_connections_of_one_viewer_count_once() -> None:
    book = ViewerBook()
    assert book.join("m1", "v1")
    assert not book.join("m1", "v1")
    book.leave("m1", "v1", now=100.0)
    assert book.expire(200.0) == []  # the other tab is still open
    book.leave("m1", "v1", now=200.0)
    assert book.expire(200.0 + GRACE) == [("m1", "v1")]


def test_events_are_counted_apart_and_unknown_leaves_are_ignored() -> None:
    book = ViewerBook(grace=1.0)
    book.join("m1", "v1")
    book.join("m2", "v1")
    book.leave("m3", "v1", now=0.0)
    book.leave("m1", "v1", now=0.0)
    assert book.expire(1.0) == [("m1", "v1")]
    assert (book.count("m1"), book.count("m2")) == (0, 1)
    assert list(book.events()) == ["m2"]
