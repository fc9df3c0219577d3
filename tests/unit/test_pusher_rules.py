"""Pusher rules without I/O: configuration, channel mapping, event data and signatures.

The signatures are checked against what the ``pusher`` server SDK from PyPI produces, so a
backend signing with it is accepted and a wrong secret is not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pusher
import pytest
from pusher.pusher_client import PusherClient

from croupier.brokers.codec import decode_event, encode_event
from croupier.config import PusherApp, PusherChannelRule, SubscribeMode, load_settings
from croupier.core.pusher import (
    ChannelKind,
    check_channel_auth,
    check_request,
    check_user_auth,
    data_for_pusher,
    is_socket_id,
    kind_of,
    new_socket_id,
    payload_from_pusher,
    to_croupier,
    to_pusher,
    type_from_pusher,
)
from croupier.errors import BadRequest, Unauthorized
from croupier.events import Event

APP = PusherApp(
    "4242",
    "app-key",
    "app-secret",
    channels=(PusherChannelRule("private-tournament-", "tournament"),),
)
ENV = {
    "CROUPIER_PUSHER_APP_ID": "4242",
    "CROUPIER_PUSHER_KEY": "app-key",
    "CROUPIER_PUSHER_SECRET": "app-secret",
}


def sdk(secret: str = "app-secret") -> pusher.Pusher:
    return pusher.Pusher(app_id="4242", key="app-key", secret=secret, host="h", port=80)


# -- configuration -------------------------------------------------------------------------


def test_off_unless_configured() -> None:
    assert load_settings(env={}).pusher_apps == ()


def test_one_app_from_the_environment_gets_a_namespace_that_keeps_events() -> None:
    s = load_settings(env=ENV)
    (app,) = s.pusher_apps
    assert (app.id, app.key, app.secret, app.namespace) == (
        "4242",
        "app-key",
        "app-secret",
        "pusher",
    )
    rules = s.rules_for("pusher")
    assert rules is not None
    assert rules.stored
    assert rules.presence
    assert rules.subscribe is SubscribeMode.GRANT  # native readers need a grant
    assert s.pusher_app(key="app-key") is app
    assert s.pusher_app(id="nope") is None


def test_half_an_environment_is_refused() -> None:
    with pytest.raises(BadRequest, match="CROUPIER_PUSHER_SECRET"):
        load_settings(env={k: v for k, v in ENV.items() if "SECRET" not in k})


def test_several_apps_in_toml_with_channel_rules(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
[namespaces.shop]
history_size = 10
[[pusher.apps]]
id = "1"
key = "k1"
secret = "s1"
webhooks = ["http://127.0.0.1:9/hook"]
[[pusher.apps.channels]]
prefix = "private-tournament-"
namespace = "tournament"
[[pusher.apps]]
id = "2"
key = "k2"
secret = "s2"
namespace = "shop"
"""
    )
    s = load_settings(path, env={})
    one, two = s.pusher_apps
    assert one.channels == (PusherChannelRule("private-tournament-", "tournament"),)
    assert one.webhooks == ("http://127.0.0.1:9/hook",)
    assert two.namespace == "shop"
    shop = s.rules_for("shop")
    assert shop is not None
    assert shop.history_size == 10


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[pusher.apps]]\nid = "1"\nkey = "k"\n', "needs 'secret'"),
        ('[[pusher.apps]]\nid = "1"\nkey = "k"\nsecret = "s"\ncolour = 1\n', "colour"),
        (
            '[[pusher.apps]]\nid="1"\nkey="k"\nsecret="s"\n'
            '[[pusher.apps.channels]]\nprefix="a-"\nnamespace="nowhere"\n',
            "not configured",
        ),
        (
            '[[pusher.apps]]\nid="1"\nkey="k"\nsecret="s"\n'
            '[[pusher.apps.channels]]\nprefix="a-"\nnamespace="room"\n'
            '[[pusher.apps.channels]]\nprefix="private-a-"\nnamespace="room"\n',
            "mapped twice",
        ),
        (
            '[[pusher.apps]]\nid="1"\nkey="k"\nsecret="s"\n'
            '[[pusher.apps]]\nid="2"\nkey="k2"\nsecret="s"\n',
            "same namespace",
        ),
    ],
)
def test_bad_app_settings_say_what_is_wrong(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(BadRequest, match=message):
        load_settings(path, env={})


# -- channels, events, data ------------------------------------------------------------------


def test_channel_names_map_both_ways() -> None:
    assert to_croupier(APP, "private-tournament-42") == "tournament:42"
    assert to_croupier(APP, "tournament-42") == "pusher:tournament-42"  # public: not the same
    assert to_croupier(APP, "presence-room.7") == "pusher:presence-room.7"
    for name in ("private-tournament-42", "presence-room.7", "orders"):
        assert to_pusher(APP, to_croupier(APP, name)) == name
    assert to_pusher(APP, "lobby") is None
    assert to_pusher(APP, "room:1") is None


@pytest.mark.parametrize("name", ["a;b", "a,b", "", "x" * 201, "a b", "ü"])
def test_channel_names_croupier_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(BadRequest) as info:
        to_croupier(APP, name)
    assert info.value.code == "bad_channel"


def test_kinds() -> None:
    assert kind_of("presence-x") is ChannelKind.PRESENCE
    assert kind_of("private-x") is ChannelKind.PRIVATE
    assert kind_of("x") is ChannelKind.PUBLIC
    with pytest.raises(BadRequest, match="encrypted"):
        kind_of("private-encrypted-x")


def test_event_names_include_laravel_class_names_but_not_reserved_ones() -> None:
    assert type_from_pusher("App\\Events\\OrderShipped") == "App\\Events\\OrderShipped"
    assert type_from_pusher("client-typing") == "client-typing"
    for bad in ("pusher:subscribe", "pusher_internal:member_added", "has space", "x" * 129):
        with pytest.raises(BadRequest):
            type_from_pusher(bad)


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        ('{"total":12,"items":[1,2]}', {"total": 12, "items": [1, 2]}),
        ("plain text, not JSON", "plain text, not JSON"),
        ("42", 42),
        ("", ""),
    ],
)
def test_data_is_stored_as_json_and_given_back_as_the_same_string(
    data: str, stored: object
) -> None:
    payload = payload_from_pusher(data)
    assert json.loads(payload) == stored
    assert data_for_pusher(payload) == data


def test_the_excluded_socket_travels_between_nodes() -> None:
    event = Event("pusher:orders", "paid", b"{}", "2026-01-01T00:00:00.000Z", 3, "e1", "1.2")
    assert decode_event(encode_event(event)) == event
    plain = Event("pusher:orders", "paid", b"{}", "2026-01-01T00:00:00.000Z")
    assert decode_event(encode_event(plain)).exclude is None


def test_socket_ids_look_like_pushers() -> None:
    assert all(is_socket_id(new_socket_id()) for _ in range(100))
    assert not is_socket_id("c-1234")
    assert not is_socket_id("1.2.3")


# -- signatures, against the SDK ---------------------------------------------------------------


def test_private_and_presence_subscriptions_signed_by_the_sdk_pass() -> None:
    signed = sdk().authenticate(channel="private-tournament-42", socket_id="123.456")
    check_channel_auth(APP, "123.456", "private-tournament-42", signed["auth"], None)
    member = {"user_id": "u1", "user_info": {"name": "Ann"}}
    signed = sdk().authenticate(channel="presence-room", socket_id="123.456", custom_data=member)
    check_channel_auth(APP, "123.456", "presence-room", signed["auth"], signed["channel_data"])


@pytest.mark.parametrize(
    ("socket_id", "channel", "secret"),
    [
        ("999.1", "private-a", "app-secret"),  # signed for another socket
        ("123.456", "private-b", "app-secret"),  # another channel
        ("123.456", "private-a", "wrong"),  # another secret
    ],
)
def test_subscriptions_signed_for_something_else_are_refused(
    socket_id: str, channel: str, secret: str
) -> None:
    signed = sdk(secret).authenticate(channel="private-a", socket_id="123.456")
    with pytest.raises(Unauthorized, match="invalid signature"):
        check_channel_auth(APP, socket_id, channel, signed["auth"], None)


def test_presence_data_is_part_of_the_signature() -> None:
    member = {"user_id": "u1"}
    signed = sdk().authenticate(channel="presence-room", socket_id="1.2", custom_data=member)
    with pytest.raises(Unauthorized):
        check_channel_auth(APP, "1.2", "presence-room", signed["auth"], '{"user_id":"admin"}')
    with pytest.raises(Unauthorized, match="<key>:<signature>"):
        check_channel_auth(APP, "1.2", "presence-room", None, signed["channel_data"])


def test_user_signin_signed_by_the_sdk_passes() -> None:
    signed = sdk().authenticate_user("1.2", {"id": "u1", "name": "Ann"})
    check_user_auth(APP, "1.2", signed["user_data"], signed["auth"])
    with pytest.raises(Unauthorized):
        check_user_auth(APP, "1.3", signed["user_data"], signed["auth"])


def _sdk_request(secret: str = "app-secret") -> tuple[str, str, dict[str, str], bytes]:
    """What the SDK sends to trigger an event: method, path, query and body."""
    client = PusherClient(app_id="4242", key="app-key", secret=secret, host="h", port=80)
    request = client.trigger.make_request(["orders"], "order.paid", {"id": 1})
    url = urlsplit(request.url)
    return request.method, url.path, dict(parse_qsl(url.query)), request.body


def test_api_requests_signed_by_the_sdk_pass() -> None:
    method, path, query, body = _sdk_request()
    check_request(APP, method, path, query, body, time.time())
    client = PusherClient(app_id="4242", key="app-key", secret="app-secret", host="h", port=80)
    get = client.channel_info.make_request("presence-room", ["user_count"])
    url = urlsplit(get.url)
    check_request(APP, "GET", url.path, dict(parse_qsl(url.query)), b"", time.time())


def test_api_requests_wrong_in_any_part_are_refused() -> None:
    method, path, query, body = _sdk_request()
    now = time.time()
    cases = [
        (_sdk_request("wrong"), "invalid signature"),
        ((method, path, query, body + b" "), "body_md5"),
        ((method, path + "x", query, body), "invalid signature"),
        ((method, path, {**query, "auth_key": "other"}, body), "not this app's key"),
        (
            (method, path, {k: v for k, v in query.items() if k != "auth_signature"}, body),
            "missing",
        ),
    ]
    for (m, p, q, b), message in cases:
        with pytest.raises(Unauthorized, match=message):
            check_request(APP, m, p, q, b, now)
    with pytest.raises(Unauthorized, match="clock"):
        check_request(APP, method, path, query, body, now + 601)
