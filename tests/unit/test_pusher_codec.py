"""The Pusher codec without sockets: Pusher messages in, neutral commands out, and back."""

from __future__ import annotations

import json

import pusher
import pytest

from croupier.config import PusherApp, PusherChannelRule, load_settings
from croupier.core import commands as c
from croupier.errors import BadRequest, Forbidden, RateLimited, Unauthorized
from croupier.events import Event
from croupier.transports.pusher import PusherCodec, pusher_endpoint
from tests.e2e.wsclient import server_frames

ENV = {
    "CROUPIER_PUSHER_APP_ID": "4242",
    "CROUPIER_PUSHER_KEY": "app-key",
    "CROUPIER_PUSHER_SECRET": "app-secret",
}
SETTINGS = load_settings(env=ENV)
APP = SETTINGS.pusher_apps[0]
SDK = pusher.Pusher(app_id="4242", key="app-key", secret="app-secret")


def frames(raw: bytes) -> list[dict[str, object]]:
    """The JSON messages of server frames (unmasked, as the codec writes them)."""
    return [json.loads(payload) for _, payload in server_frames(raw)]


def subscribe(codec: PusherCodec, channel: str, **data: object) -> c.Subscribe:
    message = json.dumps({"event": "pusher:subscribe", "data": {"channel": channel, **data}})
    (command,) = codec.decode(message)
    assert isinstance(command, c.Subscribe)
    return command


def test_connection_established_carries_a_socket_id_and_the_activity_timeout() -> None:
    codec = PusherCodec(SETTINGS, APP)
    (message,) = frames(codec.encode(c.Connected("c-1", 25, None)))
    assert message["event"] == "pusher:connection_established"
    data = json.loads(str(message["data"]))  # a JSON string, as pusher-js expects
    assert data == {"socket_id": codec.socket_id, "activity_timeout": 120}


def test_subscribing_maps_the_name_and_checks_the_signature() -> None:
    codec = PusherCodec(SETTINGS, APP)
    rules = SETTINGS.rules_for("pusher")
    assert rules is not None
    command = subscribe(codec, "orders")
    assert command == c.Subscribe("pusher:orders", "orders")
    codec.authorize(rules, "pusher:orders", None)  # public: open

    signed = SDK.authenticate(channel="private-x", socket_id=codec.socket_id)
    subscribe(codec, "private-x", auth=signed["auth"])
    codec.authorize(rules, "pusher:private-x", None)

    other = PusherCodec(SETTINGS, APP)  # the same signature on another socket
    subscribe(other, "private-x", auth=signed["auth"])
    with pytest.raises(Unauthorized):
        other.authorize(rules, "pusher:private-x", None)


def test_presence_makes_the_user_the_connections_member() -> None:
    codec = PusherCodec(SETTINGS, APP)
    rules = SETTINGS.rules_for("pusher")
    assert rules is not None
    member = {"user_id": "u1", "user_info": {"name": "Ann"}}
    signed = SDK.authenticate(channel="presence-r", socket_id=codec.socket_id, custom_data=member)
    subscribe(codec, "presence-r", **signed)
    codec.authorize(rules, "pusher:presence-r", None)
    assert codec.member(None) == {"id": "u1", "info": {"name": "Ann"}}
    assert codec.member_list("pusher:presence-r") == 100
    assert codec.member_list("pusher:orders") == 0
    reply = c.Subscribed(
        "pusher:presence-r",
        "presence-r",
        False,
        None,
        members=({"client": "c-1", "id": "u1", "info": {"name": "Ann"}},),
    )
    (message,) = frames(codec.encode(reply))
    assert message["event"] == "pusher_internal:subscription_succeeded"
    assert json.loads(str(message["data"])) == {
        "presence": {"ids": ["u1"], "hash": {"u1": {"name": "Ann"}}, "count": 1}
    }
    # One connection is one user.
    signed = SDK.authenticate(
        channel="presence-s", socket_id=codec.socket_id, custom_data={"user_id": "u2"}
    )
    subscribe(codec, "presence-s", **signed)
    with pytest.raises(Forbidden, match="one user"):
        codec.authorize(rules, "pusher:presence-s", None)


def test_a_refused_subscription_is_reported_on_the_channel() -> None:
    codec = PusherCodec(SETTINGS, APP)
    subscribe(codec, "private-x", auth="app-key:" + "0" * 64)
    refused = c.Refused("unauthorized", "invalid signature", "private-x", "pusher:private-x")
    first, second = frames(codec.encode(refused))
    assert first == {
        "event": "pusher:subscription_error",
        "channel": "private-x",
        "data": {"type": "AuthError", "error": "invalid signature", "status": 401},
    }
    assert second["event"] == "pusher:error"


def test_client_events_only_where_pusher_allows_them() -> None:
    codec = PusherCodec(SETTINGS, APP)
    signed = SDK.authenticate(channel="private-x", socket_id=codec.socket_id)
    subscribe(codec, "private-x", auth=signed["auth"])
    typing = json.dumps({"event": "client-typing", "channel": "private-x", "data": {"a": 1}})
    with pytest.raises(BadRequest, match="not subscribed"):
        codec.decode(typing)  # the subscription is not confirmed yet
    codec.encode(c.Subscribed("pusher:private-x", "private-x", False, None))
    (publish,) = codec.decode(typing)
    assert isinstance(publish, c.DoPublish)
    assert (publish.channel, publish.type, publish.payload) == (
        "pusher:private-x",
        "client-typing",
        b'{"a": 1}',  # the client's own JSON, as sent
    )
    assert publish.exclude == codec.socket_id  # never back to the sender
    subscribe(codec, "orders")
    codec.encode(c.Subscribed("pusher:orders", "orders", False, None))
    with pytest.raises(Forbidden, match="private and presence"):
        codec.decode(json.dumps({"event": "client-x", "channel": "orders", "data": {}}))
    # The app allows 10 a second with a burst of 20: 19 more pass (one went above), not 40.
    for _ in range(19):
        codec.decode(typing)
    with pytest.raises(RateLimited):
        codec.decode(typing)


def test_events_are_encoded_once_with_pusher_names_and_string_data() -> None:
    settings = load_settings(env=ENV).with_overrides(
        pusher_apps=(
            PusherApp(
                "4242",
                "app-key",
                "app-secret",
                channels=(PusherChannelRule("private-tournament-", "tournament"),),
            ),
        )
    )
    encode = pusher_endpoint(settings).wires["pusher"]
    event = Event("tournament:42", "score", b'{"s":1}', "2026-01-01T00:00:00.000Z", 3, "e")
    (message,) = frames(encode(event))
    assert message == {"event": "score", "channel": "private-tournament-42", "data": '{"s":1}'}
    assert encode(Event("room:1", "x", b"{}", "t")) == b""  # not a channel of any app
    join = Event("pusher:presence-r", "presence.join", b'{"id":"u2","info":null}', "t")
    (added,) = frames(encode(join))
    assert added["event"] == "pusher_internal:member_added"
    assert json.loads(str(added["data"])) == {"user_id": "u2", "user_info": None}
    assert encode(Event("pusher:orders", "presence.join", b'{"id":"u2"}', "t")) == b""


def test_the_excluded_socket_skips_the_event() -> None:
    codec = PusherCodec(SETTINGS, APP)
    hook = codec.on_event
    assert hook is not None
    event = Event("pusher:orders", "x", b"{}", "t", exclude=codec.socket_id)
    assert hook(b"frame", event) is None
    assert hook(b"frame", Event("pusher:orders", "x", b"{}", "t", exclude="1.2")) == b"frame"


def test_an_unknown_key_ends_the_connection_with_4001() -> None:
    codec = PusherCodec(SETTINGS, None, ("app_not_found", 'no app has the key "x"'))
    assert codec.encode(c.Connected("c-1", 25, None)) == b""
    (close,) = codec.opening()
    assert close == c.Close("app_not_found", 'no app has the key "x"')  # type: ignore[comparison-overlap]
    assert codec.close_code("app_not_found") == 4001
    (error,) = frames(codec.encode(c.Disconnect("app_not_found", False)))
    assert error == {"event": "pusher:error", "data": {"code": 4001, "message": "app_not_found"}}


def test_signin_names_the_connections_user() -> None:
    codec = PusherCodec(SETTINGS, APP)
    signed = SDK.authenticate_user(codec.socket_id, {"id": "u7", "name": "Gus"})
    message = {"event": "pusher:signin", "data": signed}
    (reply,) = codec.decode(json.dumps(message))
    (success,) = frames(codec.encode(reply))
    assert success == {"event": "pusher:signin_success", "data": {"user_data": signed["user_data"]}}
    assert codec.belongs_to(APP, "u7")
    assert not codec.belongs_to(APP, "u8")
    forged = {"event": "pusher:signin", "data": {**signed, "user_data": '{"id":"admin"}'}}
    with pytest.raises(Unauthorized):
        codec.decode(json.dumps(forged))


def test_subscribing_twice_leaves_the_first_subscription_alone() -> None:
    codec = PusherCodec(SETTINGS, APP)
    subscribe(codec, "orders")
    codec.encode(c.Subscribed("pusher:orders", "orders", False, None))
    with pytest.raises(BadRequest, match="already subscribed"):
        codec.decode(json.dumps({"event": "pusher:subscribe", "data": {"channel": "orders"}}))
    assert codec.names == {"pusher:orders": "orders"}
