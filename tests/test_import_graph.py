"""The import graph of ``kit/`` has no cycle, between modules or between its subpackages.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` anywhere in a module, function bodies included (a local import hides a cycle,
it does not remove it), relative ones resolved against the module's package; ``from . import x``
points at the submodule ``x`` when there is one, else at the package. Imports under
``if TYPE_CHECKING:`` are left out: they never run. A failure prints the cycle, one edge per arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def kit_modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is_package)}`` for every module under ``root/kit``."""
    out = {}
    for path in sorted((root / "kit").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import node of ``tree`` outside ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                continue
            stack.append(child)


def imported(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules of ``known`` that ``node`` (in ``module``) imports; outside modules are dropped."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        if node.level:
            package = module.split(".") if is_pkg else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for target in targets:
        while target and target not in known:  # `import kit.analysis.x.y` -> the longest known module
            target = target.rpartition(".")[0]
        if target and target != module:
            out.append(target)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over ``root/kit``."""
    mods = kit_modules(root)
    known = set(mods)
    graph = {}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {t for node in _import_nodes(tree) for t in imported(name, is_pkg, node, known)}
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each subpackage of ``kit`` (``kit.analysis``, ...) condensed to one node."""
    def unit(m: str) -> str:  # kit.analysis.patching -> kit.analysis; kit.models stays
        return ".".join(m.split(".")[:2])

    out: dict[str, set[str]] = {unit(m): set() for m in graph}
    for m, targets in graph.items():
        out[unit(m)] |= {unit(t) for t in targets if unit(t) != unit(m)}
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if color[start] != WHITE:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        color[start] = GREY
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = BLACK
                stack.pop()
            elif color.get(nxt, BLACK) == GREY:
                return path[path.index(nxt):] + [nxt]
            elif color.get(nxt) == WHITE:
                color[nxt] = GREY
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _show(cycle: list[str]) -> str:
    return " -> ".join(cycle)


# the checker itself ------------------------------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_checker_finds_a_cycle_through_relative_and_local_imports(tmp_path):
    _write(tmp_path, {
        "kit/__init__.py": "",
        "kit/a.py": "from .b import f\n",
        "kit/b.py": "def f():\n    from . import c\n",  # a local import still counts
        "kit/c.py": "from kit import a\n",
        "kit/d.py": "import numpy\nfrom . import a\n",  # imports the cycle, is not in it
    })
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"kit.a", "kit.b", "kit.c"}


def test_checker_resolves_parent_packages_and_ignores_type_checking(tmp_path):
    _write(tmp_path, {
        "kit/__init__.py": "from . import sub\n",
        "kit/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.x import X\n",
        "kit/sub/__init__.py": "from .x import X\n",
        "kit/sub/x.py": "from ..core import thing\nfrom .. import core\n",
    })
    graph = import_graph(tmp_path)
    assert graph["kit.sub.x"] == {"kit.core"}
    assert graph["kit.core"] == set()
    assert graph["kit.sub"] == {"kit.sub.x"}
    assert find_cycle(graph) is None
    _write(tmp_path, {"kit/core.py": "from .sub.x import X\n"})  # now a real cycle
    assert set(find_cycle(import_graph(tmp_path))) == {"kit.core", "kit.sub.x"}


def test_checker_finds_two_subpackages_that_import_each_other(tmp_path):
    _write(tmp_path, {
        "kit/__init__.py": "",
        "kit/p/__init__.py": "", "kit/p/one.py": "from ..q.two import g\n",
        "kit/q/__init__.py": "", "kit/q/two.py": "def g(): pass\n", "kit/q/three.py": "from kit.p import one\n",
    })
    graph = import_graph(tmp_path)
    assert find_cycle(graph) is None  # no module cycle...
    assert set(find_cycle(package_graph(graph))) == {"kit.p", "kit.q"}  # ...but the packages form one


# the kit ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_graph_covers_the_kit(graph):
    assert {"kit", "kit.models", "kit.trace", "kit.analysis", "kit.train", "kit.widgets"} <= set(graph)
    assert "kit.models" in graph["kit"]


def test_kit_modules_import_no_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in kit/: {_show(cycle)}"


def test_kit_subpackages_import_no_cycle(graph):
    cycle = find_cycle(package_graph(graph))
    assert cycle is None, f"import cycle between kit's packages: {_show(cycle)}"


def test_analysis_and_train_do_not_import_each_other(graph):
    def edges(src: str, dst: str) -> list[str]:
        return sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith(src)
                      for t in ts if t == dst or t.startswith(dst + "."))

    there, back = edges("kit.analysis", "kit.train"), edges("kit.train", "kit.analysis")
    assert not (there and back), f"kit.analysis and kit.train import each other: {there} and {back}"
