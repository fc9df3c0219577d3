"""Event timestamps: the cached formatting says exactly what datetime would."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from croupier.logs.base import now_ts


def reference(moment: float) -> str:
    dt = datetime.fromtimestamp(moment, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_now_ts_matches_datetime(moment: float) -> None:
    assert now_ts(moment) == reference(moment)


def test_now_ts_across_a_second_boundary() -> None:
    for moment in (1795340126.9994, 1795340126.9996, 1795340127.0, 1795340126.0004):
        assert now_ts(moment) == reference(moment)
    assert now_ts().endswith("Z")
