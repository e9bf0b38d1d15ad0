"""``kit.analysis.splice`` against mutation survivors (issue 16): ``mlp_io`` and ``splice`` compared with the
same quantities computed here prompt by prompt (one trace each, no padding), with dictionaries built by hand whose
effect is known and large; the result's derived numbers and text; the exact refusals."""

from __future__ import annotations

import math

import pytest
import torch

import kit
from kit.analysis.dictionary import Dictionary
from kit.analysis.splice import SpliceResult, mlp_io, splice
from kit.interventions import Edit
from kit.models import ZOO_DIR

PROMPTS = ["The capital of Veloria is", "The cat", "Paris is a city in the north of", "A B", "The currency of Veloria is the"]


@pytest.fixture(scope="module")
def facts():
    if not (ZOO_DIR / "facts-4l" / "config.json").is_file():
        pytest.skip("facts-4l is not shipped")
    torch.set_num_threads(1)
    return kit.load("facts-4l", device="cpu")


def _sae(d: int, scale: float) -> Dictionary:
    """An SAE of ``d`` neurons that writes ``scale * x`` back (for inputs above -50): far from exact when scale != 1.
    ``y = relu(x - b_dec + b_enc) = x + 50``, ``x̂ = scale * y + b_dec = scale * x``."""
    eye = torch.eye(d)
    return Dictionary(eye * scale, torch.zeros(d, 1), [0.0], "sae", 0, 0.0, {}, eye.clone(),
                      torch.full((d,), 50.0 - 50.0 * scale), torch.full((d,), -50.0 * scale))


def _tc(d: int, W: torch.Tensor, b: torch.Tensor) -> Dictionary:
    """A transcoder ``t = W relu(x) + b`` (k = d latents)."""
    return Dictionary(W, torch.zeros(d, 1), [0.0], "transcoder", 0, 0.0, {}, torch.eye(d), torch.zeros(d), b)


# ------------------------------------------------------------------------------------------ mlp_io
def test_mlp_io_is_each_prompts_own_trace_in_order(facts):
    io = mlp_io(facts, PROMPTS, -3, batch_size=2)
    assert io.layer == 1 and io.col.layer == 1
    ins, hid, outs, which, pos = [], [], [], [], []
    for i, p in enumerate(PROMPTS):
        tr = facts.trace(p, capture=["mlp_normalized", "mlp_post", "mlp_out"], layers=[1])
        ins.append(tr["mlp_normalized", 1][0])
        hid.append(tr["mlp_post", 1][0])
        outs.append(tr["mlp_out", 1][0])
        which += [i] * tr.mask.shape[1]
        pos += list(range(tr.mask.shape[1]))
    assert torch.allclose(io.inputs, torch.cat(ins).T, atol=1e-5)
    assert torch.allclose(io.hidden, torch.cat(hid).T, atol=1e-5)
    assert torch.allclose(io.outputs, torch.cat(outs).T, atol=1e-5)
    assert io.col.prompt.tolist() == which and io.col.pos.tolist() == pos
    assert io.n_tokens == len(which) and io.hidden is io.col.acts
    assert io.inputs.is_contiguous() and io.outputs.is_contiguous() and io.inputs.dtype == torch.float32
    assert io.col.prompt_tokens == [facts.trace(p, capture=[]).tokens[0] for p in PROMPTS]
    assert io.col.token_ids.tolist() == sum((facts.trace(p, capture=[]).input_ids[0].tolist() for p in PROMPTS), [])
    assert repr(io) == f"MLPInOut(layer=1, inputs [128, n], hidden [512, n], outputs [128, n], n_tokens={len(which)})"


def test_mlp_io_takes_one_prompt_as_a_string(facts):
    io = mlp_io(facts, PROMPTS[0], 0)
    tr = facts.trace(PROMPTS[0], capture=["mlp_post"], layers=[0])
    assert io.n_tokens == tr.mask.shape[1] and torch.allclose(io.hidden, tr["mlp_post", 0][0].T, atol=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: mlp_io(m, [], 0), ValueError, "no prompts given"),
    (lambda m: mlp_io(m, (), 0), ValueError, "no prompts given"),
], ids=["list", "tuple"])
def test_mlp_io_refusals(facts, call, error, message):
    with pytest.raises(error) as e:
        call(facts)
    assert str(e.value) == message


# ------------------------------------------------------------------------------------------ the result
def test_recovered_is_the_share_of_the_gap_closed_and_nan_without_a_gap():
    r = SpliceResult(1.0, 1.5, 3.0, 0.2, 2.0, "mean", "sae", 2, 40)
    assert r.recovered == pytest.approx(0.75)
    assert SpliceResult(1.0, 4.0, 3.0, 0.2, 2.0, "mean", "sae", 2, 40).recovered == pytest.approx(-0.5)
    assert math.isnan(SpliceResult(1.0, 1.5, 1.0, 0.2, 2.0, "zero", "sae", 2, 40).recovered)
    assert repr(r) == ("SpliceResult(sae at MLP 2: loss clean 1.0000, spliced 1.5000, mean-ablated 3.0000 -> recovered "
                       "75.0%; KL 0.2000 (ablated 2.0000); 40 predictions)")


# ------------------------------------------------------------------------------------------ splice
def _loop(model, layer, edit_site, edit_fn, ablation_fill):
    """Per prompt, one trace each: next-token losses and KL(clean || edited) at every real position."""
    clean_l, spl_l, abl_l, kl_s, kl_a, n = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for p in PROMPTS:
        ids = model.trace(p, capture=[]).input_ids[0]
        lc = model.trace(p, capture=[]).logits[0].float().log_softmax(-1)
        ls = model.trace(p, capture=[], interventions=[Edit(edit_site, layer, edit_fn)]).logits[0].float().log_softmax(-1)
        la = model.trace(p, capture=[], interventions=[
            Edit("mlp_out", layer, lambda a: ablation_fill.expand_as(a).clone())]).logits[0].float().log_softmax(-1)
        for q in range(len(ids) - 1):
            t = int(ids[q + 1])
            clean_l -= float(lc[q, t])
            spl_l -= float(ls[q, t])
            abl_l -= float(la[q, t])
            kl_s += float((lc[q].exp() * (lc[q] - ls[q])).sum())
            kl_a += float((lc[q].exp() * (lc[q] - la[q])).sum())
            n += 1
    return clean_l / n, spl_l / n, abl_l / n, kl_s / n, kl_a / n, n


def _mean_out(model, layer):
    outs = [model.trace(p, capture=["mlp_out"], layers=[layer])["mlp_out", layer][0] for p in PROMPTS]
    return torch.cat(outs).mean(0)


def test_an_sae_is_spliced_into_the_neurons_and_compared_with_mean_ablation(facts):
    sae = _sae(facts.d_mlp, 0.5)
    r = splice(facts, PROMPTS, 0, sae, batch_size=2)
    want = _loop(facts, 0, "mlp_post", lambda a: 0.5 * a, _mean_out(facts, 0))
    got = (r.clean_loss, r.spliced_loss, r.ablated_loss, r.kl, r.ablated_kl, r.n_predictions)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert r.kl > 0.01 and r.ablated_kl > 0.1 and abs(r.spliced_loss - r.clean_loss) > 1e-3  # far from a no-op
    assert (r.ablation, r.kind, r.layer) == ("mean", "sae", 0)


def test_a_transcoder_replaces_the_mlps_output_from_its_normalised_input_and_zero_ablation(facts):
    d = facts.d_model
    g = torch.Generator().manual_seed(0)
    W = 0.5 * torch.randn(d, d, generator=g) / d ** 0.5
    b = 0.1 * torch.randn(d, generator=g)
    tc = _tc(d, W, b)
    r = splice(facts, PROMPTS, -3, tc, ablation="zero", batch_size=3)
    assert (r.ablation, r.kind, r.layer) == ("zero", "transcoder", 1)

    want_spliced = []  # the transcoder applied to each prompt's own mlp_normalized
    for p in PROMPTS:
        tr = facts.trace(p, capture=["mlp_normalized"], layers=[1])
        want_spliced.append(torch.relu(tr["mlp_normalized", 1][0]) @ W.T + b)
    clean_l, spl_l, abl_l, kl_s, kl_a, n = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for p, new in zip(PROMPTS, want_spliced):
        ids = facts.trace(p, capture=[]).input_ids[0]
        lc = facts.trace(p, capture=[]).logits[0].float().log_softmax(-1)
        ls = facts.trace(p, capture=[], interventions=[Edit("mlp_out", 1, lambda a, v=new: v[None])]).logits[0]
        ls = ls.float().log_softmax(-1)
        la = facts.trace(p, capture=[], interventions=[Edit("mlp_out", 1, lambda a: torch.zeros_like(a))]).logits[0]
        la = la.float().log_softmax(-1)
        t = ids[1:]
        clean_l -= float(lc[:-1].gather(1, t[:, None]).sum())
        spl_l -= float(ls[:-1].gather(1, t[:, None]).sum())
        abl_l -= float(la[:-1].gather(1, t[:, None]).sum())
        kl_s += float((lc[:-1].exp() * (lc[:-1] - ls[:-1])).sum())
        kl_a += float((lc[:-1].exp() * (lc[:-1] - la[:-1])).sum())
        n += len(t)
    got = (r.clean_loss, r.spliced_loss, r.ablated_loss, r.kl, r.ablated_kl, r.n_predictions)
    assert got == pytest.approx((clean_l / n, spl_l / n, abl_l / n, kl_s / n, kl_a / n, n), rel=1e-4, abs=1e-5)
    assert r.kl > 0.01 and r.ablated_kl > 0.01


def test_the_default_ablation_is_the_mean_and_the_batch_size_does_not_change_the_numbers(facts):
    sae = _sae(facts.d_mlp, 0.5)
    a = splice(facts, PROMPTS, 0, sae)
    b = splice(facts, PROMPTS, 0, sae, ablation="mean", batch_size=1)
    assert a.ablation == "mean"
    assert (a.clean_loss, a.spliced_loss, a.ablated_loss, a.kl, a.ablated_kl) == pytest.approx(
        (b.clean_loss, b.spliced_loss, b.ablated_loss, b.kl, b.ablated_kl), rel=1e-4, abs=1e-5)
    z = splice(facts, PROMPTS, 0, sae, ablation="zero")
    assert abs(z.ablated_loss - a.ablated_loss) > 0.01 and z.spliced_loss == pytest.approx(a.spliced_loss, abs=1e-5)


def test_one_prompt_as_a_string(facts):
    sae = _sae(facts.d_mlp, 0.5)
    r = splice(facts, PROMPTS[0], 0, sae)
    assert r.n_predictions == facts.trace(PROMPTS[0], capture=[]).input_ids.shape[1] - 1


def test_prompts_of_one_token_have_nothing_to_predict(teeth):
    model = teeth["gpt2"]  # no BOS token: a one-character prompt is one token
    assert model.trace(["T", "a"], capture=[]).input_ids.shape[1] == 1
    with pytest.raises(ValueError) as e:
        splice(model, ["T", "a"], 0, _sae(model.d_mlp, 1.0), ablation="zero")
    assert str(e.value) == "the prompts have no next token to predict: give prompts of two tokens or more"


@pytest.mark.parametrize("kind", ["sae-d", "tc-d", "not-a-dictionary", "ablation", "batch"])
def test_splice_refusals_are_exact(facts, kind):
    d, dm = facts.d_mlp, facts.d_model
    eye = torch.eye(8)
    small_sae = Dictionary(eye, torch.zeros(8, 1), [0.0], "sae", 0, 0.0, {}, eye, torch.zeros(8), torch.zeros(8))
    wide_tc = Dictionary(torch.zeros(dm, 4), torch.zeros(4, 1), [0.0], "transcoder", 0, 0.0, {}, torch.zeros(4, d),
                         torch.zeros(4), torch.zeros(dm))
    cases = {
        "sae-d": (lambda: splice(facts, PROMPTS, 0, small_sae), ValueError,
                  f"an SAE spliced into the MLP must be trained on mlp_post [d_mlp={d}, n]; this one has d=8"),
        "tc-d": (lambda: splice(facts, PROMPTS, 0, wide_tc), ValueError,
                 f"a transcoder spliced into the MLP must map mlp_normalized [d_model={dm}] to mlp_out [d_model]; "
                 f"this one maps {d} -> {dm}"),
        "not-a-dictionary": (lambda: splice(facts, PROMPTS, 0, "sae"), TypeError,
                             "dictionary must be a kit.analysis.Dictionary (from train_sae or train_transcoder); got str"),
        "ablation": (lambda: splice(facts, PROMPTS, 0, _sae(d, 1.0), ablation="resample"), ValueError,
                     "ablation must be 'mean' or 'zero'; got 'resample'"),
        "batch": (lambda: splice(facts, PROMPTS, 0, _sae(d, 1.0), batch_size=0), ValueError, None),
    }
    call, error, message = cases[kind]
    with pytest.raises(error) as e:
        call()
    if message is not None:
        assert str(e.value) == message
    else:
        assert "batch_size" in str(e.value)
    with pytest.raises(ValueError) as e:
        splice(facts, [], 0, _sae(d, 1.0))
    assert str(e.value) == "no prompts given"


# ------------------------------------------------------------------------------------------ survivors of the first run
@pytest.mark.parametrize("kind", ["mlp_io-model", "mlp_io-batch0", "mlp_io-batch-float", "splice-model", "splice-batch0"])
def test_the_model_and_batch_size_refusals_name_the_function_and_the_argument(facts, kind):
    sae = _sae(facts.d_mlp, 1.0)
    cases = {
        "mlp_io-model": (lambda: mlp_io("facts-4l", PROMPTS, 0), TypeError,
                         "mlp_io takes a kit model from kit.load(...); got str (a name: load it first, "
                         "model = kit.load('facts-4l'))"),
        "mlp_io-batch0": (lambda: mlp_io(facts, PROMPTS, 0, batch_size=0), ValueError,
                          "batch_size must be an integer >= 1; got 0"),
        "mlp_io-batch-float": (lambda: mlp_io(facts, PROMPTS, 0, batch_size=1.5), TypeError,
                               "batch_size must be an integer >= 1; got 1.5"),
        "splice-model": (lambda: splice(facts.trace("A B", capture=[]), PROMPTS, 0, sae), TypeError,
                         "splice takes a kit model from kit.load(...); got Trace (this is a Trace: pass tr.model)"),
        "splice-batch0": (lambda: splice(facts, PROMPTS, 0, sae, batch_size=0), ValueError,
                          "batch_size must be an integer >= 1; got 0"),
    }
    call, error, message = cases[kind]
    with pytest.raises(error) as e:
        call()
    assert str(e.value) == message


def test_mlp_io_takes_a_batch_of_one(facts):
    a, b = mlp_io(facts, PROMPTS, 2, batch_size=1), mlp_io(facts, PROMPTS, 2, batch_size=64)
    assert torch.allclose(a.inputs, b.inputs, atol=1e-5) and torch.allclose(a.outputs, b.outputs, atol=1e-5)
    assert a.col.prompt.tolist() == b.col.prompt.tolist() and a.col.pos.tolist() == b.col.pos.tolist()


def test_mean_ablation_uses_the_exact_mean_on_an_rmsnorm_model(teeth):
    """On a LayerNorm model a constant added to every coordinate of ``mlp_out`` is centred away by every later norm;
    RMSNorm keeps it, so the mean that ablation writes is checked to the last coordinate here."""
    model = teeth["llama"]
    prompts = ["The cat", "A B C"]
    sae = _sae(model.d_mlp, 0.5)
    r = splice(model, prompts, 1, sae, batch_size=1)
    outs = [model.trace(p, capture=["mlp_out"], layers=[1])["mlp_out", 1][0] for p in prompts]
    mean = torch.cat(outs).mean(0)
    abl, n = 0.0, 0
    for p in prompts:
        ids = model.trace(p, capture=[]).input_ids[0]
        la = model.trace(p, capture=[], interventions=[Edit("mlp_out", 1, lambda a: mean.expand_as(a).clone())])
        lp = la.logits[0].float().log_softmax(-1)
        abl -= float(lp[:-1].gather(1, ids[1:, None]).sum())
        n += len(ids) - 1
    assert r.n_predictions == n
    assert r.ablated_loss == pytest.approx(abl / n, rel=1e-6, abs=1e-6)
    off = mean + 1 / (n + len(prompts))  # the mean off by 1 / n_tokens in every coordinate
    moved = 0.0
    for p in prompts:
        ids = model.trace(p, capture=[]).input_ids[0]
        la = model.trace(p, capture=[], interventions=[Edit("mlp_out", 1, lambda a: off.expand_as(a).clone())])
        moved -= float(la.logits[0].float().log_softmax(-1)[:-1].gather(1, ids[1:, None]).sum())
    assert abs(moved / n - abl / n) > 1e-3  # measured 7e-3 (splice agrees with the loop to 2e-7)


@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_splice_runs_a_bfloat16_model_in_its_own_dtype(ablation):
    """The spliced values and the ablation's fill are cast to the model's dtype: float32 ones would stop a bfloat16
    model ("mat1 and mat2 must have the same dtype", "mixed dtype")."""
    if not (ZOO_DIR / "facts-4l" / "config.json").is_file():
        pytest.skip("facts-4l is not shipped")
    half = kit.load("facts-4l", device="cpu", dtype="bfloat16")
    full = kit.load("facts-4l", device="cpu")
    sae = _sae(half.d_mlp, 0.5)
    tc = _tc(half.d_model, torch.eye(half.d_model) * 0.5, torch.zeros(half.d_model))
    for dic in (sae, tc):
        a, b = splice(half, PROMPTS, 0, dic, ablation=ablation), splice(full, PROMPTS, 0, dic, ablation=ablation)
        assert (a.spliced_loss, a.ablated_loss) == pytest.approx((b.spliced_loss, b.ablated_loss), rel=0.02)
