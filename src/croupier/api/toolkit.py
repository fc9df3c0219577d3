"""The HTTP toolkit: what every route handler of the API and of the services uses.

A handler reads its input through these functions and raises a :class:`CroupierError` for
anything wrong with it; :func:`error_middleware` turns the error into the answer, so a
handler never builds an error response itself::

    async def submit(request: web.Request) -> web.Response:
        require_key(request, "publish")                 # 401 / 403 unless the key may
        body = await read_body(request, ScoreBody)      # bounded, validated, typed
        limit = int_query(request, "limit", 10, 1, 100)  # default, lowest, highest
        return json_response(await boards.submit(body, limit))

Rules:

* A request body is read only up to :data:`MAX_BODY` bytes and decoded straight into a
  msgspec type: invalid JSON is ``400 bad_json``, a body that does not fit the schema is
  ``400 bad_request`` with msgspec's message (which names the field), an oversized one is
  ``413 too_large``.
* A query parameter may be given at most once; an integer one is plain ASCII digits
  (optionally negative) within the handler's range, or a ``400`` that says so.
* A backend authenticates with ``Authorization: Bearer <api key>``; a key without the scope
  the route needs is ``403``, a missing or unknown one ``401``.
* Every error answer, from any route, is ``{"error": {"code", "message"}}`` with the error's
  status: :func:`error_response` is the one place that shape is built.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from ..appkeys import GATEWAY
from ..config import ApiKey
from ..core import jsonsafe
from ..errors import BadRequest, CroupierError, Overloaded, PayloadTooLarge, shown
from ..gateway import Gateway

__all__ = [
    "MAX_BODY",
    "Handler",
    "decode_body",
    "error_middleware",
    "error_response",
    "gateway_of",
    "int_query",
    "json_response",
    "query",
    "read_body",
    "read_raw",
    "require_key",
    "struct_response",
]

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY = 16 * 1024 * 1024
"""The largest request body any route reads, in bytes."""

_INTEGER = re.compile(r"-?[0-9]+")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def json_response(doc: Any, status: int = 200) -> web.Response:
    """``doc`` (dicts, lists, scalars) as a JSON answer, encoded with orjson."""
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def struct_response(value: Any, status: int = 200) -> web.Response:
    """A msgspec value (a ``Struct``, or containers of them) as a JSON answer."""
    body = msgspec.json.encode(value)
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(exc: CroupierError) -> web.Response:
    """The answer for ``exc``: ``{"error": {"code", "message"}}`` with its status (and, for
    :class:`~croupier.errors.Overloaded`, ``Retry-After``)."""
    response = json_response({"error": exc.as_dict()}, exc.status)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of a handler becomes ``{"error": {"code", "message"}}``.

    A :class:`CroupierError` answers with its own code and status; aiohttp's own 4xx
    exceptions (no route, wrong method, body too large) with the same shape.
    """
    try:
        return await handler(request)
    except CroupierError as exc:
        if exc.status in (401, 403):
            _log_refusal(request, exc)
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "bad_request")
        response = error_response(CroupierError(exc.reason, code=code))
        response.set_status(exc.status)
        if "Allow" in exc.headers:  # a 405 must say which methods the route takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _log_refusal(request: web.Request, exc: CroupierError) -> None:
    gateway = request.app.get(GATEWAY)
    if gateway is not None and gateway.debug.watching:
        gateway.debug.emit(
            "auth.failed",
            path=request.path,
            code=exc.code,
            status=exc.status,
            origin=request.headers.get("Origin"),
            remote=request.remote,
        )


def gateway_of(request: web.Request) -> Gateway:
    """The gateway of the application serving ``request``."""
    return request.app[GATEWAY]


def require_key(request: web.Request, scope: str) -> ApiKey:
    """Check the request's ``Authorization: Bearer`` API key has ``scope``; return it (its
    ``name`` says who asked, for logs; never show the key itself).

    Raises:
        Unauthorized: no key, or a key the server does not know.
        Forbidden: the key lacks ``scope`` (``publish``, ``read`` or ``admin``).
    """
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    return gateway_of(request).auth.verify_key(key, scope)


async def read_body(request: web.Request, kind: type[T], *, max_bytes: int = MAX_BODY) -> T:
    """The request's JSON body, decoded and validated as ``kind`` (a msgspec type).

    Raises:
        PayloadTooLarge: the body is over ``max_bytes``.
        BadRequest: the body is not JSON (``bad_json``), is nested too deep (``too_deep``),
            holds a number out of range (``bad_number``) or does not fit ``kind``.
    """
    raw = await read_raw(request, max_bytes)
    # Depth and numbers first: the decoder recurses, and stored data is kept as sent.
    jsonsafe.check(raw, gateway_of(request).settings.limits.max_json_depth)
    return decode_body(raw, kind)


async def read_raw(request: web.Request, max_bytes: int = MAX_BODY) -> bytes:
    """The request's body as sent, for a handler that needs its bytes (a signed body).

    Raises:
        PayloadTooLarge: the body is over ``max_bytes``.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    raw = await request.read()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    return raw


def decode_body(raw: bytes, kind: type[T]) -> T:
    """``raw`` decoded and validated as ``kind``; after :func:`jsonsafe.check` has passed.

    Raises:
        BadRequest: it is not JSON (``bad_json``) or does not fit ``kind``.
    """
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}", code="bad_request") from None
    except msgspec.DecodeError:
        raise BadRequest("the request body is not valid JSON", code="bad_json") from None


def query(request: web.Request, name: str) -> str | None:
    """The query parameter ``name``, or None when absent.

    Raises:
        BadRequest: it is given more than once.
    """
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} may be given only once")
    return values[0] if values else None


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` in ``[low, high]``; ``default`` when absent.

    Raises:
        BadRequest: it is not a plain integer, is out of range, or is given twice.
    """
    raw = query(request, name)
    if raw is None:
        return default
    # int() alone would also take " 7", "+7", "1_000" and non-ASCII digits, and raise on
    # thousands of digits; nothing in range needs more than 20 characters.
    if not _INTEGER.fullmatch(raw) or len(raw) > 20:
        raise BadRequest(f"{name} must be an integer, not {shown(raw, 32)}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value
