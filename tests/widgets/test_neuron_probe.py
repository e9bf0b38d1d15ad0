"""NeuronProbe, Python side, on a tiny random GPT-2 (and Llama): activations, decoding, top
examples and clamping agree with the tracer and kit.analysis."""

import pytest
import torch
import traitlets

from kit.analysis import clamp_effect, decode_neurons, top_activating
from kit.widgets import NeuronProbe
from kit.widgets._probe import CLAMP_MULTIPLES, _feature_edit, decode_directions
from kit.widgets._wire import decode_tensor

TEXTS = ["The cat sat on the mat.", "Once upon a time there was a model.", "A B C D E F G"]


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def Z(model):
    return torch.randn(model.d_mlp, 3, generator=torch.Generator().manual_seed(0))


def test_activations_are_the_neurons_mlp_post(model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=7)
    acts = p.activations()
    for text, got in zip(TEXTS, acts):
        assert torch.allclose(got, model.trace(text, capture=["mlp_post"])["mlp_post", 1][0, :, 7], atol=1e-5)
    blob = p.blob("acts/1")
    whole = decode_tensor(blob.meta, blob.data)
    assert whole.shape == (sum(len(model.to_str_tokens(t)) for t in TEXTS), model.d_mlp)
    assert torch.allclose(whole[:, 7], torch.cat(acts), atol=2e-3 * float(whole.abs().max()))


def test_feature_activation_is_mlp_post_dot_z(model, Z):
    p = NeuronProbe(model, TEXTS, layer=2, features={2: Z}, feature=1)
    assert p.mode == "feature"
    mlp = model.trace(TEXTS[1], capture=["mlp_post"])["mlp_post", 2][0]
    assert torch.allclose(p.activations()[1], mlp @ Z[:, 1], atol=1e-4)


def test_decoded_tokens_match_decode_neurons(model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=3)
    ref = decode_neurons(model, k=8, layers=[1])
    assert p.decoded() == model.to_str_tokens(ref.promoted[0, 3])
    blob = p.blob("decode/1")
    index = decode_tensor(blob.meta, blob.data)
    assert [blob.meta["vocab"][i] for i in index[3].tolist()] == p.decoded()


def test_decoding_a_one_hot_direction_is_decoding_the_neuron(model):
    one_hot = torch.zeros(2, model.d_mlp)
    one_hot[0, 5], one_hot[1, 9] = 1.0, 1.0
    ids = decode_directions(model, 0, one_hot, k=6)
    ref = decode_neurons(model, k=6, layers=[0]).promoted[0]
    assert torch.equal(ids[0], ref[5]) and torch.equal(ids[1], ref[9])


def test_top_examples_match_top_activating(model):
    p = NeuronProbe(model, TEXTS, layer=0, neuron=11)
    ours = p.top_examples(5)
    ref = top_activating(model, TEXTS, layer=0, neuron=11, k=5)
    assert [(e["text"], e["pos"], e["token"]) for e in ours] == [(r["text"], r["pos"], r["token"]) for r in ref]
    assert [e["activation"] for e in ours] == pytest.approx([r["activation"] for r in ref], abs=1e-5)


def test_clamping_a_neuron_matches_clamp_effect(model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=4, clamp=3.0)
    value = p.clamp_value
    assert value == pytest.approx(3.0 * float(torch.cat(p.activations()).abs().max()))
    ref = clamp_effect(model, TEXTS[0], 1, 4, value, pos=None)
    eff = p.effect()
    assert torch.allclose(eff["after_all"], ref["after"], atol=1e-6)
    assert torch.allclose(eff["before_all"], ref["before"], atol=1e-6)
    assert eff["kl"] == pytest.approx(ref["kl"], rel=1e-4, abs=1e-9)
    before, after = p.prob(int(eff["ids"][0]))
    assert after == pytest.approx(float(ref["after"][eff["ids"][0]]))
    assert before == pytest.approx(float(ref["before"][eff["ids"][0]]))


def test_clamping_a_feature_sets_its_activation_everywhere(model, Z):
    edit = _feature_edit(1, Z[:, 0], 2.5)
    tr = model.trace(TEXTS[0], capture=["mlp_post"], interventions=[edit])
    assert torch.allclose(tr["mlp_post", 1][0] @ Z[:, 0], torch.full((tr.n_pos,), 2.5), atol=1e-4)
    plain = model.trace(TEXTS[0], capture=["mlp_post"])["mlp_post", 1][0]
    moved = tr["mlp_post", 1][0] - plain
    ortho = torch.randn(model.d_mlp, generator=torch.Generator().manual_seed(1))
    ortho -= ortho.dot(Z[:, 0]) / Z[:, 0].dot(Z[:, 0]) * Z[:, 0]
    assert torch.allclose(moved @ ortho, torch.zeros(tr.n_pos), atol=1e-3)  # only along z


def test_the_clamp_changes_a_probability_that_python_reads(model):
    p = NeuronProbe(model, TEXTS, layer=2, neuron=0)
    assert p.effect() is None
    tok = int(model.trace(TEXTS[0], capture=[]).logits[0, -1].argmax())
    before, after = p.prob(tok)
    assert before == after
    p.clamp = 5.0
    before2, after2 = p.prob(tok)
    assert before2 == pytest.approx(before) and after2 != pytest.approx(before, abs=1e-9)


def test_clamp_blobs_hold_each_slider_stop_of_the_selected_unit(model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=2)
    keys = [k for k in p._blob_keys() if k.startswith("clamp/")]
    assert keys == [f"clamp/neuron/1/2/{m:g}" for m in CLAMP_MULTIPLES]
    blob = p.blob("clamp/neuron/1/2/0")
    probs = decode_tensor(blob.meta, blob.data)
    assert probs.shape == (len(blob.meta["tokens"]), 2)
    assert blob.meta["value"] == 0.0 and blob.meta["multiple"] == 0.0
    for bad in ["clamp/neuron/1/99999/1", "clamp/feature/1/0/1", "clamp/neuron/x/0/1", "acts/9", "nope/1"]:
        with pytest.raises(KeyError):
            p.blob(bad)


def test_export_inlines_the_activations_and_the_clamp_stops(model):
    p = NeuronProbe(model, TEXTS, layer=1, neuron=2)
    page = p.to_html()
    assert '"acts/1"' in page and '"decode/1"' in page and page.count('"clamp/neuron/1/2/') == len(CLAMP_MULTIPLES)


def test_selection_is_validated(model, Z):
    p = NeuronProbe(model, TEXTS, layer=1, features={1: Z})
    with pytest.raises(traitlets.TraitError, match="neuron must be in"):
        p.neuron = model.d_mlp
    with pytest.raises(traitlets.TraitError, match="feature must be in 0..2"):
        p.feature = 3
    with pytest.raises(traitlets.TraitError, match="text must be in 0..2"):
        p.text = 3
    p.text, p.token = 2, 3
    with pytest.raises(traitlets.TraitError):
        p.token = 200
    p.text = 0
    assert p.token == 3  # still inside text 0
    p.layer = 2  # no features there: back to neurons
    assert p.mode == "neuron"
    with pytest.raises(traitlets.TraitError, match="layers \\[1\\]"):
        p.mode = "feature"


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="at least one text"):
        NeuronProbe(model, [])
    with pytest.raises(ValueError, match="d_mlp"):
        NeuronProbe(model, TEXTS, features=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="kit model"):
        NeuronProbe("gpt2", TEXTS)
    with pytest.raises(TypeError, match="Did you mean 'neuron'"):
        NeuronProbe(model, TEXTS, nueron=3)


def test_features_from_an_object_with_Z_and_a_repr(model, Z):
    class Decomposition:
        pass

    d = Decomposition()
    d.Z = Z
    p = NeuronProbe(model, "The cat sat on the mat", layer=1, features=d, prompt="Once upon a")
    assert p.mode == "feature" and p.prompt == "Once upon a"
    assert repr(p).startswith("NeuronProbe(layer 1 feature 0, 1 texts")


def test_on_a_llama_model(tiny_models):
    m = tiny_models["llama"]
    p = NeuronProbe(m, TEXTS, layer=1, neuron=2, clamp=0.0)
    assert torch.allclose(
        p.activations()[0], m.trace(TEXTS[0], capture=["mlp_post"])["mlp_post", 1][0, :, 2], atol=1e-5
    )
    assert p.effect()["kl"] >= 0
