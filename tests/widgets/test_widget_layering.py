"""The widgets package is layered: no import cycle among its modules (type-only imports included),
no reach into another package's private modules, and one resolver of a view's source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kit.widgets import AttentionViewer, CircuitDiagram, ResidualLens
from kit.widgets._source import resolve_source

PACKAGE = Path(__file__).resolve().parents[2] / "kit" / "widgets"


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by `path` (relative imports resolved), anywhere in the file."""
    here = ["kit", "widgets"]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def graph() -> dict[str, set[str]]:
    modules = {f"kit.widgets.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}


def test_no_module_of_the_widgets_package_imports_one_that_imports_it_back():
    edges = graph()
    cycles = []

    def visit(node, stack):
        for nxt in edges[node]:
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif len(stack) < len(edges):
                visit(nxt, stack + [nxt])

    for start in edges:
        visit(start, [start])
    assert cycles == [], f"import cycles: {cycles[:3]}"
    assert "kit.widgets._base" in edges["kit.widgets.attention"], "the walk sees the package's imports"


def test_widgets_use_only_public_names_of_other_packages():
    private = sorted(
        f"{path.name}: {m}"
        for path in PACKAGE.glob("*.py")
        for m in imports_of(path)
        if m.startswith("kit.") and not m.startswith("kit.widgets") and any(p.startswith("_") for p in m.split(".")[1:])
        and m not in {"kit._validate", "kit._validate.check_tensor"}  # the core's shared validators
    )
    assert private == []


class Model:
    n_layers = 2

    def __init__(self):
        self.traced = []

    def trace(self, prompt, capture=None):
        self.traced.append((prompt, capture))
        return Trace(self)


class Trace:
    def __init__(self, model):
        self.model, self.tokens = model, [["a"]]


def test_the_resolver_traces_a_model_and_prompt_with_the_views_names_and_keeps_a_trace_as_it_is():
    model = Model()
    got = resolve_source("View", model, "some text", ["pattern", "resid_post"])
    assert model.traced == [("some text", ["pattern", "resid_post"])] and got.model is model
    trace = Trace(model)
    assert resolve_source("View", trace, None, ["pattern"]).trace is trace
    assert model.traced == [("some text", ["pattern", "resid_post"])], "a trace is never traced again"
    assert resolve_source("View", model, None, [], model_alone="weights=").trace is None


@pytest.mark.parametrize("view", [AttentionViewer, ResidualLens, CircuitDiagram])
def test_every_view_of_one_prompt_refuses_the_same_wrong_sources_the_same_way(view):
    with pytest.raises(TypeError, match=rf"{view.__name__}\(model, prompt\) needs a kit model"):
        view("gpt2", "some text")
    with pytest.raises(TypeError, match=rf"{view.__name__} takes a trace \(from model.trace"):
        view(42)
