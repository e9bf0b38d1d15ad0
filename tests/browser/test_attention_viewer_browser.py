"""AttentionViewer in headless Chromium, loaded from its to_html() file with the network cut off."""

from __future__ import annotations

import os

import pytest
import torch
from browser_helpers import READY, Bridge
from widget_fakes import HOSTILE_TOKENS, FakeTrace

from kit.widgets import AttentionViewer, html_page
from kit.widgets._tokens import visible_token

WORDS = ["When", " Mary", " and", " John", " went", " to", " the", " store", ",", " John", " gave"]
LAYERS, HEADS = 3, 4


@pytest.fixture(scope="module")
def trace():
    return FakeTrace([WORDS], n_layers=LAYERS, n_heads=HEADS, seed=3)


@pytest.fixture(scope="module")
def scores():
    g = torch.Generator().manual_seed(0)
    return {"induction": torch.rand(LAYERS, HEADS, generator=g), "prev_token": torch.rand(LAYERS, HEADS, generator=g)}


def thumb(root, layer, head):
    return root.locator(f'.tmk-thumb[data-layer="{layer}"][data-head="{head}"]')


def canvas_digest(root, selector):
    """A cheap fingerprint of a canvas's pixels (sum of bytes weighted by position)."""
    return root.locator(selector).evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let s = 0; for (let i = 0; i < d.length; i += 7) s = (s + d[i] * (i % 9973)) % 2147483647; return s; }"""
    )


def test_renders_offline_with_the_ready_marker(offline, trace, scores):
    o = offline()
    root = o.open(AttentionViewer(trace, scores=scores).to_html())
    assert root.get_attribute("data-ready") == "1"
    assert o.remote_requests == []
    assert o.errors == []
    assert root.locator(".tmk-selection").text_content() == "Layer 0 \u00b7 Head 0"
    assert "induction" in root.locator(".tmk-scores").text_content()


def test_one_thumbnail_per_layer_and_head(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace).to_html())
    assert root.locator(".tmk-thumb").count() == LAYERS * HEADS
    assert root.locator(".tmk-thumb canvas").count() == LAYERS * HEADS
    assert root.locator('.tmk-thumb[aria-selected="true"]').count() == 1


def test_the_explicit_height_is_applied(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace, height=700).to_html())
    assert root.evaluate("e => e.getBoundingClientRect().height") == pytest.approx(700, abs=1)
    natural = o.open(AttentionViewer(trace).to_html(), name="natural.html")
    assert natural.evaluate("e => parseFloat(e.style.height)") > 300


def test_a_click_zooms_that_head(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace).to_html())
    before = canvas_digest(root, ".tmk-heat-base")
    thumb(root, 2, 3).click()
    root.and_(o.page.locator('[data-painted="2/3"]')).wait_for()
    assert root.locator(".tmk-selection").text_content() == "Layer 2 \u00b7 Head 3"
    assert thumb(root, 2, 3).get_attribute("aria-selected") == "true"
    assert thumb(root, 0, 0).get_attribute("aria-selected") == "false"
    assert canvas_digest(root, ".tmk-heat-base") != before


def test_arrow_keys_and_enter_zoom_a_head(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace).to_html())
    grid = root.locator(".tmk-grid")
    grid.focus()
    for key in ["ArrowDown", "ArrowDown", "ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft"]:
        grid.press(key)
    assert root.get_attribute("data-head") == "0"  # moving the cursor does not zoom
    grid.press("Enter")
    root.and_(o.page.locator('[data-layer="2"][data-head="2"]')).wait_for()


def test_hovering_a_token_shows_what_it_attends_to_and_what_attends_to_it(offline, trace):
    o = offline()
    v = AttentionViewer(trace)
    root = o.open(v.to_html())
    t = 4
    root.locator(f'.tmk-chip[data-pos="{t}"]').hover()
    root.and_(o.page.locator(f'[data-token="{t}"]')).wait_for()
    chips = root.locator(".tmk-chip")
    to = [float(chips.nth(k).get_attribute("data-to")) for k in range(len(WORDS))]
    came = [float(chips.nth(k).get_attribute("data-from")) for k in range(len(WORDS))]
    p = v.pattern(0, 0)
    step = float(p.max()) / 255
    assert to == pytest.approx(p[t].tolist(), abs=step / 2 + 6e-4)
    assert came == pytest.approx(p[:, t].tolist(), abs=step / 2 + 6e-4)
    assert chips.nth(0).evaluate("e => e.style.background") != ""  # key 0 is lit
    assert chips.nth(t + 1).evaluate("e => e.style.background") == ""  # a later key is not
    assert chips.nth(t + 1).evaluate("e => e.style.boxShadow") != "" or came[t + 1] <= 0.02
    # the heatmap outlines the token's row and column
    assert canvas_digest(root, ".tmk-heat-over") != 0
    o.page.mouse.move(5, 5)
    root.and_(o.page.locator('[data-token="-1"]')).wait_for()
    assert canvas_digest(root, ".tmk-heat-over") == 0


def test_hovering_a_heatmap_cell_reads_out_its_value(offline, trace):
    o = offline()
    v = AttentionViewer(trace)
    root = o.open(v.to_html())
    heat = root.locator(".tmk-heat")
    left, top, size = (float(heat.get_attribute(a)) for a in ["data-left", "data-top", "data-size"])
    cell = size / len(WORDS)
    q, k = 6, 2
    heat.hover(position={"x": left + (k + 0.5) * cell, "y": top + (q + 0.5) * cell})
    root.and_(o.page.locator(f'[data-token="{q}"]')).wait_for()
    text = root.locator(".tmk-readout").text_content()
    assert f"query {q} \u00ab{visible_token(WORDS[q])}\u00bb" in text and f"key {k}" in text
    value = float(text.rsplit(":", 1)[1])
    assert value == pytest.approx(float(v.pattern(0, 0)[q, k]), abs=float(v.pattern(0, 0).max()) / 510 + 6e-4)


def test_a_click_locks_the_token_and_a_second_click_releases_it(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace).to_html())
    root.locator('.tmk-chip[data-pos="3"]').click()
    o.page.mouse.move(5, 5)
    root.and_(o.page.locator('[data-token="3"][data-locked="3"]')).wait_for()
    assert root.locator(".tmk-chip.tmk-locked").count() == 1
    root.locator('.tmk-chip[data-pos="3"]').click()
    o.page.mouse.move(5, 5)
    root.and_(o.page.locator('[data-token="-1"][data-locked="-1"]')).wait_for()


def test_keyboard_moves_and_locks_the_token_on_the_heatmap(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace).to_html())
    heat = root.locator(".tmk-heat")
    heat.focus()
    for _ in range(3):
        heat.press("ArrowDown")
    heat.press("Enter")
    root.and_(o.page.locator('[data-locked="2"]')).wait_for()
    heat.press("End")
    root.and_(o.page.locator(f'[data-token="{len(WORDS) - 1}"]')).wait_for()
    heat.press("Escape")
    root.and_(o.page.locator('[data-locked="-1"]')).wait_for()


def test_hostile_token_text_is_shown_as_text_and_never_runs(offline):
    o = offline()
    v = AttentionViewer(FakeTrace([HOSTILE_TOKENS], n_layers=2, n_heads=2))
    root = o.open(v.to_html())
    chips = root.locator(".tmk-chip")
    assert chips.all_text_contents() == [visible_token(t) for t in HOSTILE_TOKENS]
    assert root.locator("script, img, iframe").count() == 0
    # interaction redraws labels, readouts and the table from the same text
    chips.nth(0).hover()
    root.locator(".tmk-btn").click()
    assert root.locator("tbody tr").count() == len(HOSTILE_TOKENS)
    assert root.locator("script, img, iframe").count() == 0
    assert o.dialogs == [] and o.errors == []
    assert o.page.evaluate("() => typeof window.alert") == "function"


def test_the_table_view_lists_the_selected_head(offline, trace):
    o = offline()
    root = o.open(AttentionViewer(trace, layer=1, head=2).to_html())
    table = root.locator("table")
    assert "Layer 1, head 2" in table.locator("caption").text_content()
    assert table.locator("tbody tr").count() == len(WORDS)
    wrapper = root.locator(".tmk-table-view")
    assert wrapper.bounding_box()["width"] <= 1  # for screen readers only, by default
    button = root.locator(".tmk-btn")
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    assert wrapper.bounding_box()["width"] > 100 and table.is_visible()
    assert root.locator(".tmk-heat").is_hidden()


@pytest.mark.parametrize(
    "scheme, setting, expected",
    [
        ("light", "auto", "light"),
        ("dark", "auto", "dark"),
        ("dark", "light", "light"),
        ("light", "dark", "dark"),
    ],
)
def test_theme_follows_the_os_unless_set(offline, trace, scheme, setting, expected):
    o = offline(color_scheme=scheme)
    root = o.open(AttentionViewer(trace, theme=setting).to_html())
    assert root.get_attribute("data-theme") == expected
    bg = root.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg == ("rgb(255, 255, 255)" if expected == "light" else "rgb(21, 23, 28)")


def test_theme_follows_jupyterlab_and_vscode(offline, trace):
    o = offline(color_scheme="light")
    root = o.open(AttentionViewer(trace).to_html())
    o.page.evaluate("() => { document.body.dataset.jpThemeLight = 'false'; }")
    root.and_(o.page.locator('[data-theme="dark"]')).wait_for()
    o.page.evaluate("() => { document.body.dataset.jpThemeLight = 'true'; }")
    root.and_(o.page.locator('[data-theme="light"]')).wait_for()
    vscode = (
        AttentionViewer(trace)
        .to_html()
        .replace("</head>", "<style>body{--vscode-editor-background:#1e1e1e}</style></head>")
    )
    root = o.open(vscode, name="vscode.html")
    assert root.get_attribute("data-theme") == "dark"
    assert root.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(30, 30, 30)"  # the host's colour


def test_two_viewers_on_one_page_do_not_interfere(offline, trace):
    o = offline()
    other = FakeTrace([WORDS[:5]], n_layers=2, n_heads=2, seed=9)
    roots = o.open(html_page([AttentionViewer(trace, theme="light"), AttentionViewer(other, theme="dark")]), count=2)
    first, second = roots.nth(0), roots.nth(1)
    assert first.locator(".tmk-thumb").count() == LAYERS * HEADS
    assert second.locator(".tmk-thumb").count() == 4
    thumb(first, 1, 1).click()
    first.and_(o.page.locator('[data-layer="1"][data-head="1"]')).wait_for()
    assert (second.get_attribute("data-layer"), second.get_attribute("data-head")) == ("0", "0")
    second.locator('.tmk-chip[data-pos="2"]').click()
    second.and_(o.page.locator('[data-locked="2"]')).wait_for()
    assert first.get_attribute("data-locked") == "-1"
    assert (first.get_attribute("data-theme"), second.get_attribute("data-theme")) == ("light", "dark")
    ids = o.page.locator(".tmk-thumb").evaluate_all("els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))
    assert o.errors == []


def test_selection_set_in_python_is_shown(offline, trace):
    o = offline()
    v = AttentionViewer(trace)
    v.layer, v.head, v.token = 2, 1, 5
    root = o.open(v.to_html())
    assert (root.get_attribute("data-layer"), root.get_attribute("data-head"), root.get_attribute("data-locked")) == (
        "2",
        "1",
        "5",
    )
    assert thumb(root, 2, 1).get_attribute("aria-selected") == "true"


@pytest.fixture(scope="module")
def long_trace():
    return FakeTrace([[f" w{i % 37}" for i in range(90)]], n_layers=LAYERS, n_heads=HEADS, seed=5)


def test_layers_of_a_long_prompt_load_from_the_page(offline, long_trace):
    o = offline()
    v = AttentionViewer(long_trace)
    root = o.open(v.to_html())
    assert root.locator(".tmk-heat").get_attribute("data-size") == "400"
    thumb(root, 2, 1).click()
    root.and_(o.page.locator('[data-painted="2/1"]')).wait_for()
    root.locator('.tmk-chip[data-pos="60"]').hover()
    root.and_(o.page.locator('[data-token="60"]')).wait_for()
    got = float(root.locator('.tmk-chip[data-pos="59"]').get_attribute("data-to"))
    assert got == pytest.approx(float(v.pattern(2, 1)[60, 59]), abs=float(v.pattern(2, 1).max()) / 510 + 6e-4)
    assert o.errors == [] and o.remote_requests == []


def test_live_round_trip_with_python(offline, long_trace):
    """The Jupyter widget protocol, relayed by the test: clicks reach Python observers, and
    Python's trait changes and lazy layer data reach the view."""
    o = offline()
    v = AttentionViewer(long_trace)  # long enough that layers are fetched lazily from Python
    seen = []
    v.observe(lambda change: seen.append((change["name"], change["new"])), names=["layer", "head", "token"])
    bridge = Bridge(o, v)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    fetched = lambda: [m["content"]["key"] for m in bridge.received if m["method"] == "custom"]  # noqa: E731
    assert fetched() == ["head/0/0"]
    thumb(root, 1, 2).click()
    bridge.pump(lambda: (v.layer, v.head) == (1, 2))
    assert ("layer", 1) in seen and ("head", 2) in seen
    root.locator('.tmk-chip[data-pos="4"]').click()
    bridge.pump(lambda: v.token == 4)
    v.head = 3
    bridge.pump(lambda: root.get_attribute("data-head") == "3")
    v.layer, v.token = 2, 1
    bridge.pump(lambda: root.get_attribute("data-painted") == "2/3" and root.get_attribute("data-locked") == "1")
    assert thumb(root, 2, 3).get_attribute("aria-selected") == "true"
    assert fetched() == ["head/0/0", "head/1/2", "head/1/3", "head/2/3"]
    assert o.errors == []


def test_a_12x12_trace_of_512_tokens_renders_quickly(offline):
    """GPT-2-small shape; the benchmark prints the precise figure."""
    budget_ms = float(os.environ.get("TMK_RENDER_BUDGET_MS", "1500"))
    n = 512
    v = AttentionViewer(FakeTrace([[f" t{i}" for i in range(n)]], n_layers=12, n_heads=12, seed=1))
    layer_bytes = sum(v.blob(k).nbytes for k in v._blob_keys())
    assert layer_bytes <= 12 * 12 * n * (n + 1) // 2
    o = offline()
    root = o.open(v.to_html())
    assert root.locator(".tmk-thumb").count() == 144
    ready_ms = float(root.get_attribute("data-ready-ms"))
    assert ready_ms < budget_ms, f"first paint after {ready_ms:.0f} ms (budget {budget_ms:.0f} ms)"
    assert o.page.locator(READY).count() == 1
