"""Client frame parsing (``croupier.core.frames``), driven with bytes, no sockets."""

from __future__ import annotations

import itertools
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    Frame,
    FrameParser,
    close_code,
    close_frame,
    mask,
    pong_frame,
)

MAX = 1 << 16


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, key: bytes = b"\x01\x82\x33\xf4", rsv: int = 0
) -> bytes:
    """A frame as a client sends it: masked with ``key``."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + key + mask(key, payload)


def feed_all(parser: FrameParser, chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames += parser.feed(chunk)
    return frames


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# -- masking ---------------------------------------------------------------------------------


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=300))
def test_masking_twice_gives_the_data_back(key: bytes, data: bytes) -> None:
    masked = mask(key, data)
    assert len(masked) == len(data)
    assert mask(key, masked) == data


def test_mask_matches_the_rfc_definition() -> None:
    key = os.urandom(4)
    data = os.urandom(1001)
    assert mask(key, data) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


# -- messages ----------------------------------------------------------------------------------

message = st.one_of(
    st.tuples(st.just(TEXT), st.text(max_size=200)),
    st.tuples(st.just(BINARY), st.binary(max_size=200)),
    st.tuples(st.just(PING), st.binary(max_size=125)),
    st.tuples(st.just(PONG), st.binary(max_size=125)),
)


def encode(opcode: int, payload: str | bytes, pieces: int) -> bytes:
    """``payload`` as ``pieces`` fragments (control frames are never fragmented)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if opcode in (PING, PONG) or pieces <= 1:
        return client_frame(opcode, raw)
    step = max(1, len(raw) // pieces)
    parts = [raw[i : i + step] for i in range(0, len(raw), step)] or [b""]
    out = b""
    for i, part in enumerate(parts):
        out += client_frame(opcode if i == 0 else 0, part, fin=i == len(parts) - 1)
    return out


@given(
    st.lists(st.tuples(message, st.integers(1, 4)), max_size=12),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_any_split_of_the_stream_gives_the_same_messages(
    messages: list[tuple[tuple[int, str | bytes], int]], cuts: list[int]
) -> None:
    stream = b"".join(encode(op, payload, pieces) for (op, payload), pieces in messages)
    expected = [(op, payload) for (op, payload), _ in messages]
    whole = FrameParser(MAX).feed(stream)
    assert whole == expected
    parser = FrameParser(MAX)
    assert feed_all(parser, split(stream, cuts)) == expected
    assert parser.error is None


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=10))
def test_control_frames_between_fragments_come_out_at_once(data: bytes, cuts: list[int]) -> None:
    half = len(data) // 2
    stream = (
        client_frame(BINARY, data[:half], fin=False)
        + client_frame(PING, b"hi")
        + client_frame(0, data[half:], fin=False)
        + client_frame(PONG, b"")
        + client_frame(0, b"!", fin=True)
    )
    parser = FrameParser(MAX)
    assert feed_all(parser, split(stream, cuts)) == [
        (PING, b"hi"),
        (PONG, b""),
        (BINARY, data + b"!"),
    ]


def test_lengths_on_every_header_size() -> None:
    for n in (0, 125, 126, 65535, 65536, 200_000):
        payload = os.urandom(n)
        assert FrameParser(1 << 20).feed(client_frame(BINARY, payload)) == [(BINARY, payload)]


def test_one_byte_at_a_time() -> None:
    stream = client_frame(TEXT, "héllo".encode()) + client_frame(CLOSE, close_frame(1000)[2:])
    parser = FrameParser(MAX)
    assert feed_all(parser, [stream[i : i + 1] for i in range(len(stream))]) == [
        (TEXT, "héllo"),
        (CLOSE, b"\x03\xe8"),
    ]


def test_close_codes() -> None:
    assert close_code(b"") == 1005
    assert close_code(struct.pack("!H", 4000) + b"bye") == 4000
    assert close_frame(None) == b"\x88\x00"
    assert close_frame(1009, "too big") == b"\x88\x09\x03\xf1too big"
    assert pong_frame(b"x") == b"\x8a\x01x"


# -- broken streams ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (b"\x81\x05hello", 1002),  # not masked
        (client_frame(TEXT, b"x", rsv=0x40), 1002),
        (client_frame(0x3, b"x"), 1002),  # reserved data opcode
        (client_frame(0xB, b"x"), 1002),  # reserved control opcode
        (client_frame(PING, b"x", fin=False), 1002),
        (client_frame(PING, b"x" * 126), 1002),
        (client_frame(0, b"x"), 1002),  # continuation of nothing
        (client_frame(TEXT, b"x", fin=False) + client_frame(TEXT, b"y"), 1002),
        (client_frame(CLOSE, b"\x03"), 1002),
        (client_frame(CLOSE, struct.pack("!H", 1005)), 1002),
        (client_frame(CLOSE, struct.pack("!H", 999)), 1002),
        (client_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (client_frame(TEXT, b"\xff\xfe"), 1007),
        (b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"abcd", 1002),
    ],
)
def test_bad_frames_close_with_a_code(stream: bytes, code: int) -> None:
    parser = FrameParser(MAX)
    parser.feed(stream)
    assert parser.error is not None
    assert parser.error[0] == code
    assert parser.feed(client_frame(TEXT, b"after")) == []  # nothing more after an error


def test_frames_before_the_error_are_still_returned() -> None:
    parser = FrameParser(MAX)
    frames = parser.feed(client_frame(TEXT, b"ok") + b"\x81\x01x")
    assert frames == [(TEXT, "ok")]
    assert parser.error is not None
    assert parser.error[0] == 1002


def test_a_message_over_the_limit_closes_before_its_payload_arrives() -> None:
    parser = FrameParser(1000)
    assert parser.feed(client_frame(BINARY, b"x" * 1001)[:20]) == []
    assert parser.error is not None
    assert parser.error[0] == 1009


def test_fragments_count_together_against_the_limit() -> None:
    parser = FrameParser(1000)
    parser.feed(client_frame(TEXT, b"x" * 600, fin=False))
    assert parser.error is None
    parser.feed(client_frame(0, b"x" * 401)[:14])
    assert parser.error is not None
    assert parser.error[0] == 1009
    exact = FrameParser(1000)
    stream = client_frame(TEXT, b"x" * 600, fin=False) + client_frame(0, b"y" * 400)
    assert exact.feed(stream) == [(TEXT, "x" * 600 + "y" * 400)]
