"""JSON nesting and number edge cases on every body-taking route of a real server.

Each route's documented example body is taken apart and a hostile value put somewhere in it
(arrays and objects nested past the limit, numbers no decoder keeps: ``1e999``, 400 digits,
2**64), then sent laid out on one line and across many. Every answer is a JSON 400 with the
code the limits promise (``too_deep``, ``bad_number``), the same whatever the layout; within
the limits no answer is a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from croupier.api.http import SERVICE_OPERATIONS
from croupier.api.openapi import OPERATIONS, Operation
from croupier.app import build_app
from croupier.config import Settings
from croupier.gateway import Gateway
from tests.fuzzing import budget
from tests.support import ServerProcess, running_server, timeout

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

CASES = 300  # hypothesis cases per run, two requests each
LIMIT = 64


def _body_operations() -> list[Operation]:
    app = build_app(Gateway(Settings(database_url="memory://")))
    return [op for op in [*OPERATIONS, *app[SERVICE_OPERATIONS]] if op.body is not None]


ROUTES = _body_operations()


@dataclass(frozen=True)
class Token:
    """A JSON number written exactly as given (Python's ``json`` cannot write ``1e999``)."""

    text: str


def dump(value: Any, layout: str) -> bytes:
    """``value`` as JSON: ``compact``, or ``lines`` (a line break after every token), or
    ``crlf`` (CR LF and indentation)."""
    brk = {"compact": "", "lines": "\n", "crlf": "\r\n  "}[layout]

    def go(v: Any) -> str:
        if isinstance(v, Token):
            return v.text
        if isinstance(v, dict):
            items = [json.dumps(k) + ":" + brk + go(x) for k, x in v.items()]
            return "{" + brk + ("," + brk).join(items) + brk + "}"
        if isinstance(v, list):
            return "[" + brk + ("," + brk).join(go(x) for x in v) + brk + "]"
        return json.dumps(v)

    return go(value).encode()


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def nested(levels: int) -> Any:
    value: Any = 0
    for i in range(levels):
        value = [value] if i % 2 else {"a": value}
    return value


UNSAFE = ["1e999", "-1E400", "1.5e309", "7" * 400, str(2**64), str(-(2**63) - 1)]
SAFE = ["0", "-0", "1e-400", "1.7976931348623157e308", str(2**64 - 1), str(-(2**63)), "0.5"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Webhook endpoints name made-up hosts: queue deliveries, never send one.
    env = {"CROUPIER_WEBHOOK_CONCURRENCY": "0"}
    with running_server(Path(tmp_path_factory.mktemp("bodies")), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=timeout(20)) as c:
        yield c


@pytest.fixture(scope="module")
def paths(client: httpx.Client) -> dict[str, str]:
    """Each route's path with its documented example parameters (a webhook registered, so
    that updating it reads the body rather than answering 404)."""
    hook = next(op for op in ROUTES if op.path == "/api/v1/webhooks")
    created = client.post(hook.path, content=dump(hook.body_example, "compact"))
    assert created.status_code == 200, created.text
    out = {}
    for op in ROUTES:
        path = op.path.replace("{channel}", "tournament:42")  # a parameter every route shares
        for name, _, fields in op.params:
            value = created.json()["id"] if name == "endpoint_id" else fields["example"]
            path = path.replace("{" + name + "}", str(value))
        out[op.path] = path
    return out


def send(client: httpx.Client, op: Operation, path: str, body: bytes) -> tuple[int, Any]:
    response = client.request(op.method.upper(), path, content=body)
    assert response.status_code < 500, (op.path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    return response.status_code, response.json()


def refused(client: httpx.Client, op: Operation, path: str, doc: Any, code: str) -> None:
    if isinstance(doc, bytes):  # too deep for dump() to recurse into
        bodies = [doc, doc.replace(b"[", b"[\n").replace(b"{", b"{\r\n")]
    else:
        bodies = [dump(doc, layout) for layout in ("compact", "lines")]
    answers = [send(client, op, path, body) for body in bodies]
    for status, reply in answers:
        assert (status, reply["error"]["code"]) == (400, code), (op.path, reply)
        assert reply["error"]["message"]
    assert answers[0] == answers[1]  # one document, one answer, whatever the layout


@pytest.mark.parametrize("op", ROUTES, ids=[f"{op.method.upper()} {op.path}" for op in ROUTES])
def test_every_body_route_refuses_what_the_limits_refuse(
    client: httpx.Client, paths: dict[str, str], op: Operation
) -> None:
    path = paths[op.path]
    example = op.body_example
    assert isinstance(example, dict), op.path
    first = next(iter(example), "extra")
    refused(client, op, path, b'{"a":[' * 500 + b"0" + b"]}" * 500, "too_deep")
    refused(client, op, path, nested(LIMIT + 1), "too_deep")
    refused(client, op, path, {**example, first: nested(LIMIT)}, "too_deep")
    for number in UNSAFE:
        refused(client, op, path, {**example, first: Token(number)}, "bad_number")
        refused(client, op, path, [Token(number)], "bad_number")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Operation, Any]:
    """A route and its example body with one value somewhere replaced by an edge case."""
    op = draw(st.sampled_from(ROUTES))
    doc = json.loads(json.dumps(op.body_example))
    edge = draw(
        st.one_of(
            st.sampled_from(UNSAFE + SAFE).map(Token),
            st.integers(1, LIMIT + 3).map(nested),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**64 - 1),
        )
    )
    # Walk down to a random place and put the edge value there.
    holder: Any = doc
    while True:
        keys = list(holder) if isinstance(holder, dict) else list(range(len(holder)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = holder[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            holder = child
            continue
        holder[key] = edge
        break
    return op, doc


def unsafe(value: Any) -> bool:
    if isinstance(value, Token):
        return value.text in UNSAFE
    if isinstance(value, dict):
        return any(unsafe(v) for v in value.values())
    if isinstance(value, list):
        return any(unsafe(v) for v in value)
    return False


@budget(CASES)
@given(mutated(), st.sampled_from(["lines", "crlf"]))
def test_edge_values_anywhere_in_any_body(
    client: httpx.Client, paths: dict[str, str], case: tuple[Operation, Any], layout: str
) -> None:
    op, doc = case
    path = paths[op.path]
    if depth(doc) > LIMIT:
        refused(client, op, path, doc, "too_deep")
    elif unsafe(doc):
        refused(client, op, path, doc, "bad_number")
    else:
        status, reply = send(client, op, path, dump(doc, layout))
        if status >= 400:
            assert reply["error"]["code"] not in ("too_deep", "bad_number"), (op.path, reply)
            # A refusal changes nothing, so the same document on one line gets the same.
            assert send(client, op, path, dump(doc, "compact")) == (status, reply)
