"""Every chart the kit or a lesson draws shows with no network: the committed lessons opened in
JupyterLab and Notebook 7 with every non-local request aborted, and their nbconvert export.

Charts are drawn to SVG and PNG in the kernel (``kit._altair``); before, altair's default output asked the
front end to load vega from cdn.jsdelivr.net, which failed offline. marimo: tests/browser/test_marimo.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from jupyter_helpers import KERNEL_IDLE, REPO, jupyterlab_server, notebook7_url

LESSONS = ["02_induction_heads", "03_factual_recall"]  # the lessons that draw altair charts


def chart_outputs(nb) -> int:
    return sum(
        "image/svg+xml" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


def image_outputs(nb) -> int:
    """Outputs a front-end shows as an image: the charts, and any other picture a lesson shows."""
    return sum(
        bool({"image/svg+xml", "image/png"} & set(out.get("data", {})))
        for cell in nb.cells for out in cell.get("outputs", [])
    )


def test_the_lessons_store_their_charts_as_svg_and_never_a_cdn_script():
    for name in LESSONS:
        nb = nbformat.read(REPO / "lessons" / f"{name}.ipynb", as_version=4)
        assert chart_outputs(nb) >= 2, f"{name}: its charts are not stored as SVG"
        pngs = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
        both = sum({"image/svg+xml", "image/png"} <= set(o.get("data", {})) for c in nb.cells for o in c.get("outputs", []))
        assert both == chart_outputs(nb) and pngs >= both, f"{name}: a chart has no PNG for hosts that show no untrusted SVG"
        text = json.dumps([c.get("outputs", []) for c in nb.cells])
        assert "cdn.jsdelivr" not in text and "vega@" not in text, f"{name} still loads vega from a CDN"


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charts")
    for name in LESSONS:
        shutil.copy(REPO / "lessons" / f"{name}.ipynb", tmp / f"{name}.ipynb")
    with jupyterlab_server(tmp, ["1"], name="blank.ipynb") as (url, base):
        yield url, base


# each lesson in one front-end (both front-ends render outputs alike; this keeps the module lean)
@pytest.mark.parametrize(("lesson", "front_end"), [(LESSONS[0], "JupyterLab"), (LESSONS[1], "Notebook 7")])
def test_a_lessons_charts_render_in_the_front_end_with_no_network(browser, server, front_end, lesson):
    url, base = server
    url = url.replace("blank.ipynb", f"{lesson}.ipynb")
    url = url if front_end == "JupyterLab" else notebook7_url(url)
    expected = image_outputs(nbformat.read(REPO / "lessons" / f"{lesson}.ipynb", as_version=4))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith((base, "blob:", "data:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(url, timeout=90_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        # SVG where the notebook is trusted, else the PNG beside it (a lesson opened from disk is not)
        charts = page.locator(".jp-OutputArea-output:is([data-mime-type='image/svg+xml'], [data-mime-type='image/png'])")
        charts.nth(expected - 1).wait_for(state="attached", timeout=60_000)
        # every chart drawn: scrolled into view in turn (JupyterLab windows cells), an image with pixels
        page.wait_for_function(
            """([selector, expected]) => { let drawn = 0;
                 for (const out of document.querySelectorAll(selector)) {
                   out.scrollIntoView({ block: "center" });
                   const img = out.querySelector("img, svg");
                   const box = img ? img.getBoundingClientRect() : { width: 0, height: 0 };
                   if (img && (img.tagName !== "IMG" || (img.complete && img.naturalWidth > 0)) && box.width > 100 && box.height > 50) drawn++;
                 }
                 return drawn >= expected; }""",
            arg=[".jp-OutputArea-output:is([data-mime-type='image/svg+xml'], [data-mime-type='image/png'])", expected],
            polling=500,
            timeout=60_000,
        )
        assert "Error loading script" not in page.inner_text("body")
        assert blocked == [], f"{front_end} needed the network for {lesson}: {blocked[:5]}"
    finally:
        context.close()


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lessons_nbconvert_export_draws_its_charts_offline(offline, tmp_path: Path, lesson):
    from nbconvert import HTMLExporter

    nb = nbformat.read(REPO / "lessons" / f"{lesson}.ipynb", as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    o = offline()
    path = tmp_path / f"{lesson}.html"
    path.write_text(body, encoding="utf-8")
    o.page.goto(path.as_uri())
    images = o.page.locator(".jp-RenderedSVG img, .jp-RenderedSVG svg, .jp-RenderedImage img")
    assert images.count() == image_outputs(nb)
    for i in range(images.count()):
        assert o.page.evaluate("(el) => el.complete !== false && (el.naturalWidth ?? 1) > 0", images.nth(i).element_handle())
    assert [u for u in o.remote_requests if "vega" in u] == []
