"""The core's layering (DESIGN.md section 10): each layer imports only the layers below it.

Every import counts, wherever it is written: module level, inside a function, or under
``TYPE_CHECKING``. So a cycle cannot hide behind a local import.
"""

from __future__ import annotations

import ast
from pathlib import Path

KIT = Path(__file__).resolve().parents[1] / "kit"

# lowest first; a module may import only modules of its own layer or below
LAYERS = [
    {"kit.names", "kit._validate", "kit._attention", "kit.arch", "kit.arch._adapter", "kit.arch._families",
     "kit.arch._norms", "kit.hooknames"},
    {"kit.interventions", "kit._session"},
    {"kit.trace"},
    {"kit.models", "kit._loading"},
]
RANK = {mod: i for i, layer in enumerate(LAYERS) for mod in layer}


def _module_name(path: Path) -> str:
    rel = path.relative_to(KIT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``kit.*`` module that ``path`` imports, resolved from relative imports."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("kit"):
                if node.module:  # from .x import y: imports x (and y, when y is a module)
                    out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in RANK or not node.module}
    return out


def _core_files() -> dict[str, Path]:
    files = {_module_name(p): p for p in KIT.rglob("*.py")}
    return {m: p for m, p in files.items() if m in RANK}


def test_core_modules_import_only_their_own_layer_or_below():
    files = _core_files()
    assert {"kit.trace", "kit.models", "kit.interventions", "kit._session", "kit.names"} <= set(files)
    bad = []
    for mod, path in files.items():
        for target in _imports(path):
            if target == "kit":
                bad.append(f"{mod} imports the kit package itself")
            elif target in RANK and RANK[target] > RANK[mod]:
                bad.append(f"{mod} (layer {RANK[mod]}) imports {target} (layer {RANK[target]})")
            elif target.startswith("kit.") and target not in RANK and target.split(".")[1] in (
                    "analysis", "widgets", "lessons", "train", "charts"):
                bad.append(f"{mod} imports {target}, a layer above the core")
    assert not bad, "\n".join(bad)


def test_the_tracer_never_imports_the_model_and_interventions_never_import_the_tracer():
    files = _core_files()
    assert "kit.models" not in _imports(files["kit.trace"])
    assert "kit.trace" not in _imports(files["kit.interventions"])
    assert "kit.trace" not in _imports(files["kit._session"])


def test_the_checker_sees_local_and_type_checking_imports(tmp_path):
    """The checker itself: an import hidden in a function or under TYPE_CHECKING is still found."""
    pkg = tmp_path / "kit"
    pkg.mkdir()
    f = pkg / "trace.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .models import Model\n"
                 "def g():\n    from . import interventions\n")
    global KIT
    saved, KIT = KIT, pkg
    try:
        assert {"kit.models", "kit.interventions"} <= _imports(f)
    finally:
        KIT = saved
