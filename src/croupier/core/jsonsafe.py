"""Limits on the JSON that enters Croupier: nesting depth and number range. No I/O.

Every JSON document a client, a backend or a bridge sends passes :func:`check` before a
decoder sees it, so that whatever is accepted can be decoded and encoded again anywhere in
the system (msgspec, orjson, a browser's ``JSON.parse``) without failing or changing:

* Nesting is at most ``max_depth`` arrays and objects (``limits.max_json_depth``, 64 by
  default). Deeper documents are refused with ``too_deep``: decoders recurse, and a few
  kilobytes of ``[`` would otherwise exhaust the stack.
* A number with a fraction or an exponent must be a finite double (``1e999`` is refused), and
  an integer must fit in 64 bits (-2**63 to 2**64-1), the range orjson round-trips exactly.
  Others are refused with ``bad_number``: larger integers travel as strings.

Accepted documents are kept as the bytes that were sent. Syntax is the decoder's to judge:
:func:`check` only looks at structure, and says nothing about a document that is not JSON.
Its cost is two byte counts and one regular-expression search for an ordinary message; the
full scan runs only when there are more brackets than the limit or a suspicious number.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from ..errors import BadRequest

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "HIGHEST_MAX_DEPTH",
    "check",
    "check_depth",
    "check_numbers",
    "loads",
]

DEFAULT_MAX_DEPTH = 64
# orjson encodes at most 254 levels; the server wraps data in a few of its own.
HIGHEST_MAX_DEPTH = 200

_INT_LOW = -(2**63)
_INT_HIGH = 2**64 - 1
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_RUN = re.compile(rb"\[+|\]+")
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse a JSON document nested deeper than ``max_depth`` or with an unsafe number.

    Raises:
        BadRequest: code ``too_deep`` (more than ``max_depth`` nested arrays and objects) or
            ``bad_number`` (a non-finite number, or an integer outside 64 bits), with a
            message that names the limit.
    """
    data = _bytes(raw)
    _check(data, max_depth, _suspicious(data))


def check_depth(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """The depth half of :func:`check`: what must pass before a recursive decoder runs.

    Raises:
        BadRequest: code ``too_deep``.
    """
    _check(_bytes(raw), max_depth, False)


def check_numbers(raw: bytes | str) -> None:
    """The number half of :func:`check`, for a document a decoder has already read.

    Raises:
        BadRequest: code ``bad_number``.
    """
    data = _bytes(raw)
    if _suspicious(data):
        _check(data, None, True)


def loads(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "the document") -> Any:
    """``raw`` decoded, after :func:`check`; ``what`` names it in the error message.

    Raises:
        BadRequest: ``too_deep`` or ``bad_number`` as :func:`check`; ``bad_json`` when
            ``raw`` is not JSON.
    """
    check(raw, max_depth)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{what} is not JSON", code="bad_json") from None


def _bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw


def _check(data: bytes, max_depth: int | None, suspicious: bool) -> None:
    deep = max_depth is not None and data.count(b"[") + data.count(b"{") > max_depth
    if not deep and not suspicious:
        return
    bare = _outside_strings(data)
    if deep and max_depth is not None and _depth_over(bare, max_depth):
        raise BadRequest(
            f"JSON nested more than {max_depth} levels deep (arrays and objects); "
            f"the limit is {max_depth}",
            code="too_deep",
        )
    if suspicious:
        for match in _NUMBER.finditer(bare):
            _check_number(match.group())


def _suspicious(data: bytes) -> bool:
    """Whether ``data`` may hold an out-of-range number: an exponent or 19 digits in a row."""
    zeros = data.translate(_DIGITS)
    return b"0e" in zeros or b"0E" in zeros or b"0000000000000000000" in zeros


def _outside_strings(data: bytes) -> bytes:
    """``data`` without the contents of its string literals (each becomes ``""``)."""
    if b'"' not in data:
        return data
    if b"\\" in data:
        # Backslashes occur only inside strings. Dropping escaped backslashes first leaves a
        # backslash before a quote only where that quote is escaped.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b'""'.join(data.split(b'"')[::2])


def _depth_over(bare: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``bare`` (no string contents) nest deeper than ``max_depth``."""
    brackets = bare.translate(_BRACKETS, _NOT_BRACKETS)
    # Deleting every innermost pair lowers the nesting by exactly one. While that halves the
    # text it is the cheapest step (wide, shallow documents: batches, lists of objects) ...
    rounds = 0
    while b"[]" in brackets and rounds < max_depth:
        fewer = brackets.replace(b"[]", b"")
        rounds += 1
        shrunk = len(fewer) * 2 <= len(brackets)
        brackets = fewer
        if not shrunk:
            break
    # ... then walk the runs of ``[`` and ``]``, stopping as soon as the limit is passed.
    # Unbalanced text (not JSON) counts what is still open, so a truncated document is never
    # handed to a recursive decoder either.
    depth = rounds
    for run in _RUN.findall(brackets):
        if run[0] == 0x5B:  # [
            depth += len(run)
            if depth > max_depth:
                return True
        else:
            depth -= len(run)
    return False


def _check_number(token: bytes) -> None:
    if b"." in token or b"e" in token or b"E" in token:
        if not math.isfinite(float(token)):
            raise BadRequest(
                f"the number {_show(token)} is out of range: numbers must be finite "
                "(at most about 1.8e308)",
                code="bad_number",
            )
        return
    digits = len(token) - (token[:1] == b"-")
    if digits > 20 or not _INT_LOW <= int(token) <= _INT_HIGH:
        raise BadRequest(
            f"the integer {_show(token)} does not fit in 64 bits "
            f"({_INT_LOW} to {_INT_HIGH}); send larger values as strings",
            code="bad_number",
        )


def _show(token: bytes) -> str:
    text = token.decode("ascii")
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"
