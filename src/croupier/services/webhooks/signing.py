"""Webhook signatures, retry schedule and event-type patterns: rules without I/O.

A delivery is signed with HMAC-SHA256 over ``"{timestamp}.{body}"`` using the endpoint's
secret; the receiver recomputes it (see :func:`verify`) and compares in constant time, and
refuses timestamps too far from its own clock so that a captured request cannot be replayed
later.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
from collections.abc import Callable, Iterable

from ...core.pusher import sign as pusher_sign

__all__ = [
    "EVENT_HEADER",
    "ID_HEADER",
    "PUSHER_KEY_HEADER",
    "PUSHER_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TypeMatcher",
    "backoff_delay",
    "new_secret",
    "sign",
    "sign_pusher",
    "verify",
]

ID_HEADER = "Croupier-Webhook-Id"
EVENT_HEADER = "Croupier-Webhook-Event"
TIMESTAMP_HEADER = "Croupier-Webhook-Timestamp"
SIGNATURE_HEADER = "Croupier-Webhook-Signature"
PUSHER_KEY_HEADER = "X-Pusher-Key"
PUSHER_SIGNATURE_HEADER = "X-Pusher-Signature"
_VERSION = "v1"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 43 URL-safe characters (256 random bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (Unix seconds).

    ``v1=`` followed by the lowercase hex HMAC-SHA256 of ``b"{timestamp}." + body``.
    """
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{_VERSION}={digest}"


def sign_pusher(secret: str, body: bytes) -> str:
    """A Pusher-format delivery's ``X-Pusher-Signature``: hex HMAC-SHA256 of the body."""
    return pusher_sign(secret, body)


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """Whether ``signature`` (a header value) signs ``body`` at ``timestamp`` with ``secret``.

    The header may carry several space-separated signatures (during a secret rotation, say);
    one valid ``v1=`` signature is enough. A timestamp more than ``tolerance`` seconds from
    ``now`` fails, however good the signature.
    """
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, int(timestamp), body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signature.split())


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2 ** (attempt -
    1))]``, so retries of many deliveries that failed together spread out instead of
    arriving at the receiver in waves.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return rand(0.0, ceiling)


class TypeMatcher:
    """Which event types an endpoint subscribed to: names, ``*`` matching any run of
    characters (``tournament.*``, ``*_balance_update``, ``*``)."""

    __slots__ = ("_regex",)

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = [".*".join(re.escape(piece) for piece in p.split("*")) for p in patterns]
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts) or "(?!)")

    def __call__(self, event_type: str) -> bool:
        return self._regex.fullmatch(event_type) is not None
