"""ResidualLens in headless Chromium (a tiny random GPT-2), from its to_html() file, network cut off."""

from __future__ import annotations

import pytest
from browser_helpers import Bridge, canvas_digest, grid_cell_point

from kit.widgets import ResidualLens
from kit.widgets._tokens import visible_token

PROMPT = "The cat sat on the mat"
HOSTILE = '<script>x</script>"&amp;<img src=x>\u202eevil'


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def lens(model):
    return ResidualLens(model, PROMPT, target=" the")


def test_renders_offline_with_a_grid_waterfall_and_norms(offline, lens, model):
    o = offline()
    root = o.open(lens.to_html())
    assert o.remote_requests == [] and o.errors == []
    grid = root.locator(".tmk-cellgrid")
    assert (grid.get_attribute("data-rows"), grid.get_attribute("data-cols")) == (
        str(model.n_layers),
        str(len(lens.tokens)),
    )
    last = len(lens.tokens) - 1
    root.and_(o.page.locator(f'[data-wf-pos="{last}"]')).wait_for()  # no selection: the last position
    rows = root.locator(".tmk-wf-row")
    assert rows.count() == 1 + 2 * model.n_layers + 2
    assert root.locator(".tmk-norm-bar").count() == model.n_layers + 1


def test_hover_shows_the_top_k_of_the_cell(offline, lens):
    o = offline()
    root = o.open(lens.to_html())
    grid = root.locator(".tmk-cellgrid")
    grid.hover(position=grid_cell_point(grid, 1, 3))
    tip = root.locator(".tmk-tooltip")
    assert tip.is_visible()
    rows = tip.locator(".tmk-tip-row")
    tops = lens.top_tokens(1, 3)
    assert rows.count() == len(tops) + 1  # the top-k, then the target
    assert [rows.nth(i).locator(".tmk-tok").text_content() for i in range(len(tops))] == [
        visible_token(t) for t, _ in tops
    ]
    assert float(rows.nth(0).locator(".tmk-tip-value").text_content()) == pytest.approx(tops[0][1], rel=2e-3)
    assert "rank" in rows.nth(len(tops)).text_content()
    assert (
        root.locator(".tmk-readout")
        .text_content()
        .startswith(f"Layer 1, position 3 \u00ab{visible_token(lens.tokens[3])}\u00bb")
    )


def test_a_click_selects_the_cell_and_the_waterfall_follows(offline, lens):
    o = offline()
    root = o.open(lens.to_html())
    grid = root.locator(".tmk-cellgrid")
    grid.click(position=grid_cell_point(grid, 2, 4))
    root.and_(o.page.locator('[data-layer="2"][data-token="4"][data-wf-pos="4"][data-norm-pos="4"]')).wait_for()
    parts = lens.attribution(4)
    embed = float(root.locator('.tmk-wf-row[data-kind="embed"]').get_attribute("data-value"))
    mlp1 = float(root.locator('.tmk-wf-row[data-kind="mlp"][data-layer="1"]').get_attribute("data-value"))
    total = float(root.locator('.tmk-wf-row[data-kind="total"]').get_attribute("data-value"))
    assert embed == pytest.approx(float(parts["embed"]), rel=2e-3, abs=1e-4)
    assert mlp1 == pytest.approx(float(parts["mlps"][1]), rel=2e-3, abs=1e-4)
    assert total == pytest.approx(float(parts["total"]), rel=2e-3, abs=1e-4)
    assert "\u00ab\u00b7the\u00bb" in root.locator(".tmk-wf-title").text_content()
    norms = [float(v) for v in root.locator(".tmk-norm-bar").evaluate_all("bs => bs.map(b => b.dataset.value)")]
    assert norms == pytest.approx(lens.norms[:, 4].tolist(), rel=2e-3)


def test_attention_expands_into_heads_and_a_head_can_be_selected(offline, lens, model):
    o = offline()
    root = o.open(lens.to_html())
    attn = root.locator('.tmk-wf-attn[data-layer="1"]')
    assert attn.get_attribute("aria-expanded") == "false"
    attn.click()
    heads = root.locator('.tmk-wf-head[data-layer="1"]')
    assert heads.count() == model.n_heads
    assert root.locator('.tmk-wf-attn[data-layer="1"]').get_attribute("aria-expanded") == "true"
    attn_value = float(root.locator('.tmk-wf-attn[data-layer="1"]').get_attribute("data-value"))
    head_values = [float(v) for v in heads.evaluate_all("rs => rs.map(r => r.dataset.value)")]
    bias = float(root.locator('.tmk-wf-bias[data-layer="1"]').get_attribute("data-value"))
    assert attn_value == pytest.approx(sum(head_values) + bias, abs=1e-3)
    heads.nth(2).click()
    root.and_(o.page.locator('[data-layer="1"][data-head="2"]')).wait_for()
    assert heads.nth(2).get_attribute("aria-pressed") == "true"
    # keyboard: the rows are buttons
    root.locator('.tmk-wf-attn[data-layer="1"]').press("Enter")
    assert root.locator(".tmk-wf-head").count() == 0


def test_colour_by_target_rank(offline, lens):
    o = offline()
    root = o.open(lens.to_html())
    assert root.get_attribute("data-color") == "prob"
    before = canvas_digest(root, ".tmk-cellgrid-canvas")
    drawn = root.locator(".tmk-cellgrid").get_attribute("data-drawn")
    root.locator('button[data-color="rank"]').click()
    root.and_(o.page.locator('[data-color="rank"]')).wait_for()
    root.locator(f'.tmk-cellgrid:not([data-drawn="{drawn}"])').wait_for()
    assert canvas_digest(root, ".tmk-cellgrid-canvas") != before
    ticks = root.locator(".tmk-legend-ticks span").all_text_contents()
    assert ticks[-1] == "0" and int(ticks[0]) > 100  # log scale from the bottom of the vocabulary to the top
    assert "rank" in root.locator(".tmk-legend-label").text_content()


def test_without_a_target_rank_colouring_is_disabled(offline, model):
    o = offline()
    root = o.open(ResidualLens(model, PROMPT).to_html())
    assert root.locator('button[data-color="rank"]').is_disabled()
    assert "top prediction" in root.locator(".tmk-wf-title").text_content()


def test_keyboard_selects_a_cell(offline, lens):
    o = offline()
    root = o.open(lens.to_html())
    grid = root.locator(".tmk-cellgrid")
    grid.focus()
    for key in ["ArrowDown", "ArrowRight", "ArrowRight", "Enter"]:
        grid.press(key)
    root.and_(o.page.locator('[data-layer="1"][data-token="2"][data-wf-pos="2"]')).wait_for()
    grid.press("Escape")
    root.and_(o.page.locator('[data-token="-1"]')).wait_for()


def test_hostile_prompt_text_stays_text(offline, model):
    o = offline()
    w = ResidualLens(model, HOSTILE)
    root = o.open(w.to_html())
    root.locator(".tmk-table-btn").click()
    grid = root.locator(".tmk-cellgrid")
    assert root.locator("table caption").text_content().endswith(f"\u00ab{visible_token(w.tokens[-1])}\u00bb")
    root.locator(".tmk-table-btn").click()
    grid.hover(position=grid_cell_point(grid, 0, 0))
    assert f"\u00ab{visible_token(w.tokens[0])}\u00bb" in root.locator(".tmk-readout").text_content()
    assert root.locator("script, img, iframe").count() == 0
    assert o.dialogs == [] and o.errors == []


def test_table_view_lists_each_layer(offline, lens, model):
    o = offline()
    root = o.open(lens.to_html())
    assert root.locator("tbody tr").count() == model.n_layers  # there for screen readers, hidden
    assert root.locator(".tmk-table-view").bounding_box()["width"] <= 1
    root.locator(".tmk-table-btn").click()
    assert root.locator(".tmk-cellgrid").is_hidden()
    rows = root.locator("tbody tr")
    assert rows.count() == model.n_layers
    first = rows.nth(0).locator("td").nth(0).text_content()
    top = lens.top_tokens(0, len(lens.tokens) - 1)[0][0]
    assert first.startswith(visible_token(top))


@pytest.mark.parametrize("scheme, expected", [("dark", "dark"), ("light", "light")])
def test_theme_follows_the_os(offline, lens, scheme, expected):
    o = offline(color_scheme=scheme)
    root = o.open(lens.to_html())
    assert root.get_attribute("data-theme") == expected
    bg = root.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg == ("rgb(21, 23, 28)" if expected == "dark" else "rgb(255, 255, 255)")


def test_live_round_trip_with_python(offline, model):
    o = offline()
    w = ResidualLens(model, PROMPT)
    bridge = Bridge(o, w)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    fetched = lambda: [m["content"]["key"] for m in bridge.received if m["method"] == "custom"]  # noqa: E731
    last = len(w.tokens) - 1
    bridge.pump(lambda: root.get_attribute("data-wf-pos") == str(last))
    assert fetched() == [f"dla/{last}"]
    grid = root.locator(".tmk-cellgrid")
    grid.click(position=grid_cell_point(grid, 1, 2))
    bridge.pump(lambda: (w.layer, w.token) == (1, 2) and root.get_attribute("data-wf-pos") == "2")
    w.target = " the"  # Python changes the target: ranks and the waterfall follow
    bridge.pump(lambda: root.get_attribute("data-wf-target") == " the")
    assert fetched()[-1] == f"dla/2@{w._target['id']}"
    assert root.locator('button[data-color="rank"]').is_enabled()
    w.color = "rank"
    bridge.pump(lambda: root.get_attribute("data-color") == "rank")
    assert o.errors == []


@pytest.fixture(scope="module")
def long_model(tmp_path_factory, tokenizer_dir):
    """A random GPT-2 of 12 layers x 12 heads with a 512-token context (small otherwise)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    import kit

    out = tmp_path_factory.mktemp("gpt2-512")
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=12, n_head=12, n_embd=48, n_positions=512, n_inner=96, vocab_size=300, bos_token_id=0, eos_token_id=0
    )
    GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    PreTrainedTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(out)
    return kit.load(out, device="cpu")


def test_12_layers_by_512_tokens_render_quickly_and_scroll(offline, long_model):
    """GPT-2-small's grid of layers at 512 tokens: only the visible cells are drawn."""
    import os

    import torch

    budget_ms = float(os.environ.get("TMK_RENDER_BUDGET_MS", "1500"))
    ids = torch.randint(1, 300, (512,), generator=torch.Generator().manual_seed(0))
    w = ResidualLens(long_model.trace(ids))
    o = offline()
    root = o.open(w.to_html())
    ready_ms = float(root.get_attribute("data-ready-ms"))
    assert ready_ms < budget_ms, f"first paint after {ready_ms:.0f} ms (budget {budget_ms:.0f} ms)"
    grid = root.locator(".tmk-cellgrid")
    assert root.locator(".tmk-cellgrid-canvas").evaluate("c => c.getBoundingClientRect().width") <= 960
    grid.click(position=grid_cell_point(grid, 11, 500))
    root.and_(o.page.locator('[data-layer="11"][data-token="500"][data-wf-pos="500"]')).wait_for()
    assert o.errors == []
