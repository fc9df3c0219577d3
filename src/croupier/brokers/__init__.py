"""Brokers: fan-out between nodes, chosen by ``CROUPIER_BROKER_URL``."""

from ..logs.base import Log
from .base import Broker, EventHandler
from .local import LocalBroker
from .postgres import PostgresBroker
from .redis import RedisBroker

__all__ = [
    "Broker",
    "EventHandler",
    "LocalBroker",
    "PostgresBroker",
    "RedisBroker",
    "broker_from_url",
]


def broker_from_url(url: str, log: Log) -> Broker:
    """``local://`` (the default), ``redis://…`` or ``postgresql://…``.

    The PostgreSQL broker reads events from ``log``.

    Raises:
        ValueError: a scheme this build does not know.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme == "local":
        return LocalBroker()
    if scheme in ("redis", "rediss"):
        return RedisBroker(url)
    if scheme in ("postgres", "postgresql"):
        return PostgresBroker(url, log)
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r} (expected local://, redis:// or postgresql://)"
    )
