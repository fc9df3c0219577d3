"""The SDK and console files as served, the demo sign-in, and the node statistics."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from croupier.app import build_app
from croupier.config import ApiKey, Settings
from croupier.gateway import Gateway
from croupier.services.stats import rates
from croupier.web import classic_script

KEY = "unit-key"
SDK = resources.files("croupier.web").joinpath("croupier.js").read_text()


async def _client(**settings: object) -> TestClient[web.Request, web.Application]:
    gateway = Gateway(
        Settings(database_url="memory://", api_keys=(ApiKey.from_plain("k", KEY),), **settings)  # type: ignore[arg-type]
    )
    client = TestClient(TestServer(build_app(gateway)))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    c = await _client()
    yield c
    await c.close()


def test_classic_script_defines_the_module_exports_on_a_global() -> None:
    script = classic_script(SDK)
    assert "\nexport " not in script
    assert script.startswith("// Croupier")
    tail = script.rstrip().splitlines()[-2]
    for name in ("Client", "Subscription", "GameBridge", "CasinoBridge", "backoffDelay"):
        assert name in tail


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to run the script")
def test_classic_script_runs_as_a_classic_script(tmp_path: Path) -> None:
    path = tmp_path / "classic.js"
    path.write_text(classic_script(SDK))
    program = (
        f"require({str(path)!r});"
        "const C = globalThis.Croupier;"
        "console.log(typeof C.Client, typeof C.GameBridge, C.backoffDelay(3, {}, () => 0));"
    )
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["function", "function", "8000"]


async def test_files_have_types_and_revalidate_by_etag(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path, media in [
        ("/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/sdk/croupier.js", "text/javascript"),
        ("/sdk/croupier.classic.js", "text/javascript"),
    ]:
        first = await client.get(path)
        assert first.status == 200
        assert first.content_type == media
        assert first.headers["Cache-Control"] == "no-cache"
        etag = first.headers["ETag"]
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304
        assert await again.read() == b""
        stale = await client.get(path, headers={"If-None-Match": '"old"'})
        assert stale.status == 200


async def test_console_config_hands_out_a_key_only_on_a_demo_server(
    client: TestClient[web.Request, web.Application],
) -> None:
    r = await client.get("/console/config.json")
    assert await r.json() == {"demo": False, "apiKey": None}
    demo = await _client(demo_key="demo-key")
    try:
        r = await demo.get("/console/config.json")
        assert await r.json() == {"demo": True, "apiKey": "demo-key"}
    finally:
        await demo.close()


async def test_stats_need_an_admin_key_and_list_this_node(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert (await client.get("/api/v1/stats")).status == 401
    r = await client.get("/api/v1/stats", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status == 200
    doc = await r.json()
    assert [n["id"] for n in doc["nodes"]] == [doc["node"]]
    assert doc["nodes"][0]["connections"] == doc["connections"] == 0


def test_rates_are_per_second_and_never_negative() -> None:
    assert rates((10.0, 100, 1000), (12.0, 160, 1400)) == (30.0, 200.0)
    assert rates((10.0, 100, 1000), (10.0, 160, 1400)) == (0.0, 0.0)
    assert rates((10.0, 100, 1000), (11.0, 50, 900)) == (0.0, 0.0)  # counters restarted
