"""NeuronProbe shows a sparse-dictionary feature (an SAE of mlp_post, a transcoder mlp_normalized -> mlp_out)
like a neuron or an SNMF feature: its activation is the dictionary's own encoder output, it decodes what its
decoder writes, and the clamp replaces the feature's term where the dictionary writes (tiny random GPT-2)."""

import pytest
import torch

from kit.analysis import train_sae, train_transcoder
from kit.widgets import NeuronProbe
from kit.widgets._features import DictionaryFeatures
from kit.widgets._probe import decode_directions, decode_residual

TEXTS = ["The cat sat on the mat.", "Once upon a time there was a model.", "A B C D E F G"]


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="module")
def traces(model):
    return [model.trace(t, capture=["mlp_post", "mlp_normalized", "mlp_out"]) for t in TEXTS]


@pytest.fixture(scope="module")
def sae(model, traces):
    x = torch.cat([tr["mlp_post", 1][0] for tr in traces]).T  # [d_mlp, n]
    return train_sae(x, 6, steps=30, seed=0, l1=0.01)


@pytest.fixture(scope="module")
def tc(model, traces):
    x = torch.cat([tr["mlp_normalized", 1][0] for tr in traces]).T
    y = torch.cat([tr["mlp_out", 1][0] for tr in traces]).T
    return train_transcoder(x, y, 6, steps=30, seed=0, l1=0.01)


def live(d) -> int:
    return int((d.Y > 0).sum(1).argmax())


def test_an_sae_features_activation_is_its_encoder_output(model, traces, sae):
    j = live(sae)
    p = NeuronProbe(model, TEXTS, layer=1, features=sae, feature=j)
    assert p.mode == "feature" and repr(p).startswith(f"NeuronProbe(layer 1 SAE feature {j},")
    for tr, got in zip(traces, p.activations()):
        assert torch.allclose(got, sae.encode(tr["mlp_post", 1][0].T)[j], atol=1e-5)
        assert not torch.allclose(got, tr["mlp_post", 1][0] @ sae.Z[:, j], atol=1e-3)  # not the projection
    assert p._info["feature_names"] == {"1": "SAE feature"}
    assert "encoder" in p._info["feature_legends"]["1"]
    assert p.decoded() == model.to_str_tokens(decode_directions(model, 1, sae.Z.T, 8)[j])


def test_a_transcoder_features_activation_reads_the_mlp_input_and_decodes_its_output_direction(model, traces, tc):
    j = live(tc)
    p = NeuronProbe(model, TEXTS, layer=1, features={1: tc}, feature=j)
    for tr, got in zip(traces, p.activations()):
        assert torch.allclose(got, tc.encode(tr["mlp_normalized", 1][0].T)[j], atol=1e-5)
    assert p.decoded() == model.to_str_tokens(decode_residual(model, tc.Z.T, 8)[j])
    assert p._info["feature_names"] == {"1": "transcoder feature"}


def test_clamping_an_sae_feature_replaces_its_term_and_keeps_the_rest(model, sae):
    j, v = live(sae), 2.5
    prompt = TEXTS[1]
    (edit,) = DictionaryFeatures(sae).clamp_edits(model, prompt, 1, j, v)
    x = model.trace(prompt, capture=["mlp_post"])["mlp_post", 1]  # [1, pos, d_mlp]
    new = edit.fn(x)
    f = sae.encode(x[0].T)[j]  # [pos]
    assert torch.allclose(new - x, (v - f)[None, :, None] * sae.Z[:, j], atol=1e-5)
    # orthogonal to the feature's direction nothing moves
    rest = (new - x)[0] - ((new - x)[0] @ sae.Z[:, j])[:, None] * sae.Z[:, j]
    assert float(rest.abs().max()) < 1e-5


def test_clamping_a_transcoder_feature_moves_mlp_out_along_its_direction(model, tc):
    j, v = live(tc), 3.0
    prompt = TEXTS[0]
    p = NeuronProbe(model, TEXTS, layer=1, features={1: tc}, feature=j, prompt=prompt)
    p.clamp = v / p._unit_max("feature", 1, j)  # clamp is in units of the feature's largest activation
    eff = p.effect()
    clean = model.trace(prompt, capture=["mlp_normalized", "mlp_out"])
    f = tc.encode(clean["mlp_normalized", 1][0].T)[j]
    edits = p.features[1].clamp_edits(model, prompt, 1, j, v)
    edited = model.trace(prompt, capture=["mlp_out"], interventions=edits)
    delta = edited["mlp_out", 1][0] - clean["mlp_out", 1][0]  # [pos, d_model]
    assert torch.allclose(delta, (v - f)[:, None] * tc.Z[:, j], atol=1e-4)
    after = edited.logits[0, -1].softmax(-1)
    assert torch.allclose(eff["after_all"], after, atol=1e-5)
    assert eff["kl"] > 0


def test_a_dictionary_of_the_wrong_shape_is_refused(model, tc, sae):
    with pytest.raises(ValueError, match="needs .* -> "):
        NeuronProbe(model, TEXTS, layer=1, features={1: train_sae(torch.randn(5, 40), 3, steps=2)})
    p = NeuronProbe(model, TEXTS, layer=1, features={1: sae, 2: tc})  # one of each, two layers
    assert p._info["feature_names"] == {"1": "SAE feature", "2": "transcoder feature"}


def test_snmf_features_are_named_as_such(model, traces):
    from kit.analysis import snmf

    x = torch.cat([tr["mlp_post", 1][0] for tr in traces]).T
    res = snmf(x, 3, n_iter=5, progress=False)
    p = NeuronProbe(model, TEXTS, layer=1, features=res)
    assert p._info["feature_names"] == {"1": "SNMF feature"} and "mlp_post" in p._info["feature_legends"]["1"]
    assert torch.allclose(p.activations()[0], traces[0]["mlp_post", 1][0] @ res.Z[:, 0], atol=1e-5)
