"""Player tokens and backend API keys (``croupier.auth``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import replace
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from croupier.auth import Authenticator, mint_token
from croupier.config import ApiKey, Settings
from croupier.core.channels import Claims
from croupier.errors import Forbidden, Unauthorized

SECRET = "unit-secret-0123456789abcdef0123456789"


def hs256() -> Authenticator:
    return Authenticator(Settings(jwt_secret=SECRET))


def expect_unauthorized(auth: Authenticator, token: str, code: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        auth.verify_token(token)
    assert caught.value.code == code


# -- HS256 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_each_hmac_size_is_checked_with_its_own_hash(alg: str) -> None:
    secret = SECRET * 2  # long enough for HS512 (RFC 7518 §3.2)
    auth = Authenticator(Settings(jwt_secret=secret, jwt_algorithms=("HS256", "HS384", "HS512")))
    token = mint_token(secret, "p1", algorithm=alg)
    assert auth.verify_token(token).sub == "p1"
    head, body, _ = token.split(".")
    other = "HS512" if alg != "HS512" else "HS256"
    forged = mint_token(secret, "p1", algorithm=other).split(".")[2]
    expect_unauthorized(auth, f"{head}.{body}.{forged}", "invalid_token")


def test_another_spelling_of_the_same_signature_is_refused() -> None:
    # The last base64url character of a 32-byte HMAC carries 4 bits; the 2 below them are
    # free, so other characters decode to the same bytes. Only the token as signed passes.
    token = mint_token(SECRET, "p1")
    head, body, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    for spare in range(1, 4):
        twin = signature[:-1] + alphabet[last ^ spare]
        expect_unauthorized(hs256(), f"{head}.{body}.{twin}", "invalid_token")
    assert hs256().verify_token(token).sub == "p1"


def test_valid_token_gives_its_claims() -> None:
    token = mint_token(SECRET, "p1", brand="1001", name="Alice", channels=["vip:*"], ttl=60)
    claims = hs256().verify_token(token)
    assert (claims.sub, claims.brand, claims.name, claims.channels) == (
        "p1",
        "1001",
        "Alice",
        ("vip:*",),
    )
    assert claims.exp is not None
    assert abs(claims.exp - (time.time() + 60)) < 5


def test_minimal_token() -> None:
    token = jwt.encode({"sub": "p12"}, SECRET, algorithm="HS256")
    assert hs256().verify_token(token) == Claims("p12")


def test_channels_claim_as_one_string() -> None:
    token = jwt.encode({"sub": "p1", "channels": "room:1"}, SECRET, algorithm="HS256")
    assert hs256().verify_token(token).channels == ("room:1",)


def test_expired() -> None:
    expect_unauthorized(hs256(), mint_token(SECRET, "p1", ttl=-60), "token_expired")


def test_bad_signature() -> None:
    token = mint_token("another-secret-0123456789abcdef0123", "p1")
    expect_unauthorized(hs256(), token, "invalid_token")


@pytest.mark.parametrize(
    "claims",
    [
        {"name": "no sub"},
        {"sub": "p1", "channels": [1, 2]},
        {"sub": "p1", "channels": {"room:1": True}},
    ],
)
def test_bad_claims(claims: dict[str, Any]) -> None:
    expect_unauthorized(hs256(), jwt.encode(claims, SECRET, algorithm="HS256"), "invalid_token")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_malformed(token: str) -> None:
    expect_unauthorized(hs256(), token, "invalid_token")


def test_unsigned_token_is_refused() -> None:
    token = jwt.encode({"sub": "p1"}, None, algorithm="none")
    expect_unauthorized(hs256(), token, "invalid_token")


def test_no_key_configured() -> None:
    with pytest.raises(Unauthorized):
        Authenticator(Settings()).verify_token(mint_token(SECRET, "p1"))


# -- RS256 / ES256 -------------------------------------------------------------------------


def pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def asymmetric(public_pem: str) -> Authenticator:
    return Authenticator(Settings(jwt_public_key=public_pem, jwt_algorithms=("RS256", "ES256")))


def claims(ttl: float = 60) -> dict[str, Any]:
    return {"sub": "p1", "brand": "1001", "exp": int(time.time() + ttl)}


def test_rs256(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = asymmetric(pem(rsa_key))
    got = auth.verify_token(jwt.encode(claims(), rsa_key, algorithm="RS256"))
    assert (got.sub, got.brand) == ("p1", "1001")
    expect_unauthorized(auth, jwt.encode(claims(-60), rsa_key, algorithm="RS256"), "token_expired")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expect_unauthorized(auth, jwt.encode(claims(), other, algorithm="RS256"), "invalid_token")


def test_es256(ec_key: ec.EllipticCurvePrivateKey) -> None:
    auth = asymmetric(pem(ec_key))
    assert auth.verify_token(jwt.encode(claims(), ec_key, algorithm="ES256")).sub == "p1"
    other = ec.generate_private_key(ec.SECP256R1())
    expect_unauthorized(auth, jwt.encode(claims(), other, algorithm="ES256"), "invalid_token")


def b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def test_public_key_is_not_an_hmac_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    """An HS256 token keyed with the public key must not pass (algorithm confusion).

    PyJWT refuses to HMAC with a PEM key, so the token is put together by hand.
    """
    public = pem(rsa_key)
    header = b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = b64(orjson.dumps({"sub": "admin", "exp": int(time.time() + 60)}))
    signature = hmac.new(public.encode(), header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, b64(signature)]).decode()
    expect_unauthorized(asymmetric(public), token, "invalid_token")


# -- API keys ------------------------------------------------------------------------------


def keyed() -> Authenticator:
    keys = (
        ApiKey.from_plain("full", "full-key"),
        ApiKey.from_plain("publisher", "pub-key", frozenset({"publish"})),
    )
    return Authenticator(Settings(api_keys=keys))


def test_api_key_with_scope() -> None:
    auth = keyed()
    assert auth.has_api_keys
    assert auth.verify_key("full-key", "admin").name == "full"
    assert auth.verify_key("pub-key", "publish").name == "publisher"


def test_api_key_without_scope() -> None:
    with pytest.raises(Forbidden):
        keyed().verify_key("pub-key", "read")


@pytest.mark.parametrize("key", ["unknown", "full-key ", "FULL-KEY"])
def test_unknown_api_key(key: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        keyed().verify_key(key, "publish")
    assert caught.value.code == "invalid_key"


@pytest.mark.parametrize("key", [None, ""])
def test_missing_api_key(key: str | None) -> None:
    with pytest.raises(Unauthorized):
        keyed().verify_key(key, "publish")


def test_no_api_keys_configured() -> None:
    auth = Authenticator(Settings())
    assert not auth.has_api_keys
    with pytest.raises(Unauthorized):
        auth.verify_key("anything", "publish")


# -- the verified-token memory -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def remembering(clock: Clock, secret: str = SECRET) -> Authenticator:
    return Authenticator(Settings(jwt_secret=secret), clock=clock)


def test_a_remembered_token_still_expires() -> None:
    clock = Clock()
    auth = remembering(clock)
    token = mint_token(SECRET, "p1", ttl=60)
    assert auth.verify_token(token).sub == "p1"
    clock.now += 30
    assert auth.verify_token(token).sub == "p1"
    clock.now += 60  # past exp and the leeway
    expect_unauthorized(auth, token, "token_expired")
    expect_unauthorized(auth, token, "token_expired")  # and stays refused


def altered(token: str) -> list[str]:
    """The token with one character changed, at the start, middle and end of each segment."""
    out = []
    offset = 0
    for segment in token.split("."):
        for i in {0, len(segment) // 2, len(segment) - 1}:
            at = offset + i
            for c in "AQgw_-":
                if token[at] != c:
                    out.append(token[:at] + c + token[at + 1 :])
        offset += len(segment) + 1
    return out


def test_a_remembered_token_altered_in_any_character_is_refused() -> None:
    auth = remembering(Clock())
    token = mint_token(SECRET, "p1", brand="1001", ttl=600)
    auth.verify_token(token)
    variants = altered(token)
    assert len(variants) > 40
    for variant in variants:
        with pytest.raises(Unauthorized):
            auth.verify_token(variant)
    assert auth.verify_token(token).sub == "p1"


def test_the_same_claims_signed_otherwise_are_refused_after_a_hit() -> None:
    auth = remembering(Clock())
    token = mint_token(SECRET, "p1", ttl=600)
    auth.verify_token(token)
    head, body, _ = token.split(".")
    for secret in ("another-secret-0123456789abcdef0123", SECRET + "x"):
        signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        expect_unauthorized(auth, f"{head}.{body}.{b64(signature).decode()}", "invalid_token")
    # A token that spells the same signature bytes differently is another token.
    padded = token + "="
    expect_unauthorized(auth, padded, "invalid_token")


def test_a_key_rotation_forgets_what_was_verified() -> None:
    auth = remembering(Clock())
    token = mint_token(SECRET, "p1", ttl=600)
    auth.verify_token(token)
    auth.use_keys("rotated-secret-0123456789abcdef0123", None, ["HS256"])
    expect_unauthorized(auth, token, "invalid_token")
    assert auth.verify_token(mint_token("rotated-secret-0123456789abcdef0123", "p1")).sub == "p1"


def test_memory_is_bounded_and_never_changes_an_answer() -> None:
    clock = Clock()
    auth = Authenticator(
        Settings(jwt_secret=SECRET, limits=replace(Settings().limits, token_cache=2)), clock=clock
    )
    tokens = [mint_token(SECRET, f"p{i}", ttl=60) for i in range(5)]
    for _ in range(2):
        assert [auth.verify_token(t).sub for t in tokens] == [f"p{i}" for i in range(5)]
    clock.now += 120
    for token in tokens:
        expect_unauthorized(auth, token, "token_expired")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_asymmetric_tokens_signed_by_another_key_are_refused_after_a_hit(
    alg: str, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa_key if alg == "RS256" else ec_key
    other: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    clock = Clock()
    auth = Authenticator(
        Settings(jwt_public_key=pem(key), jwt_algorithms=("RS256", "ES256")), clock=clock
    )
    body = claims(600)
    token = jwt.encode(body, key, algorithm=alg)
    assert auth.verify_token(token).sub == "p1"
    assert auth.verify_token(token).sub == "p1"
    forged = jwt.encode(body, other, algorithm=alg)
    assert forged.rsplit(".", 1)[0] == token.rsplit(".", 1)[0]
    expect_unauthorized(auth, forged, "invalid_token")
    for variant in altered(token):
        with pytest.raises(Unauthorized):
            auth.verify_token(variant)
    clock.now += 700
    expect_unauthorized(auth, token, "token_expired")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"sub": "p1", "nbf": 10**10}, "invalid_token"),
        ({"sub": "p1", "iat": 10**10}, "invalid_token"),
        ({"sub": "p1", "aud": "elsewhere"}, "invalid_token"),
        ({"sub": 12}, "invalid_token"),
        ({"sub": "p1", "exp": "soon"}, "invalid_token"),
        ({"sub": "p1", "exp": 1000}, "token_expired"),
    ],
)
def test_claims_checked_like_pyjwt(payload: dict[str, Any], code: str) -> None:
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["sub"]}, leeway=5)
    expect_unauthorized(hs256(), token, code)


def test_unusual_headers_go_through_pyjwt() -> None:
    token = jwt.encode({"sub": "p1"}, SECRET, algorithm="HS256", headers={"cty": "JWT"})
    assert hs256().verify_token(token).sub == "p1"
    crit = jwt.encode({"sub": "p1"}, SECRET, algorithm="HS256", headers={"crit": ["exp"]})
    expect_unauthorized(hs256(), crit, "invalid_token")


@pytest.mark.parametrize("alg", ["RS384", "PS256", "PS512"])
def test_other_rsa_algorithms(alg: str, rsa_key: rsa.RSAPrivateKey) -> None:
    auth = Authenticator(Settings(jwt_public_key=pem(rsa_key), jwt_algorithms=(alg,)))
    assert auth.verify_token(jwt.encode(claims(), rsa_key, algorithm=alg)).sub == "p1"
    expect_unauthorized(auth, jwt.encode(claims(), rsa_key, algorithm="RS256"), "invalid_token")


def test_es384_needs_its_curve(ec_key: ec.EllipticCurvePrivateKey) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    auth = Authenticator(Settings(jwt_public_key=pem(p384), jwt_algorithms=("ES256", "ES384")))
    assert auth.verify_token(jwt.encode(claims(), p384, algorithm="ES384")).sub == "p1"
    expect_unauthorized(auth, jwt.encode(claims(), ec_key, algorithm="ES256"), "invalid_token")


# -- the short paths: the same answers as the full checks ----------------------------------


def signed(payload: dict[str, Any], secret: bytes, alg: str = "HS256") -> str:
    """A token signed by hand (PyJWT may warn about short secrets)."""
    header = b64(orjson.dumps({"alg": alg, "typ": "JWT"}))
    body = b64(orjson.dumps(payload))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret, header + b"." + body, digest).digest()
    return b".".join([header, body, b64(signature)]).decode()


@pytest.mark.parametrize("length", [1, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_a_secret_of_any_length(alg: str, length: int) -> None:
    # Shorter than the hash's block, as long, and longer (hashed first, RFC 2104).
    secret = (bytes(range(33, 127)) * 4)[:length]
    auth = Authenticator(
        Settings(jwt_secret=secret.decode(), jwt_algorithms=("HS256", "HS384", "HS512"))
    )
    assert auth.verify_token(signed({"sub": "p1"}, secret, alg)).sub == "p1"
    for other in (secret[:-1], secret + b"x", secret[:-1] + b"\0"):
        expect_unauthorized(auth, signed({"sub": "p1"}, other, alg), "invalid_token")


T = 1_700_000_000.25  # the clock, between two whole seconds
EXP = int(T) + 600
EXPIRED = ("token_expired", "the token has expired")


def bad(reason: str) -> tuple[str, str]:
    return ("invalid_token", f"invalid token: {reason}")


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        # The usual shapes: string names, integer times.
        ({"sub": "p1", "exp": EXP}, Claims("p1", exp=EXP)),
        (
            {"sub": "p1", "brand": "1001", "name": "Ann", "exp": EXP, "iat": int(T), "nbf": int(T)},
            Claims("p1", "1001", "Ann", (), EXP),
        ),
        ({"sub": "p1", "exp": EXP, "brand": None, "name": None}, Claims("p1", exp=EXP)),
        # sub
        ({"exp": EXP}, bad('Token is missing the "sub" claim')),
        ({"sub": None, "exp": EXP}, bad('Token is missing the "sub" claim')),
        ({"sub": 12, "exp": EXP}, bad("Subject must be a string")),
        ({"sub": True, "exp": EXP}, bad("Subject must be a string")),
        ({"sub": 12, "exp": 1000}, EXPIRED),
        # exp
        ({"sub": "p1", "exp": "soon"}, bad('the "exp" claim must be an integer')),
        ({"sub": "p1", "exp": None}, bad('the "exp" claim must be an integer')),
        ({"sub": "p1", "exp": True}, EXPIRED),
        ({"sub": "p1", "exp": EXP + 0.5}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": str(EXP)}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": int(T) - 3}, Claims("p1", exp=int(T) - 3)),  # within the leeway
        ({"sub": "p1", "exp": int(T) - 4}, Claims("p1", exp=int(T) - 4)),
        ({"sub": "p1", "exp": int(T) - 5}, EXPIRED),
        ({"sub": "p1", "exp": int(T) - 60}, EXPIRED),
        ({"sub": "p1"}, Claims("p1")),
        # iat, nbf
        ({"sub": "p1", "exp": EXP, "iat": int(T) + 5}, Claims("p1", exp=EXP)),
        (
            {"sub": "p1", "exp": EXP, "iat": int(T) + 6},
            bad("The token is not yet valid (iat)"),
        ),
        (
            {"sub": "p1", "exp": EXP, "iat": None},
            bad('the "iat" claim must be an integer'),
        ),
        ({"sub": "p1", "exp": EXP, "iat": 1.5e9}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "iat": False}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "nbf": int(T) + 5}, Claims("p1", exp=EXP)),
        (
            {"sub": "p1", "exp": EXP, "nbf": int(T) + 60},
            bad("The token is not yet valid (nbf)"),
        ),
        (
            {"sub": "p1", "exp": EXP, "nbf": []},
            bad('the "nbf" claim must be an integer'),
        ),
        (
            {"sub": "p1", "exp": int(T) - 60, "iat": int(T) + 60},
            bad("The token is not yet valid (iat)"),
        ),
        (
            {"sub": "p1", "exp": int(T) - 60, "nbf": int(T) + 60},
            bad("The token is not yet valid (nbf)"),
        ),
        # aud, jti
        ({"sub": "p1", "exp": EXP, "aud": "elsewhere"}, bad("Invalid audience")),
        ({"sub": "p1", "exp": EXP, "aud": ""}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "jti": 5}, bad("JWT ID must be a string")),
        ({"sub": "p1", "exp": EXP, "jti": None}, bad("JWT ID must be a string")),
        ({"sub": "p1", "exp": EXP, "jti": "j-1"}, Claims("p1", exp=EXP)),
        ({"sub": 12, "exp": EXP, "jti": 5}, bad("Subject must be a string")),
        (
            {"sub": "p1", "exp": EXP, "aud": "x", "jti": 5},
            bad("Invalid audience"),
        ),
        # channels, brand, name, others
        (
            {"sub": "p1", "exp": EXP, "channels": ["room:1", "vip:*"]},
            Claims("p1", channels=("room:1", "vip:*"), exp=EXP),
        ),
        (
            {"sub": "p1", "exp": EXP, "channels": [1]},
            bad("'channels' must be a list of strings"),
        ),
        (
            {"sub": "p1", "exp": EXP, "channels": {"a": 1}},
            bad("'channels' must be a list of strings"),
        ),
        ({"sub": "p1", "exp": EXP, "channels": None}, Claims("p1", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "brand": 1001}, Claims("p1", "1001", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "name": 5}, Claims("p1", name="5", exp=EXP)),
        ({"sub": "p1", "exp": EXP, "extra": {"k": 1}}, Claims("p1", exp=EXP)),
    ],
)
def test_each_claim_shape_gets_the_full_checks_answer(
    payload: dict[str, Any], outcome: Claims | tuple[str, str]
) -> None:
    auth = Authenticator(Settings(jwt_secret=SECRET), clock=lambda: T)
    token = signed(payload, SECRET.encode())
    if isinstance(outcome, Claims):
        assert auth.verify_token(token) == outcome
        assert auth.verify_token(token) == outcome  # and from the memory
        return
    with pytest.raises(Unauthorized) as caught:
        auth.verify_token(token)
    assert (caught.value.code, caught.value.message) == outcome
