"""kit/analysis/snmf.py exactly: refusals word for word, the Decomposition's accessors and repr, and each
helper of the algorithm against its definition (sparsify, refit, column energy, AᵀZ, duplicates, restart).

Written against the mutants of the `snmf` group (benchmarks/mutation.py). Small seeded matrices only.
"""

from __future__ import annotations

import importlib
import math
import re
import time

import pytest
import torch

from kit.analysis.snmf import Decomposition, snmf

S = importlib.import_module("kit.analysis.snmf")


pytestmark = pytest.mark.usefixtures("one_thread")


def _refused(exc, call):
    with pytest.raises(exc) as err:
        call()
    return str(err.value)


def _acts(d=12, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d, n, generator=g)


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(acts=torch.ones(5)), "acts must be a matrix [d_mlp, n_tokens], got shape [5]; from a trace use "
                               "tr['mlp_post', l][tr.mask].T (or kit.analysis.features.mlp_activations)"),
    (dict(k=0), "k must be an integer in 1..12 for acts of shape [12, 40], got 0"),
    (dict(k=13), "k must be an integer in 1..12 for acts of shape [12, 40], got 13"),
    (dict(k=2.0), "k must be an integer in 1..12 for acts of shape [12, 40], got 2.0"),
    (dict(k=True), "k must be an integer in 1..12 for acts of shape [12, 40], got True"),
    (dict(acts=torch.full((12, 40), math.inf)), "acts contains NaN or infinite values"),
    (dict(acts=torch.zeros(12, 40)), "acts is all zeros: nothing to factor"),
    (dict(density=0.0), "density must lie in (0, 1], got 0.0"),
    (dict(density=1.5), "density must lie in (0, 1], got 1.5"),
    (dict(n_iter=0), "n_iter must be at least 1 and warmup at least 0, got n_iter=0, warmup=20"),
    (dict(warmup=-1), "n_iter must be at least 1 and warmup at least 0, got n_iter=200, warmup=-1"),
    (dict(tol=1.0), "tol must lie in [0, 1), patience be at least 1 and lam at least 0, got tol=1.0, patience=10, lam=1e-06"),
    (dict(tol=-0.1), "tol must lie in [0, 1), patience be at least 1 and lam at least 0, got tol=-0.1, patience=10, lam=1e-06"),
    (dict(patience=0), "tol must lie in [0, 1), patience be at least 1 and lam at least 0, got tol=0.001, patience=0, lam=1e-06"),
    (dict(lam=-1e-9), "tol must lie in [0, 1), patience be at least 1 and lam at least 0, got tol=0.001, patience=10, lam=-1e-09"),
    (dict(init=torch.ones(3, 39)), "init as a tensor must be nonnegative with shape [k=3, n_tokens=40], got [3, 39]"),
    (dict(init=-torch.ones(3, 40)), "init as a tensor must be nonnegative with shape [k=3, n_tokens=40], got [3, 40]"),
    (dict(init="kmeans"), "init must be 'greedy', 'random' or a tensor Y0[k, n_tokens], got 'kmeans'"),
], ids=["vector", "k0", "k-too-big", "k-float", "k-bool", "inf", "zeros", "density0", "density-big", "n_iter0",
        "warmup-negative", "tol1", "tol-negative", "patience0", "lam-negative", "init-shape", "init-negative", "init-name"])
def test_refusals_word_for_word(kwargs, message):
    args = dict(acts=_acts(), k=3) | kwargs
    assert _refused(ValueError, lambda: snmf(args.pop("acts"), **args)) == message


def test_the_bounds_themselves_are_accepted():
    A = _acts()
    assert snmf(A, 12, n_iter=2).k == 12 and snmf(A, 1, n_iter=2).k == 1  # k = min(d_mlp, n_tokens), k = 1
    assert snmf(A, 2, density=1.0, n_iter=2).params["keep"] == 12
    assert snmf(A, 2, n_iter=1, warmup=0).losses and len(snmf(A, 2, n_iter=1).losses) == 1
    assert snmf(A, 2, n_iter=2, init=torch.zeros(2, 40) + 0.5).params["init"] == "tensor"
    zero_start = torch.zeros(2, 40)
    zero_start[0, :20] = zero_start[1, 20:] = 1.0  # zeros are nonnegative: accepted
    assert snmf(A, 2, n_iter=2, init=zero_start).k == 2
    assert snmf(A, 2, n_iter=2, tol=0.0, patience=1, lam=0.0).params["lam"] == 0.0
    ints = snmf((A * 10).round().to(torch.int64), 2, n_iter=2)  # integer activations are factored in float32
    assert ints.Z.dtype == torch.float32
    assert snmf(A.half(), 2, n_iter=2).Y.dtype == torch.float32 and snmf(A.double(), 2, n_iter=2).Y.dtype == torch.float64


# --- the Decomposition ----------------------------------------------------------------------------

def _decomposition(losses=(0.5, 0.25, 0.375), best=1):
    Z = torch.tensor([[1.0, 0.0], [0.0, -2.0], [0.0, 0.0]])  # [d_mlp=3, k=2]
    Y = torch.tensor([[0.0, 1.0, 3.0, 2.0], [1.0, 0.0, 0.0, 0.5]])  # [k=2, n_tokens=4]
    return Decomposition(Z, Y, list(losses), "snmf", best, 1.25, {"a": 1})


def test_accessors_of_a_decomposition():
    dec = _decomposition()
    assert (dec.k, dec.d_mlp, dec.n_tokens, dec.loss) == (2, 3, 4, 0.25)
    assert torch.equal(dec.reconstruct(), dec.Z @ dec.Y)
    assert dec.top_tokens(0, 2).tolist() == [2, 3] and dec.top_tokens(1).tolist()[:2] == [0, 3]
    assert sorted(dec.top_tokens(1).tolist()) == [0, 1, 2, 3]  # n larger than n_tokens: every token
    assert dec.top_tokens(1, 1).tolist() == [0]
    assert math.isnan(Decomposition(dec.Z, dec.Y, []).loss)
    moved = dec.to("cpu")
    assert moved is not dec and torch.equal(moved.Z, dec.Z) and torch.equal(moved.Y, dec.Y)
    assert (moved.losses, moved.method, moved.best_iter, moved.seconds, moved.params) == (
        dec.losses, "snmf", 1, 1.25, {"a": 1})
    assert moved.losses is not dec.losses and moved.params is not dec.params


def test_directions_are_the_unembedded_columns_in_the_decompositions_dtype():
    dec = _decomposition()
    W = torch.tensor([[3.0, 4.0], [1.0, 0.0], [5.0, 5.0]], dtype=torch.float64)  # [d_mlp=3, d_model=2]
    raw = dec.directions(W, normalize=False)
    assert raw.dtype == torch.float32 and raw.tolist() == [[3.0, 4.0], [-2.0, 0.0]]
    unit = dec.directions(W)
    torch.testing.assert_close(unit, torch.tensor([[0.6, 0.8], [-1.0, 0.0]]), atol=1e-7, rtol=0)
    zero = Decomposition(torch.zeros(3, 1), torch.ones(1, 4), [0.0], best_iter=0)
    assert zero.directions(W).tolist() == [[0.0, 0.0]]  # a zero direction stays zero, not NaN
    assert _refused(ValueError, lambda: dec.directions(torch.ones(4, 2))) == (
        "W_out must be [d_mlp=3, d_model], got [4, 2]")


def test_repr_states_the_method_shape_loss_density_and_activity():
    dec = _decomposition()
    assert repr(dec) == ("Decomposition(method='snmf', k=2, d_mlp=3, n_tokens=4, loss=0.2500 (relative, best of "
                         "3 iterations at 1), Z density=33.3%, Y active=62.5%, device=cpu, 1.2s)")
    tiny = Decomposition(torch.ones(2, 1), torch.tensor([[1.0, 1e-7, 2e-6, 0.0]]), [0.1], "nmf", 0, 0.0)
    assert "Y active=50.0%" in repr(tiny)  # active means above 1e-6 of the largest
    empty = Decomposition(torch.zeros(0, 0), torch.zeros(0, 0), [])
    assert "Z density=nan%, Y active=nan%" in repr(empty) and "loss=nan" in repr(empty)


# --- the helpers ----------------------------------------------------------------------------------

def test_sparsify_keeps_the_largest_magnitudes_of_each_column():
    Z = torch.tensor([[1.0, -5.0], [-3.0, 1.0], [2.0, 4.0], [0.5, -0.1]])
    assert S._sparsify_columns(Z, 2).tolist() == [[0.0, -5.0], [-3.0, 0.0], [2.0, 4.0], [0.0, 0.0]]
    assert S._sparsify_columns(Z, 1).tolist() == [[0.0, -5.0], [-3.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert S._sparsify_columns(Z, 4) is Z and S._sparsify_columns(Z, 9) is Z
    assert S._sparsify_columns(Z, 3).tolist() == [[1.0, -5.0], [-3.0, 1.0], [2.0, 4.0], [0.0, 0.0]]


def test_refit_is_least_squares_on_each_neurons_support():
    g = torch.Generator().manual_seed(1)
    k, d = 4, 9
    Y = torch.rand(k, 30, generator=g, dtype=torch.float64)
    A = torch.randn(d, 30, generator=g, dtype=torch.float64)
    gram, AYt = Y @ Y.T, A @ Y.T
    support = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 1],
                            [0, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 1]], dtype=torch.bool)
    Z = torch.where(support, torch.ones(d, k, dtype=torch.float64), torch.zeros(d, k, dtype=torch.float64))
    got = S._refit(Z, AYt, gram)
    for i in range(d):
        cols = support[i].nonzero().flatten()
        want = torch.zeros(k, dtype=torch.float64)
        if len(cols):
            # min over z of ||a_i - z Y[cols]||²: normal equations on the support
            want[cols] = torch.linalg.solve(gram[cols][:, cols], AYt[i, cols])
        torch.testing.assert_close(got[i], want, atol=1e-10, rtol=0)


def test_column_energy_in_blocks_of_rows():
    A = _acts(d=10, n=7, seed=2).double()
    for rows in (1, 3, 10, 256):
        torch.testing.assert_close(S._column_energy(A, rows), (A * A).sum(0), atol=1e-12, rtol=0)
    assert S._column_energy(A.float()).dtype == torch.float32


@pytest.mark.parametrize("nonzero", [1, 3, 20], ids=["sparse", "near-break-even", "dense"])
def test_AtZ_equals_the_dense_product_on_both_paths(nonzero):
    g = torch.Generator().manual_seed(3)
    A = torch.randn(20, 15, generator=g, dtype=torch.float64)
    Z = S._sparsify_columns(torch.randn(20, 4, generator=g, dtype=torch.float64), nonzero)
    torch.testing.assert_close(S._AtZ(A, Z), A.T @ Z, atol=1e-12, rtol=0)


def test_AtZ_goes_sparse_at_most_13_percent_nonzero(monkeypatch):
    calls = []
    real = torch.sparse.mm
    monkeypatch.setattr(torch.sparse, "mm", lambda *a: calls.append(1) or real(*a))
    A = torch.ones(100, 3)
    Z = torch.zeros(100, 1)
    Z[:13] = 1.0  # 13 %: sparse
    S._AtZ(A, Z)
    assert calls == [1]
    Z[13] = 1.0  # 14 %: dense
    S._AtZ(A, Z)
    assert calls == [1]


def test_duplicates_are_parallel_or_dead_columns_after_the_first():
    Z = torch.tensor([[1.0, 0.0, -2.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    # columns: e0, e1, -2 e0 (parallel to 0, opposite sign), zero (dead), e0 + e1 (cos 0.707 with both)
    assert S._duplicates(Z).tolist() == [False, False, True, True, False]
    assert S._duplicates(Z, threshold=0.7).tolist() == [False, False, True, True, True]
    tiny = torch.tensor([[1.0, 0.0], [0.0, 1e-7]])  # a column below 1e-6 of the largest norm is dead
    assert S._duplicates(tiny).tolist() == [False, True]
    assert S._duplicates(torch.tensor([[1.0, 0.0], [0.0, 2e-6]])).tolist() == [False, False]


def test_pos_and_neg_parts():
    X = torch.tensor([-2.0, 0.0, 3.0])
    assert S._pos(X).tolist() == [0.0, 0.0, 3.0] and S._neg(X).tolist() == [2.0, 0.0, 0.0]


def test_restart_puts_each_restarted_feature_on_a_worst_fit_token():
    A = torch.tensor([[3.0, 0.0, 0.0, 1.0], [0.0, 0.0, 4.0, 0.0], [0.0, 0.5, 0.0, 0.0]])  # [d_mlp=3, n=4]
    Z = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    Y = torch.tensor([[3.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])  # feature 0 explains tokens 0, 3 exactly
    P = A.T @ Z
    col2 = (A * A).sum(0)
    dup = torch.tensor([False, True])
    Z2, Y2, P2 = S._restart(A, col2, Z, Y, P, dup, keep=1)
    # the worst-fit token is 2 (residual 4 e1): feature 1 becomes e1, firing 4 on token 2 only
    assert Z2[:, 1].tolist() == [0.0, 1.0, 0.0] and Y2[1].tolist() == [0.0, 0.0, 4.0, 0.0]
    torch.testing.assert_close(P2, A.T @ Z2)
    assert torch.equal(Z2[:, 0], Z[:, 0]) and torch.equal(Y2[0], Y[0])
    assert Z[:, 1].tolist() == [0.0, 0.0, 0.0] and Y[1].tolist() == [0.0] * 4  # the inputs are left alone
    both = S._restart(A, col2, torch.zeros(3, 2), torch.zeros(2, 4), torch.zeros(4, 2), torch.tensor([True, True]), 1)
    assert sorted(both[0].abs().argmax(0).tolist()) == [0, 1]  # two restarts take the two worst tokens: 2, then 0


# --- the iteration --------------------------------------------------------------------------------

def test_params_record_every_option():
    res = snmf(_acts(), 3, density=0.2, n_iter=5, init="random", warmup=2, restart=False, refit=False, lam=1e-4,
               tol=1e-2, patience=3, seed=4)
    assert res.params == dict(density=0.2, keep=3, n_iter=5, init="random", warmup=2, restart=False, refit=False,
                              lam=1e-4, tol=1e-2, patience=3, seed=4)
    assert res.method == "snmf" and res.seconds > 0
    assert snmf(_acts(), 3, density=0.25, n_iter=1).params["keep"] == 3  # ceil(0.25 * 12) = 3 exactly
    assert snmf(_acts(), 3, density=0.001, n_iter=1).params["keep"] == 1  # at least one


def test_losses_are_the_relative_error_of_each_iterate_and_the_best_is_returned():
    A = _acts(d=16, n=60, seed=5)
    res = snmf(A, 4, density=0.25, n_iter=12, warmup=3, patience=100)
    assert len(res.losses) == 12 and res.best_iter >= 3
    assert res.loss == min(res.losses[3:]) and res.best_iter == res.losses.index(res.loss)
    err = float((A - res.Z @ res.Y).norm() / A.norm())
    assert err == pytest.approx(res.loss, rel=1e-4)
    assert ((res.Z != 0).sum(0) <= 4).all() and (res.Y >= 0).all()


def test_a_run_inside_its_warm_up_returns_the_last_iterate():
    A = _acts(d=16, n=60, seed=6)
    res = snmf(A, 3, density=0.25, n_iter=4, warmup=10)
    assert len(res.losses) == 4 and res.best_iter == 3
    err = float((A - res.Z @ res.Y).norm() / A.norm())
    assert err == pytest.approx(res.losses[-1], rel=1e-4)


def test_it_stops_after_patience_iterations_without_a_real_gain():
    A = _acts(d=16, n=60, seed=7)
    res = snmf(A, 3, density=1.0, n_iter=200, warmup=0, restart=False, tol=0.5, patience=4)
    assert len(res.losses) == 5  # iteration 0 sets the reference; 1..4 gain less than half of it
    long = snmf(A, 3, density=1.0, n_iter=200, warmup=0, restart=False, tol=0.0, patience=4)
    assert len(long.losses) > 5


def test_top_tokens_default_to_ten():
    Y = torch.arange(12.0)[None]  # one feature, firing i on token i
    dec = Decomposition(torch.ones(3, 1), Y, [0.0], best_iter=0)
    assert dec.top_tokens(0).tolist() == list(range(11, 1, -1))


def test_short_directions_are_normalised_too():
    dec = _decomposition()
    W = torch.tensor([[0.03, 0.04], [0.1, 0.0], [0.5, 0.5]])  # directions of norm 0.05 and 0.2
    torch.testing.assert_close(dec.directions(W), torch.tensor([[0.6, 0.8], [-1.0, 0.0]]), atol=1e-6, rtol=0)


def test_to_moves_both_factors():
    moved = _decomposition().to("meta")  # meta stands in for a GPU
    assert moved.Z.device == moved.Y.device == torch.device("meta")


@pytest.mark.parametrize("Y, active", [
    ([[2.0, 1e-6, 3e-6, 0.0]], "50.0%"),  # the threshold is 1e-6 of the largest (2e-6), not 1e-6 / largest
    ([[0.5, 4e-7, 6e-7, 0.0]], "50.0%"),  # a largest below 1 scales the threshold down (5e-7)
    ([[1.0, 1e-6, 0.0, 0.0]], "25.0%"),  # exactly at the threshold is not active
], ids=["large", "small", "at-threshold"])
def test_y_active_is_relative_to_the_largest_activation(Y, active):
    dec = Decomposition(torch.ones(2, 1), torch.tensor(Y), [0.1], "snmf", 0, 0.0)
    assert f"Y active={active}" in repr(dec)


def _restart_reference(A, Z, Y, dup, keep):
    """_restart as its docstring states it, one token and one feature at a time."""
    js = dup.nonzero().flatten().tolist()
    worst = ((A - Z @ Y) ** 2).sum(0).topk(len(js)).indices.tolist()
    Z, Y = Z.clone(), Y.clone()
    for j, t in zip(js, worst):
        r = A[:, t] - Z @ Y[:, t]
        r = torch.where(r.abs() >= r.abs().topk(keep).values[-1], r, torch.zeros_like(r))
        z = r / r.norm()
        Y[j] = (A.T @ z - Y.T @ (Z.T @ z)).clamp_min(0)
        Z[:, j] = z
    return Z, Y


def test_restart_matches_its_definition_on_a_partly_explained_matrix():
    g = torch.Generator().manual_seed(8)
    d, n, k, keep = 8, 30, 4, 3
    dup = torch.tensor([False, True, False, True])
    Z = torch.randn(d, k, generator=g, dtype=torch.float64) * ~dup
    Y = torch.rand(k, n, generator=g, dtype=torch.float64) * (~dup)[:, None]
    Y[:, [3, 11]] *= 3  # the two worst-fit tokens are also the best explained ones
    Y[:, 20] = 0  # a token explained not at all, with a smaller residual than those two
    E = 0.01 * torch.randn(d, n, generator=g, dtype=torch.float64)
    for t, size in ((3, 0.9), (11, 0.85), (20, 0.7)):  # residuals of norm below 1
        e = torch.randn(d, generator=g, dtype=torch.float64)
        E[:, t] = size * e / e.norm()
    A = Z @ Y + E
    P = A.T @ Z
    Z2, Y2, P2 = S._restart(A, (A * A).sum(0), Z, Y, P, dup, keep)
    want_Z, want_Y = _restart_reference(A, Z, Y, dup, keep)
    torch.testing.assert_close(Z2, want_Z, atol=1e-10, rtol=0)
    torch.testing.assert_close(Y2, want_Y, atol=1e-10, rtol=0)
    torch.testing.assert_close(P2, A.T @ Z2, atol=1e-10, rtol=0)
    torch.testing.assert_close(Z2.norm(dim=0)[dup], torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0)


# --- the NMF baseline -----------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nmf_is_scikit_learns_nmf_of_the_clipped_activations():
    pytest.importorskip("sklearn")
    from sklearn.decomposition import NMF

    A = _acts(d=10, n=50, seed=9) + 0.3
    X = A.clamp_min(0).T.numpy()
    for kwargs in (dict(), dict(init="random", seed=3, n_iter=50, tol=0.05, solver="mu"), dict(n_iter=3, tol=1e-9)):
        res = S.nmf(A, 3, **kwargs)
        opts = dict(n_iter=200, tol=1e-4, seed=0, solver="cd", init="nndsvda") | kwargs
        ref = NMF(n_components=3, init=opts["init"], solver=opts["solver"], max_iter=opts["n_iter"],
                  tol=opts["tol"], random_state=opts["seed"])
        W = ref.fit_transform(X)
        torch.testing.assert_close(res.Y, torch.from_numpy(W.T).float(), atol=1e-6, rtol=0)
        torch.testing.assert_close(res.Z, torch.from_numpy(ref.components_.T).float(), atol=1e-6, rtol=0)
        assert res.params == opts | dict(iterations=int(ref.n_iter_))
        assert (res.method, res.best_iter, len(res.losses)) == ("nmf", 0, 1)
        clipped = A.clamp_min(0)
        assert res.loss == pytest.approx(float((clipped - res.Z @ res.Y).norm() / clipped.norm()), rel=1e-6)


def test_nmf_without_scikit_learn_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)  # the import then raises ImportError
    assert _refused(ImportError, lambda: S.nmf(_acts(), 3)) == (
        "kit.analysis.snmf.nmf needs scikit-learn: pip install scikit-learn")


def test_nmf_reports_its_time_and_a_relative_loss_at_any_scale():
    pytest.importorskip("sklearn")
    small = (_acts(d=10, n=50, seed=10) + 0.3) * 1e-3  # ‖A‖ far below 1
    res = S.nmf(small, 3)
    clipped = small.clamp_min(0)
    assert res.loss == pytest.approx(float((clipped - res.Z @ res.Y).norm() / clipped.norm()), rel=1e-6)
    assert 0 < res.loss < 1
    assert isinstance(res.seconds, float) and 0 < res.seconds < 60


def test_duplicates_at_their_thresholds():
    # dead: a norm at most 1e-6 of the largest; exactly at it counts
    assert S._duplicates(torch.tensor([[1.0, 0.0], [0.0, 1e-6]])).tolist() == [False, True]
    assert S._duplicates(torch.tensor([[2.0, 0.0], [0.0, 1e-6]])).tolist() == [False, True]  # 1e-6 <= 2e-6
    assert S._duplicates(torch.tensor([[0.5, 0.0], [0.0, 6e-7]])).tolist() == [False, False]  # 6e-7 > 5e-7
    # parallel: |cos| above the threshold, exactly at it does not count; neighbours and short columns too
    assert S._duplicates(torch.tensor([[1.0, 3.0], [0.0, 4.0]]), threshold=0.6).tolist() == [False, False]
    assert S._duplicates(torch.tensor([[1.0, 3.0], [0.0, 4.0]]), threshold=0.59).tolist() == [False, True]
    assert S._duplicates(torch.tensor([[0.1, 0.05], [0.0, 0.0]])).tolist() == [False, True]


def _greedy_reference(A, k, keep, seed, pool):
    """_greedy_init as its docstring states it, with the whole residual recomputed at each step."""
    gen = torch.Generator().manual_seed(seed)
    d, n = A.shape
    cand = torch.randperm(n, generator=gen)[:pool] if n > pool else torch.arange(n)
    Z, Y = torch.zeros(d, k, dtype=A.dtype), torch.zeros(k, n, dtype=A.dtype)
    for j in range(k):
        Rt = (A - Z @ Y)[:, cand].T  # [pool, d_mlp]
        top = Rt.abs().topk(keep, dim=1).values.pow(2).sum(1)
        t = int((top * top / (Rt * Rt).sum(1)).argmax())  # the first of equal scores
        idx = Rt[t].abs().topk(keep).indices
        z = torch.zeros(d, dtype=A.dtype)
        z[idx] = Rt[t, idx] / Rt[t, idx].norm()
        Y[j] = ((A - Z @ Y).T @ z).clamp_min(0)
        Z[:, j] = z
    return Y + 1e-3 * Y.max()


@pytest.mark.parametrize("pool", [16, 64], ids=["pool-of-16", "every-token"])
def test_greedy_start_matches_its_definition(pool):
    g = torch.Generator().manual_seed(11)
    A = 0.1 * torch.randn(12, 40, generator=g, dtype=torch.float64)  # token norms below 1
    got = S._greedy_init(A, 4, 3, torch.Generator().manual_seed(5), pool=pool)
    torch.testing.assert_close(got, _greedy_reference(A, 4, 3, 5, pool), atol=1e-12, rtol=0)


def test_the_greedy_pool_is_seeded_beyond_1024_tokens():
    A = _acts(d=12, n=1100, seed=12)
    r1, r2 = snmf(A, 3, n_iter=2, seed=1), snmf(A, 3, n_iter=2, seed=1)
    assert torch.equal(r1.Y, r2.Y) and torch.equal(r1.Z, r2.Z)
    got = S._greedy_init(A, 3, 1, torch.Generator().manual_seed(2))  # the default pool: 1024 of 1100
    torch.testing.assert_close(got, _greedy_reference(A, 3, 1, 2, 1024), atol=1e-5, rtol=0)


def test_the_defaults_are_recorded():
    p = snmf(_acts(), 3, n_iter=1).params
    assert p == dict(density=0.01, keep=1, n_iter=1, init="greedy", warmup=20, restart=True, refit=True, lam=1e-6,
                     tol=1e-3, patience=10, seed=0)


def test_z_step_is_a_ridge_solve_sparsified_then_refitted_when_asked():
    g = torch.Generator().manual_seed(13)
    Y = torch.rand(3, 25, generator=g, dtype=torch.float64)
    AYt = torch.randn(6, 25, generator=g, dtype=torch.float64) @ Y.T  # [d_mlp=6, k=3]
    lam = 0.5  # large enough that its sign and size show
    gram = Y @ Y.T + lam * torch.eye(3, dtype=torch.float64)
    ridge = torch.linalg.solve(gram, AYt.T).T
    for keep, refit in ((4, True), (4, False), (2, True), (6, True)):
        sparse = S._sparsify_columns(ridge, keep)
        want = S._refit(sparse, AYt, gram) if refit and keep < 6 else sparse
        torch.testing.assert_close(S._z_step(AYt, Y, lam, keep, refit), want, atol=1e-12, rtol=0)
    assert not torch.allclose(S._refit(S._sparsify_columns(ridge, 4), AYt, gram), S._sparsify_columns(ridge, 4))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool], ids=["complex", "bool"])
def test_non_real_activations_are_refused_by_name(dtype):
    assert _refused(TypeError, lambda: snmf(torch.ones(8, 20, dtype=dtype), 3)) == (
        f"acts must hold real numbers (a float tensor); got dtype {dtype}")


# ---- _most_concentrated: the bounded search of the greedy start --------------------------------------

def _concentration_brute_force(Rt, keep):
    """The definition: the first token with the largest top(t)² / total(t), every token scored."""
    top = Rt.double().abs().topk(keep, dim=1).values.pow(2).sum(1)
    score = (top * top / (Rt.double() ** 2).sum(1)).tolist()
    return max(range(len(score)), key=lambda t: (score[t], -t))


class _CountTopkRows(torch.overrides.TorchFunctionMode):
    """Counts the rows every ``topk`` is taken over (the costly part of the search)."""

    def __init__(self):
        super().__init__()
        self.rows = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.topk, torch.Tensor.topk):
            self.rows += args[0].shape[0]
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_bounded_search_is_exact_at_any_scale(scale):
    """The pick is scale-free: energies far below 1 (a floor on the total) or far above change nothing."""
    S = importlib.import_module("kit.analysis.snmf")
    g = torch.Generator().manual_seed(11)
    for keep in (1, 2, 5):
        for trial in range(6):
            Rt = torch.randn(120, 16, generator=g) * torch.rand(120, 1, generator=g) * 3
            Rt[trial * 7 + 3, :keep] *= 4  # a few more concentrated tokens of varied energy
            Rt[trial * 11 + 50] *= 0.2
            Rt = Rt * scale
            want = _concentration_brute_force(Rt, keep)
            for chunk in (1, 3, 32):
                assert S._most_concentrated(Rt, Rt * Rt, keep, chunk=chunk) == want, (keep, trial, chunk)


def test_bounded_search_weighs_the_top_energy_squared_over_the_total():
    """top²/total, not another power: a large token spread over 2 neurons against a small one on 1 (keep 2)."""
    S = importlib.import_module("kit.analysis.snmf")
    Rt = torch.tensor([[0.5, 0.0, 0.0, 0.0],      # top 0.25, total 0.25: score 0.25
                       [2.0, 2.0, 1.0, 1.0]])     # top 8, total 10: score 6.4 (with cubes: 16²/10 against 0.125²/0.25)
    assert S._most_concentrated(Rt, Rt * Rt, 2, chunk=1) == 1
    Rt = torch.tensor([[3.0, 0.0, 0.0, 0.0],      # score 9: one neuron carries it all
                       [2.0, 2.0, 2.0, 0.0]])     # top 8, total 12: score 5.33 (with cubes: 16²/12 = 21.3 against 9)
    assert S._most_concentrated(Rt, Rt * Rt, 2, chunk=1) == 0


def test_bounded_search_goes_past_tokens_whose_bound_is_high_but_score_low():
    """Many decoys with a large bound (one big entry and a spread tail) come first in the visiting order; the
    concentrated token behind them, with a lower bound but a higher score, must still be found."""
    S = importlib.import_module("kit.analysis.snmf")
    keep = 2
    decoy = torch.cat([torch.tensor([2.0]), torch.full((16,), 0.5), torch.zeros(3)])  # total 8, bound 8, score 2.26
    target = torch.zeros(20)
    target[:2] = 2 ** 0.5  # total 4, bound 4, score 4
    for n_decoys in (1, 5, 70):
        Rt = torch.stack([decoy] * n_decoys + [target])
        assert _concentration_brute_force(Rt, keep) == n_decoys
        for chunk in (1, 2, 4, 32):
            with _CountTopkRows() as count:
                assert S._most_concentrated(Rt, Rt * Rt, keep, chunk=chunk) == n_decoys, (n_decoys, chunk)
            assert count.rows == n_decoys + 1  # each token's top-k taken once


def test_bounded_search_visits_a_token_whose_score_is_within_the_rounding_margin_of_the_best():
    """The bound carries a 1e-5 margin for rounding; a search that stops at a bound *below* the exact one
    misses a token that beats the best so far by less than that (keep 2, one token per chunk)."""
    S = importlib.import_module("kit.analysis.snmf")
    c2 = 1.21 / (1 - 5e-6) - 1.1
    first = torch.tensor([0.8, 0.46 ** 0.5, c2 ** 0.5])  # top 1.1, total 1.21: bound 1.21, visited first; score 1 - 5e-6
    exact = torch.tensor([1.0, 0.0, 0.0])        # bound = score = 1
    Rt = torch.stack([first, exact])
    assert _concentration_brute_force(Rt, 2) == 1
    assert S._most_concentrated(Rt, Rt * Rt, 2, chunk=1) == 1
    assert S._most_concentrated(Rt.flip(0), Rt.flip(0) ** 2, 2, chunk=1) == 0


def test_bounded_search_returns_the_first_of_equal_tokens():
    S = importlib.import_module("kit.analysis.snmf")
    g = torch.Generator().manual_seed(4)
    base = torch.randn(40, 8, generator=g) * 0.3
    best = torch.tensor([3.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for where in ([5, 17, 30], [30, 5, 17], [0, 39], [12, 13, 14, 15, 16, 17, 18, 19]):
        Rt = base.clone()
        Rt[where] = best
        for chunk in (1, 3, 32):
            assert S._most_concentrated(Rt, Rt * Rt, 1, chunk=chunk) == min(where), (where, chunk)


def test_bounded_search_takes_the_top_k_of_one_chunk_when_its_best_beats_every_other_bound():
    """The point of the bound. 2000 diffuse tokens ([2, then sixteen 1s]: total 20, bound 16²/20 = 12.8, score
    49/20) and one token on exactly `keep` = 4 neurons ([3, then three of √(7/3)]: score = bound = 16). The best
    of the first chunk (16) beats every other bound (12.8), so the costly top-k is taken over that chunk only.
    A looser bound (the largest entry of the whole pool, or twice the margin) would visit all 2000."""
    S = importlib.import_module("kit.analysis.snmf")
    diffuse = torch.cat([torch.tensor([2.0]), torch.ones(16), torch.zeros(15)])
    Rt = diffuse.repeat(2001, 1)
    Rt[1234] = torch.cat([torch.tensor([3.0]), torch.full((3,), (7 / 3) ** 0.5), torch.zeros(28)])
    assert _concentration_brute_force(Rt, 4) == 1234
    for chunk in (8, 32):
        with _CountTopkRows() as count:
            assert S._most_concentrated(Rt, Rt * Rt, 4, chunk=chunk) == 1234
        assert count.rows == chunk, (chunk, count.rows)


# ---- snmf's own loop: starts, schedule, restarts, stopping, progress -------------------------------

def test_a_start_tensor_in_another_dtype_is_cast_to_the_activations_dtype():
    A = _acts(d=10, n=30, seed=1)
    g = torch.Generator().manual_seed(2)
    Y0 = (torch.rand(3, 30, generator=g) + 0.1).double()  # float32 values: exact in either dtype
    for acts_dtype in (torch.float32, torch.float64):
        want = snmf(A.to(acts_dtype), 3, n_iter=4, init=Y0.to(acts_dtype))
        for start in (Y0, Y0.float()):  # float64 or float32 start, either activation dtype
            got = snmf(A.to(acts_dtype), 3, n_iter=4, init=start)
            assert got.Y.dtype == got.Z.dtype == acts_dtype
            assert torch.equal(got.Y, want.Y) and torch.equal(got.Z, want.Z)
    assert Y0.dtype == torch.float64  # the caller's start is left alone


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_start_is_the_seeded_uniform_plus_a_twentieth(dtype):
    """init="random" starts from U[0, 1) + 0.05 drawn from the seed, in the activations' dtype, whatever the
    global random state."""
    A = _acts(d=10, n=30, seed=3).to(dtype)
    for seed in (0, 5):
        Y0 = torch.rand(3, 30, generator=torch.Generator().manual_seed(seed), dtype=dtype) + 0.05
        want = snmf(A, 3, n_iter=5, init=Y0, seed=seed)
        torch.manual_seed(123)
        got = snmf(A, 3, n_iter=5, init="random", seed=seed)
        torch.manual_seed(456)
        again = snmf(A, 3, n_iter=5, init="random", seed=seed)
        assert got.Y.dtype == dtype
        assert torch.equal(got.Y, want.Y) and torch.equal(got.Z, want.Z) and torch.equal(again.Y, got.Y)


def test_greedy_start_draws_its_pool_from_the_seed_not_the_global_generator():
    A = _acts(d=8, n=1500, seed=4)  # more tokens than the 1024 of the pool: the pool is a seeded draw
    torch.manual_seed(0)
    a = snmf(A, 3, n_iter=3, seed=3)
    torch.manual_seed(1)
    b = snmf(A, 3, n_iter=3, seed=3)
    assert torch.equal(a.Y, b.Y) and torch.equal(a.Z, b.Z)
    assert not torch.equal(snmf(A, 3, n_iter=3, seed=4).Y, a.Y)  # the pool does matter


def _spy(monkeypatch, name):
    """Wrap the module's helper ``name``, recording the arguments of every call."""
    S = importlib.import_module("kit.analysis.snmf")
    real, calls = getattr(S, name), []

    def spy(*args):
        calls.append([a.clone() if isinstance(a, torch.Tensor) else a for a in args])
        return real(*args)

    monkeypatch.setattr(S, name, spy)
    return calls


def test_z_step_schedule_unit_rows_and_refit_only_after_warm_up(monkeypatch):
    """Each iteration's Z step gets Y with unit-norm rows (so lam is relative), the kept count shrinking
    geometrically from d_mlp to keep over the warm-up (then keep), and the refit only after the warm-up."""
    A = _acts(d=64, n=80, seed=5)
    keep, warmup = 2, 5
    for refit in (True, False):
        calls = _spy(monkeypatch, "_z_step")
        res = snmf(A, 3, density=keep / 64, n_iter=8, warmup=warmup, restart=False, refit=refit, lam=0.25,
                   patience=100)
        assert len(res.losses) == 8 and len(calls) == 8
        want_keep = [64, 32, 16, 8, 4]  # 64 ** (1 - it / 5) * 2 ** (it / 5): halving from d_mlp towards keep
        assert [c[3] for c in calls] == want_keep + [keep] * 3
        assert [c[4] for c in calls] == [False] * warmup + [refit] * 3
        assert all(c[2] == 0.25 for c in calls)
        for _, Y, *_ in calls:
            torch.testing.assert_close(Y.norm(dim=1), torch.ones(3), rtol=1e-5, atol=0)
        monkeypatch.undo()


def test_duplicates_are_looked_for_until_patience_iterations_before_the_end(monkeypatch):
    A = _acts(d=12, n=40, seed=6)
    for restart, want in ((True, 3), (False, 0)):
        calls = _spy(monkeypatch, "_duplicates")
        res = snmf(A, 3, n_iter=8, patience=5, warmup=0, restart=restart, tol=0.0)
        assert len(res.losses) >= 4  # ran past iteration 3, the first it must skip
        assert len(calls) == want  # iterations 0, 1, 2 < n_iter - patience = 3
        monkeypatch.undo()


@pytest.mark.parametrize("refit", [True, False])
def test_a_duplicate_feature_is_dropped_refit_around_and_restarted(monkeypatch, refit):
    """Two identical start rows give parallel z's: the second is flagged, its row of Y zeroed, the others
    refit with it left out (same kept count and refit flag), and it restarts on the worst-fit token."""
    A = _acts(d=12, n=40, seed=7)
    Y0 = torch.rand(3, 40, generator=torch.Generator().manual_seed(8)) + 0.1
    Y0[1] = Y0[0]
    z_calls = _spy(monkeypatch, "_z_step")
    restarts = _spy(monkeypatch, "_restart")
    snmf(A, 3, density=1.0, n_iter=2, init=Y0, warmup=0, refit=refit, restart=True, patience=1)  # looks at it 0
    assert len(restarts) == 1 and restarts[0][5].tolist() == [False, True, False]
    first, second = z_calls[0], z_calls[1]
    assert second[1][1].abs().sum() == 0 and torch.equal(second[1][[0, 2]], first[1][[0, 2]])
    assert second[0][:, 1].abs().sum() == 0 and torch.equal(second[0][:, [0, 2]], first[0][:, [0, 2]])
    assert second[2:] == first[2:] == [1e-6, 12, refit]


def test_divergence_is_refused_with_its_iteration_and_a_remedy():
    A = _acts() * 1e18  # squared energies overflow float32
    message = _refused(FloatingPointError, lambda: snmf(A, 3))
    assert message == "SNMF diverged at iteration 0 (loss nan); try float64 acts or a larger lam"
    assert snmf(A.double(), 3, n_iter=3).Y.dtype == torch.float64  # the remedy works


def test_the_first_of_equal_best_losses_is_kept_and_equal_losses_are_no_gain():
    """An exact fit: every iterate has loss 0. The best is the first, and with tol=0 a loss equal to the
    reference is not a gain, so the run stops after `patience` more iterations."""
    for acts in (torch.tensor([[2.0]]), torch.outer(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.5, 0.0, 4.0]))):
        res = snmf(acts, 1, density=1.0, n_iter=50, warmup=0, tol=0.0, patience=4)
        assert res.losses.count(0.0) >= 3 and res.best_iter == res.losses.index(0.0)
        ref, last_gain = math.inf, 0  # the stopping rule: only a strictly lower loss is a gain
        for it, loss in enumerate(res.losses):
            if loss < ref:
                ref, last_gain = loss, it
        assert len(res.losses) == last_gain + 4 + 1


def test_seconds_is_the_time_the_call_took():
    t0 = time.perf_counter()
    res = snmf(_acts(), 3, n_iter=5)
    elapsed = time.perf_counter() - t0
    assert 0 < res.seconds <= elapsed


def _loss_shown(err):
    shown = re.findall(r"loss=([0-9.]+)", err)
    return [s for i, s in enumerate(shown) if i == 0 or s != shown[i - 1]]  # each refresh repeats the postfix


def test_progress_bar_names_the_run_shows_the_loss_every_ten_iterations_and_clears_itself(capsys):
    A = _acts(d=32, n=200, seed=9)
    res = snmf(A, 6, density=1.0, n_iter=25, warmup=0, patience=100, init="random", restart=False, progress=True)
    err = capsys.readouterr().err
    assert "SNMF k=6" in err and "/25" in err
    assert _loss_shown(err) == [f"{res.losses[it]:.4f}" for it in (0, 10, 20)]
    assert len({f"{res.losses[it]:.4f}" for it in (0, 1, 10, 11, 20, 21)}) == 6  # another stride would show
    assert err.endswith("\r") and not err.endswith("\n")  # left on screen, it would end in a newline
    snmf(A, 6, n_iter=25, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("shape, k, n_iter", [((1, 1), 1, 200_000_000_000), ((2, 5), 2, 10_000_000_000)])
def test_by_default_a_bar_only_above_2e11_multiply_adds(capsys, shape, k, n_iter):
    """d_mlp · n_tokens · k · n_iter > 2e11 shows a bar; exactly 2e11 does not. (A huge n_iter costs nothing
    here: the fit is exact at once, and the run stops after `patience` iterations.)"""
    acts = torch.arange(1.0, 1.0 + shape[0] * shape[1]).reshape(shape)
    snmf(acts, k, n_iter=n_iter)
    assert capsys.readouterr().err == ""
    snmf(acts, k, n_iter=n_iter + 1)
    assert f"SNMF k={k}" in capsys.readouterr().err
