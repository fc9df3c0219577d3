"""``GET /sdk/croupier.d.ts``: the TypeScript compiler accepts a page written against it and
refuses one that misuses the SDK."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import IN_CI, ServerProcess, timeout

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent / "js" / "typings"
TSC = HERE / "node_modules" / ".bin" / "tsc"
FLAGS = [
    "--noEmit",
    "--strict",
    "--target",
    "es2022",
    "--module",
    "es2022",
    "--moduleResolution",
    "bundler",
    "--lib",
    "es2022,dom",
]


def _tsc(workdir: Path, *files: str) -> subprocess.CompletedProcess[str]:
    if not TSC.exists():
        message = f"no TypeScript compiler: run 'npm ci' in {HERE} (make js)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [str(TSC), *FLAGS, *files],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout(120),
        check=False,
    )


def test_the_served_typings_check_a_page_and_catch_misuse(
    server: ServerProcess, tmp_path: Path
) -> None:
    r = httpx.get(server.url + "/sdk/croupier.d.ts", timeout=timeout(10))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/typescript")
    (tmp_path / "croupier.d.ts").write_text(r.text)
    shutil.copy(HERE / "page.ts", tmp_path / "page.ts")
    done = _tsc(tmp_path, "page.ts")
    assert done.returncode == 0, done.stdout + done.stderr

    (tmp_path / "wrong.ts").write_text(
        'import { Client } from "./croupier.js";\n'
        'const client = new Client({ transport: "carrier-pigeon" });\n'
        "client.subscribe(42);\n"
        'client.on("disconnect", (m) => m.nonsense.length);\n'
    )
    done = _tsc(tmp_path, "wrong.ts")
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if "error TS" in line]
    assert [line.split("(")[1].split(",")[0] for line in errors] == ["2", "3", "4"], done.stdout
