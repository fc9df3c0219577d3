"""Logs: the durable per-channel store, chosen by ``CROUPIER_DATABASE_URL``."""

from .base import IDEMPOTENCY_WINDOW, Append, Appended, Log, Retention, new_epoch, now_ts
from .memory import MemoryLog
from .postgres import PostgresLog
from .sqlite import SQLiteLog

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "Append",
    "Appended",
    "Log",
    "MemoryLog",
    "PostgresLog",
    "Retention",
    "SQLiteLog",
    "log_from_url",
    "new_epoch",
    "now_ts",
]


def log_from_url(url: str) -> Log:
    """``sqlite:///path.db`` (the default), ``postgresql://…`` or ``memory://``.

    Raises:
        ValueError: a scheme this build does not know.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return SQLiteLog.from_url(url)
    if scheme in ("postgres", "postgresql"):
        return PostgresLog.from_url(url)
    if scheme == "memory":
        return MemoryLog()
    raise ValueError(
        f"unsupported database URL scheme {scheme!r} "
        "(expected sqlite://, postgresql:// or memory://)"
    )
