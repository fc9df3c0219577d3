"""Brokers: fan-out between nodes, chosen by ``CROUPIER_BROKER_URL``."""

from .base import Broker, EventHandler
from .local import LocalBroker

__all__ = ["Broker", "EventHandler", "LocalBroker", "broker_from_url"]


def broker_from_url(url: str) -> Broker:
    """``local://`` (the default). Raises ValueError for a scheme this build does not know."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "local":
        return LocalBroker()
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (expected local://)")
