"""Fuzzing the WebSocket frame parser (``croupier.core.frames``) against a model of RFC 6455.

Streams are made of well-formed messages (fragmented at random, UTF-8 split anywhere,
control frames in between) and hostile frames (unmasked, RSV bits, reserved opcodes, control
frames fragmented or over 125 bytes, continuations of nothing, bad close codes and reasons,
invalid UTF-8, lengths over the limit announced by headers of every width). The expected
outcome comes from a model written from the RFC, frame by frame; the parser must agree with
it however the stream is split into reads, never raise, and say nothing after an error.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core.frames import BINARY, CLOSE, PING, PONG, TEXT, Frame, FrameParser, mask
from tests.fuzzing import budget

pytestmark = pytest.mark.fuzz

CONTINUATION = 0
CONTROL = (CLOSE, PING, PONG)
DATA = (CONTINUATION, TEXT, BINARY)
CASES = 1000  # streams per run (each also fed split at random points)


@dataclass(frozen=True)
class RawFrame:
    """One frame as a (possibly hostile) client writes it."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    width: int = 0  # 0: the shortest length encoding; 16 or 64: that one, if longer
    key: bytes = b"\x00\x00\x00\x00"
    claimed: int | None = None  # a length announced with no payload after it (ends a stream)

    def encode(self) -> bytes:
        n = len(self.payload) if self.claimed is None else self.claimed
        b0 = (0x80 if self.fin else 0) | self.rsv | self.opcode
        m = 0x80 if self.masked else 0
        if self.width == 64 or n >= 65536:
            head = struct.pack("!BBQ", b0, m | 127, n)
        elif self.width == 16 or n >= 126:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = bytes((b0, m | n))
        if not self.masked:
            return head + self.payload
        return head + self.key + mask(self.key, self.payload)


def model(frames: list[RawFrame], max_size: int) -> tuple[list[Frame], int | None]:
    """What a server must make of ``frames``: the messages, then the close code if any."""
    out: list[Frame] = []
    opcode = 0  # the fragmented message in progress
    parts: list[bytes] = []
    for f in frames:
        length = len(f.payload) if f.claimed is None else f.claimed
        if f.rsv or not f.masked:  # §5.2 (no extension), §5.1 (clients mask)
            return out, 1002
        if f.opcode in CONTROL:
            if not f.fin or length > 125:  # §5.5
                return out, 1002
        elif f.opcode in DATA:
            if (f.opcode == CONTINUATION) != bool(opcode):  # §5.4
                return out, 1002
            if sum(map(len, parts)) + length > max_size:
                return out, 1009
        else:
            return out, 1002
        if f.claimed is not None:
            return out, None  # the header is fine; its payload never came
        payload = f.payload
        if f.opcode in CONTROL:
            if f.opcode == CLOSE and payload:
                if len(payload) == 1:
                    return out, 1002
                code = struct.unpack("!H", payload[:2])[0]
                if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and not (
                    3000 <= code <= 4999
                ):
                    return out, 1002
                try:
                    payload[2:].decode()
                except UnicodeDecodeError:
                    return out, 1007
            out.append((f.opcode, payload))
            continue
        if f.opcode != CONTINUATION:
            opcode = f.opcode
        parts.append(payload)
        if not f.fin:
            continue
        whole = b"".join(parts)
        kind, opcode, parts = opcode, 0, []
        if kind == TEXT:
            try:
                out.append((TEXT, whole.decode()))
            except UnicodeDecodeError:
                return out, 1007
        else:
            out.append((kind, whole))
    return out, None


# -- streams ---------------------------------------------------------------------------------

keys = st.binary(min_size=4, max_size=4)
widths = st.sampled_from([0, 0, 0, 16, 64])


def _big(n: int) -> bytes:
    return (b"\x00\x7f\xff" * (n // 3 + 1))[:n]


payloads = st.one_of(
    st.binary(max_size=140),
    st.sampled_from([125, 126, 127, 300]).map(_big),
)
text_bytes = st.one_of(
    st.text(max_size=60).map(str.encode),
    st.text(alphabet="é€😀", max_size=20).map(str.encode),  # multi-byte, to split inside
    st.binary(max_size=40),  # usually not UTF-8
)


@st.composite
def close_payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["none", "one", "code", "code", "any"]))
    if kind == "none":
        return b""
    if kind == "one":
        return draw(st.binary(min_size=1, max_size=1))
    code = draw(
        st.sampled_from([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1015, 2999])
        | st.integers(0, 65535)
    )
    reason = draw(text_bytes) if kind == "code" else draw(st.binary(max_size=10))
    return struct.pack("!H", code) + reason[:123]


@st.composite
def message(draw: st.DrawFn) -> list[RawFrame]:
    """A well-formed message: data fragmented anyhow, control frames in between."""
    kind = draw(st.sampled_from([TEXT, BINARY, PING, PONG, CLOSE]))
    key = draw(keys)
    if kind in CONTROL:
        body = draw(close_payloads()) if kind == CLOSE else draw(st.binary(max_size=125))
        return [RawFrame(kind, body, key=key, width=draw(widths))]
    body = draw(text_bytes if kind == TEXT else payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    pieces = [body[a:b] for a, b in itertools.pairwise([0, *cuts, len(body)])]
    frames = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        frames.append(
            RawFrame(kind if i == 0 else CONTINUATION, piece, fin=last, key=key, width=draw(widths))
        )
        if not last and draw(st.integers(0, 4)) == 0:
            frames.append(RawFrame(draw(st.sampled_from([PING, PONG])), b"between", key=key))
    return frames


@st.composite
def hostile(draw: st.DrawFn) -> list[RawFrame]:
    """One frame that breaks (or may break) a rule."""
    return [
        RawFrame(
            opcode=draw(st.integers(0, 15)),
            payload=draw(payloads),
            fin=draw(st.booleans()),
            rsv=draw(st.sampled_from([0, 0, 0, 0x10, 0x20, 0x40, 0x70])),
            masked=draw(st.sampled_from([True, True, True, False])),
            width=draw(widths),
            key=draw(keys),
        )
    ]


@st.composite
def streams(draw: st.DrawFn) -> list[RawFrame]:
    units = draw(st.lists(st.one_of(message(), message(), message(), hostile()), max_size=8))
    frames = [f for unit in units for f in unit]
    if draw(st.integers(0, 5)) == 0:  # a header announcing more than will come
        opcode = draw(st.sampled_from([TEXT, BINARY, CONTINUATION, PING]))
        claimed = draw(st.sampled_from([1, 126, 70_000, 2**32, 2**62]))
        frames.append(RawFrame(opcode, b"", width=draw(widths), claimed=claimed))
    return frames


def feed(parser: FrameParser, chunks: list[bytes]) -> list[Frame]:
    out: list[Frame] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


@budget(CASES)
@given(
    streams(),
    st.sampled_from([16, 200, 1000, 1 << 16]),
    st.lists(st.integers(0, 1 << 20), max_size=12),
)
def test_the_parser_agrees_with_the_rfc_model_however_the_stream_is_read(
    frames: list[RawFrame], max_size: int, cuts: list[int]
) -> None:
    stream = b"".join(f.encode() for f in frames)
    expected, code = model(frames, max_size)

    whole = FrameParser(max_size)
    assert whole.feed(stream) == expected, (frames, max_size)
    assert (whole.error and whole.error[0]) == code, whole.error

    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in itertools.pairwise([0, *points, len(stream)])]
    pieces = FrameParser(max_size)
    assert feed(pieces, chunks) == expected
    assert (pieces.error and pieces.error[0]) == code
    if code is not None:
        # After an error the parser says nothing more, whatever follows.
        assert pieces.feed(RawFrame(TEXT, b"after", key=b"abcd").encode()) == []


@budget(CASES // 3)
@given(st.binary(max_size=400), st.sampled_from([16, 1000]))
def test_random_bytes_never_raise(stream: bytes, max_size: int) -> None:
    parser = FrameParser(max_size)
    for i in range(0, len(stream), 7):
        for opcode, payload in parser.feed(stream[i : i + 7]):
            assert opcode in (TEXT, BINARY, CLOSE, PING, PONG)
            assert isinstance(payload, str if opcode == TEXT else bytes)
    if parser.error is not None:
        assert parser.error[0] in (1002, 1007, 1009)
