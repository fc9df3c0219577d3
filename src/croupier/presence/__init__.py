"""Presence: who is in a channel."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Change, Presence
from .memory import MemoryPresence
from .redis import RedisPresence

__all__ = ["Change", "MemoryPresence", "Presence", "RedisPresence", "presence_from_url"]


def presence_from_url(url: str | None) -> Presence:
    """``redis://…`` for presence across nodes; anything else (or nothing) keeps it in this
    process.

    A Redis URL may carry Croupier's own query option ``ttl=SECONDS``: how long a dead
    node's entries outlive it (default 30). It is removed before the URL reaches Redis.

    Raises:
        ValueError: ``ttl`` is not a positive number.
    """
    if not url or url.split("://", 1)[0].lower() not in ("redis", "rediss"):
        return MemoryPresence()
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    ttls = [float(v) for k, v in query if k == "ttl"]
    if not ttls:
        return RedisPresence(url)
    if ttls[-1] <= 0:
        raise ValueError(f"presence ttl must be positive, not {ttls[-1]}")
    rest = urlencode([(k, v) for k, v in query if k != "ttl"])
    return RedisPresence(urlunsplit(parts._replace(query=rest)), ttl=ttls[-1])
