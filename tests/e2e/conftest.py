"""Fixtures shared by the end-to-end tests; a module that needs another kind of server
defines its own ``server``, which takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.support import ServerProcess, running_server

from .wsclient import http


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server on SQLite for one test."""
    with running_server(tmp_path) as srv:
        yield srv


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``server`` with the full-scope API key."""
    async with http(server) as client:
        yield client


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
