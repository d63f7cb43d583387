"""The house as drawn in docs/architecture.md: layers, no upward import, no import circle.

Reads every module of ``gatewayd/`` with ``ast`` (nothing is imported or run) and collects
every ``import`` of a gatewayd module: top level, inside functions and under
``TYPE_CHECKING`` alike, because each is a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gatewayd"

# Low to high. A module may import its own layer and the layers before it, never a later
# one. The most specific prefix names a module's layer. Keep in step with
# docs/architecture.md.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", (
        "gatewayd", "gatewayd.errors", "gatewayd.settings_reader", "gatewayd.logging_setup",
        "gatewayd.notify", "gatewayd.escpos_text", "gatewayd.staff_dates",
    )),
    ("protocol", ("gatewayd.protocol",)),
    ("store", ("gatewayd.store",)),
    ("vocabulary", (
        "gatewayd.sync.plan", "gatewayd.web.model", "gatewayd.drivers.printer_settings",
        "gatewayd.sync.mapping_settings", "gatewayd.sync.freee_settings",
        "gatewayd.web.settings", "gatewayd.sync.refs", "gatewayd.sync.spread",
        "gatewayd.tap.settings",
    )),
    ("config", ("gatewayd.config", "gatewayd.firstboot", "gatewayd.doctor",
                "gatewayd.imager_settings", "gatewayd.imager_oslist")),
    ("parts", ("gatewayd.drivers", "gatewayd.ingest", "gatewayd.sync", "gatewayd.web")),
    ("tap", ("gatewayd.tap",)),
    ("daemon", ("gatewayd.daemon", "gatewayd.backend")),
    ("sim", ("gatewayd.sim",)),
    ("cli", ("gatewayd.cli", "gatewayd.__main__")),
)
# The parts do not import one another's modules (only each other's vocabulary).
PARTS = ("gatewayd.drivers", "gatewayd.ingest", "gatewayd.sync", "gatewayd.web")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The gatewayd modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:  # a submodule by name, else a name of the module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    resolved = set()
    for target in found:
        while target not in known and "." in target:
            target = target.rpartition(".")[0]
        if target in known and target != name and target.startswith("gatewayd"):
            resolved.add(target)
    return resolved


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = find_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _owner(name: str, prefixes: Iterable[str]) -> str | None:
    # "gatewayd" names the package's __init__ only: a new top-level module needs its layer.
    matches = [p for p in prefixes
               if name == p or (p != "gatewayd" and name.startswith(p + "."))]
    return max(matches, key=len) if matches else None


def layer_of(name: str) -> int:
    prefix_layer = {p: i for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes}
    owner = _owner(name, prefix_layer)
    if owner is None:
        raise KeyError(name)
    return prefix_layer[owner]


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    return [
        f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} ({LAYERS[layer_of(dst)][0]})"
        for src, targets in sorted(graph.items())
        for dst in sorted(targets)
        if layer_of(dst) > layer_of(src)
    ]


def cross_part_imports(graph: Mapping[str, set[str]]) -> list[str]:
    parts_layer = next(i for i, (n, _) in enumerate(LAYERS) if n == "parts")
    found = []
    for src, targets in sorted(graph.items()):
        if layer_of(src) != parts_layer:
            continue
        for dst in sorted(targets):
            if layer_of(dst) == parts_layer and _owner(src, PARTS) != _owner(dst, PARTS):
                found.append(f"{src} imports {dst}")
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
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
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    unplaced = []
    for name in graph:
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert unplaced == [], "add these modules to LAYERS and docs/architecture.md"


def test_no_lower_layer_imports_a_higher_one(graph: dict[str, set[str]]) -> None:
    assert upward_imports(graph) == []


def test_the_parts_do_not_import_one_another(graph: dict[str, set[str]]) -> None:
    assert cross_part_imports(graph) == []


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_commands_live_under_cli(graph: dict[str, set[str]]) -> None:
    from gatewayd.cli import COMMANDS

    assert all(module.startswith("gatewayd.cli.") for module, _ in COMMANDS.values())
    loose = [n for n in graph if n.endswith(("_cli", ".cli")) and n != "gatewayd.cli"]
    assert loose == []


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "gatewayd" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "gatewayd"


def test_the_check_sees_upward_imports_and_cycles(tmp_path: Path) -> None:
    """The checker itself: a planted upward import, lazy import and circle are all found."""
    root = _write(tmp_path, {
        "__init__.py": "",
        "errors.py": "def f():\n    from gatewayd.cli import main\n",
        "cli/__init__.py": "from gatewayd import errors\n",
        "store/__init__.py": "",
        "store/a.py": "from . import b\n",
        "store/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from gatewayd.store.a import x\n",
        "sync/service.py": "from gatewayd.web import app\n",
        "web/app.py": "from gatewayd.web.model import X\n",
    })
    planted = import_graph(root)
    assert planted["gatewayd.errors"] == {"gatewayd.cli"}
    assert planted["gatewayd.store.a"] == {"gatewayd.store.b"}
    assert upward_imports(planted) == ["gatewayd.errors (base) imports gatewayd.cli (cli)"]
    assert sorted(map(tuple, cycles(planted))) == [
        ("gatewayd.cli", "gatewayd.errors"), ("gatewayd.store.a", "gatewayd.store.b")]
    assert cross_part_imports(planted) == ["gatewayd.sync.service imports gatewayd.web.app"]
