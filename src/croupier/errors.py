"""The error tree. Every error carries a stable ``code`` that clients can switch on."""

from __future__ import annotations

import json

__all__ = [
    "BadRequest",
    "Conflict",
    "CroupierError",
    "Forbidden",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "shown",
]


class CroupierError(Exception):
    """Base of all errors Croupier reports to a client."""

    code = "internal"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(CroupierError):
    code = "bad_request"
    status = 400


class Unauthorized(CroupierError):
    code = "unauthorized"
    status = 401


class Forbidden(CroupierError):
    code = "forbidden"
    status = 403


class NotFound(CroupierError):
    code = "not_found"
    status = 404


class Conflict(CroupierError):
    """The request contradicts the current state (a balance too small, a reused id)."""

    code = "conflict"
    status = 409


class PayloadTooLarge(CroupierError):
    code = "too_large"
    status = 413


class RateLimited(CroupierError):
    code = "rate_limited"
    status = 429


class Unavailable(CroupierError):
    """The durable log or the broker cannot take the request right now."""

    code = "unavailable"
    status = 503


class Overloaded(CroupierError):
    """The node takes no more new connections this second; come back in ``retry_after`` s."""

    code = "overloaded"
    status = 503

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"this server is admitting no more new connections now: retry in {retry_after} s"
        )
        self.retry_after = retry_after


def shown(value: object, limit: int = 80) -> str:
    """``value`` as an error message shows what a client sent: JSON (``"abc"``, ``12``,
    ``null``), a string cut to ``limit`` characters; never a Python repr."""
    if isinstance(value, str):
        value = value[:limit]
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps(str(value)[:limit], ensure_ascii=False)
    return text if len(text) <= limit + 2 else text[: limit + 1] + "…"
