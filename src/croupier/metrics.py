"""Prometheus metrics. Hot-path counts are plain integers read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Counts(Collector):
    def __init__(self, read: Callable[[], dict[str, tuple[str, float, str]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for name, (kind, value, doc) in self._read().items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.publish_seconds = Histogram(
            "croupier_publish_seconds",
            "Time to publish an event: validation, log append and broker hand-off.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "croupier_log_append_seconds",
            "Time the log took to store one append (one or many events).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.published = 0
        self.slow_consumers = 0
        self.refused_connections = 0
        self.connections_total = 0
        self.rejected = 0
        self.broker_failures = 0

    def add_source(self, read: Callable[[], dict[str, tuple[str, float, str]]]) -> None:
        self.registry.register(_Counts(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
