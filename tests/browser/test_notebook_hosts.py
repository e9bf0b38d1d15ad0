"""JupyterLab and Notebook 7, driven in Chromium: every focusable part of every view works by
keyboard, a Dashboard fits the output area it is given, and the notebook the user ran and saved
exports (``jupyter nbconvert --to html``) with every view working offline, in the page's theme.

Notebook 7 reads keys as notebook shortcuts before the page's elements see them (JupyterLab after
them): an arrow key in a view must reach the view, never move the notebook to another cell or
into edit mode. One server for the module serves both front-ends. Network: only the local server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from browser_helpers import READY
from jupyter_helpers import KIT_JUPYTER_CONFIG, REPO, jupyterlab_server, notebook7_url, open_lab

SETUP = """\
import sys
sys.path[:0] = [{repo!r}]
import kit
from kit.analysis import activation_patching
from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens
model = kit.load({model!r}, device="cpu")
prompt = "The cat sat on the mat and the dog sat on the log"
tr = model.trace(prompt)
ids = model.to_tokens(prompt)
result = activation_patching(model, ids, ids.flip(0), answer=int(ids[-1]))
"""
VIEWS = [
    "AttentionViewer(tr)",
    "ResidualLens(tr, target=int(ids[-1]))",
    "PatchingHeatmap(result)",
    "NeuronProbe(model, [prompt, 'Once upon a time'], layer=0)",
    "CircuitDiagram(tr)",
    "Dashboard(ResidualLens(tr), AttentionViewer(tr))",
]
N_ROOTS = 7  # five views, then a dashboard of two

NOTEBOOK_STATE = """() => { const p = window.jupyterapp.shell.currentWidget.content;
  return { cell: p.activeCellIndex, mode: p.mode }; }"""

# Record, at each view's root, every key that reaches it (capture phase: before the view acts).
RECORD_KEYS = """() => document.querySelectorAll(".tmk-root").forEach((r) => {
  r.tmkKeys = []; r.addEventListener("keydown", (e) => r.tmkKeys.push(e.key), true); })"""

FOCUS = """(root) => { const a = document.activeElement;
  return { inRoot: root.contains(a), what: a ? a.tagName.toLowerCase() + "." + String(a.className?.baseVal ?? a.className) : "",
           keys: root.tmkKeys.splice(0) }; }"""


@pytest.fixture(scope="module")
def server(browser, tiny_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyboard")
    cells = [SETUP.format(repo=str(REPO), model=str(tiny_dirs["gpt2"])), *VIEWS]
    with jupyterlab_server(tmp, cells) as (url, base):
        yield url, base, tmp


@pytest.fixture(scope="module", params=["JupyterLab", "Notebook 7"])
def host(request, browser, server):
    url, base, _ = server
    url = url if request.param == "JupyterLab" else notebook7_url(url)
    context, page, errors = open_lab(browser, url, base)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    roots = page.locator(".jp-OutputArea .tmk-root")
    for i in range(N_ROOTS):
        roots.nth(i).and_(page.locator('[data-ready="1"]')).wait_for(timeout=120_000)
    page.evaluate(RECORD_KEYS)
    yield request.param, page, roots  # one page per host for the module: tests run in file order
    context.close()


def command_mode(page, cell: int) -> dict:
    page.evaluate(f"() => {{ const p = window.jupyterapp.shell.currentWidget.content; p.activeCellIndex = {cell}; p.mode = 'command'; }}")
    return page.evaluate(NOTEBOOK_STATE)


def test_the_head_grid_zooms_a_head_by_keyboard(host):
    name, page, roots = host
    viewer = roots.nth(0)
    before = command_mode(page, 1)
    viewer.locator(".tmk-grid").focus()
    for key in ("ArrowRight", "ArrowDown", "Enter"):
        page.keyboard.press(key)
    viewer.and_(page.locator('[data-layer="1"][data-head="1"]')).wait_for(timeout=10_000)
    assert page.evaluate(NOTEBOOK_STATE) == before, f"{name}: Enter in the grid put the notebook in edit mode"


def test_every_focusable_part_of_every_view_takes_the_keys_and_the_notebook_does_not(host):
    name, page, roots = host
    for v in range(5):
        root = roots.nth(v)
        before = command_mode(page, 1 + v)
        page.evaluate(
            """(el) => { const b = document.createElement("button"); b.className = "tmk-test-before";
                         b.textContent = "before"; el.parentElement.insertBefore(b, el); b.focus(); }""",
            root.element_handle(),
        )
        stops = 0
        for _ in range(40):
            page.keyboard.press("Tab")
            part = page.evaluate(FOCUS, root.element_handle())
            if not part["inRoot"]:
                break
            stops += 1
            for key in ("ArrowRight", "ArrowDown"):
                page.keyboard.press(key)
                got = page.evaluate(FOCUS, root.element_handle())
                assert got["keys"] == [key], f"{name}: {key} on {got['what']} of {VIEWS[v]} never reached the view"
                assert got["inRoot"], f"{name}: {key} on a part of {VIEWS[v]} moved the focus from {part['what']} out of the view, to {got['what']}"
                assert page.evaluate(NOTEBOOK_STATE) == before, f"{name}: {key} in {VIEWS[v]} acted on the notebook"
        assert stops >= 2, f"{name}: {VIEWS[v]} has {stops} focusable parts"


def test_a_dashboard_fits_its_output_area(host):
    name, page, roots = host
    sizes = page.evaluate(
        """() => { const grid = [...document.querySelectorAll(".widget-gridbox")].pop();
                   const area = grid.closest(".jp-OutputArea-output");
                   return { grid: grid.scrollWidth, area: area.clientWidth,
                            views: [...grid.querySelectorAll(".tmk-root")].map(r => r.getBoundingClientRect().right),
                            right: area.getBoundingClientRect().right }; }"""
    )
    assert sizes["grid"] <= sizes["area"] + 1, f"{name}: the dashboard is {sizes['grid']} px wide in a {sizes['area']} px area"
    assert max(sizes["views"]) <= sizes["right"] + 1, sizes


def test_the_saved_notebook_exports_with_every_view_working_offline_in_the_pages_theme(host, server, offline, tmp_path):
    """The user's own path: run in the front-end, save, ``jupyter nbconvert --to html``, open with
    no network while the OS is dark: every view renders in its frame, light like the page."""
    import nbformat

    name, page, _ = host
    saved = server[2] / "live.ipynb"
    before = saved.stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while saved.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, f"{name} did not save the notebook"
        page.wait_for_timeout(100)
    # the front-end saved the widget state too (the kit's configuration turns that on): nbconvert,
    # with the configuration the kit installs, shows each view's offline copy all the same
    nb = nbformat.read(saved, as_version=4)
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {}), f"{name} saved no widget state"
    path = tmp_path / "exported.html"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "user"), "JUPYTER_CONFIG_PATH": str(KIT_JUPYTER_CONFIG),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
                           "--output", "exported", str(saved)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    o = offline(color_scheme="dark")
    o.page.goto(path.as_uri())
    frames = o.page.locator("iframe.tmk-fallback")
    assert frames.count() == 6, f"{name}: {frames.count()} views kept their offline copy; notes: " + json.dumps(
        o.page.locator(".tmk-fallback-note").all_inner_texts())
    for i in range(6):
        frames.nth(i).scroll_into_view_if_needed()  # as a reader scrolls: browsers defer offscreen frames
        roots = o.page.frame_locator("iframe.tmk-fallback").nth(i).locator(".tmk-root")
        roots.first.and_(o.page.frame_locator("iframe.tmk-fallback").nth(i).locator(READY)).wait_for(timeout=20_000)
        themes = {roots.nth(j).get_attribute("data-theme") for j in range(roots.count())}
        assert themes == {"light"}, f"{name}: a view of the white page is {themes} in a dark OS"
    assert [u for u in o.remote_requests if "tmk" in u or "kit" in u] == []
