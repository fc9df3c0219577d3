"""Player tokens (JWT) and backend API keys.

Rules for player tokens:

* HS256/384/512 are checked with the configured secret, RS*/PS*/ES* with the configured
  public key, never one with the other (no algorithm confusion). The signature is checked
  directly (one HMAC from the secret's hash states prepared at start, or one verify of the
  public key loaded at start), not through PyJWT's general decoder: on a reconnect storm
  its cost is paid once per connection. A header with anything beyond ``alg``/``typ``/``kid``,
  or an algorithm outside those, goes through PyJWT.
* The signature is compared as the token spells it: another base64url spelling of the same
  bytes is not the token that was signed.
* A token that passed is remembered, keyed by the token's full text, until it expires
  (the same leeway as a fresh check); the expiry is checked on every hit. Any other token
  (altered in one byte, signed differently, re-issued) is a different key and is checked
  in full. The memory is bounded (least recently used out first) and belongs to the keys:
  :meth:`Authenticator.use_keys` forgets it.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import get_default_algorithms

from .config import ApiKey, Settings
from .core.channels import Claims
from .errors import Forbidden, Unauthorized, shown

__all__ = ["Authenticator", "mint_token"]

LEEWAY = 5.0  # seconds of clock skew allowed on exp, nbf and iat
_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_SIZES = frozenset({"256", "384", "512"})
_VERIFIERS = get_default_algorithms()
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_FALLBACK = ""  # a parsed header that PyJWT must handle
_HMAC_HASHES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
# A payload of only these claims, each of the usual type, is checked on a short path.
_PLAIN_CLAIMS = frozenset({"sub", "brand", "name", "exp", "iat", "nbf"})

# base64url as base64.urlsafe_b64decode/encode do it, without their Python layers: the
# alphabet translated, the padding added (by length) or cut; undecodable input raises.
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"===", b"==", b"=")  # by len(segment) % 4
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64


def _b64decode(segment: bytes) -> bytes:
    return _a2b((segment + _PADDING[len(segment) & 3]).translate(_FROM_URLSAFE))


def _b64encode(raw: bytes) -> bytes:
    return _b2a(raw, newline=False).rstrip(b"=").translate(_TO_URLSAFE)


def _hmac_states(secret: bytes, name: str) -> tuple[Any, Any, int]:
    """The inner and outer hash states of HMAC with ``secret`` (RFC 2104), and the length
    of a signature in unpadded base64url.

    Each check copies them and hashes only the message: half the cost of ``hmac.digest``,
    which derives them from the key every time.
    """
    inner, outer = hashlib.new(name), hashlib.new(name)
    if len(secret) > inner.block_size:
        secret = hashlib.new(name, secret).digest()
    secret = secret.ljust(inner.block_size, b"\0")
    inner.update(bytes(b ^ 0x36 for b in secret))
    outer.update(bytes(b ^ 0x5C for b in secret))
    return inner, outer, (4 * inner.digest_size + 2) // 3


def _invalid(reason: str) -> Unauthorized:
    return Unauthorized(f"invalid token: {reason}", code="invalid_token")


def _expired() -> Unauthorized:
    return Unauthorized("the token has expired", code="token_expired")


class _Keys:
    """The configured keys, loaded once, and a direct signature check per algorithm."""

    def __init__(self, secret: str | None, public_pem: str | None, algorithms: Sequence[str]):
        self.algorithms = frozenset(algorithms)
        # What PyJWT is given for the cases it handles: the public key wins, as always.
        self.pyjwt_key: str | None = public_pem or secret
        # alg -> HMAC states; none when a public key is configured: never an HMAC secret.
        self.hmacs: dict[str, tuple[Any, Any, int]] = {}
        if secret and not public_pem:
            for alg, name in _HMAC_HASHES.items():
                self.hmacs[alg] = _hmac_states(secret.encode(), name)
        self.public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None
        if public_pem:
            try:
                loaded = serialization.load_pem_public_key(public_pem.encode())
            except ValueError:
                loaded = None  # e.g. an SSH key or a certificate: PyJWT reads those
            if isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                self.public = loaded

    def direct(self, alg: str) -> bool:
        """Whether :meth:`check` handles ``alg`` with the keys configured."""
        family, size = alg[:2], alg[2:]
        if size not in _SIZES:
            return False
        if family == "HS":
            return True  # refused by check() when the key is a public key
        if family in ("RS", "PS"):
            return isinstance(self.public, rsa.RSAPublicKey)
        if family == "ES":
            return isinstance(self.public, ec.EllipticCurvePublicKey)
        return False

    def check(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (base64url, as in the token) signs ``signing_input``."""
        states = self.hmacs.get(alg)
        if states is not None:
            inner, outer, length = states
            inner = inner.copy()
            inner.update(signing_input)
            outer = outer.copy()
            outer.update(inner.digest())
            # The token's own spelling compared: any other spelling of the same bytes is not
            # the token that was signed.
            spelled = _b2a(outer.digest(), newline=False)[:length].translate(_TO_URLSAFE)
            return hmac.compare_digest(spelled, signature)
        key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None
        if alg.startswith("HS"):
            key = None  # a public key is configured: never an HMAC secret
        elif isinstance(self.public, ec.EllipticCurvePublicKey):
            key = self.public if self.public.curve.name == _CURVES[alg] else None
        else:
            key = self.public
        if key is None:
            return False
        try:
            raw = _b64decode(signature)
        except (binascii.Error, ValueError):
            return False
        if _b64encode(raw) != signature:
            return False  # another spelling of some bytes: not the token that was signed
        # PyJWT's own verifiers: PKCS#1/PSS, raw ECDSA pairs.
        return _VERIFIERS[alg].verify(signing_input, key, raw)


def _int_claim(payload: dict[str, Any], name: str) -> int | None:
    if name not in payload:
        return None
    try:
        return int(payload[name])
    except (ValueError, TypeError, OverflowError):
        raise _invalid(f"the {shown(name)} claim must be an integer") from None


def _claims(payload: dict[str, Any], now: float) -> Claims:
    """The claims of a token whose signature is good, checked as PyJWT would."""
    sub = payload.get("sub")
    exp = payload.get("exp")
    if type(sub) is str and type(exp) is int and exp > now - LEEWAY:
        # The usual token: only string names and integer times that pass, which the checks
        # below would take as they are. Anything else (null, bool, float, a claim more)
        # goes through them, for the same answer and the same error.
        brand = payload.get("brand")
        name = payload.get("name")
        iat = payload.get("iat", 0)
        nbf = payload.get("nbf", 0)
        if (
            _PLAIN_CLAIMS.issuperset(payload)
            and (brand is None or type(brand) is str)
            and (name is None or type(name) is str)
            and type(iat) is int
            and iat <= now + LEEWAY
            and type(nbf) is int
            and nbf <= now + LEEWAY
        ):
            return Claims(sub, brand, name, (), float(exp))
    if sub is None:
        raise _invalid('Token is missing the "sub" claim')
    iat = _int_claim(payload, "iat")
    if iat is not None and iat > now + LEEWAY:
        raise _invalid("The token is not yet valid (iat)")
    nbf = _int_claim(payload, "nbf")
    if nbf is not None and nbf > now + LEEWAY:
        raise _invalid("The token is not yet valid (nbf)")
    exp = _int_claim(payload, "exp")
    if exp is not None and exp <= now - LEEWAY:
        raise _expired()
    if payload.get("aud"):
        raise _invalid("Invalid audience")  # this server is no token's named audience
    if not isinstance(sub, str):
        raise _invalid("Subject must be a string")
    if "jti" in payload and not isinstance(payload["jti"], str):
        raise _invalid("JWT ID must be a string")
    return _to_claims(payload, exp)


def _to_claims(doc: dict[str, Any], exp: int | None) -> Claims:
    channels = doc.get("channels") or ()
    if isinstance(channels, str):
        channels = (channels,)
    if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
        raise _invalid("'channels' must be a list of strings")
    brand = doc.get("brand")
    name = doc.get("name")
    return Claims(
        str(doc["sub"]),
        None if brand is None else str(brand),
        None if name is None else str(name),
        tuple(channels),
        None if exp is None else float(exp),
    )


class Authenticator:
    """Verifies player JWTs and backend API keys against the settings.

    Args:
        settings: the keys, algorithms and API keys; ``limits.token_cache`` bounds how many
            verified tokens are remembered (0: none).
        clock: the wall clock tokens' times are compared with.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._api_keys: Sequence[ApiKey] = settings.api_keys
        self._clock = clock
        self._cache_size = settings.limits.token_cache
        self.use_keys(settings.jwt_secret, settings.jwt_public_key, settings.jwt_algorithms)

    def use_keys(
        self, secret: str | None, public_key: str | None, algorithms: Iterable[str]
    ) -> None:
        """Verify player tokens with these keys from now on (a key rotation).

        After calling this method no token is accepted because it passed before: every
        token is checked against the new keys.
        """
        self._keys = _Keys(secret, public_key, tuple(algorithms))
        self._headers: dict[bytes, str] = {}  # header segment -> its alg, or _FALLBACK
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    def verify_token(self, token: str) -> Claims:
        """Decode and check a player token.

        Raises:
            Unauthorized: bad signature, expired, malformed, or missing ``sub``.
        """
        now = self._clock()
        verified = self._verified
        claims = verified.get(token)
        if claims is not None:
            exp = claims.exp
            if exp is None or exp + LEEWAY > now:  # as a fresh check would find
                verified.move_to_end(token)
                return claims
            del verified[token]
        claims = self._verify(token, now)
        if self._cache_size > 0:
            verified[token] = claims
            if len(verified) > self._cache_size:
                verified.popitem(last=False)
        return claims

    def _verify(self, token: str, now: float) -> Claims:
        keys = self._keys
        if not keys.pyjwt_key:
            raise Unauthorized("player tokens are not configured on this server")
        raw = token.encode() if token.isascii() else b""
        parts = raw.split(b".")
        if len(parts) != 3:
            raise _invalid("not three base64url segments separated by dots")
        head, body, signature = parts
        alg = self._headers.get(head) or self._alg(head)
        if alg == _FALLBACK:
            return self._pyjwt(token)
        if not keys.check(alg, raw[: len(head) + 1 + len(body)], signature):
            raise _invalid("Signature verification failed")
        try:
            payload = orjson.loads(_b64decode(body))
        except (binascii.Error, ValueError):
            raise _invalid("the payload is not base64url-encoded JSON") from None
        if not isinstance(payload, dict):
            raise _invalid("the payload must be a JSON object")
        return _claims(payload, now)

    def _alg(self, segment: bytes) -> str:
        """The algorithm a header names, checked against the allowed ones (or _FALLBACK)."""
        alg = self._headers.get(segment)
        if alg is None:
            try:
                header = orjson.loads(_b64decode(segment))
            except (binascii.Error, ValueError):
                raise _invalid("the header is not base64url-encoded JSON") from None
            if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
                raise _invalid("the header names no algorithm")
            alg = header["alg"]
            if alg not in self._keys.algorithms:
                raise _invalid(f"the algorithm {shown(alg, 20)} is not allowed")
            if not set(header) <= _HEADER_KEYS or not self._keys.direct(alg):
                alg = _FALLBACK
            if len(self._headers) < 256:  # a server sees a handful of distinct headers
                self._headers[segment] = alg
        return alg

    def _pyjwt(self, token: str) -> Claims:
        key = self._keys.pyjwt_key
        assert key is not None  # checked by _verify
        try:
            doc: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=sorted(self._keys.algorithms),
                options={"require": ["sub"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise _expired() from None
        except jwt.InvalidTokenError as exc:
            raise _invalid(str(exc)) from None
        return _to_claims(doc, _int_claim(doc, "exp"))

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
            raise Forbidden(f"the API key {shown(found.name)} lacks the {shown(scope)} scope")
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
