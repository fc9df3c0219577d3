"""The native protocol's decoder and encoders (``croupier.core.wire``)."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.wire import (
    Auth,
    Ping,
    Publish,
    Since,
    Subscribe,
    Unsubscribe,
    control,
    decode_client,
    encode_event,
    ws_frame,
)
from croupier.errors import BadRequest
from croupier.events import Event

# -- decoding each message -----------------------------------------------------------------


def test_subscribe() -> None:
    raw = b'{"type":"subscribe","channel":"tournament:1","since":{"offset":41,"epoch":"k3"},"id":1}'
    assert decode_client(raw) == Subscribe("tournament:1", Since(41, "k3"), 1)
    assert decode_client('{"type":"subscribe","channel":"lobby"}') == Subscribe("lobby")


def test_unsubscribe() -> None:
    raw = '{"type":"unsubscribe","channel":"room:r-1","id":"two"}'
    assert decode_client(raw) == Unsubscribe("room:r-1", "two")


def test_publish_keeps_data_as_sent() -> None:
    raw = (
        '{"type":"publish","channel":"match:m","event":"reaction",'
        '"data":{"emoji":"🔥", "n" : 1},"id":3}'
    )
    message = decode_client(raw)
    assert isinstance(message, Publish)
    assert (message.channel, message.event, message.id) == ("match:m", "reaction", 3)
    assert bytes(message.data) == '{"emoji":"🔥", "n" : 1}'.encode()


def test_publish_without_data_is_null() -> None:
    message = decode_client('{"type":"publish","channel":"match:m","event":"reaction"}')
    assert isinstance(message, Publish)
    assert bytes(message.data) == b"null"


def test_auth_and_ping() -> None:
    assert decode_client('{"type":"auth","token":"abc"}') == Auth("abc")
    assert decode_client('{"type":"ping"}') == Ping()
    assert decode_client('{"type":"ping","id":7}') == Ping(7)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "bad_json"),
        ("{", "bad_json"),
        ("not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        ('{"type":"ping"} trailing', "bad_json"),
        ("\ud800", "bad_json"),
        ('{"type":"hello"}', "unknown_type"),
        ('{"type":1}', "unknown_type"),
        ("{}", "unknown_type"),
        ('{"channel":"lobby"}', "unknown_type"),
        ("[1, 2]", "bad_message"),
        ('"ping"', "bad_message"),
        ("null", "bad_message"),
        ('{"type":"subscribe"}', "bad_message"),
        ('{"type":"subscribe","channel":5}', "bad_message"),
        ('{"type":"subscribe","channel":"a","since":{"offset":"1","epoch":"e"}}', "bad_message"),
        ('{"type":"subscribe","channel":"a","since":{"offset":1.5,"epoch":"e"}}', "bad_message"),
        ('{"type":"publish","channel":"a"}', "bad_message"),
        ('{"type":"auth"}', "bad_message"),
        ('{"type":"ping","id":true}', "bad_message"),
        ('{"type":"ping","id":[1]}', "bad_message"),
    ],
)
def test_errors_have_codes(raw: str | bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_client(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(BadRequest, match="subscribe, unsubscribe, publish, auth, ping"):
        decode_client('{"type":"hello"}')


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ('{"channel":"lobby"}', "the message has no type;"),
        ('{"type":null}', "the message has no type;"),
        ('{"type":1}', "the message has the unknown type 1;"),
        ('{"type":"hello"}', 'the message has the unknown type "hello";'),
    ],
)
def test_unknown_type_shows_what_was_sent_as_json(raw: str, said: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_client(raw)
    assert caught.value.message.startswith(said)
    assert "None" not in caught.value.message


# -- properties ----------------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(exclude_categories=()))


@given(st.one_of(st.binary(), any_text))
def test_arbitrary_input_raises_only_bad_request(raw: bytes | str) -> None:
    code = None
    try:
        decode_client(raw)
    except BadRequest as exc:
        code = exc.code
    assert code in {None, "bad_json", "unknown_type", "bad_message"}


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
message_ids = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text())
type_names = st.sampled_from(["subscribe", "unsubscribe", "publish", "auth", "ping", "x", ""])


@given(
    st.fixed_dictionaries(
        {"type": type_names},
        optional={
            "channel": json_value,
            "event": json_value,
            "since": json_value,
            "token": json_value,
            "data": json_value,
            "id": json_value,
        },
    )
)
def test_near_miss_objects_raise_only_bad_request(doc: dict[str, Any]) -> None:
    code = None
    try:
        decode_client(orjson.dumps(doc))
    except BadRequest as exc:
        code = exc.code
    assert code in {None, "unknown_type", "bad_message"}


def _with_id(doc: dict[str, Any], message_id: int | str | None) -> dict[str, Any]:
    if message_id is not None:
        doc["id"] = message_id
    return doc


valid_messages = st.one_of(
    st.builds(
        lambda c, since, i: _with_id(
            {"type": "subscribe", "channel": c, **({"since": since} if since else {})}, i
        ),
        st.text(),
        st.none() | st.fixed_dictionaries({"offset": st.integers(0, 2**62), "epoch": st.text()}),
        message_ids,
    ),
    st.builds(
        lambda c, i: _with_id({"type": "unsubscribe", "channel": c}, i), st.text(), message_ids
    ),
    st.builds(
        lambda c, e, d, i: _with_id({"type": "publish", "channel": c, "event": e, "data": d}, i),
        st.text(),
        st.text(),
        json_value,
        message_ids,
    ),
    st.builds(lambda t, i: _with_id({"type": "auth", "token": t}, i), st.text(), message_ids),
    st.builds(lambda i: _with_id({"type": "ping"}, i), message_ids),
)


@given(valid_messages, st.booleans())
def test_valid_messages_round_trip(doc: dict[str, Any], as_text: bool) -> None:
    raw = orjson.dumps(doc)
    message = decode_client(raw.decode() if as_text else raw)
    assert message.id == doc.get("id")
    if isinstance(message, Subscribe):
        assert doc["type"] == "subscribe"
        assert message.channel == doc["channel"]
        since = doc.get("since")
        assert message.since == (Since(since["offset"], since["epoch"]) if since else None)
    elif isinstance(message, Unsubscribe):
        assert (doc["type"], message.channel) == ("unsubscribe", doc["channel"])
    elif isinstance(message, Publish):
        assert (doc["type"], message.channel, message.event) == (
            "publish",
            doc["channel"],
            doc["event"],
        )
        assert orjson.loads(bytes(message.data)) == doc["data"]
    elif isinstance(message, Auth):
        assert (doc["type"], message.token) == ("auth", doc["token"])
    else:
        assert isinstance(message, Ping)
        assert doc["type"] == "ping"


# -- encoding ------------------------------------------------------------------------------


def parse_frame(frame: bytes) -> tuple[int, int, bytes]:
    """(first byte, header length, payload) of one unmasked server frame."""
    first, second = frame[0], frame[1]
    assert second & 0x80 == 0, "server frames are unmasked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", frame[2:4])
        header = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", frame[2:10])
        header = 10
    else:
        header = 2
    payload = frame[header:]
    assert len(payload) == length
    return first, header, payload


@pytest.mark.parametrize(
    ("size", "header"), [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)]
)
def test_ws_frame_header(size: int, header: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    first, header_len, back = parse_frame(ws_frame(payload))
    assert first == 0x81, "FIN and text opcode"
    assert header_len == header
    assert back == payload


def test_encode_stored_event() -> None:
    event = Event("tournament:1", "player.score.updated", b'{"score":5}', "T", 42, "k3")
    doc = orjson.loads(encode_event(event))
    assert list(doc) == ["type", "channel", "offset", "epoch", "ts", "data"]
    assert doc == {
        "type": "player.score.updated",
        "channel": "tournament:1",
        "offset": 42,
        "epoch": "k3",
        "ts": "T",
        "data": {"score": 5},
    }


def test_encode_ephemeral_event_has_no_offset() -> None:
    event = Event("match:m", "reaction", b'{"emoji":"x"}', "T")
    assert orjson.loads(encode_event(event)) == {
        "type": "reaction",
        "channel": "match:m",
        "ts": "T",
        "data": {"emoji": "x"},
    }


def test_control_leaves_out_empty_fields() -> None:
    assert orjson.loads(control("error", id=None, code="forbidden", message="no")) == {
        "type": "error",
        "code": "forbidden",
        "message": "no",
    }
    assert orjson.loads(control("pong")) == {"type": "pong"}
