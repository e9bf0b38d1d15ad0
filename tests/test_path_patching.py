"""Path patching and attribution patching, batched, against straightforward one-forward-per-edge loops."""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A
from tests.references import central_difference, path_patching_loop

FAMILIES = ["gpt2", "gpt_neox", "llama"]
P, T = 3, 10


@pytest.fixture(scope="module")
def loud_models(tiny_dirs):
    """Tiny random models with their matrices scaled up, so patching effects are O(1), far above float error."""
    out = {}
    for fam in FAMILIES:
        m = kit.load(tiny_dirs[fam], device="cpu")
        with torch.no_grad():
            for p in m.hf.parameters():
                if p.ndim == 2:
                    p.mul_(8.0)
        out[fam] = m
    return out


def prompts(m):
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(5, m.vocab_size, (P, T), generator=g)
    corrupted = clean.clone()
    corrupted[:, 2] = torch.randint(5, m.vocab_size, (P,), generator=g)
    corrupted[:, 5] = torch.randint(5, m.vocab_size, (P,), generator=g)
    return clean, corrupted, [7, 8, 9], [10, 11, 12]


def metric(logits, a, c):
    rows = torch.arange(logits.shape[0])
    return float((logits[rows, -1, a] - logits[rows, -1, c]).mean())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("receivers,receiver_input,pos", [
    ("logits", "all", None),
    ([(2, 1)], "all", None),
    ([(2, 0), (2, 3)], "all", -1),
    ([(1, 2), (2, 1)], "all", None),  # receivers in two layers: neither feeds the other
    ([(2, 1)], "pattern", -1),
    ([(2, 1)], "values", None),
])
def test_path_patching_equals_the_loop(loud_models, family, receivers, receiver_input, pos):
    m = loud_models[family]
    clean, corrupted, a, c = prompts(m)
    got = A.path_patching(m, clean, corrupted, a, c, receivers=receivers, receiver_input=receiver_input,
                          receiver_pos=pos, batch_size=4)  # several chunks
    ref = path_patching_loop(m, clean, corrupted, lambda logits: metric(logits, a, c), receivers, receiver_input, pos)
    torch.testing.assert_close(got.scores, ref, atol=2e-5, rtol=0, equal_nan=True)
    moved = (ref - got.clean).abs().nan_to_num(0)
    assert moved.max() > 1e-3  # a signal 50 x the tolerance
    assert got.scores[min(l for l, _ in receivers):].isnan().all() if receivers != "logits" else True


def test_path_patching_leaves_the_metric_alone_when_clean_equals_corrupted(loud_models):
    m = loud_models["gpt2"]
    clean, _, a, c = prompts(m)
    got = A.path_patching(m, clean, clean, a, c, receivers=[(2, 1)])
    torch.testing.assert_close(got.scores[:2], torch.full((2, m.n_heads), got.clean), atol=1e-4, rtol=0)


def test_path_patching_refuses_senders_above_receivers(loud_models):
    m = loud_models["gpt2"]
    clean, corrupted, a, c = prompts(m)
    with pytest.raises(ValueError, match="below"):
        A.path_patching(m, clean, corrupted, a, c, receivers=[(1, 0)], senders=[(1, 2)])
    with pytest.raises(ValueError, match="receiver_input"):
        A.path_patching(m, clean, corrupted, a, c, receivers=[(1, 0)], receiver_input="queries")
    with pytest.raises(ValueError, match="token length"):
        A.path_patching(m, clean, corrupted[:, :-1], a, c)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["heads", "resid", "mlp"])
def test_attribution_patching_equals_the_gradient_loop(loud_models, family, kind):
    m = loud_models[family]
    clean, corrupted, a, c = prompts(m)
    est = A.attribution_patching(m, clean, corrupted, a, c, kind=kind)
    ref = central_difference(m, clean, corrupted, kind, lambda logits: metric(logits, a, c), eps=1e-2)
    change = est.scores - est.corrupted
    torch.testing.assert_close(change, ref, atol=5e-4, rtol=1e-2)
    assert ref.abs().max() > 0.02  # 40 x the tolerance
    if kind != "heads":  # positions before the first corrupted token are equal in both runs: no change
        assert (change[:, :2] == 0).all()
    assert est.corrupted == pytest.approx(metric(m.trace(corrupted, capture=[]).logits, a, c), abs=1e-5)
    assert est.clean == pytest.approx(metric(m.trace(clean, capture=[]).logits, a, c), abs=1e-5)


def test_attribution_patching_is_exact_where_the_metric_is_linear(loud_models):
    """Patching the last layer's MLP output at the last position changes the final residual linearly
    (up to the final norm), so the estimate tracks real patching closely there."""
    m = loud_models["gpt2"]
    clean, corrupted, a, c = prompts(m)
    est = A.attribution_patching(m, clean[:1], corrupted[:1], a[0], c[0], kind="heads")
    real = A.activation_patching(m, clean[0], corrupted[0], a[0], c[0], kind="heads")
    agree = A.agreement(est, real)
    assert agree.error.shape == (m.n_layers, m.n_heads)
    torch.testing.assert_close(agree.error, est.scores - real.scores)


def test_attribution_patching_fails_on_a_saturated_softmax(tiny_dirs):
    """The documented failure: with p(answer) as the metric and a softmax saturated by huge logits, the
    gradient is ~0, so the estimate says "nothing matters" while real patching moves p(answer) by ~1."""
    m = kit.load(tiny_dirs["gpt2"], device="cpu")
    with torch.no_grad():  # the final norm's weight and bias x 400: every logit x 400
        m.adapter.final_norm.weight.mul_(400.0)
        m.adapter.final_norm.bias.mul_(400.0)
    g = torch.Generator().manual_seed(3)
    p_last = lambda ids, t: float(m.trace(ids, capture=[]).logits[0, -1].softmax(-1)[t])  # noqa: E731
    for _ in range(100):  # a pair whose clean answer is certain in the clean run and ruled out in the corrupted
        clean = torch.randint(5, m.vocab_size, (1, 8), generator=g)
        corrupted = clean.clone()
        corrupted[0, -1] = torch.randint(5, m.vocab_size, (1,), generator=g)
        top_clean = int(m.trace(clean, capture=[]).logits[0, -1].argmax())
        if p_last(clean, top_clean) > 0.99 and p_last(corrupted, top_clean) < 0.01:
            break
    est = A.attribution_patching(m, clean, corrupted, top_clean, kind="resid")
    real = A.activation_patching(m, clean[0], corrupted[0], top_clean, kind="resid")
    assert real.corrupted < 0.01 and real.clean > 0.99  # saturated both ways
    last = real.scores[:, -1]  # restoring the last position's residual restores the answer
    assert (last > 0.99).all()
    assert (est.scores[:, -1] - est.corrupted).abs().max() < 0.1  # the estimate misses over 90 % of it
