"""marimo as a host: the marimo quick start (lessons/marimo/00_quickstart.py) served by
``marimo run``, opened in Chromium with every non-local request aborted. The view renders in the
page's theme, a click in it reaches Python (``mo.ui.anywidget``) and reruns the cell that reads
it, the keyboard reaches it, and the kit's chart draws with no network."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from jupyter_helpers import REPO, free_port, served

APP = REPO / "lessons" / "marimo" / "00_quickstart.py"


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory):
    pytest.importorskip("marimo", reason="marimo is not installed (pip install marimo)")
    tmp = tmp_path_factory.mktemp("marimo")
    port = free_port()
    log = (tmp / "marimo.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "marimo", "-y", "run", str(APP), "--headless", "--host", "127.0.0.1",
         "--port", str(port), "--no-token"],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "MARIMO_SKIP_UPDATE_CHECK": "1",
             "HOME": str(tmp)},
    )
    base = f"http://127.0.0.1:{port}"
    with served(server, base, tmp / "marimo.log", "marimo"):
        yield base


@pytest.fixture(scope="module")
def app_page(browser, marimo_app):
    """The app in a dark OS, network cut off."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000}, color_scheme="dark")
    page = context.new_page()
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith((marimo_app, "blob:", "data:", "ws://127.0.0.1")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(marimo_app, timeout=90_000)
    root = page.locator(".tmk-root").first
    root.and_(page.locator('[data-ready="1"]')).wait_for(timeout=120_000)
    yield page, root, blocked
    context.close()


# The colour behind the view: the first opaque background of its ancestors (out of shadow roots),
# read back from a canvas so that any CSS colour syntax works (marimo uses color(srgb ...)).
BEHIND = """(root) => { const up = (n) => n.parentElement || n.getRootNode().host || null;
  const x = document.createElement("canvas").getContext("2d");
  for (let n = up(root); n; n = up(n)) {
    x.clearRect(0, 0, 1, 1); x.fillStyle = "rgba(0,0,0,0)"; x.fillStyle = getComputedStyle(n).backgroundColor;
    x.fillRect(0, 0, 1, 1); const c = x.getImageData(0, 0, 1, 1).data;
    if (c[3] > 127) return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255 < 0.5 ? "dark" : "light";
  }
  return null; }"""


# marimo's dark theme is the classes "dark" / "dark-theme" on its app's elements (its CSS variables)
SWITCH = """(to) => { const from = to === "light" ? "dark" : "light";
  const marked = document.querySelectorAll(`.${from}, .${from}-theme`);
  for (const el of marked) { el.classList.remove(from, from + "-theme"); el.classList.add(to, to + "-theme"); }
  document.documentElement.style.colorScheme = to;
  return marked.length; }"""


def test_the_view_follows_the_marimo_pages_theme_not_the_os(app_page):
    page, root, _ = app_page
    assert page.evaluate(BEHIND, root.element_handle()) == "light", "marimo's theme is light by default"
    assert root.get_attribute("data-theme") == "light", "a dark panel on marimo's light page (the OS is dark)"
    assert page.evaluate(SWITCH, "dark") > 0, "marimo marks no element with its theme"  # marimo turns dark
    root.and_(page.locator('[data-theme="dark"]')).wait_for(timeout=10_000)
    page.evaluate(SWITCH, "light")
    root.and_(page.locator('[data-theme="light"]')).wait_for(timeout=10_000)


def test_a_click_in_the_view_reaches_python_and_reruns_the_cell_that_reads_it(app_page):
    page, root, _ = app_page
    page.get_by_text("layer 0, head 0", exact=True).wait_for(timeout=30_000)
    root.locator('.tmk-thumb[data-layer="1"][data-head="2"]').click()
    page.get_by_text("layer 1, head 2", exact=True).wait_for(timeout=30_000)  # printed by Python from viewer.value


def test_the_keyboard_reaches_the_view(app_page):
    page, root, _ = app_page
    root.locator(".tmk-grid").focus()
    for key in ("ArrowDown", "ArrowRight", "Enter"):
        page.keyboard.press(key)
    page.get_by_text("layer 2, head 3", exact=True).wait_for(timeout=30_000)


def test_the_chart_draws_and_nothing_needed_the_network(app_page):
    page, _, blocked = app_page
    chart = page.locator("img[src^='data:image/svg'], img[src^='data:image/png'], .vega-embed svg, .vega-embed canvas, svg.marks").first
    chart.wait_for(timeout=60_000)
    box = chart.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50
    assert blocked == [], f"marimo needed the network: {blocked[:5]}"

