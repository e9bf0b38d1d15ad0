"""``kit.analysis.sae``: a small sparse autoencoder recovers planted sparse features, its latents are its
encoder's output, it reconstructs with its decoder bias, and it is deterministic for a seed."""

from __future__ import annotations

import pytest
import torch

from kit.analysis.sae import SAE, train_sae


def planted(d=64, n=3000, k=6, seed=0):
    """``A[d, n] = Z Y + noise`` with ``k`` sparse non-negative sources on unit, 4-neuron directions."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.zeros(d, k)
    for j in range(k):
        idx = torch.randperm(d, generator=g)[:4]
        Z[idx, j] = torch.randn(4, generator=g)
    Z = Z / Z.norm(dim=0, keepdim=True)
    Y = torch.rand(k, n, generator=g) * (torch.rand(k, n, generator=g) < 0.15)
    return Z @ Y * 5 + 0.01 * torch.randn(d, n, generator=g) + 0.3, Z


def test_planted_features_are_recovered():
    A, Z = planted()
    sae = train_sae(A, 12, l1=0.05, steps=800, batch=256, seed=0)
    cos = (sae.Z.T @ Z).abs()  # [latent, planted]
    best = cos.max(0).values  # random 64-d directions: |cos| about 0.1; seed 0 gives 0.90-1.00
    assert (best > 0.85).all() and float(best.mean()) > 0.95, best
    assert sae.loss < 0.3
    assert float((sae.Y > 0).float().sum(0).mean()) < 4  # sparse: few latents per token


def test_latents_are_the_encoders_output_and_reconstruct_uses_the_decoder_bias():
    A, _ = planted(n=800)
    sae = train_sae(A, 8, steps=100, seed=1)
    assert isinstance(sae, SAE) and sae.method == "sae"
    torch.testing.assert_close(sae.encode(A), sae.Y, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sae.Z.norm(dim=0), torch.ones(8), atol=1e-5, rtol=0)
    rel = float((sae.reconstruct() - A).norm() / A.norm())
    assert rel == pytest.approx(sae.loss, abs=1e-4)
    assert float((sae.Z @ sae.Y - A).norm() / A.norm()) > rel + 0.05  # without b_dec it is worse: the bias counts


def test_the_same_seed_gives_the_same_sae_and_another_seed_another():
    A, _ = planted(n=500)
    a, b, c = (train_sae(A, 6, steps=50, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.Z, b.Z) and torch.equal(a.Y, b.Y)
    assert not torch.allclose(a.Z, c.Z)


def test_scale_does_not_change_the_features():
    A, _ = planted(n=600)
    a, b = train_sae(A, 6, steps=80, seed=0), train_sae(A * 100, 6, steps=80, seed=0)
    torch.testing.assert_close(a.Z, b.Z, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(a.Y * 100, b.Y, atol=1e-2, rtol=1e-3)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="d, n_tokens"):
        train_sae(torch.ones(5), 3)
    with pytest.raises(ValueError, match="k"):
        train_sae(torch.ones(4, 10), 0)
    with pytest.raises(ValueError, match="l1"):
        train_sae(torch.ones(4, 10), 2, l1=-1.0)
    sae = train_sae(torch.randn(4, 10), 2, steps=5)
    with pytest.raises(ValueError, match="d_in=4"):
        sae.encode(torch.ones(5, 3))
