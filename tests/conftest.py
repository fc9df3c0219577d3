from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``croupier serve`` process on SQLite in a temporary directory."""
    with running_server(tmp_path) as srv:
        yield srv
