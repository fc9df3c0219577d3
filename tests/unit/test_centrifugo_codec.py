"""The Centrifugo codec with the session rules, no sockets: commands in, wire bytes out."""

from __future__ import annotations

import struct
import time
from typing import Any

import orjson
import pytest

from croupier.auth import Authenticator, mint_token
from croupier.config import Settings
from croupier.core import commands as c
from croupier.core.channels import Claims
from croupier.core.session import Session
from croupier.errors import Unauthorized
from croupier.events import Event, Position
from croupier.transports.centrifugo import CentrifugoCodec, encode_event

SECRET = "codec-secret-0123456789abcdef0123456789"
SETTINGS = Settings(jwt_secret=SECRET)


def verify(token: str) -> Claims:
    if token == "bad":
        raise Unauthorized("invalid token: no", code="invalid_token")
    if token == "old":
        raise Unauthorized("the token has expired", code="token_expired")
    return Claims(sub=token, brand="1001", exp=time.time() + 100)


def codec_and_session() -> tuple[CentrifugoCodec, Session]:
    codec = CentrifugoCodec(SETTINGS, verify)
    codec.encode(c.Connected("c-1", 25.0, None))
    return codec, Session(SETTINGS, verify, None, time.monotonic())


def unframe(data: bytes) -> list[Any]:
    """The JSON documents in server frames (text frames; one per line within each)."""
    docs = []
    while data:
        assert data[0] == 0x81  # one final text frame each, unmasked
        size, at = data[1], 2
        if size == 126:
            size, at = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, at = struct.unpack("!Q", data[2:10])[0], 10
        payload, data = data[at : at + size], data[at + size :]
        docs += [orjson.loads(line) for line in payload.split(b"\n")]
    return docs


def run(codec: CentrifugoCodec, session: Session, frame: str) -> list[Any]:
    """What the core would send for one client frame (work outcomes are left out)."""
    out = []
    for outcome in session.receive(frame, time.monotonic(), codec.decode):
        if isinstance(outcome, c.Close):  # as the core closes: the codec's code and text
            out += unframe(codec.encode(c.Refused(outcome.reason, outcome.message)))
            codec.encode(c.Disconnect(outcome.reason, outcome.reconnect))
            reason = outcome.reason
            out.append(("close", codec.close_code(reason), codec.close_reason(reason)))
        elif isinstance(outcome, c.DoSubscribe | c.DoPublish | c.DoHistory | c.DoPresence):
            out.append(outcome)
        else:
            out += unframe(codec.encode(outcome))
    return out


def test_connect_and_subscribe_in_one_frame_as_the_sdk_sends_them() -> None:
    codec, session = codec_and_session()
    out = run(
        codec,
        session,
        '{"id":1,"connect":{"token":"p1"}}\n'
        '{"id":2,"subscribe":{"channel":"tournament:1","recover":true,"offset":4,"epoch":"k"}}',
    )
    connect, subscribe = out
    assert connect["id"] == 1
    assert connect["connect"]["client"] == "c-1"
    assert connect["connect"]["pong"] is True
    assert connect["connect"]["ping"] == 25
    assert connect["connect"]["expires"] is True
    assert 0 < connect["connect"]["ttl"] <= 100
    assert isinstance(subscribe, c.DoSubscribe)
    assert subscribe.since == c.Since(4, "k")
    assert subscribe.resume is True
    assert session.claims is not None
    assert session.claims.sub == "p1"


def test_a_failed_connect_is_answered_and_the_rest_of_its_frame_never_runs() -> None:
    codec, session = codec_and_session()
    out = run(
        codec,
        session,
        '{"id":1,"connect":{"token":"old"}}\n{"id":2,"subscribe":{"channel":"lobby"}}',
    )
    assert out == [
        {"id": 1, "error": {"code": 109, "message": "token expired: the token has expired"}}
    ]
    # Whatever comes next closes the connection: it is unusable after a failed connect.
    closed = run(codec, session, '{"id":3,"subscribe":{"channel":"lobby"}}')
    assert closed[-1][:2] == ("close", 3501)
    assert "connect" in closed[-1][2]


def test_commands_before_connect_close_with_bad_request() -> None:
    codec, session = codec_and_session()
    out = run(codec, session, '{"id":1,"subscribe":{"channel":"lobby"}}')
    assert out[-1] == ("close", 3501, "bad request: the first command must be connect")


def test_an_anonymous_connect_has_no_expiry() -> None:
    codec, session = codec_and_session()
    [reply] = run(codec, session, '{"id":1,"connect":{}}')
    assert reply == {
        "id": 1,
        "connect": {
            "client": "c-1",
            "version": reply["connect"]["version"],
            "ping": 25,
            "pong": True,
        },
    }


def test_pongs_are_quiet_and_pings_are_answered() -> None:
    codec, session = codec_and_session()
    run(codec, session, '{"id":1,"connect":{}}')
    assert run(codec, session, "{}") == []
    assert run(codec, session, '{"id":2,"ping":{}}') == [{"id": 2, "ping": {}}]
    assert codec.heartbeat() == b"\x81\x02{}"


def test_unsubscribing_what_is_not_subscribed_succeeds_as_in_centrifugo() -> None:
    # The JavaScript SDK drops the whole connection when an unsubscribe fails.
    codec, session = codec_and_session()
    run(codec, session, '{"id":1,"connect":{"token":"p1"}}')
    assert run(codec, session, '{"id":2,"unsubscribe":{"channel":"lobby"}}') == [
        {"id": 2, "unsubscribe": {}}
    ]


def test_publish_takes_its_type_from_the_data_or_the_namespace() -> None:
    codec, session = codec_and_session()
    run(codec, session, '{"id":1,"connect":{"token":"p1"}}')
    [chat] = run(
        codec,
        session,
        '{"id":2,"publish":{"channel":"room:1","data":{"type":"chat.message","text":"hi"}}}',
    )
    assert isinstance(chat, c.DoPublish)
    assert (chat.type, orjson.loads(chat.payload)) == (
        "chat.message",
        {"text": "hi", "from": {"id": "p1"}},
    )
    [reaction] = run(
        codec, session, '{"id":3,"publish":{"channel":"match:m","data":{"emoji":"x"}}}'
    )
    assert isinstance(reaction, c.DoPublish)
    assert reaction.type == "reaction"  # the one type players may publish there
    [which] = run(codec, session, '{"id":4,"publish":{"channel":"room:1","data":{"text":"?"}}}')
    assert which["error"]["code"] == 107
    [lobby] = run(codec, session, '{"id":5,"publish":{"channel":"lobby","data":{}}}')
    assert lobby["error"]["code"] == 103


def test_presence_and_history_need_what_subscribing_needs() -> None:
    codec, session = codec_and_session()
    run(codec, session, '{"id":1,"connect":{"token":"p1"}}')
    [presence] = run(codec, session, '{"id":2,"presence":{"channel":"room:1"}}')
    assert presence == c.DoPresence("room:1", 2)
    [history] = run(
        codec,
        session,
        '{"id":3,"history":{"channel":"tournament:1","limit":5,"since":{"offset":2,"epoch":"k"}}}',
    )
    assert history == c.DoHistory("tournament:1", 3, 5, c.Since(2, "k"), False)
    [other] = run(codec, session, '{"id":4,"history":{"channel":"player:1001:p2","limit":5}}')
    assert other["error"]["code"] == 103
    [none] = run(codec, session, '{"id":5,"presence":{"channel":"player:1001:p1"}}')
    assert none["error"]["code"] == 108  # the player namespace keeps no presence


def test_replies_to_the_cores_answers() -> None:
    codec, session = codec_and_session()
    run(codec, session, '{"id":1,"connect":{"token":"p1"}}')
    run(codec, session, '{"id":2,"presence_stats":{"channel":"room:1"}}')
    members = (
        {"client": "c-1", "id": "p1"},
        {"client": "c-2", "id": "p1"},
        {"client": "c-3", "id": "p2"},
    )
    assert unframe(codec.encode(c.PresenceMembers("room:1", 2, members))) == [
        {"id": 2, "presence_stats": {"num_clients": 3, "num_users": 2}}
    ]
    run(
        codec,
        session,
        '{"id":3,"subscribe":{"channel":"tournament:1","recover":true,"offset":1,"epoch":"k"}}',
    )
    events = (Event("tournament:1", "t", b'{"n":2}', "ts", 2, "k"),)
    [reply] = unframe(
        codec.encode(
            c.Subscribed(
                "tournament:1", 3, True, Position(2, "k"), Position(1, "k"), None, True, events
            )
        )
    )
    assert reply["subscribe"]["recovered"] is True
    assert reply["subscribe"]["publications"] == [
        {"data": {"n": 2}, "offset": 2, "tags": {"type": "t"}}
    ]


@pytest.mark.parametrize(
    ("reason", "reconnect", "code"),
    [("slow_consumer", True, 3008), ("shutdown", True, 3001), ("operator", False, 3503)],
)
def test_disconnects_close_with_the_protocols_codes(
    reason: str, reconnect: bool, code: int
) -> None:
    codec, _ = codec_and_session()
    assert codec.encode(c.Disconnect(reason, reconnect)) == b""
    assert codec.close_code(reason) == code


def test_presence_counts_are_not_sent_and_events_are_framed_once() -> None:
    assert encode_event(Event("room:1", "presence.count", b'{"count":3}', "ts")) == b""
    frame = encode_event(Event("tournament:1", "t", b"{}", "ts", 1, "k"))
    assert unframe(frame) == [
        {
            "push": {
                "channel": "tournament:1",
                "pub": {"data": {}, "offset": 1, "tags": {"type": "t"}},
            }
        }
    ]


def test_a_real_token_is_checked_at_connect() -> None:
    settings = SETTINGS
    codec = CentrifugoCodec(settings, Authenticator(settings).verify_token)
    codec.encode(c.Connected("c-9", 25.0, None))
    session = Session(settings, Authenticator(settings).verify_token, None, time.monotonic())
    good = mint_token(SECRET, "p7", ttl=60)
    [reply] = run(codec, session, orjson.dumps({"id": 1, "connect": {"token": good}}).decode())
    assert reply["connect"]["client"] == "c-9"
    codec2 = CentrifugoCodec(settings, Authenticator(settings).verify_token)
    session2 = Session(settings, Authenticator(settings).verify_token, None, time.monotonic())
    [refused] = run(codec2, session2, '{"id":1,"connect":{"token":"not.a.jwt"}}')
    assert refused["error"]["code"] == 101


def test_a_frame_refused_before_it_was_read_closes_the_connection() -> None:
    codec, _ = codec_and_session()
    assert codec.close_for(c.Refused("rate_limited", "slow down")) == ("rate_limited", True)
    assert codec.close_for(c.Refused("too_large", "big")) == ("too_large", False)
    assert codec.close_for(c.Refused("bad_request", "x")) is None
    codec.encode(c.Disconnect("rate_limited", True))
    assert (codec.close_code("rate_limited"), codec.close_reason("rate_limited")) == (
        3013,
        "too many requests",
    )
