"""The admission budget's rules (``croupier.core.admission``) and its settings."""

from __future__ import annotations

from croupier.config import load_settings
from croupier.core.admission import MAX_RETRY_AFTER, Admission


def test_no_rate_admits_everything() -> None:
    admission = Admission(0, 0, 0.0)
    assert all(admission.admit(0.0) is None for _ in range(10_000))


def test_a_burst_then_the_rate() -> None:
    admission = Admission(10, 5, 0.0)
    assert [admission.admit(0.0) for _ in range(5)] == [None] * 5
    assert admission.admit(0.0) is not None
    assert admission.admit(0.1) is None, "one more after a tenth of a second"
    assert admission.admit(0.1) is not None


def test_the_refused_are_told_their_place_in_the_queue() -> None:
    admission = Admission(100, 100, 0.0)
    for _ in range(100):
        assert admission.admit(0.0) is None
    waits = [admission.admit(0.0) for _ in range(1000)]
    assert waits[0] == 1
    assert waits[-1] == 10, "1,000 refused at 100 a second: the last waits ten seconds"
    assert waits == sorted(waits)
    assert admission.refused == 1000
    assert admission.admit(60.0) is None, "the queue drains with time"
    assert Admission(1, 1, 0.0).admit(0.0) is None


def test_the_wait_is_bounded() -> None:
    admission = Admission(1, 1, 0.0)
    admission.admit(0.0)
    assert max(admission.admit(0.0) or 0 for _ in range(500)) == MAX_RETRY_AFTER


def test_settings_from_the_environment() -> None:
    settings = load_settings(env={"CROUPIER_ADMIT_RATE": "250", "CROUPIER_ADMIT_BURST": "50"})
    assert (settings.limits.admit_rate, settings.limits.admit_burst) == (250.0, 50)
    assert load_settings(env={}).limits.admit_rate == 0
