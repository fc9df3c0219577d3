"""The import rules of the layers, read from the source (no module is imported here).

* No module uses another module's underscore names: what a module offers others is public,
  and what is private can change without looking elsewhere.
* ``api/``, ``transports/`` and ``services/`` depend one way: services on the other two,
  transports on the API toolkit, never back, not even through a module outside them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
LAYERED = ("api", "transports", "services")


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    is_package: bool

    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), str(self.path))


def _modules(base: Path, top: Path) -> dict[str, Module]:
    found = {}
    for path in sorted(top.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, path, is_package)
    return found


SOURCE = _modules(SRC, SRC / "croupier")
OURS = {
    **SOURCE,
    **_modules(ROOT, ROOT / "tests"),
    **_modules(ROOT, ROOT / "benchmarks"),
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name of what ``from <base> import …`` names."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package.pop()
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _imports(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, ast.AST]]:
    """Each module ``module`` imports (anywhere, type-checking blocks included)."""
    for node in ast.walk(module.tree()):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in known else base), node


def _module_aliases(module: Module, tree: ast.Module) -> dict[str, str]:
    """Local names bound to one of our modules (``from . import fanout``, ``import x.y as z``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in OURS:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in OURS:
                    aliases[alias.asname] = alias.name
    return aliases


def _private_uses(module: Module, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            if base == module.name:
                continue
            for alias in node.names:
                if _private(alias.name):
                    yield f"line {node.lineno}: from {base} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(part) for part in alias.name.split(".")):
                    yield f"line {node.lineno}: import {alias.name}"
    aliases = _module_aliases(module, tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
        ):
            yield f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_no_module_uses_another_modules_private_names(name: str) -> None:
    module = OURS[name]
    found = list(_private_uses(module, module.tree()))
    assert not found, f"{name} reaches into another module's private names: {found}"


def _layer(name: str) -> str:
    """The node a module is in the graph: its layered package, or the module itself."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LAYERED:
        return parts[1]
    return name


def _graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        here = _layer(module.name)
        edges = graph.setdefault(here, set())
        for target, _ in _imports(module, modules):
            if target.split(".")[0] != "croupier":
                continue
            there = _layer(target)
            if there != here:
                edges.add(there)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_api_transports_and_services_import_one_another_one_way() -> None:
    graph = _graph(SOURCE)
    involved = [c for c in _cycles(graph) if set(c) & set(LAYERED)]
    assert not involved, f"import cycles through api/transports/services: {involved}"
    assert "services" not in graph["api"]
    assert "services" not in graph["transports"]


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above find a private import and a cycle when there is one."""
    fake = Module("croupier.services.fake", Path(__file__), is_package=False)
    source = "from ..api.http import _secret, routes\nfrom .. import hub\nhub._buffer\nhub.Hub\n"
    assert list(_private_uses(fake, ast.parse(source))) == [
        "line 1: from croupier.api.http import _secret",
        "line 3: croupier.hub._buffer",
    ]
    graph = {"api": {"croupier.appkeys"}, "croupier.appkeys": {"api"}, "services": {"api"}}
    assert _cycles(graph) == [["api", "croupier.appkeys"]]
    assert _cycles({"api": set(), "services": {"api", "transports"}, "transports": {"api"}}) == []
