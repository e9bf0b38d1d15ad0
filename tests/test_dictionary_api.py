"""``kit.analysis`` sparse dictionaries: what ``Dictionary``, ``mlp_io`` and ``splice`` promise, on ``facts-4l``
and on dictionaries built by hand whose answer is known (an exact SAE, a transcoder that outputs the mean)."""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A
from kit.interventions import Edit

from kit.train import load_world

L = 0  # MLP0: facts-4l looks its facts up there, so ablating it matters
SENTENCES = [p.sentence for p in load_world().prompts("train")[::700]][:5]  # sentences of facts-4l's world


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return kit.load("facts-4l", device="cpu")


@pytest.fixture(scope="module")
def io(model):
    return A.mlp_io(model, SENTENCES, L, batch_size=3)  # two batches: the token order must still match


def _exact_sae(d: int, shift: float = 50.0) -> A.Dictionary:
    """An SAE that returns its input exactly: ``y = x + shift >= 0`` (for ``x > -shift``), ``x̂ = y − shift``."""
    eye = torch.eye(d)
    b_dec = torch.full((d,), -shift)
    return A.Dictionary(eye, torch.zeros(d, 1), [0.0], "sae", 0, 0.0, {"l1": 0.0}, eye.clone(), torch.zeros(d), b_dec)


def test_mlp_io_keeps_the_mlps_input_neurons_and_output_of_every_real_token(model, io):
    tr = model.trace(SENTENCES, capture=["mlp_normalized", "mlp_post", "mlp_out"], layers=[L])
    m = tr.mask
    torch.testing.assert_close(io.inputs, tr["mlp_normalized", L][m].float().T)
    torch.testing.assert_close(io.hidden, tr["mlp_post", L][m].float().T)
    torch.testing.assert_close(io.outputs, tr["mlp_out", L][m].float().T)
    assert io.n_tokens == int(m.sum()) and io.layer == L and io.hidden is io.col.acts
    # the MLP's output is W_out applied to its neurons (plus the bias): the three are the same tokens
    W_out = model.adapter.W_out(L).detach().float()
    assert float((io.hidden.T @ W_out - io.outputs.T).std(0).max()) < 1e-4


def test_a_trained_dictionary_encodes_decodes_and_reconstructs_consistently(io):
    sae = A.train_sae(io.hidden, 16, steps=60, seed=0)
    y = sae.encode(io.hidden)
    assert y.shape == (16, io.n_tokens) and bool((y >= 0).all())
    torch.testing.assert_close(y, sae.Y, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sae(io.hidden), sae.decode(y))
    torch.testing.assert_close(sae.reconstruct(), sae.reconstruct(io.hidden), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sae.Z.norm(dim=0), torch.ones(16), atol=1e-5, rtol=0)
    assert sae.features.shape == (16, io.hidden.shape[0]) and sae.kind == "sae" and isinstance(sae, A.Decomposition)
    st = sae.stats(io.hidden)
    assert st["relative_error"] == pytest.approx(sae.loss, abs=1e-4)
    assert 0 < st["l0"] < 16 and 0.0 <= st["dead"] < 1.0
    plain = sae.as_decomposition()
    assert type(plain) is A.Decomposition and torch.equal(plain.Z, sae.Z)


def test_a_transcoder_is_seeded_and_does_not_depend_on_the_data_scale(io):
    a = A.train_transcoder(io.inputs, io.outputs, 12, steps=40, seed=3)
    b = A.train_transcoder(io.inputs, io.outputs, 12, steps=40, seed=3)
    c = A.train_transcoder(io.inputs, io.outputs, 12, steps=40, seed=4)
    scaled = A.train_transcoder(io.inputs * 10, io.outputs * 100, 12, steps=40, seed=3)
    assert torch.equal(a.Z, b.Z) and torch.equal(a.Y, b.Y) and not torch.allclose(a.Z, c.Z)
    torch.testing.assert_close(scaled.Z, a.Z, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(scaled(io.inputs * 10), a(io.inputs) * 100, atol=2e-2, rtol=1e-3)
    assert a.kind == "transcoder" and (a.d_in, a.d_out) == (io.inputs.shape[0], io.outputs.shape[0])


def test_a_transcoder_feature_steered_through_the_neurons_writes_exactly_its_direction(model, io):
    tc = A.train_transcoder(io.inputs, io.outputs, 8, steps=20, seed=0)
    W_out = model.adapter.W_out(L)
    U = tc.mlp_directions(W_out)  # [d_mlp, k]
    torch.testing.assert_close(W_out.detach().float().T @ U, tc.Z, atol=1e-4, rtol=1e-4)
    j, alpha = 2, 7.0
    via_neurons = model.trace(SENTENCES[0], capture=[], interventions=[Edit("mlp_post", L, lambda x: x + alpha * U[:, j])])
    via_output = model.trace(SENTENCES[0], capture=[], interventions=[Edit("mlp_out", L, lambda x: x + alpha * tc.Z[:, j])])
    clean = model.trace(SENTENCES[0], capture=[])
    torch.testing.assert_close(via_neurons.logits, via_output.logits, atol=1e-4, rtol=1e-4)
    assert float((via_output.logits - clean.logits).abs().max()) > 0.1  # and the edit did something
    sae = A.train_sae(io.hidden, 8, steps=5)
    assert torch.equal(sae.mlp_directions(W_out), sae.Z)
    assert tc.directions().shape == (8, model.d_model) and sae.directions(W_out).shape == (8, model.d_model)


def test_a_transcoders_neuron_directions_are_the_least_norm_solution_and_a_low_rank_w_out_is_refused(model, io):
    tc = A.train_transcoder(io.inputs, io.outputs, 8, steps=20, seed=0)
    W = model.adapter.W_out(L).detach().double()  # [d_mlp, d_model]
    least_norm = W @ torch.linalg.solve(W.T @ W, tc.Z.double())  # W.T u = z with u in W's column space
    U = tc.mlp_directions(model.adapter.W_out(L))
    torch.testing.assert_close(U.double(), least_norm, atol=1e-4, rtol=1e-3)
    for _ in range(3):  # the same answer every call (lstsq's gelsy driver was not, on some hosts)
        assert torch.equal(tc.mlp_directions(model.adapter.W_out(L)), U)
    low_rank = W.float().clone()
    low_rank[:, : model.d_model // 2] = 0  # half of the residual stream cannot be written
    with pytest.raises(ValueError, match=r"W_out cannot write these features exactly \(relative miss 0\.\d+\)"):
        tc.mlp_directions(low_rank)


def test_an_exact_dictionary_splices_in_with_no_loss_and_a_mean_one_equals_mean_ablation(model, io):
    exact = _exact_sae(model.d_mlp)
    torch.testing.assert_close(exact(io.hidden), io.hidden, atol=1e-4, rtol=0)
    r = A.splice(model, SENTENCES, L, exact, batch_size=3)
    assert r.kl < 1e-6 and r.spliced_loss == pytest.approx(r.clean_loss, abs=1e-4)
    assert r.ablated_kl > 1.0 and r.ablated_loss > r.clean_loss  # the floor is a real change
    assert r.recovered == pytest.approx(1.0, abs=1e-3)
    d = model.d_model  # a transcoder that ignores its input and writes the mean output: mean ablation itself
    mean_tc = A.Dictionary(torch.eye(d), torch.zeros(d, 1), [0.0], "transcoder", 0, 0.0, {}, torch.zeros(d, d),
                           torch.zeros(d), io.outputs.mean(1))
    m = A.splice(model, SENTENCES, L, mean_tc, batch_size=3)
    assert m.spliced_loss == pytest.approx(m.ablated_loss, abs=1e-4) and m.kl == pytest.approx(m.ablated_kl, abs=1e-4)
    assert m.recovered == pytest.approx(0.0, abs=1e-3)
    z = A.splice(model, SENTENCES, L, mean_tc, ablation="zero")
    assert z.ablated_loss != pytest.approx(m.ablated_loss, abs=1e-3) and z.clean_loss == pytest.approx(m.clean_loss)


def test_dictionaries_refuse_bad_input_with_messages_naming_what_is_valid(model, io):
    with pytest.raises(ValueError, match=r"\[d, n_tokens\]"):
        A.train_sae(torch.ones(5), 3)
    with pytest.raises(ValueError, match="at least two tokens"):
        A.train_sae(torch.ones(4, 1), 2)
    with pytest.raises(ValueError, match="NaN"):
        A.train_sae(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), 2)
    with pytest.raises(ValueError, match="k must be"):
        A.train_sae(io.hidden, 0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        A.train_sae(io.hidden, 4, lr=0.0)
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        A.train_transcoder(io.inputs, io.outputs, 4, l1=float("inf"))
    with pytest.raises(ValueError, match="one column per input token"):
        A.train_transcoder(io.inputs, io.outputs[:, :5], 4)
    with pytest.raises(ValueError, match="for an SAE use train_sae"):
        A.train_transcoder(io.inputs, None, 4)
    tc = A.train_transcoder(io.inputs, io.outputs, 4, steps=2)
    with pytest.raises(ValueError, match=r"d_in=128"):
        tc.encode(io.hidden)
    with pytest.raises(ValueError, match=r"k=4"):
        tc.decode(torch.ones(5, 3))
    with pytest.raises(ValueError, match="need the target"):
        tc.stats(io.inputs)
    with pytest.raises(ValueError, match="as many tokens"):
        tc.stats(io.inputs, io.outputs[:, :3])
    with pytest.raises(ValueError, match="W_out must be"):
        tc.mlp_directions(torch.ones(512, 7))
    with pytest.raises(ValueError, match="give W_out"):
        A.train_sae(io.hidden, 4, steps=2).directions()
    with pytest.raises(TypeError, match="kit.analysis.Dictionary"):
        A.splice(model, SENTENCES, L, tc.as_decomposition())
    with pytest.raises(ValueError, match="'mean' or 'zero'"):
        A.splice(model, SENTENCES, L, tc, ablation="resample")
    with pytest.raises(ValueError, match="mlp_normalized"):
        A.splice(model, SENTENCES, L, A.train_transcoder(io.hidden, io.outputs, 4, steps=2))
    with pytest.raises(ValueError, match="no prompts"):
        A.mlp_io(model, [], 0)
    with pytest.raises(ValueError, match="empty"):
        A.splice(model, [""], L, tc)


def test_a_dictionary_built_by_hand_must_have_consistent_parts():
    Z, Y = torch.eye(4)[:, :3], torch.zeros(3, 2)
    ok = A.Dictionary(Z, Y, [0.0], "transcoder", 0, 0.0, {}, torch.zeros(3, 6), torch.zeros(3), torch.zeros(4))
    assert (ok.d_in, ok.d_out, ok.k) == (6, 4, 3)
    with pytest.raises(ValueError, match="one of"):
        A.Dictionary(Z, Y, [0.0], "snmf", 0, 0.0, {}, torch.zeros(3, 6), torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="needs its encoder"):
        A.Dictionary(Z, Y, [0.0], "sae")
    with pytest.raises(ValueError, match=r"b_dec \[5\] = \[d_out\]"):
        A.Dictionary(Z, Y, [0.0], "transcoder", 0, 0.0, {}, torch.zeros(3, 6), torch.zeros(3), torch.zeros(5))
    with pytest.raises(ValueError, match="same space"):
        A.Dictionary(Z, Y, [0.0], "sae", 0, 0.0, {}, torch.zeros(3, 6), torch.zeros(3), torch.zeros(4))
