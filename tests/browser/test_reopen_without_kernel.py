"""A notebook run, saved, and reopened after its kernel is gone, in JupyterLab and Notebook 7 with
the configuration the kit installs (widget state saved with the notebook): every view comes back
from the saved state and works with no kernel behind it (the views' lazy data travels in their
state when small), never "Error displaying widget: model not found". A view too large to keep its
data in the state says, where that data is missing, how to get it. Network: only the local server.
"""

from __future__ import annotations

import json
import time
import urllib.request

import nbformat
import pytest

from browser_helpers import READY
from jupyter_helpers import REPO, jupyterlab_server, notebook7_url, open_lab

SETUP = """\
import sys
sys.path[:0] = [{repo!r}]
import kit
import kit.widgets._base as widget_base
from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, ResidualLens
model = kit.load({model!r}, device="cpu")
prompt = "The cat sat on the mat and the dog sat on the log"
tr = model.trace(prompt)
ids = model.to_tokens(prompt)
"""
VIEWS = [
    "AttentionViewer(tr)",
    "ResidualLens(tr, target=int(ids[-1]))",
    "NeuronProbe(model, [prompt, 'Once upon a time'], layer=0)",
    "CircuitDiagram(tr)",
    "Dashboard(ResidualLens(tr), AttentionViewer(tr))",
    # over the saved-data budget: its state keeps no lazy data
    "widget_base.SAVED_BLOBS_BYTES = 0\ndisplay(ResidualLens(tr))\nwidget_base.SAVED_BLOBS_BYTES = 1_000_000",
]
N_ROOTS = 7  # four views, a dashboard of two, the large lens
SMALL_ROOTS = 6


@pytest.fixture(scope="module")
def server(browser, tiny_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reopen")
    cells = [SETUP.format(repo=str(REPO), model=str(tiny_dirs["gpt2"])), *VIEWS]
    with jupyterlab_server(tmp, cells) as (url, base):
        yield url, base, tmp


def _token(url: str) -> str:
    return url.split("token=", 1)[1]


def _stop_kernels(base: str, token: str) -> None:
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


@pytest.mark.parametrize("host", ["JupyterLab", "Notebook 7"])
def test_a_saved_notebook_reopened_without_its_kernel_shows_working_views(host, server, browser):
    url, base, tmp = server
    url = url if host == "JupyterLab" else notebook7_url(url)
    context, page, _ = open_lab(browser, url, base)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    roots = page.locator(".jp-OutputArea .tmk-root")
    for i in range(N_ROOTS):
        roots.nth(i).and_(page.locator(READY)).wait_for(timeout=120_000)
    saved = tmp / "live.ipynb"
    before = saved.stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while saved.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, f"{host} did not save the notebook"
        page.wait_for_timeout(100)
    context.close()
    nb = nbformat.read(saved, as_version=4)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert sum(m["model_name"] == "AnyModel" for m in state.values()) == N_ROOTS, f"{host} saved no kit widget state"
    _stop_kernels(base, _token(url))

    context, page, _ = open_lab(browser, url, base)  # a fresh kernel that never made these views
    try:
        roots = page.locator(".jp-OutputArea .tmk-root")
        for i in range(SMALL_ROOTS):
            roots.nth(i).and_(page.locator(READY)).wait_for(timeout=60_000)
        assert "model not found" not in page.inner_text(".jp-Notebook")
        lenses = page.locator(".jp-OutputArea .tmk-root.tmk-lens")
        # the small lenses draw their waterfall from the data saved in their state
        for i in range(lenses.count() - 1):
            lenses.nth(i).and_(page.locator("[data-wf-pos]")).wait_for(timeout=20_000)
        # the attention viewer zooms another head: its patterns are in its saved state
        viewer = roots.nth(0)
        viewer.locator('.tmk-thumb[data-layer="1"][data-head="1"]').click()
        page.wait_for_function("(r) => r.dataset.layer === '1' && r.dataset.head === '1'", arg=viewer.element_handle())
        assert page.locator(".jp-OutputArea .tmk-error").count() == 0, page.locator(".tmk-error").all_inner_texts()
        # the large lens has no saved waterfall data: it says how to get it, no blank and no error
        big = lenses.nth(lenses.count() - 1)
        note = big.locator(".tmk-wait-note")
        note.wait_for(timeout=20_000)
        assert "run this cell again" in note.text_content()
        assert note.bounding_box()["height"] > 10, "the note is not shown"
        assert page.locator(".jp-OutputArea .tmk-wait-note").count() == 1, "a small view waited for Python"
    finally:
        context.close()
