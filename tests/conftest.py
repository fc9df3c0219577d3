from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support import ServerProcess, running_server

# Property tests judge behaviour, not speed: a busy machine must not fail them on time.
settings.register_profile("croupier", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("croupier")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``croupier serve`` process on SQLite in a temporary directory."""
    with running_server(tmp_path) as srv:
        yield srv
