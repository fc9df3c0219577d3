"""Pusher Channels rules: channel names, event data and the three signatures. No I/O.

Pusher channels live among Croupier's: each app maps its channel names onto Croupier
channels (:func:`to_croupier`, :func:`to_pusher`), so an event triggered through the Pusher
HTTP API is an ordinary stored event, and an event published any other way reaches Pusher
clients under the Pusher name they subscribed with.

Rules:

* A Pusher name is 1-200 characters from ``A-Z a-z 0-9 _ - = @ , . ;``. The first rule of
  the app whose ``prefix`` starts the name maps it to ``{rule.namespace}:{rest}``; any other
  name is ``{app.namespace}:{name}``. The rest must itself be a Croupier name segment, so
  ``,`` and ``;`` are refused. ``private-encrypted-`` channels are not supported: the server
  would relay ciphertext it cannot store usefully, and their keys come from Pusher's cloud.
* Pusher event data is a string; data that is valid JSON is stored as that JSON (native,
  SSE and Centrifugo clients see structured data), anything else as a JSON string. Pusher
  clients get the same string back: a stored JSON string is sent as its text.
* Signatures are lowercase hex HMAC-SHA256 with the app secret: a private or presence
  subscription over ``socket_id:channel[:channel_data]``, a user sign-in over
  ``socket_id::user::user_data``, an HTTP API request over ``METHOD\\nPATH\\nQUERY`` (the
  query's parameters but ``auth_signature``, keys lowercased, sorted, ``key=value`` joined
  with ``&``), a webhook over its body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from enum import StrEnum

import orjson

from ..config import PusherApp
from ..errors import BadRequest, Unauthorized, shown
from . import jsonsafe
from .channels import validate_channel, validate_type

__all__ = [
    "REQUEST_WINDOW",
    "ChannelKind",
    "check_channel_auth",
    "check_request",
    "check_user_auth",
    "data_for_pusher",
    "is_socket_id",
    "kind_of",
    "new_socket_id",
    "payload_from_pusher",
    "sign",
    "to_croupier",
    "to_pusher",
    "type_from_pusher",
    "validate_pusher_channel",
]

REQUEST_WINDOW = 600  # seconds an HTTP API request's auth_timestamp may be off the clock
_NAME = re.compile(r"[-A-Za-z0-9_=@,.;]{1,200}")
_SOCKET_ID = re.compile(r"[0-9]{1,20}\.[0-9]{1,20}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ChannelKind(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"


def validate_pusher_channel(name: object) -> str:
    """Return ``name`` if it is a well-formed Pusher channel name.

    Raises:
        BadRequest: not a string, too long, or holding other characters (``bad_channel``).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadRequest(
            f"invalid Pusher channel name {shown(name)}: use 1-200 characters from "
            "A-Z a-z 0-9 _ - = @ , . ;",
            code="bad_channel",
        )
    return name


def kind_of(name: str) -> ChannelKind:
    """The kind of a Pusher channel, from its name.

    Raises:
        BadRequest: an encrypted channel (``not_supported``).
    """
    if name.startswith("private-encrypted-"):
        raise BadRequest(
            f"{shown(name)}: end-to-end encrypted channels are not supported",
            code="not_supported",
        )
    if name.startswith("presence-"):
        return ChannelKind.PRESENCE
    if name.startswith("private-"):
        return ChannelKind.PRIVATE
    return ChannelKind.PUBLIC


def to_croupier(app: PusherApp, name: str) -> str:
    """The Croupier channel of the Pusher channel ``name`` of ``app``.

    Raises:
        BadRequest: the name is not a Pusher name, or cannot be a Croupier one.
    """
    validate_pusher_channel(name)
    channel = f"{app.namespace}:{name}"
    for rule in app.channels:
        if name.startswith(rule.prefix) and len(name) > len(rule.prefix):
            channel = f"{rule.namespace}:{name[len(rule.prefix) :]}"
            break
    try:
        return validate_channel(channel)
    except BadRequest:
        raise BadRequest(
            f"Pusher channel {shown(name)} has no Croupier name ({shown(channel)}): "
            "',' and ';' and empty segments cannot be mapped",
            code="bad_channel",
        ) from None


def to_pusher(app: PusherApp, channel: str) -> str | None:
    """The Pusher name of the Croupier ``channel`` for ``app``'s clients (None: not one)."""
    namespace, sep, rest = channel.partition(":")
    if not sep:
        return None
    if namespace == app.namespace:
        return rest
    for rule in app.channels:
        if namespace == rule.namespace:
            return rule.prefix + rest
    return None


def type_from_pusher(name: object) -> str:
    """A Pusher event name as a Croupier event type (Laravel's ``App\\Events\\X`` included).

    Raises:
        BadRequest: not a name a Croupier event may have, or a reserved ``pusher:`` name.
    """
    if isinstance(name, str) and name.startswith(("pusher:", "pusher_internal:")):
        raise BadRequest(f"event name {shown(name, 80)} is reserved", code="bad_type")
    return validate_type(name)


def payload_from_pusher(data: str) -> bytes:
    """The stored JSON of a Pusher event's data string (see the module rules)."""
    raw = data.encode()
    try:
        # JSON past the limits (core.jsonsafe) stays a string too: Pusher clients get the
        # same data string either way, and no other reader meets what it cannot decode.
        jsonsafe.check(raw)
        orjson.loads(raw)
    except (BadRequest, orjson.JSONDecodeError):
        return orjson.dumps(data)
    return raw


def data_for_pusher(payload: bytes) -> str:
    """The data string a Pusher client gets for an event stored as ``payload``."""
    if payload[:1] == b'"':
        text = orjson.loads(payload)
        if isinstance(text, str):
            return text
    return payload.decode()


def new_socket_id() -> str:
    """A fresh socket id in Pusher's ``digits.digits`` form (server SDKs check it)."""
    return f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"


def is_socket_id(value: object) -> bool:
    return isinstance(value, str) and _SOCKET_ID.fullmatch(value) is not None


def sign(secret: str, message: str | bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` keyed with ``secret``."""
    raw = message.encode() if isinstance(message, str) else message
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _check_auth(app: PusherApp, auth: object, message: str, what: str) -> None:
    if not isinstance(auth, str) or ":" not in auth:
        raise Unauthorized(f"{what} needs an auth of the form '<key>:<signature>'")
    key, _, signature = auth.partition(":")
    if key != app.key:
        raise Unauthorized(f"{what}: the auth is for key {shown(key, 64)}, not this app's")
    if not hmac.compare_digest(sign(app.secret, message), signature):
        raise Unauthorized(
            f"{what}: invalid signature (expected HMAC-SHA256 hex of {shown(message, 300)} "
            "with the app secret)"
        )


def check_channel_auth(
    app: PusherApp, socket_id: str, channel: str, auth: object, channel_data: str | None
) -> None:
    """Check a private or presence subscription's signature.

    Raises:
        Unauthorized: it is missing or does not sign this socket, channel and data.
    """
    message = f"{socket_id}:{channel}"
    if channel_data is not None:
        message += f":{channel_data}"
    _check_auth(app, auth, message, f"subscribing to {channel}")


def check_user_auth(app: PusherApp, socket_id: str, user_data: str, auth: object) -> None:
    """Check a ``pusher:signin`` signature.

    Raises:
        Unauthorized: it is missing or does not sign this socket and user data.
    """
    _check_auth(app, auth, f"{socket_id}::user::{user_data}", "signing in")


def check_request(
    app: PusherApp,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    now: float,
) -> None:
    """Check an HTTP API request's signature, timestamp and body digest.

    ``query`` holds the decoded query parameters (each given once).

    Raises:
        Unauthorized: a parameter is missing or wrong, the timestamp is outside
            :data:`REQUEST_WINDOW`, the body's MD5 differs, or the signature does not match.
    """
    params = {key.lower(): value for key, value in query.items()}
    missing = [
        name
        for name in ("auth_key", "auth_timestamp", "auth_version", "auth_signature")
        if not params.get(name)
    ]
    if missing:
        raise Unauthorized(f"missing {', '.join(missing)}: sign the request as Pusher's API")
    if params["auth_key"] != app.key:
        raise Unauthorized(f"auth_key {shown(params['auth_key'], 64)} is not this app's key")
    if params["auth_version"] != "1.0":
        raise Unauthorized(f"auth_version {shown(params['auth_version'], 16)} is not 1.0")
    stamp = params["auth_timestamp"]
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Unauthorized("auth_timestamp must be Unix seconds")
    if abs(now - int(stamp)) > REQUEST_WINDOW:
        raise Unauthorized(
            f"auth_timestamp {stamp} is more than {REQUEST_WINDOW} s from the server's clock "
            f"({int(now)}): check the clock"
        )
    digest = params.get("body_md5")
    if body and digest is None:
        raise Unauthorized("a request with a body needs body_md5")
    if digest is not None and not hmac.compare_digest(digest, hashlib.md5(body).hexdigest()):
        raise Unauthorized("body_md5 is not the MD5 of the body")
    signature = params.pop("auth_signature")
    signed = "&".join(f"{key}={params[key]}" for key in sorted(params))
    expected = sign(app.secret, f"{method.upper()}\n{path}\n{signed}")
    if not _HEX64.fullmatch(signature) or not hmac.compare_digest(expected, signature):
        raise Unauthorized("invalid signature: expected HMAC-SHA256 hex of 'METHOD\\nPATH\\nQUERY'")
