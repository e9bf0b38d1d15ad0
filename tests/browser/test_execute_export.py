"""``jupyter nbconvert --execute --to html`` with the flag that docs/hosts.md gives: the views work
offline in the page (nbconvert otherwise stores widget state and waits for a widget manager from a
CDN), light on the white page while the OS is dark."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
from browser_helpers import READY
from jupyter_helpers import REPO


def test_an_executed_export_keeps_working_views_offline(offline, tiny_dirs, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import kit\nfrom kit.widgets import AttentionViewer, ResidualLens\n"
        f"model = kit.load({str(tiny_dirs['gpt2'])!r}, device='cpu')\ntr = model.trace('The cat sat on the mat')"
    ), nbformat.v4.new_code_cell("AttentionViewer(tr)"), nbformat.v4.new_code_cell("ResidualLens(tr)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "html",
         "--ExecutePreprocessor.store_widget_state=False", str(path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    o = offline(color_scheme="dark")
    o.page.goto((tmp_path / "mine.html").as_uri())
    frames = o.page.locator("iframe.tmk-fallback")
    assert frames.count() == 2
    for i in range(2):
        frames.nth(i).scroll_into_view_if_needed()
        root = o.page.frame_locator("iframe.tmk-fallback").nth(i).locator(READY)
        root.wait_for(timeout=20_000)
        assert root.get_attribute("data-theme") == "light"
    assert [u for u in o.remote_requests if "tmk" in u or "kit" in u] == []
