"""CircuitDiagram, Python side: node weights, edges and details agree with kit.analysis."""

import math

import pytest
import torch
import traitlets

from kit.analysis import PatchingResult, composition_scores, decode_neurons, direct_logit_attribution
from kit.widgets import CircuitDiagram
from kit.widgets._circuit import head_edges
from kit.widgets._wire import decode_tensor

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def trace(model):
    return model.trace(PROMPT)


def test_default_weights_are_direct_logit_attribution_to_the_top_prediction(model, trace):
    c = CircuitDiagram(trace)
    top = int(trace.logits[0, -1].argmax())
    ref = direct_logit_attribution(trace, top)
    assert torch.allclose(c.heads, ref.heads[0]) and torch.allclose(c.mlps, ref.mlps[0])
    flat = decode_tensor(c._weights, c._weights["data"])
    assert flat.shape == (1 + model.n_layers * model.n_heads + model.n_layers,)
    assert float(flat[0]) == pytest.approx(float(ref.embed[0]), rel=2e-3, abs=1e-5)
    assert c._graph["logit"] == pytest.approx(float(ref.total[0]))
    assert c._graph["target"] == model.to_str_tokens([top])[0] and c._graph["pos"] == len(trace.tokens[0]) - 1


def test_an_answer_contrast_and_position(model, trace):
    c = CircuitDiagram(trace, answer=" the", contrast=" c", pos=3)
    ref = direct_logit_attribution(trace, " the", " c", pos=3)
    assert torch.allclose(c.heads, ref.heads[0]) and c._graph["pos"] == 3


def test_patching_results_weight_heads_and_mlps(model):
    L, H = model.n_layers, model.n_heads
    heads = PatchingResult(torch.rand(L, H), clean=2.0, corrupted=0.0, kind="heads", metric="logit_diff")
    grid = torch.tensor([[0.1, -1.6, 0.2], [0.4, 0.3, 0.2], [0.0, 0.0, 1.0]])[:L]
    mlp = PatchingResult(grid, clean=2.0, corrupted=0.0, kind="mlp", metric="logit_diff")
    c = CircuitDiagram(model, weights=None, patching=heads, mlp_patching=mlp)
    assert torch.allclose(c.heads, heads.normalized)
    assert torch.allclose(c.mlps, torch.tensor([-0.8, 0.2, 0.5])[:L])  # the largest-magnitude position per layer
    assert c._graph["label"].startswith("patching")
    with pytest.raises(ValueError, match="kind='heads'"):
        CircuitDiagram(model, patching=mlp)


def test_edges_are_composition_times_the_geometric_mean_of_the_weights(model):
    L, H = model.n_layers, model.n_heads
    w = torch.randn(L, H, generator=torch.Generator().manual_seed(0))
    pairs, strength, kind = head_edges(model, w, max_edges=10_000)
    comp = torch.stack([composition_scores(model, k) for k in ("q", "k", "v")])
    assert strength.tolist() == sorted(strength.tolist(), reverse=True)
    for (src, dst), value, k in zip(pairs.tolist()[:20], strength.tolist(), kind.tolist()):
        (l1, h1), (l2, h2) = divmod(src, H), divmod(dst, H)
        assert l1 < l2
        best = comp[:, l1, h1, l2, h2]
        assert k == int(best.argmax())
        assert value == pytest.approx(float(best.max()) * math.sqrt(abs(w[l1, h1]) * abs(w[l2, h2])), rel=1e-4)
    assert len(strength) == sum(H * H * (L - 1 - l) for l in range(L))  # every earlier-to-later pair
    assert len(head_edges(model, w, max_edges=5)[1]) == 5


def test_mlp_details_list_top_neurons_by_direct_effect_with_decoded_tokens(model, trace):
    c = CircuitDiagram(trace)
    ref = direct_logit_attribution(trace, int(trace.logits[0, -1].argmax()))
    dec = decode_neurons(model, k=4)
    assert c._details["basis"] == "direct effect"
    for layer, rows in enumerate(c._details["mlp"]):
        top = ref.neurons[0, layer].abs().topk(5).indices.tolist()
        assert [r["neuron"] for r in rows] == top
        assert rows[0]["tokens"] == model.to_str_tokens(dec.promoted[layer, top[0]])
        assert rows[0]["value"] == pytest.approx(float(ref.neurons[0, layer, top[0]]), abs=1e-6)


def test_patterns_travel_lazily(model, trace):
    c = CircuitDiagram(trace)
    assert c._blob_keys() == [f"pattern/{l}" for l in range(model.n_layers)]
    blob = c.blob("pattern/1")
    assert torch.allclose(
        decode_tensor(blob.meta, blob.data), trace["pattern", 1][0], atol=float(trace["pattern", 1].max()) / 500
    )


def test_node_selection_syncs_layer_and_head(model, trace):
    c = CircuitDiagram(trace)
    c.node = "L2.H3"
    assert (c.layer, c.head) == (2, 3)
    c.node = "L1.MLP"
    assert (c.layer, c.head) == (1, 3)
    for bad in ["L9.H0", "L0.H9", "mlp", "L1.MLP2"]:
        with pytest.raises(traitlets.TraitError, match="node must be"):
            c.node = bad
    with pytest.raises(traitlets.TraitError, match="0..1"):
        c.threshold = 1.5


def test_weights_without_a_trace(model):
    L, H = model.n_layers, model.n_heads
    c = CircuitDiagram(model, weights={"heads": torch.ones(L, H), "mlps": torch.zeros(L), "embed": 0.5})
    assert c._graph["patterns"] is False and c._details == {"mlp": [], "basis": None}
    with pytest.raises(ValueError, match="keys"):
        CircuitDiagram(model, weights={"head": torch.ones(L, H)})
    with pytest.raises(ValueError, match="shape"):
        CircuitDiagram(model, weights={"heads": torch.ones(L + 1, H)})
    with pytest.raises(ValueError, match="exactly one"):
        CircuitDiagram(model, weights={"heads": torch.ones(L, H)}, attribution=object())
    with pytest.raises(ValueError, match="prompt"):
        CircuitDiagram(model)
    with pytest.raises(TypeError, match="Did you mean 'threshold'"):
        CircuitDiagram(model, weights={}, treshold=0.3)


def test_repr_names_the_strongest_heads(trace):
    text = repr(CircuitDiagram(trace))
    assert (
        text.startswith("CircuitDiagram(3 layers x 4 heads, direct effect on the logit")
        and "strongest heads: L" in text
    )


def test_on_every_family(tiny_model):
    c = CircuitDiagram(tiny_model, PROMPT)
    tr = tiny_model.trace(PROMPT)
    ref = direct_logit_attribution(tr, int(tr.logits[0, -1].argmax()))
    assert torch.allclose(c.heads, ref.heads[0], atol=1e-5)
