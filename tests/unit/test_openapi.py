"""The OpenAPI document: valid, in step with the router, and its examples true to its schemas."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgspec
import pytest
import schemathesis
from aiohttp import web

from croupier.api.http import SERVICE_OPERATIONS
from croupier.api.openapi import OPERATIONS, build_openapi
from croupier.app import build_app
from croupier.config import NamespaceRules, Settings
from croupier.gateway import Gateway


def _document() -> dict[str, Any]:
    """The document as the server serves it: the gateway's operations and the services'."""
    app = build_app(Gateway(Settings(database_url="memory://")))
    extra = app[SERVICE_OPERATIONS]
    return build_openapi(Settings(), extra)


DOC = _document()


def _api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route but the streaming transports' and static files.

    WebSocket and SSE endpoints (``croupier.transports``) speak their own protocols, described
    in the design rather than in OpenAPI; anything else the server answers must be documented.
    """
    app = build_app(Gateway(Settings(database_url="memory://")))
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue  # aiohttp adds HEAD to every GET
        if getattr(route.handler, "__module__", "").startswith("croupier.transports"):
            continue
        assert route.resource is not None
        found.add((route.method.lower(), route.resource.canonical))
    return found


def _documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOC["paths"].items() for method in item}


def test_every_route_is_documented_and_every_operation_served() -> None:
    routes = _api_routes()
    assert routes - _documented() == set(), "served but not in the OpenAPI document"
    assert _documented() - routes == set(), "in the OpenAPI document but not served"


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(DOC).validate()


def test_operations_have_ids_security_and_error_schema() -> None:
    ids = [op.operation_id for op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for path, item in DOC["paths"].items():
        for operation in item.values():
            if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
                assert operation["security"], path
                assert {"401", "403"} <= operation["responses"].keys(), path
            for status, response in operation["responses"].items():
                if status != "200":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorReply"}


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.body], ids=lambda op: op.path)
def test_request_examples_decode_as_their_bodies(op: Any) -> None:
    msgspec.json.decode(msgspec.json.encode(op.body_example), type=op.body)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.reply], ids=lambda op: op.path)
def test_reply_examples_fit_their_schemas(op: Any) -> None:
    msgspec.convert(op.reply_example, type=op.reply)


def _channel_patterns(doc: dict[str, Any]) -> set[str]:
    return {
        p["schema"]["pattern"]
        for item in doc["paths"].values()
        for operation in item.values()
        for p in operation.get("parameters", [])
        if p["name"] == "channel"
    } | {doc["components"]["schemas"]["PublishBody"]["properties"]["channel"]["pattern"]}


def test_channel_pattern_lists_the_configured_namespaces() -> None:
    (pattern,) = _channel_patterns(DOC)
    assert re.fullmatch(pattern, "tournament:1")
    assert re.fullmatch(pattern, "lobby")
    assert not re.fullmatch(pattern, "casino:1")
    assert not re.fullmatch(pattern, "tournament::1")
    assert not re.fullmatch(pattern, "tournamentx:1")


def test_a_star_namespace_opens_the_channel_pattern() -> None:
    doc = build_openapi(Settings(namespaces={"*": NamespaceRules()}))
    (pattern,) = _channel_patterns(doc)
    assert re.fullmatch(pattern, "casino:1")
    assert not re.fullmatch(pattern, "casino:")


def test_batch_size_follows_the_limit() -> None:
    settings = Settings()
    settings = settings.with_overrides(limits=dataclasses.replace(settings.limits, max_batch=50))
    events = build_openapi(settings)["components"]["schemas"]["BatchBody"]["properties"]["events"]
    assert events["maxItems"] == 50
