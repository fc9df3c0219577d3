"""SSE framing and the multi-channel resume cursor, without sockets."""

from __future__ import annotations

import re

import orjson
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.sse import (
    Cursor,
    comment,
    data_frame,
    decode_cursor,
    encode_cursor,
    parse_offset,
)
from croupier.events import Position

EPOCHS = st.text("abcdef0123456789", min_size=1, max_size=8)
POSITIONS = st.one_of(st.none(), st.builds(Position, st.integers(0, 10**15), EPOCHS))


def test_frames() -> None:
    assert data_frame(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert data_frame(b'{"a":1}', 7) == b'id: 7\ndata: {"a":1}\n\n'
    assert comment("heartbeat") == b": heartbeat\n\n"
    assert comment("two\nlines") == b": two lines\n\n"


def test_parse_offset() -> None:
    assert parse_offset("42") == 42
    assert parse_offset(" 0 ") == 0
    for junk in ("", "-1", "+1", "1.5", "١٢", "9" * 19, "abc"):
        assert parse_offset(junk) is None


@given(st.lists(POSITIONS, min_size=1, max_size=6))
def test_cursor_round_trip(positions: list[Position | None]) -> None:
    channels = [f"room:{i}" for i in range(len(positions))]
    value = encode_cursor(channels, positions)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
    assert decode_cursor(value, channels) == positions


def test_cursor_fits_only_its_channel_list() -> None:
    value = encode_cursor(["a:1", "b:2"], [Position(3, "k1"), Position(4, "k1")])
    assert decode_cursor(value, ["b:2", "a:1"]) is None
    assert decode_cursor(value, ["a:1"]) is None
    for junk in ("", "!!", "Zm9v", "x" * 5000):
        assert decode_cursor(junk, ["a:1", "b:2"]) is None


@given(
    st.lists(st.builds(Position, st.integers(0, 1000), EPOCHS), min_size=2, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**6), EPOCHS), max_size=20),
)
def test_advance_matches_a_fresh_encoding(
    start: list[Position], moves: list[tuple[int, int, str]]
) -> None:
    channels = [f"t:{i}" for i in range(len(start))]
    cursor = Cursor(channels, list(start))
    expected: list[Position | None] = list(start)
    for i, offset, epoch in moves:
        i %= len(channels)
        line = cursor.advance(channels[i], offset, epoch)
        expected[i] = Position(offset, epoch)
        assert line.startswith(b"id: ")
        assert line.endswith(b"\n")
        assert decode_cursor(line[4:-1].decode(), channels) == expected


def test_cursor_is_compact() -> None:
    channels = ["tournament:12345", "match:ipl-final", "player:1001:12345"]
    value = encode_cursor(channels, [Position(123456, "a1b2c3")] * 3)
    assert len(value) < 50


def test_line_breaks_in_json_stay_on_one_data_line() -> None:
    # A line break in valid JSON is whitespace; a space has the same meaning.
    payload = b'{"a":[1,\r\n2],\n"b":"x\\ny"}'
    frame = data_frame(payload, 3)
    assert frame == b'id: 3\ndata: {"a":[1,  2], "b":"x\\ny"}\n\n'
    assert orjson.loads(frame[len(b"id: 3\ndata: ") : -2]) == orjson.loads(payload)
