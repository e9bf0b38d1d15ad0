"""Zero, mean and resample ablation and backup heads against one forward pass per head (mutation group analysis2).

On the sharpened GPT-2 of ``tests/fixtures_teeth.py`` (3 layers, 4 heads, an unembedding bias) ablating one head
moves the logit difference by O(1), so every value is compared with an independent computation (``kit.Edit`` on
``z`` written here, the logits read directly) at a tolerance of 1e-4, far below the signal (asserted).
"""

from __future__ import annotations

import re

import pytest
import torch

import kit
import kit.analysis as A
from kit.analysis.ablation import AblationComparison, BackupResult

P, T = 4, 8
ANSWER, CONTRAST = [7, 8, 9, 10], [20, 21, 22, 23]


def _ids(seed: int) -> torch.Tensor:
    return torch.randint(5, 290, (P, T), generator=torch.Generator().manual_seed(seed))


def _diff(logits: torch.Tensor, a=ANSWER, c=CONTRAST) -> torch.Tensor:
    """``logit[answer] - logit[contrast]`` at the last position, one per prompt: ``[prompt]``."""
    rows = torch.arange(logits.shape[0])
    last = logits[:, -1].float()
    return last[rows, torch.tensor(a)] - last[rows, torch.tensor(c)]


def _replace(layer: int, head: int, value: torch.Tensor) -> kit.Edit:
    """Set ``z[:, :, head]`` of ``layer`` to ``value`` (``[prompt or 1, pos, d_head]``)."""
    def fn(x):
        x = x.clone()
        x[:, :, head] = value.expand(x.shape[0], -1, -1)
        return x
    return kit.Edit("z", layer, fn)


def _reference_effects(m, ids, ref_ids, heads):
    """``effects[method, layer, head]`` and ``spread[layer, head]`` by one forward pass per head and method."""
    ref = m.trace(ref_ids, capture=["z"])
    clean = _diff(m.trace(ids, capture=[]).logits)
    effects = torch.full((3, m.n_layers, m.n_heads), float("nan"))
    spread = torch.full((m.n_layers, m.n_heads), float("nan"))
    for l, h in heads:
        z = ref["z", l][:, :, h]  # [ref prompt, pos, d_head]
        values = {"zero": torch.zeros_like(z[:1]), "mean": z.mean(0, keepdim=True), "resample": z.roll(-1, 0)}
        for i, method in enumerate(("zero", "mean", "resample")):
            d = _diff(m.trace(ids, capture=[], interventions=[_replace(l, h, values[method])]).logits) - clean
            effects[i, l, h] = d.mean()
            if method == "resample":
                spread[l, h] = d.std()
    return effects, spread, float(clean.mean())


@pytest.mark.parametrize("reference", [False, True], ids=["reference-is-prompts", "other-reference"])
def test_compare_ablations_equals_one_forward_pass_per_head_and_method(teeth, reference):
    m = teeth["gpt2"]
    ids, other = _ids(0), _ids(1)
    heads = [(0, 1), (1, 3), (2, 0), (2, 2)]
    got = A.compare_ablations(m, ids, ANSWER, CONTRAST, heads=heads, reference=other if reference else None)
    effects, spread, clean = _reference_effects(m, ids, other if reference else ids, heads)
    assert got.methods == ("zero", "mean", "resample")
    torch.testing.assert_close(got.effects, effects, atol=1e-4, rtol=0, equal_nan=True)
    torch.testing.assert_close(got.spread, spread, atol=1e-4, rtol=0, equal_nan=True)
    assert got.clean == pytest.approx(clean, abs=1e-5)
    for l, h in heads:  # signals far above the tolerance, and the three methods differ
        assert float(effects[:, l, h].abs().max()) > 0.05
    done = torch.zeros(m.n_layers, m.n_heads, dtype=torch.bool)
    done[tuple(zip(*heads))] = True
    assert got.effects[:, ~done].isnan().all() and got.spread[~done].isnan().all()  # heads not asked: NaN
    assert got.of("resample")[done].equal(got.effects[2][done]) and got.of("mean")[done].equal(got.effects[1][done])


def test_compare_ablations_covers_every_head_by_default(teeth):
    m = teeth["gpt2"]
    got = A.compare_ablations(m, _ids(0), ANSWER, CONTRAST)
    assert got.effects.shape == (3, m.n_layers, m.n_heads) and not got.effects.isnan().any()
    assert not got.spread.isnan().any() and (got.spread > 0).all()
    one = A.compare_ablations(m, _ids(0), ANSWER, CONTRAST, heads=[(1, 2)])
    torch.testing.assert_close(one.effects[:, 1, 2], got.effects[:, 1, 2], atol=1e-5, rtol=0)


def test_ablating_two_heads_of_one_layer_changes_only_them(teeth):
    m = teeth["gpt2"]
    ids, other = _ids(0), _ids(1)
    ref = m.trace(other, capture=["z"])
    clean = m.trace(ids, capture=["z"])
    for method in ("zero", "mean", "resample"):
        ivs = A.ablate_heads(m, [(1, 0), (1, 2)], method, ref)
        assert len(ivs) == 1  # one intervention per layer
        got = m.trace(ids, capture=["z"], interventions=ivs)
        for h in (0, 2):
            z = ref["z", 1][:, :, h]
            want = {"zero": torch.zeros_like(z), "mean": z.mean(0, keepdim=True).expand_as(z),
                    "resample": z.roll(-1, 0)}[method]
            torch.testing.assert_close(got["z", 1][:, :, h], want, atol=1e-6, rtol=0)
        for h in (1, 3):  # the other heads of that layer and the layer before: untouched, exactly
            assert torch.equal(got["z", 1][:, :, h], clean["z", 1][:, :, h])
        assert torch.equal(got["z", 0], clean["z", 0])


def test_a_mean_reference_of_any_count_serves_any_batch(teeth):
    m = teeth["gpt2"]
    ref = m.trace(_ids(1)[:3], capture=["z"])  # 3 reference prompts for 4 traced ones
    got = m.trace(_ids(0), capture=["z"], interventions=A.ablate_heads(m, [(2, 1)], "mean", ref))
    want = ref["z", 2][:, :, 1].mean(0, keepdim=True).expand(P, -1, -1)
    torch.testing.assert_close(got["z", 2][:, :, 1], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method,ref_shape", [("resample", (3, T)), ("mean", (P, T - 1)), ("resample", (P, T - 1))],
                         ids=["resample-3-prompts", "mean-shorter", "resample-shorter"])
def test_a_reference_of_the_wrong_shape_is_refused_with_both_shapes(teeth, method, ref_shape):
    m = teeth["gpt2"]
    ref = m.trace(torch.randint(5, 290, ref_shape, generator=torch.Generator().manual_seed(2)), capture=["z"])
    n = 1 if method == "mean" else ref_shape[0]
    msg = (f"the reference has shape [{n}, {ref_shape[1]}, 4, 8]; the traced batch needs [4 (or 1 for mean), 8, ...]: "
           f"same prompts count and length")
    with pytest.raises(ValueError, match=re.escape(msg) + "$"):
        m.trace(_ids(0), capture=[], interventions=A.ablate_heads(m, [(0, 0)], method, ref))


def test_an_unknown_method_is_refused_with_the_valid_ones(teeth):
    with pytest.raises(ValueError, match=re.escape("method='knockout'; valid: zero, mean, resample") + "$"):
        A.ablate_heads(teeth["gpt2"], [(0, 0)], "knockout", None)


PADDED = ["The cat sat on the mat.", "The cat"]
SAME = ["The cat sat on the mat.", "The mat sat on the cat."]


@pytest.mark.parametrize("call,what", [
    (lambda m: A.compare_ablations(m, PADDED, " cat", " mat"), "prompts"),
    (lambda m: A.compare_ablations(m, SAME, " cat", " mat", reference=PADDED), "reference prompts"),
    (lambda m: A.backup_heads(m, PADDED, " cat", " mat", ablate=[(0, 0)]), "prompts"),
    (lambda m: A.backup_heads(m, SAME, " cat", " mat", ablate=[(0, 0)], reference=PADDED), "reference prompts"),
], ids=["compare-prompts", "compare-reference", "backup-prompts", "backup-reference"])
def test_prompts_of_different_lengths_are_refused_naming_which(teeth, call, what):
    m = teeth["gpt2"]
    assert len(m.to_tokens(SAME[0])) == len(m.to_tokens(SAME[1]))
    msg = f"{what} must all have one token length (positions are compared across prompts)"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        call(m)


def test_a_single_prompt_is_refused_with_the_reason(teeth):
    msg = "give at least 2 prompts: resample ablation takes each head's output from another prompt"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        A.compare_ablations(teeth["gpt2"], _ids(0)[:1], 7, 20)
    assert A.compare_ablations(teeth["gpt2"], _ids(0)[:2], 7, 20, heads=[(0, 0)]).effects.shape == (3, 3, 4)


def test_the_comparison_repr_names_each_methods_strongest_head():
    effects = torch.zeros(3, 2, 3)
    effects[0, 1, 2] = -2.0  # zero: L1H2
    effects[1, 0, 1] = -0.5  # mean: L0H1
    effects[2, 1, 0] = -1.25  # resample: L1H0
    effects[2, 0, 2] = 3.0  # the largest value is not the strongest (most negative) effect
    cmp = AblationComparison(effects, torch.zeros(2, 3), 1.5)
    assert repr(cmp) == ("AblationComparison(clean=1.500; zero: strongest L1H2 -2.00; mean: strongest L0H1 -0.50; "
                         "resample: strongest L1H0 -1.25)")
    assert torch.equal(cmp.of("zero"), effects[0])


# --- backup heads --------------------------------------------------------------------------------------

def _dla_heads(m, tr):
    """Each head's direct effect on the logit difference, mean over prompts: ``[layer, head]``."""
    return A.direct_logit_attribution(tr, ANSWER, CONTRAST, neurons=False).heads.mean(0)


@pytest.mark.parametrize("method", ["mean", "resample", "zero"])
def test_backup_heads_are_the_direct_effects_before_and_after_the_ablation(teeth, method):
    m = teeth["gpt2"]
    ids, other = _ids(0), _ids(1)
    names = ["resid_pre", "resid_post", "head_out", "mlp_out"]
    ref = m.trace(other, capture=["z"])
    z = ref["z", 1][:, :, 3]
    value = {"zero": torch.zeros_like(z[:1]), "mean": z.mean(0, keepdim=True), "resample": z.roll(-1, 0)}[method]
    before, after = m.trace(ids, capture=names), m.trace(ids, capture=names, interventions=[_replace(1, 3, value)])
    got = A.backup_heads(m, ids, ANSWER, CONTRAST, ablate=[[1, -1]], method=method, reference=other)
    torch.testing.assert_close(got.before, _dla_heads(m, before), atol=1e-4, rtol=0)
    torch.testing.assert_close(got.after, _dla_heads(m, after), atol=1e-4, rtol=0)
    assert float((got.after - got.before).abs().max()) > 0.05  # the ablation moved some head's direct effect
    assert got.metric_before == pytest.approx(float(_diff(before.logits).mean()), abs=1e-4)
    assert got.metric_after == pytest.approx(float(_diff(after.logits).mean()), abs=1e-4)
    assert abs(got.metric_after - got.metric_before) > 0.05
    assert got.ablated == [(1, 3)] and got.method == method


def test_backup_heads_default_to_mean_ablation_over_the_prompts_themselves(teeth):
    m = teeth["gpt2"]
    ids = _ids(0)
    default = A.backup_heads(m, ids, ANSWER, CONTRAST, ablate=[(2, 1)])
    explicit = A.backup_heads(m, ids, ANSWER, CONTRAST, ablate=[(2, 1)], method="mean", reference=ids)
    assert default.method == "mean"
    assert torch.equal(default.after, explicit.after) and default.metric_after == explicit.metric_after
    resample = A.backup_heads(m, ids, ANSWER, CONTRAST, ablate=[(2, 1)], method="resample")
    assert float((resample.after - default.after).abs().max()) > 0.01


def test_backup_change_is_after_minus_before_with_the_ablated_heads_nan():
    before = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    after = torch.tensor([[1.5, 0.0, 0.5], [0.25, -2.0, 3.5]])
    r = BackupResult(before, after, [(0, 1), (1, 2)], "mean", 2.0, 1.25)
    want = torch.tensor([[0.5, float("nan"), 0.0], [0.25, -1.0, float("nan")]])
    torch.testing.assert_close(r.change, want, equal_nan=True, atol=0, rtol=0)
    assert not before.isnan().any() and not after.isnan().any()  # change does not write into them
    assert repr(r) == "BackupResult(ablated=[(0, 1), (1, 2)], mean; metric 2.00 -> 1.25; largest backup L0H0 +0.50)"
    r2 = BackupResult(before, after, [(0, 0)], "zero", 0.5, 0.25)
    assert repr(r2).endswith("largest backup L1H2 +0.50)")  # the ablated head is never the backup


def test_the_comparison_repr_skips_the_heads_that_were_not_ablated(teeth):
    """With ``heads=`` a subset, the other heads are NaN: the repr names the strongest of the ablated heads (it
    named L0H0 with ``+nan`` before)."""
    got = A.compare_ablations(teeth["gpt2"], _ids(0), ANSWER, CONTRAST, heads=[(1, 3), (2, 2)])
    text = repr(got)
    assert "nan" not in text
    for method in got.methods:
        e = got.of(method)
        l, h = min(((1, 3), (2, 2)), key=lambda lh: float(e[lh]))
        assert f"{method}: strongest L{l}H{h} {float(e[l, h]):+.2f}" in text


@pytest.mark.parametrize("name,call", [
    ("compare_ablations", lambda m: A.compare_ablations(m, SAME, " cat", " mat")),
    ("backup_heads", lambda m: A.backup_heads(m, SAME, " cat", " mat", ablate=[(0, 0)])),
    ("ablate_heads", lambda m: A.ablate_heads(m, [(0, 0)], "zero", None)),
], ids=["compare_ablations", "backup_heads", "ablate_heads"])
def test_a_model_name_instead_of_a_model_is_refused_naming_the_function(name, call):
    """``ablate_heads`` raised AttributeError ('str' object has no attribute 'n_layers') before."""
    msg = f"{name} takes a kit model from kit.load(...); got str (a name: load it first, model = kit.load('gpt2'))"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        call("gpt2")


def test_the_reprs_never_name_a_head_that_was_not_measured():
    """Heads left out (NaN) are skipped even when every measured effect is positive (a NaN read as 0 would
    win the minimum), and an ablated head is never the largest backup even when every change is negative."""
    effects = torch.full((3, 2, 2), float("nan"))
    effects[:, 1, 1] = torch.tensor([0.5, 0.25, 0.75])
    cmp = AblationComparison(effects, torch.zeros(2, 2), 0.0)
    assert repr(cmp) == ("AblationComparison(clean=0.000; zero: strongest L1H1 +0.50; mean: strongest L1H1 +0.25; "
                         "resample: strongest L1H1 +0.75)")
    before, after = torch.zeros(2, 2), torch.tensor([[-1.0, -0.5], [-2.0, -0.25]])
    r = BackupResult(before, after, [(1, 1)], "mean", 1.0, 0.5)
    assert repr(r).endswith("largest backup L0H1 -0.50)")
