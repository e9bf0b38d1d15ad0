"""NeuronProbe in headless Chromium (a tiny random GPT-2), from its to_html() file, network cut off."""

from __future__ import annotations

import pytest
import torch
from browser_helpers import Bridge

from kit.widgets import NeuronProbe
from kit.widgets._probe import CLAMP_MULTIPLES
from kit.widgets._tokens import visible_token

TEXTS = ["The cat sat on the mat.", "Once upon a time there was a model.", "A B C D E F G"]
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)> &amp; \u202eevil"]


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def Z(model):
    return torch.randn(model.d_mlp, 3, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def probe(model, Z):
    return NeuronProbe(model, TEXTS, layer=1, neuron=6, features={1: Z}, mode="neuron")


def page_of(offline, widget, **kw):
    o = offline(**kw)
    return o, o.open(widget.to_html())


def chip_acts(root):
    return [float(v) for v in root.locator(".tmk-chip").evaluate_all("cs => cs.map(c => c.dataset.act)")]


def test_renders_offline_with_shaded_texts(offline, probe, model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=6)
    o, root = page_of(offline, p)
    assert o.remote_requests == [] and o.errors == []
    assert root.locator(".tmk-chip").count() == sum(len(model.to_str_tokens(t)) for t in TEXTS)
    acts = torch.cat(p.activations())
    assert chip_acts(root) == pytest.approx(acts.tolist(), abs=2e-3 * float(acts.abs().max()))
    assert root.locator(".tmk-unit-title").text_content() == "neuron 6 of layer 1"
    assert root.locator(".tmk-decoded .tmk-tok").all_text_contents() == [visible_token(t) for t in p.decoded()]
    legend = root.locator(".tmk-legend")
    assert float(legend.get_attribute("data-max")) == pytest.approx(float(acts.abs().max()), rel=2e-3)


def test_top_examples_are_listed_and_select_their_token(offline, model):
    p = NeuronProbe(model, TEXTS, layer=0, neuron=3)
    o, root = page_of(offline, p)
    rows = root.locator(".tmk-example")
    expected = p.top_examples(8)
    got = [
        (int(rows.nth(i).get_attribute("data-text")), int(rows.nth(i).get_attribute("data-pos")))
        for i in range(rows.count())
    ]
    assert got == [(e["text"], e["pos"]) for e in expected]
    rows.nth(2).click()
    root.and_(o.page.locator(f'[data-text="{expected[2]["text"]}"][data-token="{expected[2]["pos"]}"]')).wait_for()
    assert root.locator(".tmk-chip.tmk-locked").get_attribute("data-pos") == str(expected[2]["pos"])


def test_hover_reads_out_and_click_selects_a_token(offline, probe):
    o, root = page_of(offline, probe)
    chip = root.locator('.tmk-chip[data-text="1"][data-pos="4"]')
    chip.hover()
    assert (
        root.locator(".tmk-readout")
        .text_content()
        .startswith(f"text 1, position 4 \u00ab{visible_token(probe._texts[1][4])}\u00bb: ")
    )
    chip.click()
    root.and_(o.page.locator('[data-text="1"][data-token="4"]')).wait_for()


def test_keyboard_moves_through_the_texts(offline, probe):
    o, root = page_of(offline, probe)
    box = root.locator(".tmk-texts")
    box.focus()
    for key in ["ArrowRight", "ArrowRight", "ArrowDown", "ArrowRight", "Enter"]:
        box.press(key)
    root.and_(o.page.locator('[data-text="1"][data-token="2"]')).wait_for()
    box.press("Escape")
    root.and_(o.page.locator('[data-token="-1"]')).wait_for()


def test_typing_a_neuron_number_loads_it(offline, probe, model):
    o, root = page_of(offline, probe)
    box = root.locator('input[type="number"]')
    box.fill("9")
    box.press("Enter")
    root.and_(o.page.locator('[data-loaded="neuron/1/9"]')).wait_for()
    ref = NeuronProbe(model, TEXTS, layer=1, neuron=9)
    assert root.locator(".tmk-decoded .tmk-tok").all_text_contents() == [visible_token(t) for t in ref.decoded()]


def test_search_by_decoded_token_picks_a_neuron(offline, probe, model):
    o, root = page_of(offline, probe)
    ref = NeuronProbe(model, TEXTS, layer=1)
    for target in range(model.d_mlp):  # a neuron whose top decoded token is a plain word
        ref.neuron = target
        word = ref.decoded()[0]
        if word.strip().isalnum():
            break
    box = root.locator('input[type="search"]')
    box.fill(word)
    results = root.locator(".tmk-results")
    results.locator("li").first.wait_for()
    units = [int(u) for u in results.locator("li[data-unit]").evaluate_all("ls => ls.map(l => l.dataset.unit)")]
    assert target in units
    for _ in range(units.index(target)):
        box.press("ArrowDown")
    box.press("Enter")
    root.and_(o.page.locator(f'[data-loaded="neuron/1/{target}"]')).wait_for()
    assert results.is_hidden()


def test_the_clamp_slider_shows_the_python_result_offline(offline, probe):
    o, root = page_of(offline, probe)
    assert root.get_attribute("data-clamp") == "off"
    root.locator('input[type="checkbox"]').check()
    root.and_(o.page.locator('[data-clamp="0"]')).wait_for()
    slider = root.locator('input[type="range"]')
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    m = CLAMP_MULTIPLES[CLAMP_MULTIPLES.index(0.0) + 2]
    key = f"clamp/neuron/1/6/{m:g}"
    root.and_(o.page.locator(f'[data-clamp-shown="{key}"]')).wait_for()
    probe.clamp = m
    eff = probe.effect()
    probe.clamp = None
    rows = root.locator(".tmk-next tbody tr")
    after = [float(x) for x in rows.locator(".tmk-after").all_text_contents()]
    assert after == pytest.approx(eff["after"][: len(after)].tolist(), rel=2e-3, abs=1e-6)
    assert rows.nth(0).locator("td").nth(0).text_content() == visible_token(eff["tokens"][0])
    assert "\u00d71 of max" in root.locator(".tmk-clamp-value").text_content()


def test_clamping_another_neuron_offline_says_it_needs_the_notebook(offline, probe):
    o, root = page_of(offline, probe)
    box = root.locator('input[type="number"]')
    box.fill("2")
    box.press("Enter")
    root.and_(o.page.locator('[data-loaded="neuron/1/2"]')).wait_for()
    root.locator('input[type="checkbox"]').check()
    root.and_(o.page.locator('[data-clamp-shown="missing"]')).wait_for()
    assert "run the notebook" in root.locator(".tmk-clamp-result").text_content()
    assert o.errors == []


def test_feature_mode_shows_mlp_post_dot_z(offline, model, Z):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=6, features={1: Z}, mode="neuron")
    o, root = page_of(offline, p)
    button = root.locator('button[data-mode="feature"]')
    assert button.is_enabled()
    button.click()
    root.and_(o.page.locator('[data-loaded="feature/1/0"]')).wait_for()
    p.mode = "feature"
    acts = torch.cat(p.activations())
    assert chip_acts(root) == pytest.approx(acts.tolist(), abs=2e-3 * float(acts.abs().max()))
    assert "mlp_post \u00b7 z" in root.locator(".tmk-legend-label").text_content()
    root.locator("select").select_option("2")  # no features at layer 2
    root.and_(o.page.locator('[data-layer="2"]')).wait_for()
    assert root.locator('button[data-mode="feature"]').is_disabled()


def test_hostile_texts_stay_text(offline, model):
    p = NeuronProbe(model, HOSTILE, layer=0, neuron=1)
    o, root = page_of(offline, p)
    assert root.locator(".tmk-chip").all_text_contents() == [visible_token(t) for t in p._texts[0] + p._texts[1]]
    root.locator(".tmk-table-btn").click()
    assert root.locator("tbody tr").count() == 2
    root.locator('input[type="search"]').fill("<")
    assert root.locator("script, img, iframe").count() == 0
    assert o.dialogs == [] and o.errors == []


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_theme(offline, probe, scheme):
    _, root = page_of(offline, probe, color_scheme=scheme)
    assert root.get_attribute("data-theme") == scheme
    bg = root.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg == ("rgb(21, 23, 28)" if scheme == "dark" else "rgb(255, 255, 255)")


def test_live_round_trip_the_slider_reruns_the_model_in_python(offline, model):
    o = offline()
    p = NeuronProbe(model, TEXTS, layer=2, neuron=5)
    seen = []
    p.observe(lambda c: seen.append(c["new"]), names=["clamp"])
    bridge = Bridge(o, p)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    tid = int(model.trace(TEXTS[0], capture=[]).logits[0, -1].argmax())
    before, _ = p.prob(tid)
    root.locator('input[type="checkbox"]').check()
    slider = root.locator('input[type="range"]')
    slider.focus()
    slider.press("End")  # the largest multiple
    bridge.pump(lambda: root.get_attribute("data-clamp-shown") == f"clamp/neuron/2/5/{CLAMP_MULTIPLES[-1]:g}")
    assert p.clamp == CLAMP_MULTIPLES[-1] and seen[-1] == CLAMP_MULTIPLES[-1]
    b2, after = p.prob(tid)
    assert b2 == pytest.approx(before) and after != pytest.approx(before, abs=1e-9)
    p.neuron = 8  # Python moves the view
    bridge.pump(lambda: root.get_attribute("data-loaded") == "neuron/2/8")
    assert o.errors == []


@pytest.fixture(scope="module")
def sae(model):
    from kit.analysis import train_sae

    x = torch.cat([model.trace(t, capture=["mlp_post"])["mlp_post", 1][0] for t in TEXTS]).T
    return train_sae(x, 5, steps=30, seed=0, l1=0.01)


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_an_sae_feature_is_shown_like_a_neuron_offline(offline, model, sae, scheme):
    j = int((sae.Y > 0).sum(1).argmax())
    p = NeuronProbe(model, TEXTS, layer=1, neuron=6, features={1: sae}, feature=j)  # saved in feature mode
    o, root = page_of(offline, p, color_scheme=scheme)
    assert root.get_attribute("data-theme") == scheme
    root.and_(o.page.locator(f'[data-loaded="feature/1/{j}"]')).wait_for()
    button = root.locator('button[data-mode="feature"]')
    assert button.text_content() == "SAE feature" and button.get_attribute("aria-pressed") == "true"
    acts = torch.cat(p.activations())
    assert acts.max() > 0 and chip_acts(root) == pytest.approx(acts.tolist(), abs=2e-3 * float(acts.abs().max()))
    assert root.locator(".tmk-unit-title").text_content() == f"SAE feature {j} of layer 1"
    assert "encoder" in root.locator(".tmk-legend-label").text_content()
    assert root.locator(".tmk-decoded .tmk-tok").all_text_contents() == [visible_token(t) for t in p.decoded()]
    # the clamp of the feature the page was saved with works offline
    root.locator('input[type="checkbox"]').check()
    key = f"clamp/feature/1/{j}/0"
    root.and_(o.page.locator(f'[data-clamp-shown="{key}"]')).wait_for()
    p.clamp = 0.0
    eff = p.effect()
    after = [float(x) for x in root.locator(".tmk-next tbody tr .tmk-after").all_text_contents()]
    assert after == pytest.approx(eff["after"][: len(after)].tolist(), rel=2e-3, abs=1e-6)
    assert o.remote_requests == [] and o.errors == []


def test_a_transcoder_feature_reads_the_mlp_input_offline(offline, model):
    from kit.analysis import train_transcoder

    trs = [model.trace(t, capture=["mlp_normalized", "mlp_out"]) for t in TEXTS]
    tc = train_transcoder(torch.cat([tr["mlp_normalized", 1][0] for tr in trs]).T,
                          torch.cat([tr["mlp_out", 1][0] for tr in trs]).T, 5, steps=30, seed=0, l1=0.01)
    j = int((tc.Y > 0).sum(1).argmax())
    p = NeuronProbe(model, TEXTS, layer=1, features={1: tc}, feature=j)
    o, root = page_of(offline, p)
    root.and_(o.page.locator(f'[data-loaded="feature/1/{j}"]')).wait_for()
    acts = torch.cat(p.activations())
    assert chip_acts(root) == pytest.approx(acts.tolist(), abs=2e-3 * float(acts.abs().max()))
    assert root.locator(".tmk-unit-title").text_content() == f"transcoder feature {j} of layer 1"
    assert "mlp_normalized" in root.locator(".tmk-legend-label").text_content()
    assert root.locator('button[data-mode="feature"]').text_content() == "transcoder feature"
    assert o.remote_requests == [] and o.errors == []
