"""Toy models of superposition and the sparse dictionaries (SAE, transcoder) on data whose truth we planted."""

from __future__ import annotations

import pytest
import torch

import kit.analysis as A


@pytest.fixture(scope="module")
def toys():
    torch.set_num_threads(1)
    return A.train_toy_models(n_features=20, d_hidden=5, sparsities=(0.0, 0.7, 0.97), seed=0)


def test_dense_features_keep_only_the_most_important_ones_orthogonally(toys):
    norms = toys.norms[0]
    assert int(toys.represented()[0]) == 5
    assert (norms[:5] > 0.9).all() and (norms[5:] < 0.2).all()  # features 0-4 matter most
    w = toys.W[0][:, :5]
    gram = (w / w.norm(dim=0)).T @ (w / w.norm(dim=0))
    assert (gram - torch.eye(5)).abs().max() < 0.1


def test_sparse_features_are_stored_in_superposition(toys):
    counts = toys.represented().tolist()
    assert counts == sorted(counts) and counts[-1] >= 3 * 5  # more and more features than dimensions
    assert float(toys.interference[-1].mean()) > 5 * float(toys.interference[0][:5].mean())
    assert toys.losses[-1] < toys.losses[0]


def test_toy_models_are_seeded_and_refuse_bad_arguments():
    a = A.train_toy_models(n_features=6, d_hidden=2, sparsities=(0.5,), steps=20, seed=3)
    b = A.train_toy_models(n_features=6, d_hidden=2, sparsities=(0.5,), steps=20, seed=3)
    assert torch.equal(a.W, b.W)
    with pytest.raises(ValueError, match="sparsities"):
        A.train_toy_models(sparsities=(1.0,))
    with pytest.raises(ValueError, match="d_hidden"):
        A.train_toy_models(n_features=4, d_hidden=5)


def planted(n=8192, d=16, K=32, active=2, seed=0):
    """Inputs made of ``active`` of ``K`` known unit directions per row: ``(x[n, d], codes[n, K], D[K, d])``."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(K, d, generator=g)
    D = D / D.norm(dim=1, keepdim=True)
    codes = torch.zeros(n, K)
    idx = torch.rand(n, K, generator=g).argsort(1)[:, :active]
    codes.scatter_(1, idx, 0.5 + torch.rand(n, active, generator=g))
    return codes @ D, codes, D


def test_an_sae_recovers_planted_features_and_l1_buys_sparsity():
    x, _, D = planted()
    sparse = A.train_sae(x.T, 32, l1=0.3, steps=1500, seed=0)
    dense = A.train_sae(x.T, 32, l1=0.01, steps=1500, seed=0)
    recovered = float(((D @ sparse.Z).max(1).values > 0.9).float().mean())
    s, d = sparse.stats(x.T), dense.stats(x.T)
    assert recovered >= 0.9  # nearly every planted direction has a decoder row within 26 degrees
    assert s["l0"] < 5 < d["l0"]  # 2 features are truly active per input
    assert s["explained_variance"] > 0.85 and d["explained_variance"] > s["explained_variance"]
    dec = sparse.as_decomposition(x[:100].T)
    assert dec.Z.shape == (16, 32) and dec.Y.shape == (32, 100) and (dec.Y >= 0).all()
    torch.testing.assert_close(dec.Z, sparse.Z)


def test_a_transcoder_learns_a_map_through_sparse_features():
    x, codes, _ = planted()
    D_out = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    y = codes @ D_out  # the "MLP output" depends on the same sparse features
    tc = A.train_transcoder(x.T, y.T, 32, l1=0.1, steps=1500, lr=1e-2, seed=0)
    st = tc.stats(x.T, y.T)
    assert tc.kind == "transcoder" and st["explained_variance"] > 0.85 and st["l0"] < 32 / 6  # 2 truly active; 4.3
    # its decoder finds the planted output directions: median best |cos| 0.99 here; 32 random unit directions
    # in these 8 dimensions reach a median of about 0.69
    planted_out = D_out / D_out.norm(dim=1, keepdim=True)
    assert float((planted_out @ tc.Z).max(1).values.median()) > 0.95
    assert tc.decode(tc.encode(x[:5].T)).shape == (8, 5)


def test_dictionaries_are_seeded_report_dead_features_and_refuse_bad_input():
    x, _, _ = planted(n=512)
    a = A.train_dictionary(x.T, k=8, steps=30, seed=2)
    b = A.train_dictionary(x.T, k=8, steps=30, seed=2)
    assert torch.equal(a.W_dec, b.W_dec)
    dead = A.train_dictionary(x.T, k=8, l1=1e4, steps=200, lr=1e-2, seed=0)  # a penalty that kills every feature
    assert dead.stats(x.T)["dead"] == 1.0
    with pytest.raises(ValueError, match="targets"):
        A.train_dictionary(x.T, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="l1"):
        A.train_dictionary(x.T, l1=-1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_five_sparse_equally_important_features_in_two_dimensions_form_a_pentagon(seed):
    # Elhage et al. 2022: sparse features of equal importance pack as a regular polygon; dense ones cannot
    import math

    toys = A.train_toy_models(n_features=5, d_hidden=2, sparsities=(0.0, 0.9), importance_decay=1.0, steps=3000,
                              seed=seed)
    W = toys.W[1]  # [2, 5]
    angles = torch.remainder(torch.atan2(W[1], W[0]), 2 * math.pi).sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi])) * 180 / math.pi
    assert float((gaps - 72).abs().max()) < 5, gaps  # measured 71-74 degrees on seeds 0-2
    norms = toys.norms[1]
    assert float(norms.min()) > 0.9 and float(norms.max() - norms.min()) < 0.1  # all five, equally long
    assert float(toys.norms[0].min()) < 0.5  # dense: some feature is left (nearly) out
