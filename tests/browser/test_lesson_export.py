"""Lessons exported with nbconvert stay readable and interactive offline: the widgets' fallback pages render."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from browser_helpers import READY

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def fallback_count(nb: nbformat.NotebookNode) -> int:
    """Widget outputs stored with their offline page (class tmk-fallback)."""
    return sum(
        "tmk-fallback" in "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )


@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_exports_to_html_with_working_widget_fallbacks(notebook: Path, offline, tmp_path: Path):
    nb = nbformat.read(notebook, as_version=4)
    assert "widgets" not in nb.metadata, "committed lessons must not carry widget state"
    body, _ = HTMLExporter().from_notebook_node(nb)
    page = offline()
    path = tmp_path / f"{notebook.stem}.html"
    path.write_text(body, encoding="utf-8")
    page.page.goto(path.as_uri())
    first_markdown = next(c.source for c in nb.cells if c.cell_type == "markdown").splitlines()[0].lstrip("# ")
    assert first_markdown in page.page.inner_text("body")
    expected = fallback_count(nb)
    frames = page.page.locator("iframe.tmk-fallback")
    assert frames.count() == expected
    for i in range(expected):
        frames.nth(i).scroll_into_view_if_needed()  # as a reader scrolls: browsers defer offscreen frames
        page.page.frame_locator("iframe.tmk-fallback").nth(i).locator(READY).first.wait_for(timeout=20000)
        assert frames.nth(i).bounding_box()["height"] > 100, "the frame is sized to its view"
    assert not [e for e in page.errors if "tmk" in e.lower()], page.errors
    requests = [u for u in page.requests if not u.startswith(("file:", "blob:", "data:", "about:"))]
    # nbconvert's template may ask for MathJax/require from a CDN (blocked here); our views never do
    assert not [u for u in requests if "tmk" in u or "kit" in u], requests


def test_a_widget_lesson_is_exported_interactive(offline, tmp_path: Path):
    """Built the way lessons are (fallback "page"), a notebook with a widget exports a working view."""
    import os

    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import kit\nfrom kit.widgets import AttentionViewer\n"
            "AttentionViewer(kit.load('facts-4l', device='cpu').trace('The capital of'))"
        )
    ]
    env = dict(os.environ, KIT_WIDGET_FALLBACK="page", HF_HUB_OFFLINE="1")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    sys.path.insert(0, str(ROOT / "lessons"))
    from build import strip_widget_state  # what the lesson build stores

    strip_widget_state(nb)
    assert fallback_count(nb) == 1
    body, _ = HTMLExporter().from_notebook_node(nb)
    path = tmp_path / "widget.html"
    path.write_text(body, encoding="utf-8")
    page = offline()
    page.page.goto(path.as_uri())
    root = page.page.frame_locator("iframe.tmk-fallback").first.locator(READY).first
    root.wait_for(timeout=20000)
    box = page.page.locator("iframe.tmk-fallback").bounding_box()
    assert box["height"] > 100, "the frame is sized to its page"
    assert json.dumps(page.errors).count("tmk") == 0, page.errors
