"""CircuitDiagram in headless Chromium, from its to_html() file with the network cut off."""

from __future__ import annotations

import re

import pytest
import torch
from browser_helpers import Bridge

from kit.widgets import CircuitDiagram
from kit.widgets._tokens import visible_token

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def circuit(model):
    return CircuitDiagram(model, PROMPT)


@pytest.fixture(scope="module")
def big_model(tmp_path_factory, tokenizer_dir):
    """A random GPT-2 of 12 layers x 12 heads (GPT-2 small's grid), tiny otherwise."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    import kit

    out = tmp_path_factory.mktemp("gpt2-12x12")
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=12,
        n_head=12,
        n_embd=48,
        n_positions=64,
        n_inner=96,
        vocab_size=300,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    PreTrainedTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(out)
    return kit.load(out, device="cpu")


def node(root, name):
    return root.locator(f'.tmk-node[data-node="{name}"]')


def test_renders_offline_with_every_node(offline, circuit, model):
    o = offline()
    root = o.open(circuit.to_html())
    assert o.remote_requests == [] and o.errors == []
    L, H = model.n_layers, model.n_heads
    assert root.locator(".tmk-node").count() == 2 + L * H + L
    assert root.locator(".tmk-node-mlp").count() == L and root.locator(".tmk-node-head").count() == L * H
    assert "direct effect on the logit" in root.locator(".tmk-desc").first.text_content()
    legend = root.locator(".tmk-legend")
    assert float(legend.get_attribute("data-max")) == pytest.approx(
        float(max(circuit.heads.abs().max(), circuit.mlps.abs().max(), abs(circuit._graph_data.embed))), rel=2e-3
    )


def test_clicking_a_head_shows_its_pattern_and_selects_it(offline, circuit):
    o = offline()
    root = o.open(circuit.to_html())
    node(root, "L1.H2").click()
    root.and_(o.page.locator('[data-node="L1.H2"][data-layer="1"][data-head="2"]')).wait_for()
    details = root.locator(".tmk-details")
    details.and_(o.page.locator('[data-pattern="1/2"]')).wait_for()
    assert details.locator("h4").first.text_content() == "Layer 1, head 2"
    value = float(details.locator(".tmk-weight").get_attribute("data-value"))
    assert value == pytest.approx(float(circuit.heads[1, 2]), rel=2e-3, abs=1e-6)
    assert details.locator("canvas.tmk-pattern").count() == 1
    p = circuit._trace["pattern", 1][0, 2]
    row = p[p.shape[0] - 1]
    text = details.locator(".tmk-attends").text_content()
    m = re.search(r"attends most to (\d+) \u00ab(.*)\u00bb \(([\d.e-]+)\)", text)
    step = float(p.max()) / 255  # the pattern travels as bytes
    k = int(m.group(1))
    assert m.group(2) == visible_token(circuit._tokens[k])
    assert float(row[k]) >= float(row.max()) - step and float(m.group(3)) == pytest.approx(float(row.max()), abs=step)
    assert node(root, "L1.H2").get_attribute("aria-pressed") == "true"


def test_clicking_an_mlp_lists_its_top_neurons(offline, circuit):
    o = offline()
    root = o.open(circuit.to_html())
    node(root, "L2.MLP").click()
    root.and_(o.page.locator('[data-node="L2.MLP"][data-layer="2"]')).wait_for()
    rows = root.locator(".tmk-details tbody tr")
    expected = circuit._details["mlp"][2]
    assert [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.neuron)")] == [r["neuron"] for r in expected]
    assert rows.nth(0).locator("td").nth(2).text_content() == "  ".join(visible_token(t) for t in expected[0]["tokens"])


def test_the_threshold_hides_weak_edges(offline, circuit):
    o = offline()
    root = o.open(circuit.to_html())
    slider = root.locator('input[type="range"]')
    svg = root.locator("svg")
    shown = int(svg.get_attribute("data-edges"))
    slider.fill("0")
    assert int(svg.get_attribute("data-edges")) > shown
    slider.fill("1")
    assert int(svg.get_attribute("data-edges")) <= 1 and int(svg.get_attribute("data-strong")) == 1
    assert (
        root.locator(".tmk-node.tmk-weak").count() == root.locator(".tmk-node").count() - 2
    )  # all but the strongest and the logits


def test_keyboard_moves_between_nodes(offline, circuit):
    o = offline()
    root = o.open(circuit.to_html())
    node(root, "embed").focus()
    for key in ["ArrowUp", "ArrowRight", "ArrowUp"]:
        o.page.keyboard.press(key)
    o.page.keyboard.press("Enter")
    root.and_(o.page.locator('[data-node="L1.H3"]')).wait_for()
    o.page.keyboard.press("Escape")
    root.and_(o.page.locator('.tmk-root[data-node=""]')).wait_for()


def test_12_layers_by_12_heads_stay_readable(offline, big_model):
    c = CircuitDiagram(big_model, PROMPT)
    o = offline()
    root = o.open(c.to_html())
    box = root.locator("svg").bounding_box()
    assert box["width"] <= 820 and box["height"] <= 720
    circles = root.locator(".tmk-node-head circle").evaluate_all(
        "cs => cs.map(c => [c.cx.baseVal.value, c.cy.baseVal.value, c.r.baseVal.value])"
    )
    assert len(circles) == 144
    xs = sorted({x for x, _, _ in circles})
    ys = sorted({y for _, y, _ in circles})
    assert len(xs) == 12 and len(ys) == 12
    assert min(b - a for a, b in zip(xs, xs[1:])) >= 30 and min(b - a for a, b in zip(ys, ys[1:])) >= 30
    assert 2 * max(r for _, _, r in circles) + 4 <= min(b - a for a, b in zip(xs, xs[1:]))  # nodes never touch
    labels = root.locator(".tmk-axis").all_text_contents()
    assert [f"L{l}" for l in range(12)] == labels[:12] and "H11" in labels
    assert o.errors == []


def test_a_table_lists_every_weighted_node_for_screen_readers(offline, circuit, model):
    o = offline()
    root = o.open(circuit.to_html())
    rows = root.locator(".tmk-table-view tbody tr")
    assert rows.count() == 1 + model.n_layers * model.n_heads + model.n_layers
    assert root.locator(".tmk-table-view").bounding_box()["width"] <= 1
    strongest = rows.nth(0).locator("th").text_content()
    weights = {"embed": abs(circuit._graph_data.embed)}
    weights |= {
        f"L{l}.H{h}": abs(float(circuit.heads[l, h])) for l in range(model.n_layers) for h in range(model.n_heads)
    }
    weights |= {f"L{l}.MLP": abs(float(circuit.mlps[l])) for l in range(model.n_layers)}
    assert weights[strongest] == pytest.approx(max(weights.values()), rel=2e-3)
    root.locator(".tmk-table-btn").click()
    assert root.locator(".tmk-graph-wrap").is_hidden() and rows.nth(0).is_visible()


def test_hostile_prompt_text_stays_text(offline, model):
    c = CircuitDiagram(model, "<script>x</script><img src=x>\u202e")
    o = offline()
    root = o.open(c.to_html())
    node(root, "L0.H0").click()
    root.locator('.tmk-details[data-pattern="0/0"]').wait_for()
    root.locator(".tmk-table-btn").click()
    assert root.locator("script, img, iframe").count() == 0 and o.dialogs == [] and o.errors == []


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_theme(offline, circuit, scheme):
    o = offline(color_scheme=scheme)
    root = o.open(circuit.to_html())
    assert root.get_attribute("data-theme") == scheme
    fill = node(root, "logits").locator("rect").evaluate("r => getComputedStyle(r).fill")
    assert fill == ("rgb(31, 35, 43)" if scheme == "dark" else "rgb(243, 245, 248)")


def test_live_round_trip_with_python(offline, model):
    o = offline()
    c = CircuitDiagram(model, PROMPT)
    bridge = Bridge(o, c)
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1")
    node(root, "L2.H1").click()
    bridge.pump(lambda: (c.node, c.layer, c.head) == ("L2.H1", 2, 1))
    c.head = 3  # another view picks a head: the diagram follows
    bridge.pump(lambda: root.get_attribute("data-node") == "L2.H3")
    c.threshold = 0.0
    bridge.pump(lambda: root.locator('input[type="range"]').input_value() == "0")
    assert o.errors == []
