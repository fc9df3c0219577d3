"""Schemathesis over every operation of the OpenAPI document, against a real server process.

Requests generated from the document must get no 5xx, a documented status, and a body and
content type as documented; invalid requests must be refused with a 4xx and valid ones
accepted. Two complementary runs share one server:

* Hypothesis fuzzing per operation and mode (``APIOperation.as_strategy`` and
  ``Case.call_and_validate``), one pytest test each. Driven directly rather than through
  ``schemathesis.pytest.from_fixture``, whose plugin does not run under pytest 9.2.
* Schemathesis's own engine for its ``examples`` phase (the document's examples must work)
  and ``coverage`` phase (boundary values, missing and wrong-typed fields, wrong methods).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode, engine
from schemathesis.engine import events

from croupier.api.http import SERVICE_OPERATIONS
from croupier.api.openapi import OPERATIONS, Operation
from croupier.app import build_app
from croupier.config import Settings
from croupier.gateway import Gateway
from tests.fuzzing import SCALE
from tests.support import ServerProcess, running_server, timeout

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

MAX_EXAMPLES = 20 * SCALE  # per operation and mode (tests/fuzzing.py)
SEED = 20250101


def _operations() -> list[Operation]:
    """The gateway's operations and the services' (as the server serves them)."""
    app = build_app(Gateway(Settings(database_url="memory://")))
    return [*OPERATIONS, *app[SERVICE_OPERATIONS]]


# A stream (the admin live log) never ends, so a request-and-reply fuzzer cannot check it;
# tests/e2e/test_admin.py does.
STREAMS = sorted({op.path for op in _operations() if op.media == "text/event-stream"})

CASES = [
    pytest.param(f"{op.method.upper()} {op.path}", mode, id=f"{op.method.upper()} {op.path} {mode}")
    for op in _operations()
    if op.path not in STREAMS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # An operation without parameters or body has no invalid request to make.
    if mode is GenerationMode.POSITIVE or op.body or op.query or op.params or "{" in op.path
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; the runs only add events, so they do not disturb each other."""
    # Fuzzed webhook endpoints name made-up hosts: this server queues deliveries but never
    # sends one, so no test traffic leaves the machine.
    env = {"CROUPIER_WEBHOOK_CONCURRENCY": "0"}
    with running_server(Path(tmp_path_factory.mktemp("openapi")), env=env) as server:
        yield server


def _schema(server: ServerProcess, phases: dict[str, object]) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": server.headers,
            "request-timeout": timeout(10),
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": phases,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    )
    schema = schemathesis.openapi.from_url(server.url + "/api/v1/openapi.json", config=config)
    return schema.exclude(path=STREAMS) if STREAMS else schema


@pytest.fixture(scope="module")
def api(live: ServerProcess) -> schemathesis.BaseSchema:
    return _schema(live, {})


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_fuzzed_requests_conform(
    api: schemathesis.BaseSchema, label: str, mode: GenerationMode
) -> None:
    operation = api.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.filter_too_much,
            hypothesis.HealthCheck.data_too_large,
        ],
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate()

    run()


def test_examples_and_coverage_conform(live: ServerProcess) -> None:
    schema = _schema(
        live,
        {
            "examples": {"enabled": True},
            "coverage": {"enabled": True, "generate-duplicate-query-parameters": True},
            "fuzzing": {"enabled": False},  # done above, per operation
            "stateful": {"enabled": False},  # no links between operations to follow
        },
    )
    problems: list[str] = []
    tested: set[str] = set()
    finished = False
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tested.add(event.recorder.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        problems.append(
                            f"{event.phase} {event.recorder.label}: {failure.title}\n"
                            f"{failure.message}\n{check.failure_info.code_sample}"
                        )
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            problems.append(f"engine error: {event}")
        elif isinstance(event, events.EngineFinished):
            finished = event.stop_reason is engine.StopReason.COMPLETED
    assert not problems, "\n\n".join(problems)
    assert finished
    # The engine leaves out the operation that serves the document itself.
    assert tested == {str(p.values[0]) for p in CASES} - {"GET /api/v1/openapi.json"}
