"""The committed notebooks ``lessons/*.ipynb`` are built from ``lessons/src/*.py``, and agree with them.

Each source is parsed as ``lessons/build.py`` parses it (``parse``), and its cells are compared with
the notebook's: kind, source and tags, in order. Outputs are not compared (nbval and
tests/test_lesson_determinism.py check those). A failure names the lesson, the first cell that
differs, and the command that rebuilds it.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import nbformat
import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def _load_build():
    spec = importlib.util.spec_from_file_location("lessons_build", LESSONS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """``[(cell type, source, tags)]`` of a notebook."""
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def first_difference(built: list, committed: list) -> str | None:
    """Where two cell lists first differ, said in words, or None when they are equal."""
    for i, (a, b) in enumerate(zip(built, committed)):
        if a != b:
            what = "type" if a[0] != b[0] else "source" if a[1] != b[1] else "tags"
            diff = difflib.unified_diff(b[1].splitlines(), a[1].splitlines(), "in the notebook", "from the source",
                                        lineterm="")
            return f"cell {i} differs in its {what} ({b[0]} {b[2]} -> {a[0]} {a[2]}):\n" + "\n".join(list(diff)[:40])
    if len(built) != len(committed):
        return f"the source makes {len(built)} cells, the notebook has {len(committed)}"
    return None


def test_every_source_has_a_notebook_and_every_notebook_a_source():
    sources = {p.stem for p in (LESSONS / "src").glob("*.py")}
    notebooks = {p.stem for p in LESSONS.glob("*.ipynb")}
    assert sources, "no lesson sources found"
    assert sources == notebooks, f"only a source: {sorted(sources - notebooks)}; only a notebook: {sorted(notebooks - sources)}"


@pytest.mark.parametrize("src", sorted((LESSONS / "src").glob("*.py")), ids=lambda p: p.stem)
def test_notebook_cells_are_the_sources_cells(src):
    notebook = LESSONS / f"{src.stem}.ipynb"
    if not notebook.exists():
        pytest.fail(f"{src.stem}: no notebook; build it with `python lessons/build.py {src.stem[:2]}`")
    diff = first_difference(cells(build.parse(src.read_text())), cells(nbformat.read(notebook, as_version=4)))
    if diff is not None:
        pytest.fail(f"{notebook.name} disagrees with src/{src.name}: {diff}\nRebuild it with "
                    f"`python lessons/build.py {src.stem[:2]}`", pytrace=False)


def test_an_edited_source_is_caught():
    src = sorted((LESSONS / "src").glob("*.py"))[0]
    committed = cells(nbformat.read(LESSONS / f"{src.stem}.ipynb", as_version=4))
    text = src.read_text()
    code_line = next(line for line in text.splitlines() if line and not line.startswith("#"))
    edited = text.replace(code_line, code_line + "  # edited", 1)
    assert first_difference(cells(build.parse(text)), committed) is None
    assert "differs in its source" in (first_difference(cells(build.parse(edited)), committed) or "")
    dropped = text[: text.rindex("# %%")]  # the last cell removed
    assert "the notebook has" in (first_difference(cells(build.parse(dropped)), committed) or "")
