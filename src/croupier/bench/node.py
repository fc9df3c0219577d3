"""The reference server: a bare Node ``ws`` server (``benchmarks/node/server.js``).

Started like the Croupier server under test: in its own process, on the server's core with
``--pin``. It accepts every WebSocket with no authentication; a client's JSON messages ask
it to fan messages out to every other client or to greet every new client with a list of
messages (see the script's header).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Self

from .server import ReferenceProcess

__all__ = ["NodeReference", "find_node_dir"]

_ENV = "CROUPIER_BENCH_NODE_DIR"


def find_node_dir() -> Path:
    """Where ``server.js`` and its ``package-lock.json`` are.

    ``$CROUPIER_BENCH_NODE_DIR`` if set, else ``benchmarks/node`` of the checkout this
    package runs from, else ``benchmarks/node`` under the current directory.

    Raises:
        FileNotFoundError: none of them holds ``server.js``.
    """
    here = Path(__file__).resolve()
    candidates = [Path(os.environ[_ENV])] if os.environ.get(_ENV) else []
    candidates += [here.parents[3] / "benchmarks" / "node", Path.cwd() / "benchmarks" / "node"]
    for candidate in candidates:
        if (candidate / "server.js").is_file():
            return candidate
    raise FileNotFoundError(
        "the Node reference server (benchmarks/node/server.js) was not found: run from a "
        f"checkout of Croupier or set {_ENV}"
    )


def _ensure_installed(directory: Path) -> None:
    """Install the committed lock (``npm ci``) when ``ws`` is missing or older than it."""
    lock = directory / "package-lock.json"
    installed = directory / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed to install the Node reference's packages in {directory}")
    print(f"installing the Node reference's packages in {directory} (npm ci)", file=sys.stderr)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        check=True,
        stdout=sys.stderr,  # stdout is the figures (--json)
    )


class NodeReference(ReferenceProcess):
    """Use as ``with NodeReference(cpus={0}) as node:``; stopped with SIGTERM on exit.

    Args:
        cpus: the cores the server may run on (``None``: any).
        directory: where ``server.js`` is (default: :func:`find_node_dir`).
    """

    name = "node-ws"

    def __init__(self, *, cpus: set[int] | None = None, directory: Path | None = None) -> None:
        super().__init__()
        self.cpus = cpus
        self.directory = directory

    def __enter__(self) -> Self:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH: the Node reference cannot run")
        directory = self.directory or find_node_dir()
        _ensure_installed(directory)
        self.start([node, "server.js", "0"], self.cpus, cwd=directory)
        return self
