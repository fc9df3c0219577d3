"""``croupier bench``: the project's own benchmarks."""

from __future__ import annotations

import click

__all__ = ["bench"]


@click.group()
def bench() -> None:
    """Measure fan-out and publish throughput against a real server process."""
