"""The real thing: AttentionViewer in JupyterLab with a live kernel (anywidget's own front end).

A click in the view reaches a Python observer in the kernel; the observer sets a trait and the
view follows. Skips when JupyterLab or its anywidget extension is not installed. Slow (a server,
a kernel, JupyterLab's UI): about 20-40 s.
"""

from __future__ import annotations

import time

import pytest
from jupyter_helpers import KERNEL_IDLE, REPO, jupyterlab_server

CELL = """\
import sys
sys.path[:0] = [{repo!r}, {fakes!r}]
from widget_fakes import FakeTrace
from kit.widgets import AttentionViewer

viewer = AttentionViewer(FakeTrace([["When", " Mary", " and", " John", " went", " to"]], n_layers=3, n_heads=4))
log = open({log!r}, "a")

def on_change(change):
    log.write(f"{{change['name']}}={{change['new']}}\\n")
    log.flush()
    if change["name"] == "layer" and change["new"] == 1:
        viewer.head = 3  # Python answers the click; the view must follow

viewer.observe(on_change, names=["layer", "head", "token"])
viewer
"""


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free local port, serving tmp_path; yields (url, log path, base url)."""
    log = tmp_path / "changes.log"
    cell = CELL.format(repo=str(REPO), fakes=str(REPO / "tests" / "widgets"), log=str(log))
    with jupyterlab_server(tmp_path, [cell]) as (url, base):
        yield url, log, base


def test_clicks_reach_the_kernel_and_the_kernel_moves_the_view(browser, jupyterlab):
    url, log, base = jupyterlab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # JupyterLab may reach for the internet (news, extension manager): only the local server is allowed.
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((base, "blob:", "data:")) else r.abort())
    try:
        page.goto(url, timeout=90_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        # not awaited: the command settles only once the kernel has run the cell
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        root = page.locator(".jp-OutputArea .tmk-root")
        root.and_(page.locator('[data-ready="1"]')).wait_for(timeout=120_000)
        assert root.get_attribute("data-theme") == "light"  # JupyterLab's light theme
        assert root.locator(".tmk-thumb").count() == 12
        root.locator('.tmk-thumb[data-layer="1"][data-head="2"]').click()
        root.and_(page.locator('[data-layer="1"][data-head="3"][data-painted="1/3"]')).wait_for(timeout=30_000)
        root.locator('.tmk-chip[data-pos="4"]').click()
        deadline = time.monotonic() + 30
        while "token=4" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        lines = log.read_text().split()
        assert {"layer=1", "head=2", "head=3", "token=4"} <= set(lines)
        assert [e for e in errors if "tmk" in e or "kit" in e] == []
    except Exception:
        page.screenshot(path=str(log.parent / "failure.png"))  # for a look at what JupyterLab showed
        raise
    finally:
        context.close()
