"""Build the lesson notebooks from their sources and execute them.

Each lesson is written as a plain Python file in ``lessons/src/`` with ``# %%`` cell markers
(``# %% [markdown]`` for text cells, whose lines start with ``# ``). This script turns each into
``lessons/NAME.ipynb``, executes it top to bottom on the CPU, and stores the outputs, with widget
state removed, so nbval can compare the cells marked ``# NBVAL_CHECK_OUTPUT``. Widgets are
displayed with their offline page as the ``text/html`` fallback (``KIT_WIDGET_FALLBACK=page``), so
``jupyter nbconvert --to html`` of a lesson shows working views with no kernel and no network.

    python lessons/build.py            # every lesson
    python lessons/build.py 01         # lessons whose name starts with 01
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent
SRC = HERE / "src"


def parse(text: str) -> nbformat.NotebookNode:
    """Percent-format Python source to a notebook (cells split at ``# %%`` lines)."""
    nb = nbformat.v4.new_notebook()
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            tags = line.split("tags=", 1)[1].strip() if "tags=" in line else ""
            blocks.append((kind + ("|" + tags if tags else ""), []))
        elif blocks:
            blocks[-1][1].append(line)
    for kind, lines in blocks:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        kind, _, tags = kind.partition("|")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in lines)
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        if "NBVAL_SKIP" in cell.source:
            # optional online sections (hub models): never executed at build time, skipped by nbval
            tags = (tags.strip("[]") + ",skip-execution").strip(",")
        if tags:
            cell.metadata["tags"] = [t.strip() for t in tags.strip("[]").replace('"', "").split(",")]
            if "hide-input" in cell.metadata["tags"]:
                cell.metadata["jupyter"] = {"source_hidden": True}
        nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what changed
        cell.id = hashlib.sha1(f"{i}:{cell.source}".encode()).hexdigest()[:8]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    """Drop saved widget state and widget views: the notebook must not carry stale widget models."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)


def build(src: Path, execute: bool = True) -> Path:
    nb = parse(src.read_text())
    out = HERE / (src.stem + ".ipynb")
    if execute:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # Displayed widgets also store their offline page, so the nbconvert HTML export stays interactive.
        os.environ.setdefault("KIT_WIDGET_FALLBACK", "page")
        NotebookClient(
            nb, timeout=600, kernel_name="python3", skip_cells_with_tag="skip-execution",
            resources={"metadata": {"path": str(HERE)}},
        ).execute()
    strip_widget_state(nb)
    nbformat.write(nb, out)
    return out


def main(argv: list[str]) -> None:
    sources = sorted(SRC.glob("*.py"))
    if argv:
        sources = [s for s in sources if any(s.stem.startswith(a) for a in argv)]
    for src in sources:
        print("built", build(src).relative_to(HERE.parent))


if __name__ == "__main__":
    main(sys.argv[1:])
