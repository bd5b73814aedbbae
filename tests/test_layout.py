"""The installed package's import graph: no cycle, and no arrow back up a layer.

Every ``import`` in every module of the installed ``manifest_broker`` counts, those
inside functions too (a lazy import is still a dependency, only a later one). The
layers, lowest first:

- the core modules at the top of the package (errors, boundary, progress, ...);
- ``provider`` (what faces the data provider), then ``catalog`` and ``tnr``, the two
  jobs, which never import each other;
- ``generators`` (the layouts and the synthetic data makers);
- ``demo`` and ``commandline`` (what a user runs), and ``render``, their output.
"""

from __future__ import annotations

import ast
import graphlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = "manifest_broker"

# Which groups a group may import (besides itself). A group is a subpackage, or
# "core" for a module at the top of the package.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "provider": {"core"},
    "catalog": {"core", "provider"},
    "tnr": {"core"},
    "sql": set(),
    "generators": {"core", "provider", "tnr"},
    "render": {"core"},
    "demo": {"core", "provider", "catalog", "tnr", "generators", "render"},
    "commandline": {"core", "provider", "catalog", "tnr", "generators", "render", "demo"},
}


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    found: dict[str, Path] = {}
    for package in (PACKAGE, f"{PACKAGE}.generators"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        for root in map(Path, spec.submodule_search_locations):
            for path in root.rglob("*.py"):
                parts = path.relative_to(root).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                name = ".".join((package, *parts))
                if package == PACKAGE and parts and parts[0] == "generators":
                    continue  # only through its own package directory
                found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _group(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "core"
    if parts[1] in ("render", "demo"):
        return parts[1]
    if len(parts) == 2 and parts[1] not in ALLOWED:
        return "core"
    return parts[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_walk_sees_the_whole_package(graph: dict[str, set[str]]) -> None:
    # The walk reads what is installed; these are the stages the layout names.
    for name in (
        "manifest_broker.catalog.ingest",
        "manifest_broker.catalog.target",
        "manifest_broker.catalog.upload",
        "manifest_broker.provider.explore",
        "manifest_broker.tnr.run",
        "manifest_broker.generators.generate",
        "manifest_broker.commandline.main",
    ):
        assert name in graph, name
    assert "manifest_broker.catalog.upload" in graph["manifest_broker.catalog.register"]
    assert "manifest_broker.catalog.target" in graph["manifest_broker.catalog.write"]


def test_no_module_imports_itself_back(graph: dict[str, set[str]]) -> None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def test_no_group_imports_back_up_a_layer(graph: dict[str, set[str]]) -> None:
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if _group(target) != _group(name) and _group(target) not in ALLOWED[_group(name)]
    )
    assert wrong == []


def test_the_groups_have_no_cycle_either(graph: dict[str, set[str]]) -> None:
    groups: dict[str, set[str]] = {}
    for name, targets in graph.items():
        groups.setdefault(_group(name), set()).update(_group(t) for t in targets if _group(t) != _group(name))
    try:
        tuple(graphlib.TopologicalSorter(groups).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"cycle between folders: {' -> '.join(cycle.args[1])}")


def test_the_package_is_as_the_formatter_leaves_it() -> None:
    """No formatter opt-outs in the package: the layout of every line is ruff's."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations
    marked = [
        f"{path}:{number}"
        for root in map(Path, spec.submodule_search_locations)
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "fmt: skip" in line or "fmt: off" in line
    ]
    assert marked == []
