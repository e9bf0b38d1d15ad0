"""SNMF: planted-feature recovery, invariants of the factorization, the NMF baseline."""

from __future__ import annotations

import pytest
import torch

from kit.analysis.snmf import Decomposition, nmf, snmf


pytestmark = pytest.mark.usefixtures("one_thread")


def planted(d=256, n=3000, k=10, nnz=4, p=0.15, noise=0.01, seed=0):
    """Activations ``A = Z Y + noise`` with known sparse signed features ``Z`` and sparse ``Y >= 0``."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.zeros(d, k)
    for j in range(k):
        idx = torch.randperm(d, generator=g)[:nnz]
        Z[idx, j] = torch.randn(nnz, generator=g).sign() * (0.5 + torch.rand(nnz, generator=g))
    Y = (torch.rand(k, n, generator=g) < p).float() * torch.empty(k, n).exponential_(1.0, generator=g)
    return Z @ Y + noise * torch.randn(d, n, generator=g), Z, Y


def matched_cosines(true: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """|cos| of each true column with its best learned column; fails unless the matching is one-to-one."""
    a = true / true.norm(dim=0)
    b = learned / learned.norm(dim=0).clamp_min(1e-12)
    best, which = (a.T @ b).abs().max(1)
    assert len(set(which.tolist())) == true.shape[1], f"planted features share a learned one: {which.tolist()}"
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_planted_sparse_features(seed):
    A, Z_true, Y_true = planted(seed=seed)
    res = snmf(A, k=10, density=4 / 256, seed=seed)
    cos = matched_cosines(Z_true, res.Z)
    assert cos.min() >= 0.95, f"matched |cos| per planted feature: {cos.tolist()}"
    # the activations of each feature over tokens are recovered too
    a = Y_true / Y_true.norm(dim=1, keepdim=True)
    b = res.Y / res.Y.norm(dim=1, keepdim=True)
    assert (a @ b.T).max(1).values.min() >= 0.95


def test_recovers_more_features_than_neurons_per_feature_at_larger_scale():
    A, Z_true, _ = planted(d=512, n=4000, k=20, nnz=5, p=0.1, noise=0.02, seed=3)
    res = snmf(A, k=20, density=5 / 512)
    assert matched_cosines(Z_true, res.Z).min() >= 0.95


def test_factors_invariants_and_loss_history():
    A, _, _ = planted(d=128, n=800, k=6, seed=4)
    A = A - 0.1  # some negative activations, as after GELU
    res = snmf(A, k=6, density=0.05, n_iter=80)
    assert isinstance(res, Decomposition) and res.method == "snmf"
    assert res.Z.shape == (128, 6) and res.Y.shape == (6, 800)
    assert (res.Y >= 0).all()
    keep = res.params["keep"]
    assert keep == 7  # ceil(0.05 * 128)
    assert ((res.Z != 0).sum(0) <= keep).all()
    assert 1 <= len(res.losses) <= 80
    # the reported loss is the returned iterate's true relative error, and it is the best after warm-up
    err = float((A - res.Z @ res.Y).norm() / A.norm())
    assert err == pytest.approx(res.loss, rel=1e-3, abs=1e-5)
    warm = res.params["warmup"]
    assert res.best_iter >= warm and res.loss == min(res.losses[warm:])
    assert "k=6" in repr(res) and "loss=" in repr(res)


def test_dense_snmf_cannot_beat_the_svd_and_gets_close_to_it():
    torch.manual_seed(0)
    A = torch.randn(60, 400).relu() - 0.2
    res = snmf(A, k=8, density=1.0, n_iter=300)
    s = torch.linalg.svdvals(A)
    bound = float(s[8:].pow(2).sum().sqrt() / s.pow(2).sum().sqrt())  # Eckart–Young: best rank-8 error
    assert res.loss >= bound - 1e-5
    assert res.loss <= bound * 1.3


def test_seeded_and_deterministic():
    A, _, _ = planted(d=96, n=600, k=5, seed=5)
    r1 = snmf(A, k=5, density=0.05, n_iter=40, seed=7)
    r2 = snmf(A, k=5, density=0.05, n_iter=40, seed=7)
    assert torch.equal(r1.Z, r2.Z) and torch.equal(r1.Y, r2.Y) and r1.losses == r2.losses
    r3 = snmf(A, k=5, density=0.05, n_iter=40, seed=8, init="random")
    assert not torch.equal(r1.Y, r3.Y)


def test_float64_and_explicit_device():
    A, Z_true, _ = planted(d=64, n=500, k=4, seed=6)
    res = snmf(A.double(), k=4, density=4 / 64, device="cpu")
    assert res.Z.dtype == torch.float64 and res.Z.device.type == "cpu"
    assert matched_cosines(Z_true.double(), res.Z).min() >= 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_unchanged():  # pragma: no cover - only where a GPU exists
    A, Z_true, _ = planted(seed=0)
    res = snmf(A.cuda(), k=10, density=4 / 256)
    assert res.Z.is_cuda and res.Y.is_cuda
    assert matched_cosines(Z_true.cuda(), res.Z).min() >= 0.95


def test_directions_through_W_out():
    A, _, _ = planted(d=64, n=300, k=4, seed=7)
    res = snmf(A, k=4, density=0.1, n_iter=30)
    W_out = torch.randn(64, 16)
    D = res.directions(W_out)
    assert D.shape == (4, 16)
    torch.testing.assert_close(D.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(res.directions(W_out, normalize=False), res.Z.T @ W_out)
    top = res.top_tokens(0, 5)
    assert top.shape == (5,) and (res.Y[0, top] >= res.Y[0].kthvalue(300 - 4).values).all()
    with pytest.raises(ValueError, match="d_mlp"):
        res.directions(torch.randn(10, 16))


@pytest.mark.parametrize("bad, message", [
    (dict(acts=torch.randn(10)), "matrix"),
    (dict(k=0), "k must be"),
    (dict(k=100), "k must be"),
    (dict(density=0.0), "density"),
    (dict(acts=torch.full((8, 20), float("nan"))), "NaN"),
    (dict(acts=torch.zeros(8, 20)), "all zeros"),
    (dict(init="kmeans++"), "init must be"),
    (dict(init=-torch.ones(3, 20)), "nonnegative"),
])
def test_bad_input_is_a_clear_error(bad, message):
    args = dict(acts=torch.randn(8, 20), k=3) | bad
    with pytest.raises(ValueError, match=message):
        snmf(args.pop("acts"), **args)


def test_nmf_baseline_is_nonnegative_and_worse_on_signed_activations():
    pytest.importorskip("sklearn")
    A, _, _ = planted(d=128, n=1500, k=6, seed=8)
    base = nmf(A, k=6, n_iter=200)
    assert base.method == "nmf" and (base.Z >= 0).all() and (base.Y >= 0).all()
    clipped = A.clamp_min(0)
    assert base.loss == pytest.approx(float((clipped - base.Z @ base.Y).norm() / clipped.norm()), rel=1e-4)
    ours = snmf(A, k=6, density=4 / 128)
    nmf_on_signed = float((A - base.Z @ base.Y).norm() / A.norm())
    assert ours.loss < 0.5 * nmf_on_signed  # signed features: NMF cannot represent the negative half


def test_bounded_search_of_the_greedy_start_equals_a_top_k_over_every_token():
    import importlib

    S = importlib.import_module("kit.analysis.snmf")
    g = torch.Generator().manual_seed(3)
    for keep in (1, 4, 30):
        for planted_token in (False, True):
            Rt = torch.randn(300, 64, generator=g) * torch.rand(300, 1, generator=g)  # tokens of varied energy
            if planted_token:
                Rt[7, :keep] += 5.0  # one token concentrated on `keep` neurons
            top = Rt.abs().topk(keep, dim=1).values.pow(2).sum(1)
            brute = int((top * top / (Rt * Rt).sum(1)).argmax())
            assert S._most_concentrated(Rt, Rt * Rt, keep, chunk=8) == brute
