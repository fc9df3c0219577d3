from __future__ import annotations

import httpx
import pytest

from tests.support import ServerProcess

pytestmark = pytest.mark.e2e


def test_health_and_publish(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    r = httpx.post(
        server.url + "/api/v1/publish",
        json={"channel": "tournament:1", "type": "t.x", "data": {"a": 1}},
        headers=server.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["offset"] == 1
