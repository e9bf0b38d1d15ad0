"""Every view's offline page: reflow at 800 and 1400 px and phone width, visible focus on every
focusable part, no serious or critical axe-core violations, and a theme that follows the page."""

from __future__ import annotations

import pytest
from page_checks import NO_OVERFLOW, focus_rings, serious_violations

from kit.analysis import activation_patching
from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens

PROMPT = "The cat sat on the mat and the dog sat on the log"
NAMES = ["AttentionViewer", "ResidualLens", "PatchingHeatmap", "NeuronProbe", "CircuitDiagram"]


@pytest.fixture(scope="module")
def pages(tiny_models):
    """name -> the view's to_html() page (built once for the module)."""
    model = tiny_models["gpt2"]
    tr = model.trace(PROMPT)
    ids = model.to_tokens(PROMPT)
    result = activation_patching(model, ids, ids.flip(0), answer=int(ids[-1]))
    views = {
        "AttentionViewer": AttentionViewer(tr),
        "ResidualLens": ResidualLens(tr, target=int(ids[-1])),
        "PatchingHeatmap": PatchingHeatmap(result),
        "NeuronProbe": NeuronProbe(model, [PROMPT, "Once upon a time"], layer=0),
        "CircuitDiagram": CircuitDiagram(tr),
    }
    pages = {name: v.to_html() for name, v in views.items()}
    pages["Dashboard"] = Dashboard(views["ResidualLens"], views["AttentionViewer"]).to_html()
    return pages


@pytest.mark.parametrize("width", [1400, 800, 390])
def test_a_dashboard_reflows_to_the_width_it_is_given(offline, pages, width):
    o = offline()
    o.page.set_viewport_size({"width": width, "height": 900})
    o.open(pages["Dashboard"], count=2)
    got = o.page.evaluate(NO_OVERFLOW)
    assert got["page"] <= 0, f"the page scrolls sideways by {got['page']} px at {width} px"
    for root in got["roots"]:
        assert root["clipped"] <= 1, f"a view cuts off {root['clipped']} px of its content at {width} px: {got}"
        assert root["right"] <= width, got
    lens, viewer = got["roots"]
    if width >= 1400:
        assert viewer["top"] == lens["top"] and viewer["left"] > lens["right"], f"side by side at {width} px: {got}"
    else:
        assert viewer["top"] > lens["top"] and viewer["left"] == lens["left"], f"one under the other at {width} px: {got}"


@pytest.mark.parametrize("name", NAMES)
def test_every_focusable_part_shows_a_focus_ring_that_nothing_clips(offline, pages, name):
    o = offline()
    roots = o.open(pages[name])
    stops = focus_rings(o.page, roots.first)
    assert stops, f"{name} has no focusable part"
    for stop in stops:
        if stop["tag"] == "g":  # an SVG node shows focus by its dashed stroke
            assert stop["stroke"] not in ("none", ""), stop
            continue
        assert stop["style"] != "none" and stop["width"] >= 2, f"{name}: no 2 px focus ring on {stop}"
        assert stop["clipped"] == [], f"{name}: the focus ring of {stop['tag']}.{stop['cls']} is cut off by {stop['clipped']}"


@pytest.mark.parametrize("name", [*NAMES, "Dashboard"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_accessibility_violations(offline, pages, name, scheme):
    o = offline(color_scheme=scheme)
    o.open(pages[name], count=2 if name == "Dashboard" else 1)
    assert serious_violations(o.page) == []
    assert o.remote_requests == []


def test_the_thumbnail_ring_is_visible_inside_its_scroll_box(offline, pages):
    """The case that was broken: the head grid scrolls, and its ring was drawn outside the box."""
    o = offline()
    root = o.open(pages["AttentionViewer"]).first
    root.locator(".tmk-grid").focus()
    o.page.keyboard.press("ArrowRight")  # keyboard use: :focus-visible applies
    style, width, offset = o.page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth), parseFloat(s.outlineOffset)]; }"
    )
    assert style == "solid" and width >= 2 and offset <= -width, "the ring must lie inside the scroll box"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_view_on_a_plain_white_page_is_light_whatever_the_os(offline, pages, scheme):
    """A page that declares no dark scheme is white in a dark OS: the view must not be a dark panel."""
    plain = pages["PatchingHeatmap"].replace(":root{color-scheme:light dark}", "")
    plain = plain.replace('<meta name="color-scheme" content="light dark">', "")
    o = offline(color_scheme=scheme)
    root = o.open(plain).first
    assert root.get_attribute("data-theme") == "light"
    # our own page declares both schemes, so it follows the OS
    o2 = offline(color_scheme=scheme)
    assert o2.open(pages["PatchingHeatmap"]).first.get_attribute("data-theme") == scheme
