"""Channel names and who may subscribe (``croupier.core.channels``)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from croupier.config import NamespaceRules, Settings, SubscribeMode
from croupier.core.channels import (
    Claims,
    check_subscribe,
    namespace_of,
    resolve,
    validate_channel,
    validate_type,
)
from croupier.errors import BadRequest, Forbidden, Unauthorized


@pytest.mark.parametrize(
    "name",
    [
        "lobby",
        "tournament:12345",
        "player:1001:12345",
        "room:r-77",
        "a.b_c@d=e-f:g",
        "x" * 255,
    ],
)
def test_valid_names(name: str) -> None:
    assert validate_channel(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 256,
        "room 1",
        "room:é",
        "room/1",
        "room:1\n",
        ":room",
        "room:",
        "room::1",
        "room*",
        None,
        42,
        b"room:1",
    ],
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_channel(name)
    assert caught.value.code == "bad_channel"


@pytest.mark.parametrize("name", ["player.score.updated", "reaction", "a", "x_1:y-2"])
def test_valid_types(name: str) -> None:
    assert validate_type(name) == name


@pytest.mark.parametrize("name", ["", ".leading", "has space", "t" * 129, "ü", 5])
def test_invalid_types(name: object) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_type(name)
    assert caught.value.code == "bad_type"


def test_namespace_of() -> None:
    assert namespace_of("player:1001:12") == "player"
    assert namespace_of("lobby") == "lobby"


def test_resolve_finds_rules_or_refuses() -> None:
    settings = Settings()
    name, rules = resolve(settings, "match:ipl-final")
    assert name == "match:ipl-final"
    assert rules is settings.namespaces["match"]
    with pytest.raises(BadRequest) as caught:
        resolve(settings, "casino:1")
    assert caught.value.code == "unknown_namespace"
    with pytest.raises(BadRequest) as bad:
        resolve(settings, "bad name")
    assert bad.value.code == "bad_channel"


def test_resolve_falls_back_to_the_star_default() -> None:
    star = NamespaceRules(history_size=7)
    settings = Settings(namespaces={**Settings().namespaces, "*": star})
    assert resolve(settings, "casino:1")[1] is star
    assert resolve(settings, "room:1")[1] is settings.namespaces["room"]


ALICE = Claims("p1", brand="1001", channels=("vip:gold:*", "vip:silver"))


def rules(mode: SubscribeMode) -> NamespaceRules:
    return NamespaceRules(subscribe=mode)


def test_public_needs_no_token() -> None:
    check_subscribe(rules(SubscribeMode.PUBLIC), "match:1", None)
    check_subscribe(rules(SubscribeMode.PUBLIC), "match:1", ALICE)


def test_token_needs_any_token() -> None:
    with pytest.raises(Unauthorized):
        check_subscribe(rules(SubscribeMode.TOKEN), "tournament:1", None)
    check_subscribe(rules(SubscribeMode.TOKEN), "tournament:1", ALICE)


@pytest.mark.parametrize(
    ("channel", "allowed"),
    [
        ("player:1001:p1", True),
        ("player:1001:p2", False),
        ("player:1002:p1", False),
        ("player:1001:p1:extra", False),
        ("player:p1", False),
        ("player", False),
    ],
)
def test_owner_must_be_the_tokens_own(channel: str, allowed: bool) -> None:
    if allowed:
        check_subscribe(rules(SubscribeMode.OWNER), channel, ALICE)
    else:
        with pytest.raises(Forbidden):
            check_subscribe(rules(SubscribeMode.OWNER), channel, ALICE)
    with pytest.raises(Unauthorized):
        check_subscribe(rules(SubscribeMode.OWNER), channel, None)


def test_owner_without_brand() -> None:
    with pytest.raises(Forbidden):
        check_subscribe(rules(SubscribeMode.OWNER), "player:1001:p1", Claims("p1"))


def test_owner_channel_can_be_granted() -> None:
    support = Claims("agent", brand="1001", channels=("player:1001:*",))
    check_subscribe(rules(SubscribeMode.OWNER), "player:1001:p9", support)
    with pytest.raises(Forbidden):
        check_subscribe(rules(SubscribeMode.OWNER), "player:1002:p9", support)


@pytest.mark.parametrize(
    ("channel", "allowed"),
    [
        ("vip:gold:1", True),
        ("vip:gold:table:9", True),
        ("vip:silver", True),
        ("vip:silver:1", False),
        ("vip:bronze", False),
        ("vip:gold", False),
    ],
)
def test_grant_follows_the_channels_claim(channel: str, allowed: bool) -> None:
    if allowed:
        check_subscribe(rules(SubscribeMode.GRANT), channel, ALICE)
    else:
        with pytest.raises(Forbidden):
            check_subscribe(rules(SubscribeMode.GRANT), channel, ALICE)
    with pytest.raises(Forbidden):
        check_subscribe(rules(SubscribeMode.GRANT), channel, Claims("p1", brand="1001"))


@pytest.mark.parametrize(
    ("check", "value", "shown_as"),
    [
        (validate_channel, None, "a channel name is needed"),
        (validate_channel, "bad name", '"bad name"'),
        (validate_channel, 12, "12"),
        (validate_type, None, "null"),
        (validate_type, "it's", '"it\'s"'),
    ],
)
def test_errors_name_the_value_as_json_and_what_is_accepted(
    check: Any, value: object, shown_as: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        check(value)
    message = caught.value.message
    assert shown_as in message
    assert "None" not in message
    assert "A-Z a-z 0-9" in message  # what is accepted


def test_claims_is_a_frozen_value_of_its_fields() -> None:
    # Claims sets its slots in its own __init__: every field, by position or by name.
    names = [field.name for field in dataclasses.fields(Claims)]
    assert list(inspect.signature(Claims).parameters) == names
    values: dict[str, Any] = {
        "sub": "p1",
        "brand": "1001",
        "name": "Ann",
        "channels": ("vip:*",),
        "exp": 1.5,
    }
    claims = Claims(**values)
    assert {name: getattr(claims, name) for name in names} == values
    assert claims == Claims(*values.values())
    assert hash(claims) == hash(Claims(*values.values()))
    assert claims != Claims("p1")
    assert Claims("p1") == Claims("p1", None, None, (), None)
    assert dataclasses.replace(claims, sub="p2").sub == "p2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.sub = "p2"  # type: ignore[misc]
    assert repr(Claims("p1")) == ("Claims(sub='p1', brand=None, name=None, channels=(), exp=None)")
