"""``jupyter nbconvert --execute --to html``, the plain command, with the configuration the kit
installs (``jupyter-config/``, installed into ``etc/jupyter``): nbconvert stores the widget state,
and ``kit_nbconvert.KitViews`` makes the page show each view's offline copy instead of waiting for
a widget manager from a CDN. Opened with the network cut off and the OS dark: every view works,
light like the page, and nothing a view needs comes from the network."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
from browser_helpers import READY
from jupyter_helpers import KIT_JUPYTER_CONFIG, REPO

SETUP = (
    "import kit\nfrom kit.widgets import AttentionViewer, Dashboard, ResidualLens\n"
    "model = kit.load({model!r}, device='cpu')\ntr = model.trace('The cat sat on the mat')"
)
# The page of these three small views (each view's data is far under the fallback's 8 MB budget):
# 483,387 and 486,687 bytes in two runs with the kit's configuration (pytest -s prints it); twice that fails.
PAGE_BYTES = 1_000_000


def executed_export(tmp_path, tiny_dirs, config_path: str | None) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(model=str(tiny_dirs["gpt2"]))),
                nbformat.v4.new_code_cell("AttentionViewer(tr)"), nbformat.v4.new_code_cell("ResidualLens(tr)"),
                nbformat.v4.new_code_cell("Dashboard(ResidualLens(tr), AttentionViewer(tr))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "user")}
    env.pop("JUPYTER_CONFIG_PATH", None)
    if config_path:
        env["JUPYTER_CONFIG_PATH"] = config_path
    else:  # an nbconvert that reads no configuration at all, not even the one installed in this environment
        env["JUPYTER_NO_CONFIG"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "html", str(path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return (tmp_path / "mine.html").read_text(encoding="utf-8")


def test_an_executed_export_shows_every_view_offline_with_the_kits_config(offline, tiny_dirs, tmp_path):
    page = executed_export(tmp_path, tiny_dirs, str(KIT_JUPYTER_CONFIG))
    print(f"page: {len(page.encode())} bytes")
    assert len(page.encode()) < PAGE_BYTES, f"the page is {len(page.encode())} bytes"
    # the kit's widgets leave the stored state (other widgets, like a progress bar, keep theirs)
    assert '"model_name": "AnyModel"' not in page, "the kit's widget state is left in the page"
    o = offline(color_scheme="dark")
    o.page.goto((tmp_path / "mine.html").as_uri())
    frames = o.page.locator("iframe.tmk-fallback")
    assert frames.count() == 3
    for i in range(3):
        frames.nth(i).scroll_into_view_if_needed()
        roots = o.page.frame_locator("iframe.tmk-fallback").nth(i).locator(".tmk-root")
        roots.first.and_(o.page.frame_locator("iframe.tmk-fallback").nth(i).locator(READY)).wait_for(timeout=20_000)
        assert {roots.nth(j).get_attribute("data-theme") for j in range(roots.count())} == {"light"}
    # the dashboard's two views, linked in its page
    assert o.page.frame_locator("iframe.tmk-fallback").nth(2).locator(".tmk-root").count() == 2
    # nothing a kit view needs comes from the network (a progress bar's widget manager may be asked for)
    assert [u for u in o.remote_requests if "anywidget" in u or "tmk" in u or "kit" in u] == [], o.remote_requests


def test_without_the_kits_config_the_executed_export_waits_for_a_cdn(offline, tiny_dirs, tmp_path):
    """What the kit's configuration fixes (and what docs/hosts.md says happens without it)."""
    page = executed_export(tmp_path, tiny_dirs, None)
    assert "html-manager" in page and "application/vnd.jupyter.widget-state+json" in page
    o = offline()
    o.page.goto((tmp_path / "mine.html").as_uri())
    o.page.wait_for_timeout(1000)
    assert o.page.locator("iframe.tmk-fallback").count() == 0
    assert any("html-manager" in u for u in o.remote_requests), o.remote_requests


def test_the_flag_alone_also_gives_the_offline_copies(tiny_dirs, tmp_path):
    """``--ExecutePreprocessor.store_widget_state=False`` (for a nbconvert without the kit's config)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(model=str(tiny_dirs["gpt2"]))),
                nbformat.v4.new_code_cell("AttentionViewer(tr)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "flag.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "user")}
    env.pop("JUPYTER_CONFIG_PATH", None)
    env["JUPYTER_NO_CONFIG"] = "1"  # no configuration read, not even the one installed in this environment
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "html",
         "--ExecutePreprocessor.store_widget_state=False", str(path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "flag.html").read_text(encoding="utf-8")
    assert page.count('class="tmk-fallback"') == 1 and "html-manager" not in page
    assert "application/vnd.jupyter.widget-state+json" not in page
