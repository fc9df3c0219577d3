"""Centrifugo's client protocol, JSON format: decoding commands, encoding replies and pushes
(``croupier.core.centrifugo``)."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.centrifugo import (
    PING,
    BadFrame,
    Command,
    Invalid,
    StreamPosition,
    SubscribeRequest,
    close_reason,
    decode_frame,
    disconnect_for,
    encode_error,
    encode_reply,
    error_for,
    error_reply,
    event_push,
    history_result,
    subscribe_result,
)
from croupier.errors import BadRequest, CroupierError, Forbidden, RateLimited, Unauthorized
from croupier.events import Event, Position

# -- decoding ------------------------------------------------------------------------------


def test_the_connect_command_of_the_js_sdk() -> None:
    [cmd] = decode_frame(b'{"connect":{"token":"t.o.k","name":"js"},"id":1}')
    assert isinstance(cmd, Command)
    assert cmd.id == 1
    assert cmd.method == "connect"
    assert cmd.request.token == "t.o.k"
    assert cmd.request.name == "js"


def test_several_commands_in_one_frame_newline_separated_in_order() -> None:
    frame = "\n".join(
        [
            '{"id":2,"subscribe":{"channel":"tournament:1","recover":true,"offset":41,'
            '"epoch":"k3","flag":1}}',
            '{"id":3,"publish":{"channel":"match:m1","data":{"emoji":"🔥"}}}',
            '{"id":4,"history":{"channel":"tournament:1","limit":10,'
            '"since":{"offset":3,"epoch":"k3"},"reverse":true}}',
        ]
    )
    sub, pub, hist = decode_frame(frame)
    assert isinstance(sub, Command)
    assert isinstance(pub, Command)
    assert isinstance(hist, Command)
    assert sub.request == SubscribeRequest(
        channel="tournament:1", recover=True, offset=41, epoch="k3", flag=1
    )
    assert pub.method == "publish"
    assert bytes(pub.request.data) == '{"emoji":"🔥"}'.encode()
    assert hist.request.since == StreamPosition(3, "k3")
    assert hist.request.reverse is True
    assert [c.id for c in (sub, pub, hist)] == [2, 3, 4]


def test_an_empty_command_is_a_pong_and_send_needs_no_id() -> None:
    pong, send = decode_frame(b'{}\n{"send":{"data":{"x":1}}}\n')
    assert isinstance(pong, Command)
    assert pong.method is None
    assert isinstance(send, Command)
    assert send.method == "send"
    assert bytes(send.request.data) == b'{"x":1}'


def test_unknown_fields_are_ignored_as_newer_sdks_send_more() -> None:
    [cmd] = decode_frame(b'{"id":5,"subscribe":{"channel":"lobby","tf":{"op":""},"delta":""}}')
    assert isinstance(cmd, Command)
    assert cmd.request.channel == "lobby"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b"", "empty frame"),
        (b"\n\n", "empty frame"),
        (b'{"subscribe":{"channel":"lobby"}}', "needs an id"),
        (b'{"id":-1,"subscribe":{"channel":"lobby"}}', "id from 1"),
        (b'{"id":4294967296,"subscribe":{"channel":"lobby"}}', "id from 1"),
    ],
)
def test_frames_the_protocol_has_no_answer_for(frame: bytes, reason: str) -> None:
    with pytest.raises(BadFrame, match=reason):
        decode_frame(frame)


def test_a_command_with_an_id_but_no_known_method_is_answered_method_not_found() -> None:
    [bad] = decode_frame(b'{"id":7,"teleport":{}}')
    assert bad == Invalid(7, 104, "method not found: teleport")


def test_a_command_with_wrong_field_types_is_answered_bad_request() -> None:
    [bad] = decode_frame(b'{"id":8,"subscribe":{"channel":42}}')
    assert isinstance(bad, Invalid)
    assert (bad.id, bad.code) == (8, 107)
    assert "subscribe.channel" in bad.message


def test_two_requests_in_one_command_are_a_bad_request() -> None:
    [bad] = decode_frame(b'{"id":9,"presence":{"channel":"a"},"history":{"channel":"a"}}')
    assert isinstance(bad, Invalid)
    assert bad.code == 107
    assert "one request" in bad.message


@given(st.binary(max_size=64))
def test_decoding_never_fails_other_than_with_bad_frame(raw: bytes) -> None:
    with contextlib.suppress(BadFrame):
        decode_frame(raw)


# -- errors and disconnects -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "temporary"),
    [
        (Forbidden("the token does not grant room:1"), 103, False),
        (BadRequest("x", code="unknown_namespace"), 102, False),
        (BadRequest("x", code="bad_channel"), 107, False),
        (Unauthorized("expired", code="token_expired"), 109, False),
        (RateLimited("slow down"), 111, True),
        (BadRequest("x", code="already_subscribed"), 105, False),
        (BadRequest("x", code="too_many_subscriptions"), 106, False),
    ],
)
def test_croupier_errors_map_to_the_protocols_codes(
    exc: CroupierError, code: int, temporary: bool
) -> None:
    reply = orjson.loads(error_reply(3, exc))
    assert reply["id"] == 3
    assert reply["error"]["code"] == code
    assert reply["error"].get("temporary", False) is temporary
    assert reply["error"]["message"].endswith(exc.message)


def test_error_messages_start_with_the_protocols_text() -> None:
    assert error_for("forbidden", "the token does not grant room:1") == (
        103,
        "permission denied: the token does not grant room:1",
        False,
    )
    assert orjson.loads(encode_error(1, 108, "not available")) == {
        "id": 1,
        "error": {"code": 108, "message": "not available"},
    }


def test_disconnect_codes_say_whether_to_reconnect() -> None:
    # The SDKs reconnect after 3000-3499 and stop after 3500-3999.
    assert disconnect_for("shutdown", True) == (3001, "shutdown")
    assert disconnect_for("slow_consumer", True) == (3008, "slow")
    assert disconnect_for("token_expired", True) == (3005, "connection expired")
    assert disconnect_for("idle_timeout", True) == (3012, "no pong")
    assert disconnect_for("abuse", False) == (3509, "too many errors")
    assert disconnect_for("force", False) == (3503, "force disconnect")
    assert disconnect_for("force", True) == (3011, "force reconnect")
    assert disconnect_for("something new", True)[0] < 3500
    assert disconnect_for("something new", False)[0] >= 3500


def test_close_reasons_fit_a_close_frame() -> None:
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)
    assert len(cut.encode()) <= 123
    assert cut == "é" * 61


# -- replies and pushes ---------------------------------------------------------------------


def test_a_stored_event_is_a_publication_push_with_its_offset_and_type() -> None:
    event = Event("tournament:1", "player.score.updated", b'{"score":1250}', "ts", 42, "k3")
    assert orjson.loads(event_push(event)) == {
        "push": {
            "channel": "tournament:1",
            "pub": {
                "data": {"score": 1250},
                "offset": 42,
                "tags": {"type": "player.score.updated"},
            },
        }
    }


def test_an_ephemeral_event_has_no_offset() -> None:
    event = Event("match:m1", "reaction", b'{"emoji":"x","from":{"id":"p1"}}', "ts")
    pub = orjson.loads(event_push(event))["push"]["pub"]
    assert "offset" not in pub
    assert pub["data"]["from"] == {"id": "p1"}


def test_presence_notices_become_join_and_leave_pushes() -> None:
    join = Event("room:r1", "presence.join", b'{"id":"p1","name":"Ann"}', "ts")
    leave = Event("room:r1", "presence.leave", b'{"id":"p1"}', "ts")
    assert orjson.loads(event_push(join)) == {
        "push": {
            "channel": "room:r1",
            "join": {"info": {"user": "p1", "client": "", "conn_info": {"name": "Ann"}}},
        }
    }
    assert orjson.loads(event_push(leave))["push"]["leave"]["info"]["user"] == "p1"


def test_replies_carry_the_command_id_and_leave_out_none() -> None:
    assert orjson.loads(encode_reply(4, "publish")) == {"id": 4, "publish": {}}
    assert orjson.loads(encode_reply(5, "connect", {"client": "c-1", "ttl": None})) == {
        "id": 5,
        "connect": {"client": "c-1"},
    }
    assert PING == b"{}"


def test_a_recovered_subscription_carries_its_publications_in_order() -> None:
    events = [Event("t:1", "e", b"{}", "ts", n, "k3") for n in (42, 43)]
    result = subscribe_result(
        position=Position(43, "k3"), recovered=True, was_recovering=True, events=events
    )
    assert result["recoverable"] is True
    assert result["positioned"] is True
    assert (result["epoch"], result["offset"]) == ("k3", 43)
    assert result["recovered"] is True
    assert result["was_recovering"] is True
    assert [p["offset"] for p in result["publications"]] == [42, 43]


def test_an_unrecovered_subscription_says_where_the_channel_stands() -> None:
    result = subscribe_result(position=Position(9, "k4"), recovered=False, was_recovering=True)
    assert result == {
        "recoverable": True,
        "positioned": True,
        "epoch": "k4",
        "offset": 9,
        "was_recovering": True,
    }


def test_an_ephemeral_channel_is_neither_recoverable_nor_positioned() -> None:
    assert subscribe_result(position=None, recovered=False, was_recovering=False) == {}
    assert subscribe_result(position=None, recovered=False, was_recovering=False, ttl=60) == {
        "expires": True,
        "ttl": 60,
    }


def test_history_result() -> None:
    events = [Event("t:1", "e", b'{"n":1}', "ts", 1, "k3")]
    assert orjson.loads(orjson.dumps(history_result(events, Position(1, "k3")))) == {
        "publications": [{"data": {"n": 1}, "offset": 1, "tags": {"type": "e"}}],
        "epoch": "k3",
        "offset": 1,
    }
