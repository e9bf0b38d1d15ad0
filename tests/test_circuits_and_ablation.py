"""QK/OV circuits, composition scores, and the three ablations, on tiny models and the shipped zoo."""

from __future__ import annotations

import json

import pytest
import torch

import kit
import kit.analysis as A
import kit.analysis.circuits as C
from kit.train.ioi import IOIRecipe, eval_prompts
from kit.train.ioi_card import head_roles
from tests.zoo import ZOO


@pytest.fixture(scope="module")
def induction():
    return kit.load("induction-2l", device="cpu")


@pytest.fixture(scope="module")
def ioi():
    return kit.load("ioi-3l", device="cpu")


@pytest.fixture(scope="module")
def ioi_prompts():
    ps = eval_prompts(IOIRecipe(), "heads", 32)
    return [p.text for p in ps], [p.io for p in ps], [p.s for p in ps]


def roles_of(name):
    return json.loads((ZOO / name / "figures.json").read_text())["measured"]


# --- QK / OV -------------------------------------------------------------------------------------------

def test_ov_copying_score_matches_the_independent_eigenvalue_computation(induction):
    ref = A.copying_scores(induction)  # computed on the small [d_head, d_head] matrix
    for l in range(induction.n_layers):
        for h in range(induction.n_heads):
            assert A.ov_circuit(induction, l, h).copying_score == pytest.approx(float(ref[l, h]), abs=1e-3)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_circuits_over_some_tokens_are_submatrices_of_the_full_ones(tiny_models, family):
    m = tiny_models[family]
    ids = [5, 17, 40, 41]
    for fn in (A.qk_circuit, A.ov_circuit):
        full, part = fn(m, 1, 2), fn(m, 1, 2, tokens=ids)
        torch.testing.assert_close(part.matrix, full.matrix[ids][:, ids])
        assert part.labels == m.tokenizer.convert_ids_to_tokens(ids)
        assert part.top(part.labels[0], k=2)[0][1] == pytest.approx(float(part.matrix[0].max()))


def test_qk_circuit_is_the_models_own_score_for_a_query_and_key_vector(tiny_models):
    """The QK entry for (query token a, key token b) is q(E[a]) . k(E[b]) / sqrt(d_head), with the head's own
    projection weights (GPT-2 packs them in one Conv1D; biases left out)."""
    m = tiny_models["gpt2"]
    attn = m.hf.transformer.h[1].attn
    W = attn.c_attn.weight.detach()  # [d_model, 3 * d_model]
    E = m.hf.transformer.wte.weight.detach()
    d, h = m.d_head, 2
    q = E[7] @ W[:, h * d:(h + 1) * d]
    k = E[9] @ W[:, m.d_model + h * d: m.d_model + (h + 1) * d]
    assert float(A.qk_circuit(m, 1, h).matrix[7, 9]) == pytest.approx(float(q @ k) / d ** 0.5, rel=1e-4)


def test_a_full_circuit_of_a_big_vocabulary_is_refused(tiny_models, monkeypatch):
    monkeypatch.setattr(C, "MAX_FULL_VOCAB", 100)
    with pytest.raises(ValueError, match="tokens="):
        A.ov_circuit(tiny_models["gpt2"], 0, 0)
    assert A.ov_circuit(tiny_models["gpt2"], 0, 0, tokens=[3, 4]).matrix.shape == (2, 2)


def test_k_composition_from_the_previous_token_head_to_the_induction_head_stands_out(induction):
    """By role (the card's heads): the card's prev-token head -> induction head K-composition is the largest
    composition score of any kind into the induction head, and > 10 standard deviations above random matrices of
    the same shapes. The heads of layer 0 with a prev-token score >= 0.8 (on the shipped induction-2l one, L0H0)
    each K-compose with the induction head more than every other layer-0 head does."""
    m = roles_of("induction-2l")
    prev, ind = m["prev_token_head"], m["induction_head"]
    comp = {k: A.composition_scores(induction, k)[0, :, 1, ind] for k in "qkv"}  # [head of layer 0]
    kc = float(comp["k"][prev])
    assert kc == pytest.approx(float(torch.cat([comp[k] for k in "qkv"]).max()))
    assert kc > float(torch.cat([comp["q"], comp["v"]]).max()) * 1.5
    prev_heads = A.prev_token_scores(induction)[0] >= 0.8  # [head of layer 0]
    assert prev_heads[prev] and 1 <= int(prev_heads.sum()) < induction.n_heads
    assert float(comp["k"][prev_heads].min()) > float(comp["k"][~prev_heads].max())
    mean, std = A.composition_baseline(induction, "k")
    assert kc > mean + 10 * std


def test_the_ioi_answer_heads_copy_names(ioi):
    """The OV circuit of the last layer's answer head (by the card's role), restricted to the names, raises the
    attended name itself for at least 5x as many names as chance (1 in 24)."""
    names = IOIRecipe().names()
    roles = head_roles(roles_of("ioi-3l")["heads"])
    last = [r for r in roles["answer"] if r.startswith(f"L{ioi.n_layers - 1}")]
    assert last
    l, h = int(last[0][1]), int(last[0][3])
    ov = A.ov_circuit(ioi, l, h, tokens=names)
    assert ov.diagonal_share >= 5 / len(names)


# --- ablations ------------------------------------------------------------------------------------------

def test_each_ablation_equals_its_definition(tiny_models):
    m = tiny_models["gpt2"]
    ids = torch.randint(5, 200, (4, 9), generator=torch.Generator().manual_seed(0))
    ref = m.trace(ids, capture=["z"])
    heads = [(1, 2), (2, 0)]
    for method in A.ablation.METHODS:
        got = m.trace(ids, capture=["z"], interventions=A.ablate_heads(m, heads, method, ref))
        for l, h in heads:
            z = ref["z", l][:, :, h]
            want = {"zero": torch.zeros_like(z), "mean": z.mean(0, keepdim=True).expand_as(z),
                    "resample": z[[1, 2, 3, 0]]}[method]
            torch.testing.assert_close(got["z", l][:, :, h], want)
        torch.testing.assert_close(got["z", 1][:, :, 0], ref["z", 1][:, :, 0])  # other heads untouched
        torch.testing.assert_close(got["z", 0], ref["z", 0])  # and earlier layers


def test_ablations_agree_on_the_answer_heads_but_not_with_patching(ioi, ioi_prompts):
    """On ioi-3l, zero, mean and resample ablation all make the card's answer heads the most harmful to
    remove; and some head costs over 1 logit when ablated (every method) while patching it restores less
    than 0.15 of the gap: ablation and patching answer different questions."""
    texts, io, s = ioi_prompts
    cmp = A.compare_ablations(ioi, texts, io, s)
    figs = roles_of("ioi-3l")["heads"]
    answer = head_roles(figs)["answer"]
    for method in A.ablation.METHODS:
        e = cmp.of(method)
        worst = sorted(((float(e[l, h]), f"L{l}H{h}") for l in range(3) for h in range(4)))[:len(answer)]
        assert {n for _, n in worst} == set(answer), method
    restores = torch.tensor(figs["patch_restores"])
    gap = [(l, h) for l in range(3) for h in range(4)
           if all(float(cmp.of(m)[l, h]) < -1.0 for m in A.ablation.METHODS) and restores[l, h] < 0.15]
    assert gap, "no head with a large ablation effect and a small patching effect"
    assert (cmp.spread[~cmp.spread.isnan()] >= 0).all()


def test_backup_is_weak_and_shows_under_mean_ablation_only(ioi, ioi_prompts):
    """Mean-ablating the last layer's answer head raises two other heads' direct effects by >= 0.2 each (a
    weak backup: under a quarter of the ablated head's own direct effect), and no head gains >= 0.2 under
    resample ablation."""
    texts, io, s = ioi_prompts
    roles = head_roles(roles_of("ioi-3l")["heads"])
    name = [r for r in roles["answer"] if r.startswith(f"L{ioi.n_layers - 1}")][0]
    target = (int(name[1]), int(name[3]))
    mean = A.backup_heads(ioi, texts, io, s, ablate=[target], method="mean")
    gains = mean.change.nan_to_num(-1.0)
    assert int((gains >= 0.2).sum()) == 2
    assert float(gains.max()) < 0.25 * float(mean.before[target])
    assert mean.metric_after < mean.metric_before
    resample = A.backup_heads(ioi, texts, io, s, ablate=[target], method="resample")
    assert float(resample.change.nan_to_num(-1.0).max()) < 0.2
