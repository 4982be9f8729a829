"""The package's import graph: no cycles between modules, and the layering DESIGN.md describes.

Every import counts, also one inside a function or under ``if TYPE_CHECKING:``: a late import hides a cycle
from Python, not from a reader. A package's ``__init__`` is its own node; a module's edge to its own
package's ``__init__`` is not a cycle (Python runs the ``__init__`` first anyway).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
PACKAGE = "attribution_oracle"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of this package it imports}``."""
    paths = sorted((SRC / PACKAGE).rglob("*.py"))
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith(PACKAGE):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _parent_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop a module's edge to its own package's ``__init__`` (Python runs that first anyway, not a cycle)."""
    return {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "attribution_oracle.cli.main" in graph
    assert "attribution_oracle.cli.cli_context" in graph["attribution_oracle.cli.main"]
    assert "attribution_oracle.chain.reads" in graph["attribution_oracle.cli.cli_context"]
    assert "attribution_oracle.serving.openlora_service" in graph["attribution_oracle.serving.api"]


def test_cycle_detection_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(_parent_package_edges(import_graph())) == []


def test_attribution_imports_nothing_chain_related():
    """attribution/ is a pure torch library (DESIGN.md): no chain, store, settlement, oracle, serving or cli."""
    forbidden = ("chain", "store", "settlement", "oracle", "serving", "cli", "factory", "datanets")
    graph = import_graph()
    leaks = sorted(
        (m, t)
        for m, targets in graph.items()
        if m.startswith(f"{PACKAGE}.attribution")
        for t in targets
        if t.split(".")[1] in forbidden
    )
    assert leaks == []


def test_only_cli_imports_cli():
    graph = import_graph()
    leaks = sorted(
        (m, t)
        for m, targets in graph.items()
        if not m.startswith(f"{PACKAGE}.cli")
        for t in targets
        if t.startswith(f"{PACKAGE}.cli")
    )
    assert leaks == []


def test_no_chain_struct_is_read_by_position():
    """Structs are read by field name through chain.reads (a reordered Vyper struct must not shift a reader)."""
    import re

    positional = re.compile(r"\.call\([^)]*\)\[[0-9]+\]|_INDEX = [0-9]+")
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted((SRC / PACKAGE).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if positional.search(line)
    ]
    assert found == []
