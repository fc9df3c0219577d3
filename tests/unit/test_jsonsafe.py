"""The limits on received JSON (``croupier.core.jsonsafe``): depth and number range."""

from __future__ import annotations

import json

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.core import jsonsafe
from croupier.errors import BadRequest
from tests.fuzzing import budget


def nested(levels: int, inner: str = "1", opener: str = "[", closer: str = "]") -> str:
    return opener * levels + inner + closer * levels


def refused(raw: bytes | str, max_depth: int = 64) -> str:
    with pytest.raises(BadRequest) as caught:
        jsonsafe.check(raw, max_depth)
    assert caught.value.status == 400
    return caught.value.code


@pytest.mark.parametrize("kind", [bytes, str])
def test_depth_is_counted_over_arrays_and_objects(kind: type) -> None:
    def doc(text: str) -> bytes | str:
        return text.encode() if kind is bytes else text

    jsonsafe.check(doc(nested(64)))
    assert refused(doc(nested(65))) == "too_deep"
    mixed = '{"a":' * 32 + nested(32) + "}" * 32
    jsonsafe.check(doc(mixed))
    assert refused(doc('{"a":' + mixed + "}")) == "too_deep"
    assert refused(doc(nested(3)), max_depth=2) == "too_deep"
    with pytest.raises(BadRequest, match="the limit is 64"):
        jsonsafe.check(doc(nested(1000)))


def test_wide_documents_are_as_deep_as_their_deepest_branch() -> None:
    wide = "[" + ",".join([nested(63)] * 500) + "]"
    jsonsafe.check(wide)
    assert refused("[" + ",".join([nested(63)] * 499 + [nested(64)]) + "]") == "too_deep"
    siblings = nested(20, "[" + ",".join(["[]", "{}", '{"a":[1,{"b":[]}]}'] * 200) + "]")
    jsonsafe.check(siblings)


def test_brackets_and_digits_inside_strings_do_not_count() -> None:
    jsonsafe.check(json.dumps({"s": "[" * 500, "t": "]" * 900 + "{" * 80}))
    jsonsafe.check(json.dumps(["1e999", "9" * 400, "-" + "9" * 30]))
    # Escaped quotes and backslashes do not end or start a string early.
    jsonsafe.check(json.dumps({"q": '\\"' + "[" * 100, "b": "\\\\" + "[" * 100}))
    assert refused(json.dumps(["\\", nested(70)]).replace('"[', "[").replace(']"', "]")) == (
        "too_deep"
    )
    assert refused(json.dumps(['a"b', 1e300]).replace("1e+300", "1e999")) == "bad_number"


def test_numbers_must_round_trip() -> None:
    for ok in [
        "1.5e308",
        "-1.5e308",
        "1e-400",
        "0.1",
        "18446744073709551615",
        "-0",
        "-9223372036854775808",
        "12345678901234567890.5",
        "1E2",
    ]:
        jsonsafe.check(f"[{ok}]")
    for bad in [
        "1e999",
        "-1E400",
        "18446744073709551616",
        "-9223372036854775809",
        "7" * 400,
        "1" + "0" * 5000,
    ]:
        assert refused(f"[0,\n{bad}]") == "bad_number"
        assert refused(f"[0,{bad}]") == "bad_number"
    with pytest.raises(BadRequest, match=r"1e999 is out of range"):
        jsonsafe.check(b'{"x":1e999}')
    with pytest.raises(BadRequest, match=r"does not fit in 64 bits.*as strings"):
        jsonsafe.check(b"[" + b"7" * 400 + b"]")


def test_the_halves() -> None:
    jsonsafe.check_depth("[1e999]")
    jsonsafe.check_numbers(nested(500))
    with pytest.raises(BadRequest, match="nested more than 64 levels"):
        jsonsafe.check_depth(nested(65))
    with pytest.raises(BadRequest) as caught:
        jsonsafe.check_numbers("[1e999]")
    assert caught.value.code == "bad_number"


def test_what_is_not_json_is_left_to_the_decoder() -> None:
    for junk in ["", "{nope", '"unterminated', "[1,", "]]]]", "\\"]:
        jsonsafe.check(junk)
    # ... except when it is a truncated deep document, which a decoder would recurse into.
    assert refused(b"[" * 100) == "too_deep"


def test_loads() -> None:
    assert jsonsafe.loads(b'{"a":[1,2]}') == {"a": [1, 2]}
    with pytest.raises(BadRequest, match="the body is not JSON") as caught:
        jsonsafe.loads(b"{nope", what="the body")
    assert caught.value.code == "bad_json"
    with pytest.raises(BadRequest) as caught:
        jsonsafe.loads(nested(65))
    assert caught.value.code == "too_deep"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@pytest.mark.fuzz
@budget(300)
@given(JSON, st.integers(1, 8), st.booleans())
def test_accepts_exactly_what_fits(value: object, limit: int, indent: bool) -> None:
    """Any document of safe numbers passes iff it nests at most ``limit`` deep, and what
    passes decodes and encodes again with orjson and msgspec without failing."""
    raw = json.dumps(value, indent=1 if indent else None).encode()
    if depth(value) > limit:
        assert refused(raw, limit) == "too_deep"
        return
    jsonsafe.check(raw, limit)
    orjson.dumps(orjson.loads(raw))
    msgspec.json.encode(msgspec.json.decode(raw))
