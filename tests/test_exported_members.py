"""Public names are deliberate (STYLE 10): each package face's ``__all__`` is what it offers."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import croupier


def _packages() -> list[str]:
    found = ["croupier"]
    for info in pkgutil.walk_packages(croupier.__path__, "croupier."):
        if info.ispkg:
            found.append(info.name)
    return sorted(found)


def _own_public_members(module: types.ModuleType) -> set[str]:
    """Public classes and functions the package itself defines and binds on its face.

    Helpers a face imports from elsewhere (the standard library, another package of
    Croupier's) are not its offer and are left out.
    """
    package = module.__name__
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and (value.__module__ == package or value.__module__.startswith(package + "."))
    }


@pytest.mark.parametrize("name", _packages())
def test_package_exports_what_it_declares(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"
    undeclared = _own_public_members(module) - set(exported)
    assert not undeclared, f"{name}: add {sorted(undeclared)} to __all__ or make them private"


def _declaring(names: list[str]) -> list[str]:
    return [n for n in names if hasattr(importlib.import_module(n), "__all__")]


def _modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(croupier.__path__, "croupier.")
        if not info.ispkg and not info.name.endswith("__main__")
    )


@pytest.mark.parametrize("name", _declaring(_packages()))
def test_star_import_gives_exactly_all(name: str) -> None:
    module = importlib.import_module(name)
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # the behaviour under test
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(module.__all__)
    for member in module.__all__:
        assert namespace[member] is getattr(module, member)


def test_top_level_names() -> None:
    assert {"Gateway", "Event", "Position", "History", "Settings", "load_settings"} <= set(
        croupier.__all__
    )
    assert croupier.__version__


@pytest.mark.parametrize("name", _declaring(_modules()))
def test_module_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    missing = [member for member in module.__all__ if not hasattr(module, member)]
    assert not missing, f"{name}.__all__ names missing members {missing}"
