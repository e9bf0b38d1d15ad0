"""PatchingHeatmap in headless Chromium, from its to_html() file with the network cut off."""

from __future__ import annotations

import pytest
import torch
from browser_helpers import Bridge, canvas_digest, canvas_rgb, grid_cell_point
from widget_fakes import HOSTILE_TOKENS

from kit.analysis import CausalTrace, PatchingResult
from kit.widgets import PatchingHeatmap, html_page
from kit.widgets._tokens import visible_token

CLEAN = ["The", " Eiffel", " Tower", " is", " in"]
CORRUPT = ["The", " Colosseum", " Tower", " is", " in"]
SCORES = torch.tensor([[0.1, 0.9, 0.1, 0.1, 0.1], [0.1, 0.5, 0.1, 0.1, 0.6], [0.1, 0.1, -0.3, 0.1, 0.9]])


def result(scores=SCORES, clean=CLEAN, corrupt=CORRUPT):
    return PatchingResult(
        scores, clean=0.9, corrupted=0.1, kind="resid", metric="prob", clean_tokens=clean, corrupted_tokens=corrupt
    )


def causal(kind, seed):
    g = torch.Generator().manual_seed(seed)
    return CausalTrace(
        torch.rand(3, 5, generator=g) * 0.4,
        clean=0.5,
        corrupted=0.05,
        kind=kind,
        window=1,
        subject=[1, 2],
        tokens=CLEAN,
        answer=1,
    )


def test_renders_offline_with_labels_and_a_legend(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    assert o.remote_requests == [] and o.errors == []
    assert root.locator(".tmk-title").text_content() == "Activation patching"
    assert "clean 0.9, corrupted 0.1" in root.locator(".tmk-desc").text_content()
    legend = root.locator(".tmk-legend")
    vmax = float((SCORES - 0.1).abs().max() / 0.8)
    assert float(legend.get_attribute("data-min")) == pytest.approx(-vmax, rel=1e-3)
    assert float(legend.get_attribute("data-max")) == pytest.approx(vmax, rel=1e-3)
    ticks = legend.locator(".tmk-legend-ticks span").all_text_contents()
    assert ticks[0].startswith("-") and ticks[2] == "0" and len(ticks) == 5


def test_colours_diverge_around_zero(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    grid = root.locator(".tmk-cellgrid")
    canvas = root.locator(".tmk-cellgrid-canvas")

    # normalised: (0.9 - 0.1) / 0.8 = 1 (blue), (0.1 - 0.1) / 0.8 = 0 (background), (-0.3 - 0.1) / 0.8 < 0 (red)
    def at(r, c):
        p = grid_cell_point(grid, r, c)
        return canvas_rgb(canvas, p["x"] - 20, p["y"] - 8)  # inside the cell, off the printed number

    pos, zero, neg = at(0, 1), at(0, 0), at(2, 2)
    assert pos[2] > pos[0] + 60, f"positive should be blue, got {pos}"
    assert neg[0] > neg[2] + 40, f"negative should be red, got {neg}"
    assert min(zero) > 235, f"zero should blend into the light background, got {zero}"


def test_hover_reads_out_a_cell_with_clean_and_corrupted_tokens(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    grid = root.locator(".tmk-cellgrid")
    grid.hover(position=grid_cell_point(grid, 1, 1))
    text = root.locator(".tmk-readout").text_content()
    assert text.startswith("Layer 1 \u00b7 position 1 \u00abEiffel\u00bb".replace("Eiffel", visible_token(" Eiffel")))
    assert "corrupted \u00ab\u00b7Colosseum\u00bb" in text
    assert "0.5" in text and "p(answer) = 0.5" in text  # 0.1 + 0.5 * 0.8
    assert root.locator(".tmk-tooltip").is_visible()
    o.page.mouse.move(1, 1)
    assert root.locator(".tmk-tooltip").is_hidden()


def test_a_click_selects_that_layer_and_position(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    grid = root.locator(".tmk-cellgrid")
    before = canvas_digest(root, ".tmk-cellgrid-canvas")
    drawn = grid.get_attribute("data-drawn")
    grid.click(position=grid_cell_point(grid, 2, 4))
    root.and_(o.page.locator('[data-layer="2"][data-token="4"]')).wait_for()
    root.locator(f'.tmk-cellgrid:not([data-drawn="{drawn}"])').wait_for()
    assert root.locator(".tmk-readout").text_content().startswith("Selected: Layer 2 \u00b7 position 4")
    assert canvas_digest(root, ".tmk-cellgrid-canvas") != before  # the selection outline


def test_keyboard_moves_selects_and_clears(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    grid = root.locator(".tmk-cellgrid")
    grid.focus()
    for key in ["ArrowDown", "ArrowRight", "ArrowRight", "ArrowRight"]:
        grid.press(key)
    assert root.get_attribute("data-token") == "-1"  # moving does not select
    assert "Layer 1 \u00b7 position 3" in root.locator(".tmk-readout").text_content()
    grid.press("Enter")
    root.and_(o.page.locator('[data-layer="1"][data-token="3"]')).wait_for()
    grid.press("End")
    grid.press(" ")
    root.and_(o.page.locator('[data-token="4"]')).wait_for()
    grid.press("Escape")
    root.and_(o.page.locator('[data-token="-1"]')).wait_for()


def test_the_switch_shows_each_causal_trace(offline):
    o = offline()
    w = PatchingHeatmap({"resid": causal("resid", 0), "mlp": causal("mlp", 1), "attn": causal("attn", 2)})
    root = o.open(w.to_html())
    assert root.locator("[data-view]").all_text_contents() == ["resid", "mlp", "attn"]
    before = canvas_digest(root, ".tmk-cellgrid-canvas")
    drawn = root.locator(".tmk-cellgrid").get_attribute("data-drawn")
    root.locator('button[data-view="mlp"]').click()
    root.and_(o.page.locator('.tmk-root[data-view="mlp"]')).wait_for()
    assert root.locator('button[data-view="mlp"]').get_attribute("aria-pressed") == "true"
    root.locator(f'.tmk-cellgrid:not([data-drawn="{drawn}"])').wait_for()
    assert canvas_digest(root, ".tmk-cellgrid-canvas") != before


def test_hostile_tokens_are_text_in_readouts_and_the_table(offline):
    o = offline()
    n = len(HOSTILE_TOKENS)
    grid = torch.linspace(-1, 1, 2 * n).reshape(2, n)
    w = PatchingHeatmap(grid, tokens=HOSTILE_TOKENS)
    root = o.open(w.to_html())
    g = root.locator(".tmk-cellgrid")
    g.hover(position=grid_cell_point(g, 0, 0))
    assert f"\u00ab{visible_token(HOSTILE_TOKENS[0])}\u00bb" in root.locator(".tmk-readout").text_content()
    root.locator(".tmk-table-btn").click()
    heads = root.locator("thead th .tmk-tok").all_text_contents()
    assert heads == [visible_token(t) for t in HOSTILE_TOKENS]
    assert root.locator("tbody tr").count() == 2
    assert root.locator("script, img, iframe").count() == 0
    assert o.dialogs == [] and o.errors == []


def test_the_table_view_replaces_the_grid(offline):
    o = offline()
    root = o.open(PatchingHeatmap(result()).to_html())
    assert root.locator("tbody tr").count() == 3  # there for screen readers before any click...
    assert root.locator(".tmk-table-view").bounding_box()["width"] <= 1  # ...but visually hidden
    button = root.locator(".tmk-table-btn")
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    assert root.locator(".tmk-cellgrid").is_hidden()
    cells = root.locator("tbody tr").nth(0).locator("td").all_text_contents()
    assert [float(c) for c in cells] == pytest.approx([0, 1, 0, 0, 0], abs=2e-3)


@pytest.mark.parametrize(
    "scheme, setting, expected", [("dark", "auto", "dark"), ("light", "dark", "dark"), ("dark", "light", "light")]
)
def test_theme(offline, scheme, setting, expected):
    o = offline(color_scheme=scheme)
    root = o.open(PatchingHeatmap(result(), theme=setting).to_html())
    assert root.get_attribute("data-theme") == expected
    bg = root.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg == ("rgb(21, 23, 28)" if expected == "dark" else "rgb(255, 255, 255)")
    grid = root.locator(".tmk-cellgrid")
    p = grid_cell_point(grid, 0, 0)
    zero = canvas_rgb(root.locator(".tmk-cellgrid-canvas"), p["x"] - 20, p["y"] - 8)
    assert (max(zero) < 40) == (expected == "dark")  # zero blends into the theme's background


def test_a_long_prompt_scrolls_and_clicks_land_on_the_right_column(offline):
    o = offline()
    n = 400
    grid = torch.randn(6, n, generator=torch.Generator().manual_seed(0))
    root = o.open(PatchingHeatmap(grid, tokens=[f" t{i}" for i in range(n)]).to_html())
    g = root.locator(".tmk-cellgrid")
    canvas_w = root.locator(".tmk-cellgrid-canvas").evaluate("c => c.getBoundingClientRect().width")
    assert canvas_w <= 1200 and g.evaluate("e => e.scrollWidth > e.clientWidth")
    g.click(position=grid_cell_point(g, 5, 350))
    root.and_(o.page.locator('[data-layer="5"][data-token="350"]')).wait_for()
    assert g.evaluate("e => e.scrollLeft") > 0
    assert o.errors == []


def test_two_heatmaps_on_one_page_do_not_interfere(offline):
    o = offline()
    roots = o.open(html_page([PatchingHeatmap(result()), PatchingHeatmap(result(), theme="dark")]), count=2)
    g = roots.nth(0).locator(".tmk-cellgrid")
    g.click(position=grid_cell_point(g, 1, 2))
    roots.nth(0).and_(o.page.locator('[data-token="2"]')).wait_for()
    assert roots.nth(1).get_attribute("data-token") == "-1"
    assert roots.nth(1).get_attribute("data-theme") == "dark"


def test_live_round_trip_with_python(offline):
    o = offline()
    w = PatchingHeatmap(result())
    seen = []
    w.observe(lambda c: seen.append((c["name"], c["new"])), names=["layer", "token"])
    bridge = Bridge(o, w)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    g = root.locator(".tmk-cellgrid")
    g.click(position=grid_cell_point(g, 1, 4))
    bridge.pump(lambda: (w.layer, w.token) == (1, 4))
    assert ("token", 4) in seen
    assert w.selected_value() == pytest.approx(float(w.values[1, 4]))
    w.layer, w.token = 2, 0
    bridge.pump(lambda: root.get_attribute("data-layer") == "2" and root.get_attribute("data-token") == "0")
    assert o.errors == []


def test_a_jupyterlab_theme_change_repaints_the_canvas(offline):
    o = offline(color_scheme="light")
    root = o.open(PatchingHeatmap(result()).to_html())
    grid = root.locator(".tmk-cellgrid")
    canvas = root.locator(".tmk-cellgrid-canvas")
    p = grid_cell_point(grid, 0, 0)
    assert min(canvas_rgb(canvas, p["x"] - 20, p["y"] - 8)) > 235
    drawn = grid.get_attribute("data-drawn")
    o.page.evaluate("() => { document.body.dataset.jpThemeLight = 'false'; }")
    root.and_(o.page.locator('[data-theme="dark"]')).wait_for()
    root.locator(f'.tmk-cellgrid:not([data-drawn="{drawn}"])').wait_for()
    assert max(canvas_rgb(canvas, p["x"] - 20, p["y"] - 8)) < 40  # zero now blends into the dark background
