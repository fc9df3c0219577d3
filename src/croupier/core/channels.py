"""Channel names and who may subscribe to or publish on them. No I/O."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from ..config import NamespaceRules, Settings, SubscribeMode
from ..errors import BadRequest, Forbidden, Unauthorized, shown

__all__ = ["Claims", "check_subscribe", "namespace_of", "resolve", "validate_channel"]

MAX_CHANNEL_BYTES = 255
_NAME = re.compile(r"[A-Za-z0-9_.:@=-]{1,255}")
# A backslash too: Laravel broadcasts under PHP class names (``App\\Events\\OrderShipped``).
_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\\-]{0,127}")


@dataclass(frozen=True, slots=True, init=False)
class Claims:
    """What a verified player token says about its holder."""

    sub: str
    brand: str | None = None
    name: str | None = None
    channels: tuple[str, ...] = ()
    exp: float | None = None

    def __init__(
        self,
        sub: str,
        brand: str | None = None,
        name: str | None = None,
        channels: tuple[str, ...] = (),
        exp: float | None = None,
    ) -> None:
        # What the frozen dataclass's own __init__ does (object.__setattr__ by name, field by
        # field) at half its cost: the slots' setters, found once. A Claims is made per
        # connection. Keep in step with the fields (a test checks).
        _set_sub(self, sub)
        _set_brand(self, brand)
        _set_name(self, name)
        _set_channels(self, channels)
        _set_exp(self, exp)

    @property
    def player(self) -> str:
        """Who the holder is across brands (``{brand}/{sub}``): what
        :attr:`Event.only <croupier.events.Event.only>` names."""
        return f"{self.brand or ''}/{self.sub}"


_set_sub, _set_brand, _set_name, _set_channels, _set_exp = (
    Claims.__dict__[field].__set__ for field in ("sub", "brand", "name", "channels", "exp")
)


def validate_channel(channel: object) -> str:
    """Return ``channel`` if it is a well-formed name.

    Raises:
        BadRequest: not a string, too long, or holds characters outside ``[A-Za-z0-9_.:@=-]``.
    """
    if channel is None:
        raise BadRequest(
            f"a channel name is needed: 1-{MAX_CHANNEL_BYTES} characters from "
            "A-Z a-z 0-9 _ . : @ = -",
            code="bad_channel",
        )
    if not isinstance(channel, str) or not _NAME.fullmatch(channel):
        raise BadRequest(
            f"invalid channel name {shown(channel)}: use 1-{MAX_CHANNEL_BYTES} characters from "
            "A-Z a-z 0-9 _ . : @ = -",
            code="bad_channel",
        )
    if channel.startswith(":") or channel.endswith(":") or "::" in channel:
        raise BadRequest(
            f"invalid channel name {shown(channel)}: empty segment", code="bad_channel"
        )
    return channel


def validate_type(event_type: object) -> str:
    """Return ``event_type`` if it is a dotted name such as ``player.score.updated``."""
    if not isinstance(event_type, str) or not _TYPE.fullmatch(event_type):
        raise BadRequest(
            f"invalid event type {shown(event_type)}: use up to 128 characters from "
            "A-Z a-z 0-9 _ . : - \\",
            code="bad_type",
        )
    return event_type


def namespace_of(channel: str) -> str:
    return channel.split(":", 1)[0]


def resolve(settings: Settings, channel: object) -> tuple[str, NamespaceRules]:
    """Validate a channel name and find its namespace rules.

    Raises:
        BadRequest: the name is malformed.
        NotFound-like BadRequest (code ``unknown_namespace``): no rules and no ``*`` default.
    """
    name = validate_channel(channel)
    rules = settings.rules_for(namespace_of(name))
    if rules is None:
        raise BadRequest(
            f"namespace {shown(namespace_of(name))} is not configured (add it, or a '*' default, "
            "to the [namespaces] section of the config file)",
            code="unknown_namespace",
        )
    return name, rules


def _granted(patterns: tuple[str, ...], channel: str) -> bool:
    return any(p == channel or fnmatch.fnmatchcase(channel, p) for p in patterns)


def check_subscribe(rules: NamespaceRules, channel: str, claims: Claims | None) -> None:
    """Raise unless the holder of ``claims`` (``None``: anonymous) may subscribe to ``channel``.

    Raises:
        Unauthorized: the namespace needs a token and there is none.
        Forbidden: the token does not give access to this channel.
    """
    mode = rules.subscribe
    if mode is SubscribeMode.PUBLIC:
        return
    if claims is None:
        raise Unauthorized(f"subscribing to {channel} needs a player token")
    if mode is SubscribeMode.TOKEN:
        return
    if mode is SubscribeMode.OWNER:
        parts = channel.split(":")
        if len(parts) == 3 and parts[1] == (claims.brand or "") and parts[2] == claims.sub:
            return
        if _granted(claims.channels, channel):
            return
        raise Forbidden(f"{channel} belongs to another player")
    if _granted(claims.channels, channel):
        return
    raise Forbidden(f"the token does not grant {channel}")
