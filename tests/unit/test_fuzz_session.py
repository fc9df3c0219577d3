"""Fuzzing the session rules (``croupier.core.session``) with random client messages.

Each case is a connection's life: a random mix of subscribes, unsubscribes, publishes, auth
refreshes, pings and junk (wrong types, wrong fields, not JSON, not UTF-8), with the clock
moving at random, through the native codec. A small model tracks what the rules promise: the
session never raises, answers every message, holds exactly the channels it said yes to (never
more than the limit), refuses a second subscribe to a channel it holds and an unsubscribe
from one it does not, closes for abuse exactly when the errors in a row reach the limit, and
a player's publish carries the server's ``from``, never the client's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.config import Limits, NamespaceRules, PublishRule, Settings, SubscribeMode
from croupier.core.channels import Claims
from croupier.core.commands import (
    Authenticated,
    Close,
    DoPublish,
    DoSubscribe,
    DoUnsubscribe,
    Pong,
    Refused,
)
from croupier.core.session import Session
from croupier.errors import Unauthorized
from croupier.transports.native import NativeCodec
from tests.fuzzing import budget

pytestmark = pytest.mark.fuzz

CASES = 400  # connections per run, each up to 40 messages
ALICE = Claims("p1", brand="1001", name="Alice", channels=("vip:*",))
TOKENS = {
    "alice": ALICE,
    "alice-later": replace(ALICE, exp=2e9),
    "bob": Claims("p2", brand="1001"),
}
LIMITS = Limits(max_subscriptions=4, abuse_errors=5, client_rate=20, client_burst=30)
SETTINGS = Settings(
    namespaces={
        **Settings().namespaces,
        "vip": NamespaceRules(subscribe=SubscribeMode.GRANT),
        "chat": NamespaceRules(
            client_publish={"chat.message": PublishRule(max_bytes=200, rate=2.0, burst=3)}
        ),
    },
    limits=LIMITS,
)


def verify(token: str) -> Claims:
    if token not in TOKENS:
        raise Unauthorized("invalid token", code="invalid_token")
    return TOKENS[token]


channels = st.sampled_from(
    [
        "chat:1",
        "chat:2",
        "chat:3",
        "lobby",
        "match:m1",
        "vip:a",
        "vip:b",
        "player:1001:p1",
        "player:1001:p2",
        "nowhere:1",
        "bad channel",
        "",
        "chat:" + "x" * 300,
    ]
)
ids = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.booleans(), st.floats())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["subscribe", "unsubscribe", "publish", "auth", "ping", "nope", None])
    )
    doc: dict[str, Any] = {} if kind is None else {"type": kind}
    if draw(st.booleans()):
        doc["id"] = draw(ids)
    if kind in ("subscribe", "unsubscribe", "publish"):
        doc["channel"] = draw(channels | ids)
    if kind == "subscribe" and draw(st.integers(0, 3)) == 0:
        doc["since"] = draw(
            st.fixed_dictionaries({"offset": st.integers(-1, 10), "epoch": st.text(max_size=4)})
            | json_values
        )
    if kind == "publish":
        doc["event"] = draw(st.sampled_from(["chat.message", "reaction", "typing", 7]))
        doc["data"] = draw(
            st.dictionaries(st.sampled_from(["text", "from", "n"]), json_values, max_size=3)
            | json_values
        )
    if kind == "auth":
        doc["token"] = draw(st.sampled_from([*TOKENS, "forged", 3]))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=5))] = draw(json_values)  # an unknown field
    return doc


# json, not orjson: it also writes integers past 64 bits, and NaN / Infinity (not JSON).
messages = st.one_of(
    documents().map(lambda d: json.dumps(d).encode()),
    documents().map(lambda d: json.dumps(d).encode()),
    documents().map(lambda d: json.dumps(d).encode()),
    documents().map(json.dumps),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.sampled_from(["{", "[]", "null", '"ping"', '{"type":"ping"}' * 2, "\ud800"]),
    # Nested past the limit (64), up to what would exhaust a recursive decoder's stack.
    st.integers(1, 2000).map(
        lambda n: (
            '{"type":"publish","channel":"chat:1","event":"chat.message","data":{"n":'
            + "[" * n
            + "]" * n
            + "}}"
        )
    ),
)


@budget(CASES)
@given(
    st.sampled_from([None, ALICE, TOKENS["bob"]]),
    st.lists(st.tuples(messages, st.floats(0, 2)), max_size=40),
)
def test_session_rules_hold_for_any_sequence_of_messages(
    claims: Claims | None, steps: list[tuple[bytes | str, float]]
) -> None:
    session = Session(SETTINGS, verify, claims, now=0.0)
    decode = NativeCodec(SETTINGS).decode
    held: set[str] = set()
    errors = 0
    now = 0.0
    for raw, dt in steps:
        now += dt
        outcomes = session.receive(raw, now, decode)
        assert outcomes, raw
        refusals = [o for o in outcomes if isinstance(o, Refused)]
        closes = [o for o in outcomes if isinstance(o, Close)]
        for outcome in outcomes:
            assert isinstance(
                outcome,
                Refused | Close | Pong | Authenticated | DoSubscribe | DoUnsubscribe | DoPublish,
            ), outcome
            if isinstance(outcome, DoSubscribe):
                assert outcome.channel not in held
                held.add(outcome.channel)
            elif isinstance(outcome, DoUnsubscribe):
                assert outcome.channel in held
                held.discard(outcome.channel)
            elif isinstance(outcome, DoPublish):
                assert session.claims is not None
                data = orjson.loads(outcome.payload)
                assert data["from"]["id"] == session.claims.sub
            elif isinstance(outcome, Authenticated):
                assert claims is None or outcome.claims.sub == claims.sub
            elif isinstance(outcome, Refused):
                assert outcome.code
                assert outcome.message
        errors = errors + len(refusals) if refusals else 0
        assert session.errors_in_a_row == errors
        assert bool(closes) == (errors >= LIMITS.abuse_errors)
        assert all(c.reason == "abuse" for c in closes)
        assert set(session.channels) == held
        assert len(held) <= LIMITS.max_subscriptions
        doc = _object(raw)
        if doc is not None and doc.get("type") == "subscribe" and doc.get("channel") in held:
            # Asked again for a channel it already holds: refused, still held.
            assert refusals or any(isinstance(o, DoSubscribe) for o in outcomes)


def _object(raw: bytes | str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


@budget(CASES // 4)
@given(st.lists(st.sampled_from(["chat:1", "chat:2", "vip:a", "lobby"]), max_size=20))
def test_subscribe_and_unsubscribe_answer_as_a_set_would(names: list[str]) -> None:
    session = Session(SETTINGS, verify, ALICE, now=0.0)
    decode = NativeCodec(SETTINGS).decode
    held: set[str] = set()
    for i, name in enumerate(names):
        kind = "unsubscribe" if name in held and i % 3 else "subscribe"
        out = session.receive(orjson.dumps({"type": kind, "channel": name, "id": i}), i, decode)
        first = out[0]
        if kind == "unsubscribe":
            assert isinstance(first, DoUnsubscribe)
            held.discard(name)
        elif name in held:
            assert isinstance(first, Refused)
            assert (first.code, first.id) == ("already_subscribed", i)
        else:
            assert isinstance(first, DoSubscribe)
            held.add(name)
    assert set(session.channels) == held
