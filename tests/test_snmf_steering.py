"""Steering with MLP-space directions through the tracer, and the matched-KL search."""

from __future__ import annotations

import pytest
import torch

from kit.analysis.features import random_sparse_like
from kit.analysis.steering import (
    compare_steering, concept_ids, steer, steer_at_matched_kl, steering_table,
)


pytestmark = pytest.mark.usefixtures("one_thread")


PROMPTS = ["The capital of Veloria is", "The cat sat on the", "Once upon a time there"]


def test_steering_adds_alpha_W_out_u_to_the_mlp_output(tiny_model):
    layer = tiny_model.n_layers - 1
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(tiny_model.d_mlp, generator=g)
    clean = tiny_model.trace(PROMPTS, capture=["mlp_out"], layers=[layer])
    tr = steer(tiny_model, PROMPTS, layer, direction, alpha=2.5, capture=["mlp_out"])
    u = direction / direction.norm()
    expected = clean["mlp_out", layer] + 2.5 * (u @ tiny_model.adapter.W_out(layer).detach())
    m = clean.mask
    torch.testing.assert_close(tr["mlp_out", layer][m], expected[m], atol=1e-4, rtol=1e-4)
    zero = steer(tiny_model, PROMPTS, layer, direction, alpha=0.0)
    torch.testing.assert_close(zero.logits, tiny_model.trace(PROMPTS, capture=[]).logits)


def test_steering_only_the_last_position_leaves_earlier_logits_alone(tiny_model):
    direction = torch.ones(tiny_model.d_mlp)
    clean = tiny_model.trace(PROMPTS, capture=[])
    tr = steer(tiny_model, PROMPTS, 0, direction, alpha=5.0, pos=-1)
    for b, n in enumerate(clean.lengths):
        torch.testing.assert_close(tr.logits[b, : n - 1], clean.logits[b, : n - 1])
        assert not torch.allclose(tr.logits[b, n - 1], clean.logits[b, n - 1])


def test_matched_kl_search_hits_the_target(tiny_model):
    g = torch.Generator().manual_seed(1)
    direction = torch.randn(tiny_model.d_mlp, generator=g)
    res = steer_at_matched_kl(tiny_model, PROMPTS, 0, direction, target_kl=0.002, concept=["cat"], rtol=0.05)
    assert res.matched, res
    assert res.kl == pytest.approx(0.002, rel=0.05)
    # recompute the KL from scratch at the chosen alpha
    lp = steer(tiny_model, PROMPTS, 0, direction, res.alpha).logits
    last = torch.tensor(tiny_model.trace(PROMPTS, capture=[]).lengths) - 1
    steered = lp[torch.arange(3), last].log_softmax(-1)
    kl = float((res.base_logprobs.exp() * (res.base_logprobs - steered)).sum(-1).mean())
    assert kl == pytest.approx(res.kl, rel=1e-4, abs=1e-6)
    assert res.gain == pytest.approx(res.concept_logprob - res.base_concept_logprob)
    assert "alpha=" in repr(res)
    # a larger target needs a larger scale
    bigger = steer_at_matched_kl(tiny_model, PROMPTS, 0, direction, target_kl=0.005)
    assert bigger.matched and bigger.alpha > res.alpha


def test_compare_steering_table(tiny_model):
    g = torch.Generator().manual_seed(2)
    z = torch.zeros(tiny_model.d_mlp)
    z[torch.randperm(tiny_model.d_mlp, generator=g)[:4]] = torch.randn(4, generator=g)
    results = compare_steering(tiny_model, PROMPTS, 0, {"feature": z, "random": random_sparse_like(z)}, 0.002,
                               concept=["cat", "mat"])
    assert set(results) == {"feature", "random"}
    assert all(r.matched for r in results.values())
    table = steering_table(results)
    assert table.count("\n") == 3 and "| feature |" in table


def test_concept_ids_and_bad_input(tiny_model):
    ids = concept_ids(tiny_model, ["cat", 5])
    assert 5 in ids and len(ids) >= 2
    with pytest.raises(ValueError, match="d_mlp"):
        steer(tiny_model, PROMPTS, 0, torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="nonzero"):
        steer_at_matched_kl(tiny_model, PROMPTS, 0, torch.zeros(tiny_model.d_mlp), 0.1)
    with pytest.raises(ValueError, match="target_kl"):
        steer_at_matched_kl(tiny_model, PROMPTS, 0, torch.ones(tiny_model.d_mlp), 0.0)
    with pytest.raises(ValueError, match="out of range"):
        steer(tiny_model, PROMPTS, 0, torch.ones(tiny_model.d_mlp), 1.0, pos=40)
