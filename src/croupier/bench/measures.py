"""Summaries of the benchmarks' samples."""

from __future__ import annotations

__all__ = ["percentile"]


def percentile(ordered: list[float], fraction: float) -> float:
    """The value ``fraction`` (0..1) of the way through ``ordered`` (sorted); NaN if empty."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
