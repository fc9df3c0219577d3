"""The per-connection protocol rules (``croupier.core.session``), driven without sockets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from croupier.config import Limits, NamespaceRules, PublishRule, Settings, SubscribeMode
from croupier.core.channels import Claims
from croupier.core.commands import (
    Authenticated,
    Close,
    DoPublish,
    DoSubscribe,
    DoUnsubscribe,
    Outcome,
    Since,
)
from croupier.core.session import Session
from croupier.errors import Unauthorized
from croupier.transports.native import NativeCodec, native_message

ALICE = Claims("p1", brand="1001", name="Alice", channels=("vip:*",))
TOKENS = {
    "alice": ALICE,
    "alice-later": replace(ALICE, exp=2e9),
    "bob": Claims("p2", brand="1001"),
    "alice-other-brand": Claims("p1", brand="2002"),
}


def verify(token: str) -> Claims:
    try:
        return TOKENS[token]
    except KeyError:
        raise Unauthorized("invalid token: bad", code="invalid_token") from None


def settings(**limits: Any) -> Settings:
    namespaces = {
        **Settings().namespaces,
        "vip": NamespaceRules(subscribe=SubscribeMode.GRANT),
        "chat": NamespaceRules(
            client_publish={
                "chat.message": PublishRule(max_bytes=64, rate=1.0, burst=2),
                "typing": PublishRule(max_bytes=64, rate=1.0, burst=1),
            }
        ),
    }
    return Settings(namespaces=namespaces, limits=Limits(**limits))


def session(claims: Claims | None = ALICE, **limits: Any) -> Session:
    return Session(settings(**limits), verify, claims, now=0.0)


def send(s: Session, message: dict[str, Any] | str | bytes, now: float = 0.0) -> list[Outcome]:
    """``message`` through the session as the native codec decodes it."""
    raw = message if isinstance(message, str | bytes) else orjson.dumps(message)
    return s.receive(raw, now, NativeCodec(s.settings).decode)


def reply(actions: list[Outcome]) -> dict[str, Any]:
    """The one reply among ``actions``, as the native protocol shows it."""
    replies = [
        a for a in actions if not isinstance(a, DoSubscribe | DoUnsubscribe | DoPublish | Close)
    ]
    assert len(replies) == 1, actions
    payload = native_message(replies[0])
    assert payload is not None
    doc: dict[str, Any] = orjson.loads(payload)
    return doc


def error_code(actions: list[Outcome]) -> str:
    doc = reply(actions)
    assert doc["type"] == "error", doc
    assert doc["message"]
    code: str = doc["code"]
    return code


def sub(channel: str, **extra: Any) -> dict[str, Any]:
    return {"type": "subscribe", "channel": channel, **extra}


def pub(channel: str, event: str, data: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "publish", "channel": channel, "event": event, "data": data, **extra}


# -- ping, subscribe, unsubscribe ----------------------------------------------------------


def test_ping_pong() -> None:
    s = session()
    assert reply(send(s, {"type": "ping"})) == {"type": "pong"}
    assert reply(send(s, {"type": "ping", "id": 9})) == {"type": "pong", "id": 9}


def test_subscribe_passes_the_request_on() -> None:
    s = session()
    (action,) = send(s, sub("tournament:1", since={"offset": 41, "epoch": "k3"}, id=1))
    assert isinstance(action, DoSubscribe)
    assert action.channel == "tournament:1"
    assert action.since == Since(41, "k3")
    assert action.id == 1
    assert action.rules is s.settings.namespaces["tournament"]
    assert s.channels == {"tournament:1": action.rules}


@pytest.mark.parametrize(
    ("claims", "channel", "outcome"),
    [
        (None, "match:m1", "ok"),  # public
        (None, "tournament:1", "unauthorized"),  # token
        (ALICE, "tournament:1", "ok"),
        (ALICE, "player:1001:p1", "ok"),  # owner
        (ALICE, "player:1001:p2", "forbidden"),
        (None, "player:1001:p1", "unauthorized"),
        (ALICE, "vip:table:1", "ok"),  # grant
        (TOKENS["bob"], "vip:table:1", "forbidden"),
        (ALICE, "casino:1", "unknown_namespace"),
        (ALICE, "bad name", "bad_channel"),
    ],
)
def test_subscribe_checks(claims: Claims | None, channel: str, outcome: str) -> None:
    s = session(claims)
    actions = send(s, sub(channel, id="x"))
    if outcome == "ok":
        assert isinstance(actions[0], DoSubscribe)
        assert channel in s.channels
    else:
        assert error_code(actions) == outcome
        assert reply(actions)["id"] == "x"
        assert s.channels == {}


def test_already_subscribed() -> None:
    s = session()
    send(s, sub("room:1"))
    assert error_code(send(s, sub("room:1"))) == "already_subscribed"


def test_too_many_subscriptions() -> None:
    s = session(max_subscriptions=2)
    send(s, sub("room:1"))
    send(s, sub("room:2"))
    assert error_code(send(s, sub("room:3"))) == "too_many_subscriptions"
    send(s, {"type": "unsubscribe", "channel": "room:1"})
    assert isinstance(send(s, sub("room:3"))[0], DoSubscribe)


def test_unsubscribe() -> None:
    s = session()
    assert error_code(send(s, {"type": "unsubscribe", "channel": "room:1"})) == "not_subscribed"
    send(s, sub("room:1"))
    (action,) = send(s, {"type": "unsubscribe", "channel": "room:1", "id": 4})
    assert action == DoUnsubscribe("room:1", s.settings.namespaces["room"], 4)
    assert s.channels == {}
    assert isinstance(send(s, sub("room:1"))[0], DoSubscribe)


# -- publish -------------------------------------------------------------------------------


def test_publish_allowed_type() -> None:
    s = session()
    (action,) = send(s, pub("match:m1", "reaction", {"emoji": "🔥"}, id=3))
    assert isinstance(action, DoPublish)
    assert (action.channel, action.type, action.id) == ("match:m1", "reaction", 3)
    assert orjson.loads(action.payload)["emoji"] == "🔥"


@pytest.mark.parametrize(
    ("channel", "event"),
    [
        ("match:m1", "chat.message"),  # the namespace takes reactions only
        ("tournament:1", "reaction"),  # no player publishing at all
        ("match:m1", "player.score.updated"),
    ],
)
def test_publish_type_not_allowed(channel: str, event: str) -> None:
    assert error_code(send(session(), pub(channel, event, {}))) == "forbidden"


def test_publish_needs_access_to_the_channel() -> None:
    s = session(None)
    assert error_code(send(s, pub("room:1", "chat.message", {"text": "hi"}))) == "unauthorized"


def test_sender_is_set_by_the_server() -> None:
    s = session()
    forged = {"text": "hi", "from": {"id": "admin", "name": "Admin"}}
    (action,) = send(s, pub("chat:1", "chat.message", forged))
    assert isinstance(action, DoPublish)
    assert orjson.loads(action.payload) == {"text": "hi", "from": {"id": "p1", "name": "Alice"}}


def test_anonymous_connections_read_public_channels_but_do_not_publish() -> None:
    anonymous = session(None)
    assert isinstance(send(anonymous, sub("match:m1"))[0], DoSubscribe)
    reaction = pub("match:m1", "reaction", {"emoji": "x", "from": "me"})
    assert error_code(send(anonymous, reaction)) == "unauthorized"


def test_publish_too_large() -> None:
    s = session()
    ok = {"text": "x" * 40}
    assert len(orjson.dumps(ok)) <= 64
    assert isinstance(send(s, pub("chat:1", "chat.message", ok))[0], DoPublish)
    big = {"text": "x" * 60}
    assert error_code(send(s, pub("chat:1", "chat.message", big), now=5)) == "too_large"


@pytest.mark.parametrize("data", [[1, 2], "text", 5, None])
def test_publish_data_must_be_an_object(data: Any) -> None:
    assert error_code(send(session(), pub("chat:1", "chat.message", data))) == "bad_message"


def test_publish_data_with_a_number_out_of_range_is_refused() -> None:
    for number in ("1e400", "18446744073709551616"):
        raw = '{"type":"publish","channel":"chat:1","event":"chat.message","id":4,\n'
        raw += f'"data":{{"n":{number}}}}}'
        doc = reply(send(session(), raw))
        assert (doc["code"], doc["id"]) == ("bad_number", 4), doc


def test_messages_nested_past_the_limit_are_refused_and_the_session_goes_on() -> None:
    s = session(max_json_depth=8)
    deep = pub("chat:1", "chat.message", {"a": [[[[[[[1]]]]]]]})  # 9 levels with the message
    assert error_code(send(s, deep)) == "too_deep"
    assert error_code(send(s, "[" * 5000)) == "too_deep"
    assert isinstance(send(s, pub("chat:1", "chat.message", {"a": [[[[[[1]]]]]]}))[0], DoPublish)


def test_publish_rate_per_type() -> None:
    s = session()
    assert isinstance(send(s, pub("chat:1", "chat.message", {}), now=0.0)[0], DoPublish)
    assert isinstance(send(s, pub("chat:2", "chat.message", {}), now=0.0)[0], DoPublish)
    # The bucket is per namespace and type, so another channel does not get a fresh one.
    assert error_code(send(s, pub("chat:3", "chat.message", {}), now=0.0)) == "rate_limited"
    # Another type has its own bucket.
    assert isinstance(send(s, pub("chat:1", "typing", {}), now=0.0)[0], DoPublish)
    assert error_code(send(s, pub("chat:1", "typing", {}), now=0.5)) == "rate_limited"
    # One token a second comes back.
    assert isinstance(send(s, pub("chat:1", "chat.message", {}), now=1.0)[0], DoPublish)
    assert error_code(send(s, pub("chat:1", "chat.message", {}), now=1.0)) == "rate_limited"


# -- auth ----------------------------------------------------------------------------------


def test_auth_authenticates_an_anonymous_connection() -> None:
    s = session(None)
    assert error_code(send(s, sub("tournament:1"))) == "unauthorized"
    actions = send(s, {"type": "auth", "token": "alice", "id": 1})
    assert actions[0] == Authenticated(ALICE, 1)
    assert reply(actions) == {"type": "authenticated", "id": 1, "user": "p1"}
    assert s.claims == ALICE
    assert isinstance(send(s, sub("tournament:1"))[0], DoSubscribe)


def test_auth_refresh_for_the_same_player() -> None:
    s = session()
    actions = send(s, {"type": "auth", "token": "alice-later"})
    assert actions[0] == Authenticated(TOKENS["alice-later"])
    assert reply(actions)["exp"] == 2e9
    assert s.claims == TOKENS["alice-later"]


@pytest.mark.parametrize("token", ["bob", "alice-other-brand"])
def test_auth_cannot_change_identity(token: str) -> None:
    s = session()
    assert error_code(send(s, {"type": "auth", "token": token})) == "identity_change"
    assert s.claims == ALICE


def test_auth_with_a_bad_token() -> None:
    s = session(None)
    assert error_code(send(s, {"type": "auth", "token": "forged"})) == "invalid_token"
    assert s.claims is None


# -- limits and abuse ----------------------------------------------------------------------


def test_every_message_costs_a_token() -> None:
    s = session(client_rate=2.0, client_burst=3)
    for _ in range(3):
        assert reply(send(s, {"type": "ping"}))["type"] == "pong"
    assert error_code(send(s, {"type": "ping"})) == "rate_limited"
    assert error_code(send(s, "not even json")) == "rate_limited"
    assert reply(send(s, {"type": "ping"}, now=0.5))["type"] == "pong"


def test_frame_over_the_limit() -> None:
    s = session(max_frame_bytes=100)
    frame = orjson.dumps({"type": "ping", "id": "x" * 100})[:100]
    assert error_code(send(s, frame + b" ")) == "too_large"
    exact = b'{"type":"ping","id":"' + b"x" * (100 - 23) + b'"}'
    assert len(exact) == 100
    assert reply(send(s, exact))["type"] == "pong"


def test_text_frame_limit_counts_bytes_not_characters() -> None:
    s = session(max_frame_bytes=100)
    text = '{"type":"ping","id":"' + "€" * 30 + '"}'  # 53 characters, 113 bytes
    assert len(text) <= 100 < len(text.encode())
    assert error_code(send(s, text)) == "too_large"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("{", "bad_json"), ('{"type":"nope"}', "unknown_type"), ('{"type":"auth"}', "bad_message")],
)
def test_malformed_messages_are_answered(raw: str, code: str) -> None:
    s = session()
    assert error_code(send(s, raw)) == code


def test_abuse_closes_after_errors_in_a_row() -> None:
    s = session(abuse_errors=3)
    for _ in range(2):
        actions = send(s, "junk")
        assert not any(isinstance(a, Close) for a in actions)
    send(s, {"type": "ping"})  # a good message resets the count
    for _ in range(2):
        assert not any(isinstance(a, Close) for a in send(s, "junk"))
    actions = send(s, "junk")
    assert error_code(actions) == "bad_json"
    assert actions[-1] == Close("abuse", "too many protocol errors in a row")
