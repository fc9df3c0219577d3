"""Player tokens (JWT) and backend API keys."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence
from typing import Any

import jwt

from .config import ApiKey, Settings
from .core.channels import Claims
from .errors import Forbidden, Unauthorized

__all__ = ["Authenticator", "mint_token"]


class Authenticator:
    """Verifies player JWTs and backend API keys against the settings."""

    def __init__(self, settings: Settings) -> None:
        self._key: str | None = settings.jwt_public_key or settings.jwt_secret
        self._algorithms = list(settings.jwt_algorithms)
        self._api_keys: Sequence[ApiKey] = settings.api_keys

    def verify_token(self, token: str) -> Claims:
        """Decode and check a player token.

        Raises:
            Unauthorized: bad signature, expired, malformed, or missing ``sub``.
        """
        if not self._key:
            raise Unauthorized("player tokens are not configured on this server")
        try:
            doc: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": ["sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None
        channels = doc.get("channels") or ()
        if isinstance(channels, str):
            channels = (channels,)
        if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
            raise Unauthorized(
                "invalid token: 'channels' must be a list of strings", code="invalid_token"
            )
        brand = doc.get("brand")
        exp = doc.get("exp")
        return Claims(
            sub=str(doc["sub"]),
            brand=None if brand is None else str(brand),
            name=None if doc.get("name") is None else str(doc["name"]),
            channels=tuple(channels),
            exp=float(exp) if isinstance(exp, int | float) else None,
        )

    @property
    def has_api_keys(self) -> bool:
        return bool(self._api_keys)

    def verify_key(self, key: str | None, scope: str) -> ApiKey:
        """Find the API key ``key`` and check it has ``scope``.

        Every configured key is compared (in constant time) so the time taken does not tell
        which key came close.

        Raises:
            Unauthorized: no key, or not a known key.
            Forbidden: a known key without ``scope``.
        """
        if not key:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(key.encode()).digest()
        found: ApiKey | None = None
        for candidate in self._api_keys:
            if hmac.compare_digest(candidate.digest, digest):
                found = candidate
        if found is None:
            raise Unauthorized("unknown API key", code="invalid_key")
        if scope not in found.scopes:
            raise Forbidden(f"the API key {found.name!r} lacks the {scope!r} scope")
        return found


def mint_token(
    secret: str,
    sub: str,
    *,
    brand: str | None = None,
    name: str | None = None,
    channels: Iterable[str] = (),
    ttl: float = 3600.0,
    algorithm: str = "HS256",
) -> str:
    """A player token for development and tests (``croupier token``)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    if brand is not None:
        claims["brand"] = brand
    if name is not None:
        claims["name"] = name
    chans = list(channels)
    if chans:
        claims["channels"] = chans
    return jwt.encode(claims, secret, algorithm=algorithm)
