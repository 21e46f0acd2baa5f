"""The import graph keeps the house's shape: no circles, HTTP only at the top,
and the two daemons depending on each other in one direction."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("uploadd", "noded")
#: The modules that assemble the HTTP families with everything else.
COMPOSITION_ROOTS = {"uploadd.service", "uploadd.tap"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
    }


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """Every project module ``path`` imports, anywhere in it (function-level
    and type-checking imports count: a circle through them is a circle)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            # the longest known module the name is, or lies in
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                yield name


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: {target for target in imported(path, known) if target != name}
        - {parent for parent in known if name.startswith(parent + ".")}
        for name, path in found.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_takes_part_in_an_import_circle() -> None:
    """Following imports from any module never leads back to it."""
    assert cycles(graph()) == []


def test_only_the_http_edge_and_the_composition_root_import_the_http_edge() -> None:
    """Below ``uploadd/api/`` code speaks in core errors and knows no HTTP:
    nothing else imports ``uploadd.api`` but the modules that assemble it."""
    leaks = {
        (name, target)
        for name, targets in graph().items()
        for target in targets
        if target.startswith("uploadd.api")
        and not name.startswith("uploadd.api")
        and name not in COMPOSITION_ROOTS
    }
    assert leaks == set()


def test_the_node_daemon_does_not_depend_on_uploadd() -> None:
    """uploadd uses noded's shared modules (node protocol, signing, settings,
    HTTP serving); noded imports nothing of uploadd's."""
    back = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith("noded")
        for target in targets
        if target.startswith("uploadd")
    }
    assert back == set()
