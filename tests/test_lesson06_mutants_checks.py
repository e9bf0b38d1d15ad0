"""Lesson 06's checks against mutation survivors (issue 16), on small synthetic instances whose answers are computed
here independently (loops, closed forms): near misses just outside and just inside each tolerance, the exact
messages, each named mistake, the comparison table's numbers and the charts' data. Fast: no training, no model
except where the helper needs one (facts-4l, loaded once)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import kit.lessons as lessons
from kit.analysis.dictionary import Dictionary
from kit.lessons import dictionaries as L


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("KIT_PROGRESS", "0")
    lessons.stop()


# ------------------------------------------------------------------------------------------ 6.1
def _dim_loop(W: torch.Tensor) -> list[float]:
    """D_i by the definition, one feature at a time."""
    out = []
    for i in range(W.shape[1]):
        wi = W[:, i].double()
        n2 = float(wi @ wi)
        if n2 ** 0.5 <= 1e-6:
            out.append(0.0)
            continue
        u = wi / n2 ** 0.5
        out.append(n2 / sum(float(u @ W[:, j].double()) ** 2 for j in range(W.shape[1])))
    return out


PENTAGON = torch.stack([torch.cos(torch.arange(5) * 2 * math.pi / 5), torch.sin(torch.arange(5) * 2 * math.pi / 5)])
PAIR = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])


def test_dimensionality_equals_the_definition_including_a_dropped_feature():
    W = torch.tensor([[2.0, 0.0, 0.3, 0.0, 1e-7], [0.0, 0.5, 0.4, 0.0, 0.0], [0.1, -0.2, 0.0, 0.0, 0.0]])
    got = L.dimensionality(W)
    assert got.shape == (5,)
    assert torch.allclose(got, torch.tensor(_dim_loop(W), dtype=torch.float32), atol=1e-6)
    assert got[3] == 0 and got[4] == 0  # a zero column, and one below the 1e-6 floor
    assert torch.allclose(L.dimensionality(PENTAGON), torch.full((5,), 0.4), atol=1e-6)
    assert torch.allclose(L.dimensionality(PAIR), torch.tensor([0.5, 0.5, 1.0]), atol=1e-6)


def test_a_feature_just_above_the_zero_floor_is_a_dimension_of_its_own():
    W = torch.tensor([[2e-6, 0.0], [0.0, 1.0]])
    assert torch.allclose(L.dimensionality(W), torch.tensor([1.0, 1.0]), atol=1e-5)


def _toy(*Ws: torch.Tensor) -> SimpleNamespace:
    return SimpleNamespace(W=torch.stack(Ws), sparsities=[0.0] * len(Ws))


def _rand_W(seed: int, d: int = 3, n: int = 8) -> torch.Tensor:
    return torch.randn(d, n, generator=torch.Generator().manual_seed(seed))


def _true_dim(W):
    return torch.tensor(_dim_loop(W), dtype=torch.float32)


SUMMARY = "a pentagon gives 0.4 each, an antipodal pair 0.5, a feature alone 1"


def test_dimensionality_pass_message_counts_the_geometries_with_the_toy_models():
    assert L.check_dimensionality(_true_dim).message == f"right on 4 geometries ({SUMMARY})."
    verdict = L.check_dimensionality(_true_dim, _toy(_rand_W(0), _rand_W(1), _rand_W(2)))
    assert verdict.passed and verdict.exercise == L.EX_DIM
    assert verdict.message == f"right on 7 geometries ({SUMMARY})."


def test_dimensionality_near_misses_fail_and_float_error_passes():
    assert L.check_dimensionality(lambda W: _true_dim(W) + 0.0015).passed
    verdict = L.check_dimensionality(lambda W: _true_dim(W) + 0.006)
    assert verdict.message == ("on a pentagon (5 features in 2 dimensions): you gave [0.41, 0.41, 0.41, 0.41, 0.41], "
                               "the dimensionalities are [0.40, 0.40, 0.40, 0.40, 0.40].")
    assert not L.check_dimensionality(lambda W: _true_dim(W) * 1.01)
    # within atol 2e-3 + rtol 2e-3 |D| but beyond atol alone (D = 0.4 and 1 on the fixed geometries): passes
    assert L.check_dimensionality(lambda W: _true_dim(W) * 1.001 + 0.0019).passed


def test_dimensionality_is_checked_on_every_toy_model_not_only_the_fixed_geometries():
    """Right on the four fixed geometries (d_hidden 2), wrong on the toy models (d_hidden 3): fails there, with the
    list cut after six values."""
    def fn(W):
        return _true_dim(W) if W.shape[0] == 2 else _true_dim(W) + 0.05

    W0, W1 = _rand_W(0), _rand_W(1)
    assert L.check_dimensionality(fn).passed
    verdict = L.check_dimensionality(fn, _toy(W0, W1))
    t = _true_dim(W0)
    fmt = lambda v: "[" + ", ".join(f"{float(x):.2f}" for x in v[:6]) + ", …]"  # noqa: E731
    assert verdict.message == f"on your toy model 0: you gave {fmt(t + 0.05)}, the dimensionalities are {fmt(t)}."

    def fn1(W):
        return _true_dim(W) + (0.05 if torch.equal(W, W1) else 0.0)

    assert "on your toy model 1:" in L.check_dimensionality(fn1, _toy(W0, W1)).message


def test_a_list_of_exactly_six_values_is_not_cut():
    W = _rand_W(4, d=3, n=6)
    verdict = L.check_dimensionality(lambda X: _true_dim(X) + (0.05 if X.shape[0] == 3 else 0.0), _toy(W))
    fmt = lambda v: "[" + ", ".join(f"{float(x):.2f}" for x in v) + "]"  # noqa: E731
    t = _true_dim(W)
    assert verdict.message == f"on your toy model 0: you gave {fmt(t + 0.05)}, the dimensionalities are {fmt(t)}."


def test_dimensionality_check_gives_the_learner_a_copy():
    """A function that scribbles over its argument cannot change the truth it is compared with."""
    def fn(W):
        D = _true_dim(W)
        W.zero_()
        return D

    assert L.check_dimensionality(fn, _toy(_rand_W(3))).passed


def test_a_nan_answer_fails_and_is_told_about_the_self_term():
    def fn(W):
        D = _true_dim(W)
        D[0] = float("nan")
        return D

    verdict = L.check_dimensionality(fn)
    assert verdict.status == "failed"
    assert verdict.message.endswith(" The sum over j must include the feature itself (j = i): without it, a feature "
                                    "with no interference divides by 0.")


@pytest.mark.parametrize("wrong, tail", [
    (lambda W: W.norm(dim=1), " That is one number per hidden dimension: W is [d_hidden, feature], so a feature is "
                              "a column W[:, i] (norms over dim=0)."),
    (lambda W: W.norm(), " You reduced to one number: give one dimensionality per feature."),
    (lambda W: W.norm(dim=0)[:, None], ""),
], ids=["per-hidden-dim", "scalar", "column"])
def test_dimensionality_wrong_shapes_have_exact_messages(wrong, tail):
    got = wrong(PENTAGON)
    verdict = L.check_dimensionality(wrong)
    assert verdict.message == (f"on a pentagon (5 features in 2 dimensions), W of shape [2, 5]: give D of shape "
                               f"[feature=5], got {list(got.shape)}.{tail}")


def test_dimensionality_answers_that_are_not_tensors_are_refused():
    assert L.check_dimensionality(lambda W: object()).message == "return a tensor D[feature]; got object"
    assert L.check_dimensionality(lambda W: "abc").message == "return a tensor D[feature]; got str"


def _n(W):
    return W.norm(dim=0)


def _ov(W):
    return (W / W.norm(dim=0)).T @ W


@pytest.mark.parametrize("wrong, tail", [
    (lambda W: _n(W) ** 2 / ((_ov(W) ** 2).sum(1) - _n(W) ** 2 + 1e-9),
     " The sum over j must include the feature itself (j = i): without it, a feature with no interference divides "
     "by 0."),
    (lambda W: _n(W) ** 2 / ((W.T @ W) ** 2).sum(1),
     " Normalise W_i in the overlaps: (W_i / ||W_i||) . W_j, so that D does not depend on the scale of W."),
    (lambda W: _n(W) / (_ov(W) ** 2).sum(1), " The numerator is the squared norm ||W_i||^2."),
    (lambda W: _n(W) ** 4 / (_ov(W) ** 2).sum(1), " The numerator is the squared norm ||W_i||^2."),
    (lambda W: _n(W) ** 2 / _ov(W).abs().sum(1),
     " Square the overlaps before summing them: sum_j (Ŵ_i . W_j)^2, not |Ŵ_i . W_j|."),
    (lambda W: W.shape[0] / (W ** 2).sum() * torch.ones(W.shape[1]),
     " That is the model's dimensions per feature, d_hidden / ||W||_F^2, the same for every feature; give each "
     "feature's own D_i."),
    (lambda W: _true_dim(W) + 0.05, ""),
], ids=["no-self-term", "unnormalised", "norm", "norm4", "abs", "per-model", "off"])
def test_each_named_dimensionality_mistake_has_its_exact_hint(wrong, tail):
    """On a geometry where each wrong formula differs from D (three features of different norms, checked 4th)."""
    W = torch.tensor([[2.0, 0.0, 0.3], [0.0, 0.5, 0.4]])
    verdict = L.check_dimensionality(lambda X: wrong(X) if torch.equal(X, W) else _true_dim(X))
    got, truth = wrong(W), _true_dim(W)
    fmt = lambda v: "[" + ", ".join(f"{float(x):.2f}" for x in v) + "]"  # noqa: E731
    assert verdict.message == (f"on three features of different norms: you gave {fmt(got)}, the dimensionalities "
                               f"are {fmt(truth)}.{tail}")


def test_a_mistake_is_named_only_when_the_answer_is_that_mistake_within_float_error():
    W = torch.tensor([[2.0, 0.0, 0.3], [0.0, 0.5, 0.4]])
    unnormalised = lambda X: _n(X) ** 2 / ((X.T @ X) ** 2).sum(1)  # noqa: E731
    near = L.check_dimensionality(lambda X: unnormalised(X) + 0.0015 if torch.equal(X, W) else _true_dim(X))
    assert "Normalise" in near.message
    rel_ = L.check_dimensionality(lambda X: unnormalised(X) * 1.001 + 0.0019 if torch.equal(X, W) else _true_dim(X))
    assert "Normalise" in rel_.message  # within atol 2e-3 + rtol 2e-3 |x|, outside atol alone (|x| > 0.2 here)
    assert float(unnormalised(W).min()) > 0.2
    far = L.check_dimensionality(lambda X: unnormalised(X) + 0.01 if torch.equal(X, W) else _true_dim(X))
    assert far.status == "failed" and far.message.endswith("].")


# ------------------------------------------------------------------------------------------ 6.2
def _ev_l0_loop(t, p, y):
    """Explained variance and L0 by their definitions, element by element."""
    d, n = t.shape
    mean = [sum(float(t[i, j]) for j in range(n)) / n for i in range(d)]
    err = sum((float(t[i, j]) - float(p[i, j])) ** 2 for i in range(d) for j in range(n))
    var = sum((float(t[i, j]) - mean[i]) ** 2 for i in range(d) for j in range(n))
    l0 = sum(sum(1 for k in range(y.shape[0]) if float(y[k, j]) > 0) for j in range(n)) / n
    return 1 - err / var, l0


def _l0_loop(y):
    return sum(sum(1 for k in range(y.shape[0]) if float(y[k, j]) > 0) for j in range(y.shape[1])) / y.shape[1]


def _case(seed, d=4, n=12, k=6, shift=3.0, density=0.5):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(d, n, generator=g) + shift
    p = t + 0.4 * torch.randn(d, n, generator=g)
    y = torch.randn(k, n, generator=g)
    y = torch.where(torch.rand(k, n, generator=g) < density, y.abs() + 0.1, torch.zeros(k, n))
    y[0, :3] = -1.0  # negative latents are not active either
    return t, p, y


@pytest.fixture
def cases():
    return [("case A", *_case(0)), ("case B", *_case(1, shift=-2.0, density=0.3))]


def test_reconstruction_stats_equal_the_definition(cases):
    for _, t, p, y in cases:
        ev, l0 = L.reconstruction_stats(t, p, y)
        tev, tl0 = _ev_l0_loop(t, p, y)
        assert ev == pytest.approx(tev, abs=1e-5) and l0 == pytest.approx(tl0, abs=1e-6)
    t = torch.ones(2, 3)
    assert L.reconstruction_stats(t, t, torch.zeros(1, 3)) == (1.0, 0.0)  # no variance: 0 / clamp, not 0 / 0
    _, t, p, y = cases[0]
    tiny = L.reconstruction_stats(1e-3 * t, 1e-3 * p, y)[0]  # a variance far below 1 is not clamped
    assert tiny == pytest.approx(_ev_l0_loop(t, p, y)[0], abs=1e-4)


def stats_fn(dev=0.0, dl0=0.0, only=None):
    def fn(t, p, y):
        ev, l0 = _ev_l0_loop(t, p, y)
        if only is None or torch.equal(t, only):
            return ev + dev, l0 + dl0
        return ev, l0
    return fn


def test_reconstruction_pass_message_reports_the_first_case(cases):
    verdict = L.check_reconstruction_stats(stats_fn(), cases)
    ev, l0 = _ev_l0_loop(*cases[0][1:])
    assert verdict.passed and verdict.exercise == L.EX_STATS
    assert verdict.message == (f"right on 2 cases; on case A: {ev:.0%} of the variance explained with {l0:.1f} "
                               "active latents per token.")


def test_explained_variance_near_misses(cases):
    assert L.check_reconstruction_stats(stats_fn(dev=5e-4), cases).passed
    verdict = L.check_reconstruction_stats(stats_fn(dev=2e-3), cases)
    ev, _ = _ev_l0_loop(*cases[0][1:])
    assert verdict.message == f"on case A: explained variance {ev + 2e-3:.3f}, not {ev:.3f}."
    assert not L.check_reconstruction_stats(stats_fn(dev=-2e-3), cases)


def test_l0_tolerance_is_relative_above_one_and_absolute_below(cases):
    _, l0 = _ev_l0_loop(*cases[0][1:])
    assert l0 > 2
    assert L.check_reconstruction_stats(stats_fn(dl0=0.005 * l0), cases).passed
    verdict = L.check_reconstruction_stats(stats_fn(dl0=0.015 * l0), cases)
    assert verdict.message == f"on case A: L0 {1.015 * l0:.3f}, not {l0:.2f}."
    assert not L.check_reconstruction_stats(stats_fn(dl0=-0.015 * l0), cases)
    t, p, y = _case(2, density=0.0)
    y[1, :6] = 1.0  # L0 = 0.5: the tolerance is 0.01
    small = [("sparse", t, p, y)]
    assert L.check_reconstruction_stats(stats_fn(dl0=0.008), small).passed
    assert L.check_reconstruction_stats(stats_fn(dl0=0.015), small).message == "on sparse: L0 0.515, not 0.50."


def test_both_wrong_are_both_reported(cases):
    ev, l0 = _ev_l0_loop(*cases[0][1:])
    verdict = L.check_reconstruction_stats(stats_fn(dev=0.1, dl0=1.0), cases)
    assert verdict.message == f"on case A: explained variance {ev + 0.1:.3f}, not {ev:.3f}. L0 {l0 + 1:.3f}, not {l0:.2f}."


def test_every_case_is_checked(cases):
    verdict = L.check_reconstruction_stats(stats_fn(dev=0.1, only=cases[1][1]), cases)
    assert verdict.status == "failed" and verdict.message.startswith("on case B: explained variance")


def test_reconstruction_check_gives_the_learner_copies(cases):
    def fn(t, p, y):
        out = _ev_l0_loop(t, p, y)
        t.zero_(), p.fill_(5.0), y.fill_(1.0)
        return out

    assert L.check_reconstruction_stats(fn, cases).passed


@pytest.mark.parametrize("answer", [(1.0, 2.0, 3.0), ("a", "b"), 0.5, ("x" * 100, 1.0)],
                         ids=["three", "strings", "one", "long"])
def test_answers_that_are_not_two_numbers_are_refused(cases, answer):
    verdict = L.check_reconstruction_stats(lambda t, p, y: answer, cases)
    assert verdict.message == f"return two numbers, (explained_variance, l0); got {str(answer)[:80]}"
    assert len(verdict.message) <= len("return two numbers, (explained_variance, l0); got ") + 80


def test_a_tensor_pair_is_accepted(cases):
    fn = lambda t, p, y: tuple(torch.tensor(v) for v in _ev_l0_loop(t, p, y))  # noqa: E731
    assert L.check_reconstruction_stats(fn, cases).passed


def _raw(t, p):
    return float(1 - ((t - p) ** 2).sum() / (t ** 2).sum())


EV_WRONG = [
    (lambda t, p: _raw(t, p),
     " You divided by the raw sum of squares: subtract the target's mean over tokens first (MLP activations are far "
     "from centred, so the uncentred version flatters every dictionary)."),
    (lambda t, p: float(1 - ((t - p) ** 2).sum() / ((t - t.mean(0, keepdim=True)) ** 2).sum()),
     " You centred over the wrong axis: the mean is over tokens (dim 1 of [d, n_tokens])."),
    (lambda t, p: float(((t - p) ** 2).sum() / ((t - t.mean(1, keepdim=True)) ** 2).sum()),
     " That is the variance left unexplained: explained variance is 1 minus it."),
    (lambda t, p: float(1 - ((t - p) ** 2).sum().sqrt() / t.norm()),
     " That uses the relative error ||t - p|| / ||t||: compare squared errors with the variance."),
    (lambda t, p: float(((t - p) ** 2).sum().sqrt() / t.norm()),
     " That uses the relative error ||t - p|| / ||t||: compare squared errors with the variance."),
    (lambda t, p: _ev_l0_loop(t, p, torch.zeros(1, t.shape[1]))[0] - 0.05, ""),
]


@pytest.mark.parametrize("wrong, tail", EV_WRONG, ids=["raw", "axis", "unexplained", "1-rel", "rel", "off"])
def test_each_explained_variance_mistake_has_its_exact_hint(cases, wrong, tail):
    t, p, y = cases[0][1:]
    ev, l0 = _ev_l0_loop(t, p, y)
    got = wrong(t, p)
    verdict = L.check_reconstruction_stats(lambda a, b, c: (wrong(a, b), _ev_l0_loop(a, b, c)[1]), cases)
    assert verdict.message == f"on case A: explained variance {got:.3f}, not {ev:.3f}.{tail}"


def test_an_explained_variance_mistake_is_named_only_within_1e_3():
    t, p, y = _case(0)
    cases = [("c", t, p, y)]
    near = L.check_reconstruction_stats(lambda a, b, c: (_raw(a, b) + 5e-4, _ev_l0_loop(a, b, c)[1]), cases)
    assert "raw sum of squares" in near.message
    far = L.check_reconstruction_stats(lambda a, b, c: (_raw(a, b) + 3e-3, _ev_l0_loop(a, b, c)[1]), cases)
    assert far.message.endswith(".") and "raw" not in far.message


L0_WRONG = [
    (lambda y: float((y > 0).float().mean()),
     " That is the share of active (latent, token) pairs: count the active latents per token instead."),
    (lambda y: float((y > 0).float().sum(1).mean()),
     " That counts tokens per latent (sum over dim 1): count latents per token (sum over dim 0)."),
    (lambda y: float((y >= 0).float().sum(0).mean()), " A latent at 0 is not active: count latents > 0, not >= 0."),
    (lambda y: float(y.sum(0).mean()), " That is the mean L1 norm of the latents: L0 counts the active ones."),
    (lambda y: _l0_loop(y) + 0.5, ""),
]


@pytest.mark.parametrize("wrong, tail", L0_WRONG, ids=["share", "per-latent", "ge0", "l1", "off"])
def test_each_l0_mistake_has_its_exact_hint(wrong, tail):
    t, p, y = _case(0, k=5, n=12)
    y[:, 6:] = 0.0
    y = 3 * y
    cases = [("c", t, p, y)]
    ev, l0 = _ev_l0_loop(t, p, y)
    got = wrong(y)
    assert abs(got - l0) > 0.1
    verdict = L.check_reconstruction_stats(lambda a, b, c: (_ev_l0_loop(a, b, c)[0], wrong(c)), cases)
    assert verdict.message == f"on c: L0 {got:.3f}, not {l0:.2f}.{tail}"


def test_an_l0_mistake_is_named_only_within_its_tolerance():
    t, p, y = _case(0, k=5, n=12)
    y[:, 6:] = 0.0
    cases = [("c", t, p, y)]
    share = float((y > 0).float().mean())
    ev = _ev_l0_loop(t, p, y)[0]
    assert "share of active" in L.check_reconstruction_stats(lambda a, b, c: (ev, share + 5e-4), cases).message
    assert "share" not in L.check_reconstruction_stats(lambda a, b, c: (ev, share + 3e-3), cases).message
    per_latent = float((y > 0).float().sum(1).mean())
    assert per_latent > 1
    assert "tokens per latent" in L.check_reconstruction_stats(lambda a, b, c: (ev, per_latent * 1.005), cases).message
    assert "tokens per latent" not in L.check_reconstruction_stats(
        lambda a, b, c: (ev, per_latent * 1.02), cases).message
    ge0 = float((y >= 0).float().sum(0).mean())
    assert "not >= 0" in L.check_reconstruction_stats(lambda a, b, c: (ev, ge0 + 0.008), cases).message
    assert "not >= 0" not in L.check_reconstruction_stats(lambda a, b, c: (ev, ge0 + 0.015), cases).message
    # per-latent count 1.2 (< 2): the hint's tolerance is 1e-2 * max(1, 1.2) = 0.012
    t4, p4 = _case(3, k=5, n=4)[:2]
    y4 = torch.zeros(5, 4)
    y4[0, :2] = 3.0
    y4[1:, 0] = 3.0
    cases4 = [("c4", t4, p4, y4)]
    ev4 = _ev_l0_loop(t4, p4, y4)[0]
    assert float((y4 > 0).float().sum(1).mean()) == pytest.approx(1.2) and _l0_loop(y4) == 1.5
    assert "tokens per latent" in L.check_reconstruction_stats(lambda a, b, c: (ev4, 1.21), cases4).message
    assert "tokens per latent" not in L.check_reconstruction_stats(lambda a, b, c: (ev4, 1.216), cases4).message
    # the L1 hint's tolerance is 1e-2 * max(1, answer): relative above 1 (L1 = 15), and not 0.02 below 2 (L1 = 1.8)
    for value, l1_, inside, outside in ((10.0, 15.0, 15.075, 15.2), (1.2, 1.8, 1.815, 1.819)):
        y5 = y4 / 3.0 * value
        c5 = [("c5", t4, p4, y5)]
        assert float(y5.sum(0).mean()) == pytest.approx(l1_)
        assert "L1 norm" in L.check_reconstruction_stats(lambda a, b, c: (ev4, inside), c5).message
        assert "L1 norm" not in L.check_reconstruction_stats(lambda a, b, c: (ev4, outside), c5).message
    l1 = float(y.sum(0).mean())
    assert l1 > 1
    assert "L1 norm" in L.check_reconstruction_stats(lambda a, b, c: (ev, l1 * 1.005), cases).message
    assert "L1 norm" not in L.check_reconstruction_stats(lambda a, b, c: (ev, l1 * 1.02), cases).message


# ------------------------------------------------------------------------------------------ 6.3
def _relation_setup():
    """Y[5 features, 40 tokens]; the mask is tokens 0..9. With top=4: feature 1's top tokens are all in the mask
    (precision 1), feature 3's too (a tie), feature 4 has the largest mean on the mask but its top tokens are out
    of it, feature 2 is the most active overall, feature 0's top tokens are never in the mask (none of the named
    features is feature 0, which an argmax over the wrong axis returns)."""
    n = 40
    Y = torch.zeros(5, n)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:10] = True
    Y[4, :10] = 8.0
    Y[4, 10:14] = 9.0
    Y[1, :4] = torch.tensor([2.0, 1.5, 1.2, 1.1])
    Y[1, 20:] = 0.5
    Y[2, :] = 5.0
    Y[2, 30:] = 6.0
    Y[3, 5:9] = 1.0
    Y[0, 15:25] = torch.arange(10.0) + 1
    return SimpleNamespace(Y=Y), mask


def _precision_loop(Y, mask, top):
    out = []
    for row in Y:
        order = sorted(range(len(row)), key=lambda j: -float(row[j]))[:min(top, len(row))]
        out.append(sum(bool(mask[j]) for j in order) / len(order))
    return out


def test_precision_at_is_the_share_of_each_features_top_tokens_in_the_mask():
    d, mask = _relation_setup()
    assert L.precision_at(d.Y, mask, top=4).tolist() == pytest.approx([0.0, 1.0, 0.0, 1.0, 0.0])
    Y = torch.randn(6, 15, generator=torch.Generator().manual_seed(0))
    m = torch.rand(15, generator=torch.Generator().manual_seed(1)) < 0.4
    for top in (3, 20):
        assert L.precision_at(Y, m, top).tolist() == pytest.approx(_precision_loop(Y, m, top))
    assert L.precision_at(Y, m).tolist() == pytest.approx(_precision_loop(Y, m, 20))  # default top 20: all 15 tokens
    Y = torch.zeros(2, 30)
    Y[:, :21] = torch.arange(21.0, 0.0, -1.0)  # tokens 0..20 are both features' top 21, in order
    m = torch.zeros(30, dtype=torch.bool)
    m[20] = True  # only the 21st strongest token is in the mask
    assert L.precision_at(Y, m).tolist() == [0.0, 0.0]  # the default is the top 20
    assert L.precision_at(Y, m, 21).tolist() == pytest.approx([1 / 21, 1 / 21])


def rel(answer, **kw):
    d, mask = _relation_setup()
    verdict = L.check_relation_feature(answer, d, mask, "capital", top=4, **kw)
    assert verdict.exercise == L.EX_FEATURE
    return verdict


def test_the_best_feature_and_a_tie_pass_with_the_exact_message():
    for answer in (1, 3, torch.tensor(3), torch.tensor([1])):
        verdict = rel(answer)
        assert verdict.passed
        assert verdict.message == (f"feature {int(answer)}: 100% of its top 4 tokens are where the model is about to "
                                   "answer a capital prompt.")


def test_a_feature_one_token_short_of_the_best_fails():
    d, mask = _relation_setup()
    d.Y[3, 20] = 1.0  # feature 3: 3 of its top 4 in the mask
    verdict = L.check_relation_feature(3, d, mask, "capital", top=4)
    assert verdict.message == "feature 3: 75% of its top 4 tokens are in the mask; some feature reaches 100%."


@pytest.mark.parametrize("answer, tail", [
    (4, " That feature has the largest mean activation on the relation's tokens, but it fires as much elsewhere: "
        "rank features by the share of their own top tokens in the mask."),
    (2, " That is the feature most active overall, on every kind of token."),
], ids=["mean", "overall"])
def test_named_wrong_features(answer, tail):
    verdict = rel(answer)
    assert verdict.message == f"feature {answer}: 0% of its top 4 tokens are in the mask; some feature reaches 100%.{tail}"


def test_a_neurons_index_is_recognised_only_when_acts_are_given():
    acts = torch.zeros(8, 40)
    acts[0, :10] = 1.0  # neuron 0: the DiffMeans argmax
    assert rel(0, acts=acts).message == ("feature 0: 0% of its top 4 tokens are in the mask; some feature reaches "
                                         "100%. That is the index of a neuron (the DiffMeans argmax), not of a feature "
                                         "of the dictionary.")
    assert rel(0).message.endswith("did you take its weakest tokens (topk, not the bottom)?")
    acts[0, 10:] = 2.0  # now neuron 0 is the least mask-specific: not named
    assert rel(0, acts=acts).message.endswith("did you take its weakest tokens (topk, not the bottom)?")
    acts = torch.zeros(8, 40)
    acts[0, :10] = 1.0
    acts[0, 10:] = 0.5  # the DiffMeans argmax is neuron 0 (0.5 more inside), not the most active inside (1)
    acts[1, :] = 3.0
    assert rel(0, acts=acts).message.endswith("not of a feature of the dictionary.")


def test_a_feature_with_no_top_token_in_the_mask_is_asked_about_the_bottom_and_one_with_some_is_not():
    assert rel(0).message == ("feature 0: 0% of its top 4 tokens are in the mask; some feature reaches 100%. None of its "
                              "top tokens is in the mask: did you take its weakest tokens (topk, not the bottom)?")
    d, mask = _relation_setup()
    d.Y[0, 0] = 9.5  # 1 of its top 4 in the mask
    assert L.check_relation_feature(0, d, mask, "capital", top=4).message.endswith("some feature reaches 100%.")


@pytest.mark.parametrize("answer, kind", [(True, "bool True"), (1.0, "float 1.0"), ("1", "str 1"),
                                          (torch.tensor([1, 3]), "Tensor tensor([1, 3])"),
                                          ("x" * 50, "str " + "x" * 40)],
                         ids=["bool", "float", "str", "tensor2", "long"])
def test_answers_that_are_not_one_index_are_refused(answer, kind):
    assert rel(answer).message == f"give one feature index (an int); got {kind}"


@pytest.mark.parametrize("answer", [-1, 5, 99])
def test_indices_outside_the_dictionary_are_refused(answer):
    assert rel(answer).message == f"feature {answer} does not exist: this dictionary has features 0..4"


def test_the_unanswered_hint_names_top():
    assert rel(...).status == "unanswered"
    assert rel(None).message == ("replace the `...` with a feature index. Hint: for each feature, the share of its "
                                 "top 4 tokens (topk on its row of Y) inside the mask; take the feature where it is "
                                 "largest")


def test_the_default_top_is_20():
    n = 60
    Y = torch.zeros(2, n)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:20] = True
    Y[0, :20] = torch.arange(20.0) + 1  # all 20 top tokens in the mask
    Y[1, :4] = 100.0  # 4 of its top 20
    Y[1, 30:46] = 50.0
    d = SimpleNamespace(Y=Y)
    assert L.check_relation_feature(0, d, mask, "capital").message.startswith("feature 0: 100% of its top 20 tokens")
    assert L.check_relation_feature(1, d, mask, "capital").message.startswith(
        "feature 1: 20% of its top 20 tokens are in the mask; some feature reaches 100%.")


# ------------------------------------------------------------------------------------------ 6.4
@pytest.fixture(scope="module")
def sae():
    """A random SAE of 6 neurons with 4 latents, with biases far from 0 (so each named mistake differs)."""
    g = torch.Generator().manual_seed(0)
    d, k, n = 6, 4, 9
    Z = torch.randn(d, k, generator=g)
    Z = Z / Z.norm(dim=0)
    W_enc = torch.randn(k, d, generator=g)
    b_enc = torch.tensor([0.5, 1.0, -0.2, 0.3])
    b_dec = torch.randn(d, generator=g)
    return Dictionary(Z, torch.rand(k, n, generator=g), [0.1], "sae", 0, 0.0, {}, W_enc, b_enc, b_dec)


@pytest.fixture(scope="module")
def x():
    return 2.0 * torch.randn(6, 9, generator=torch.Generator().manual_seed(1)) + 1.0


def _clamp_truth(x, d, i, v):
    """x + (v - f_i(x)) z_i, column by column."""
    out = x.clone().double()
    for j in range(x.shape[1]):
        pre = float(d.W_enc[i].double() @ (x[:, j].double() - d.b_dec.double()) + float(d.b_enc[i]))
        f = max(pre, 0.0)
        out[:, j] += (v - f) * d.Z[:, i].double()
    return out.float()


def test_clamp_feature_replaces_that_features_term_and_keeps_the_rest(sae, x):
    for i, v in ((1, 2.5), (3, 0.0), (0, -1.0)):
        got = L.clamp_feature(x, sae, i, v)
        assert torch.allclose(got, _clamp_truth(x, sae, i, v), atol=1e-5)
        # what it leaves alone: the part orthogonal to z_i
        z = sae.Z[:, i]
        P = torch.eye(6) - torch.outer(z, z)
        assert torch.allclose(P @ got, P @ x, atol=1e-5)
    f = sae.encode(x)[1]
    assert bool((f > 0).any())  # the feature is on somewhere: clamping changes something
    assert not torch.allclose(L.clamp_feature(x, sae, 1, 0.0), x, atol=1e-3)


def test_clamp_feature_keeps_the_input_dtype(sae, x):
    got = L.clamp_feature(x.double(), sae, 1, 2.0)
    assert got.dtype == torch.float64
    assert torch.allclose(got.float(), _clamp_truth(x, sae, 1, 2.0), atol=1e-5)


def clamp(fn, sae, x, feature=1, value=2.5):
    verdict = L.check_clamp(fn, sae, x, feature, value)
    assert verdict.exercise == L.EX_CLAMP
    return verdict


def test_clamp_pass_message_reports_the_reencoded_value(sae, x):
    verdict = clamp(lambda a, d, i, v: _clamp_truth(a, d, i, v), sae, x)
    after = sae.encode(_clamp_truth(x, sae, 1, 2.5))[1]
    assert verdict.passed
    assert verdict.message == (f"feature 1 set to 2.5 on 9 tokens; re-encoded, it reads {float(after.mean()):.2f} on "
                               "average (an SAE's encoder is not the exact inverse of its decoder).")


def test_clamp_near_misses(sae, x):
    scale = float(x.abs().max())
    assert clamp(lambda a, d, i, v: _clamp_truth(a, d, i, v) + 2e-5 * scale, sae, x).passed
    verdict = clamp(lambda a, d, i, v: _clamp_truth(a, d, i, v) + 3e-4 * scale, sae, x)
    assert verdict.message == (f"setting feature 1 to 2.5: your activations differ from the expected ones by up to "
                               f"{3e-4 * scale:.3g}.")
    bumped = lambda a, d, i, v: _clamp_truth(a, d, i, v) + torch.where(a.abs() == a.abs().max(), 3e-4 * scale, 0.0)  # noqa: E731
    assert not clamp(bumped, sae, x)


def test_clamp_is_checked_at_the_value_and_at_zero(sae, x):
    at_value_only = lambda a, d, i, v: _clamp_truth(a, d, i, 2.5)  # noqa: E731
    verdict = clamp(at_value_only, sae, x)
    assert verdict.message.startswith("setting feature 1 to 0: your activations differ")
    at_zero_only = lambda a, d, i, v: _clamp_truth(a, d, i, 0.0)  # noqa: E731
    assert clamp(at_zero_only, sae, x).message.startswith("setting feature 1 to 2.5: your activations differ")
    calls = []
    clamp(lambda a, d, i, v: calls.append(v) or _clamp_truth(a, d, i, v), sae, x, value=0)
    assert calls == [0.0]  # value 0 is checked once


def test_clamp_check_gives_the_learner_a_copy(sae, x):
    def fn(a, d, i, v):
        out = _clamp_truth(a, d, i, v)
        a.zero_()
        return out

    x0 = x.clone()
    assert clamp(fn, sae, x).passed
    assert torch.equal(x, x0)


def test_clamp_wrong_shape_and_type_messages(sae, x):
    assert clamp(lambda a, d, i, v: a[:, :3], sae, x).message == (
        "return a tensor of the shape of x, [6, 9]; got [6, 3]")
    assert clamp(lambda a, d, i, v: object(), sae, x).message == (
        "return the edited activations, a tensor [d_mlp, n_tokens]; got object")
    assert clamp(lambda a, d, i, v: _clamp_truth(a, d, i, v).tolist(), sae, x).passed


CLAMP_WRONG = [
    (lambda x, d, i, v: x + v * d.Z[:, i][:, None],
     " You added value * z on top of what the feature already writes: replace its term, x + (value - f) z."),
    (lambda x, d, i, v: d.reconstruct(x) + d.Z[:, i][:, None] * (v - d.encode(x)[i])[None],
     " You started from the SAE's reconstruction and lost its error term: edit the real activations x, so that only "
     "this feature's part changes."),
    (lambda x, d, i, v: x + d.W_enc[i][:, None] * (v - d.encode(x)[i])[None],
     " You moved along the encoder's row: a feature writes along its decoder direction, sae.Z[:, feature]."),
    (lambda x, d, i, v: x + d.Z[:, i][:, None] * (v - (d.W_enc[i] @ (x - d.b_dec[:, None]) + d.b_enc[i]))[None],
     " You used the pre-activation: the feature's value is after the ReLU (sae.encode gives it)."),
    (lambda x, d, i, v: x - d.Z[:, i][:, None] * (v - d.encode(x)[i])[None], " The sign is flipped: x + (value - f) z."),
    (lambda x, d, i, v: x + d.Z[:, i][:, None] * (v - torch.relu(d.W_enc[i] @ x + d.b_enc[i]))[None],
     " An SAE encodes x - b_dec: use sae.encode(x), which subtracts the decoder bias first."),
    (lambda x, d, i, v: x + 1.0, ""),
]


@pytest.mark.parametrize("wrong, tail", CLAMP_WRONG,
                         ids=["on-top", "reconstruction", "encoder", "pre", "sign", "no-b_dec", "other"])
def test_each_clamp_mistake_has_its_exact_hint(sae, x, wrong, tail):
    f = sae.encode(x)[2]
    assert bool((f == 0).any()) and bool((f > 0).any())  # feature 2: pre-activation and ReLU differ
    verdict = clamp(wrong, sae, x, feature=2, value=2.5)
    diff = float((wrong(x, sae, 2, 2.5) - _clamp_truth(x, sae, 2, 2.5)).abs().max())
    assert verdict.message == (f"setting feature 2 to 2.5: your activations differ from the expected ones by up to "
                               f"{diff:.3g}.{tail}")


def test_a_clamp_mistake_is_named_only_within_float_error(sae, x):
    scale = float(x.abs().max())
    sign = lambda a, d, i, v: a - d.Z[:, i][:, None] * (v - d.encode(a)[i])[None]  # noqa: E731
    # within atol + rtol |y| (both 1e-4): 0.9 atol + 0.5 rtol |y| is still the sign mistake
    within = lambda *a: sign(*a) + 0.9e-4 * scale + 0.5e-4 * sign(*a).abs()  # noqa: E731
    assert clamp(within, sae, x).message.endswith(" The sign is flipped: x + (value - f) z.")
    assert float((within(x, sae, 1, 2.5) - sign(x, sae, 1, 2.5)).abs().max()) > 1.1e-4 * scale
    assert clamp(lambda *a: sign(*a) + 2e-5 * scale, sae, x).message.endswith(" The sign is flipped: x + (value - f) z.")
    assert clamp(lambda *a: sign(*a) + 3e-4 * scale, sae, x).message.endswith(".")
    assert "sign" not in clamp(lambda *a: sign(*a) + 3e-4 * scale, sae, x).message


# ------------------------------------------------------------------------------------------ comparison
def test_unit_measures_count_l0_dead_units_and_purity():
    Y = torch.tensor([[10.0, 0.05, 0.2, 0.0],   # > 1 % of 10 = 0.1: tokens 0 and 2
                      [0.0, 0.0, 0.0, 0.0],      # dead
                      [1e-8, 0.0, 0.0, 0.0],     # dead too: below 1e-6 of the largest activation
                      [-1.0, 2.0, 0.01, 0.03]])  # > 0.02: tokens 1 and 3
    labels = torch.tensor([0, 1, 0, 1])
    got = L._unit_measures(Y, labels, top=2)
    # active units per token: token0: units 0 (and 2: 1e-8 > 1e-10); token1: 3; token2: 0; token3: 3
    assert got["l0"] == pytest.approx((2 + 1 + 1 + 1) / 4)
    assert got["dead"] == pytest.approx(0.5)
    # live units 0 and 3: unit 0's top 2 tokens are 0, 2 (labels 0, 0): 1.0; unit 3's are 1, 3 (1, 1): 1.0
    assert got["purity"] == pytest.approx(1.0)
    mixed = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert L._unit_measures(mixed, labels, top=2)["purity"] == pytest.approx(0.5)
    assert L._unit_measures(mixed, labels)["purity"] == pytest.approx(0.5)  # default top 20: all 4 tokens, 2 of each
    assert L._unit_measures(torch.zeros(2, 4), labels) == {"l0": 0.0, "dead": 1.0, "purity": 0.0}


def _table():
    return L.UnitComparison({"a": {"purity": torch.tensor([0.5, 0.6, 0.7]), "l0": torch.tensor([2.0, 2.0, 2.0])},
                             "b": {"purity": torch.tensor([0.6, 0.5, 0.6]), "l0": torch.tensor([1.0, 3.0, 2.0])}},
                            0.25, (0, 1, 2), 8, fits={"a": ["fa"], "b": ["fb"], "c": ["fc"]})


def test_unit_comparison_mean_difference_and_fits():
    t = _table()
    assert t.mean("purity", "a") == pytest.approx(0.6) and t.mean("l0", "b") == pytest.approx(2.0)
    assert t.chance == 0.25 and t.seeds == [0, 1, 2] and t.k == 8
    assert t.difference("purity", "a", "b") == "+0.03 ± 0.12 over 3 seeds -> tie"
    assert t.steering_fits(["c", "a"]) == {"c": ["fc"], "a": ["fa"]}
    assert L.UnitComparison({}, 0.0, [0], 1).fits == {}


@pytest.mark.parametrize("a, b, want", [
    ([0.9, 0.91, 0.92], [0.5, 0.5, 0.52], "+0.40 ± 0.01 over 3 seeds -> a ahead"),
    ([0.5, 0.5, 0.52], [0.9, 0.91, 0.92], "-0.40 ± 0.01 over 3 seeds -> b ahead"),
    ([0.7], [0.5], "+0.20 ± 0.00 over 1 seeds -> a ahead"),
    ([0.5], [0.5], "+0.00 ± 0.00 over 1 seeds -> tie"),
    ([1.0, 2.0], [0.0, 0.0], "+1.50 ± 0.71 over 2 seeds -> a ahead"),
    ([1.0, 4.0], [0.0, 0.0], "+2.50 ± 2.12 over 2 seeds -> tie"),
], ids=["ahead", "behind", "one-seed", "one-seed-tie", "just-ahead", "just-tie"])
def test_the_verdict_is_a_tie_when_the_interval_contains_zero(a, b, want):
    t = L.UnitComparison({"a": {"m": torch.tensor(a)}, "b": {"m": torch.tensor(b)}}, 0.0, range(len(a)), 1)
    assert t.difference("m", "a", "b") == want


def test_the_tie_boundary_is_two_standard_errors():
    # mean 1.0, sd 1.0 over 4 seeds: 2 sd / sqrt(4) = 1.0 -> a tie exactly at the boundary
    d = torch.tensor([0.0, 0.0, 2.0, 2.0])
    d = d * (1.0 / float(d.std()))
    d = d - d.mean() + 1.0
    t = L.UnitComparison({"a": {"m": d}, "b": {"m": torch.zeros(4)}}, 0.0, range(4), 1)
    assert t.difference("m", "a", "b").endswith("-> tie")
    t = L.UnitComparison({"a": {"m": d + 0.01}, "b": {"m": torch.zeros(4)}}, 0.0, range(4), 1)
    assert t.difference("m", "a", "b").endswith("-> a ahead")


def test_the_markdown_table():
    vals = {"SAE": {"error": torch.tensor([0.25, 0.35]), "l0": torch.tensor([3.0, 3.0]),
                    "dead": torch.tensor([0.1, 0.3]), "purity": torch.tensor([0.8, 0.9])},
            "neurons": {"error": torch.tensor([0.0]), "l0": torch.tensor([40.0]), "dead": torch.tensor([0.0]),
                        "purity": torch.tensor([0.4])}}
    md = L.UnitComparison(vals, 0.123, [0, 1], 4).markdown()
    assert md.split("\n") == [
        "| units | relative error | L0 (active units per token) | dead units | purity |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| SAE | 0.30 ± 0.07 | 3.00 | 20% ± 14% | 0.85 ± 0.07 |",
        "| neurons | 0.00 | 40.00 | 0% | 0.40 |",
        "| random tokens | | | | 0.12 |",
    ]


# ------------------------------------------------------------------------------------------ charts
def test_geometry_chart_draws_each_feature_as_an_arrow_with_its_dimensionality():
    W = torch.stack([PAIR[:, :2] * 1.23456, PENTAGON[:, :2]])  # [2 models, 2, 2]
    toy = SimpleNamespace(W=W.transpose(1, 2).transpose(1, 2), sparsities=[0.0, 0.9])
    toy.W = W
    spec = L.geometry_chart({"equal": toy}, title="T").to_dict()
    rows = spec["data"]["values"]
    assert len(rows) == 2 * 2 * 2
    assert rows[0] == {"importance": "equal", "sparsity": "S = 0", "feature": 0, "dimensionality": 0.5,
                       "x": 0.0, "y": 0.0, "end": 0}
    assert rows[1] == {"importance": "equal", "sparsity": "S = 0", "feature": 0, "dimensionality": 0.5,
                       "x": 1.235, "y": 0.0, "end": 1}
    assert rows[3]["x"] == -1.235 and rows[3]["feature"] == 1
    D = L.dimensionality(PENTAGON[:, :2])
    assert rows[5] == {"importance": "equal", "sparsity": "S = 0.9", "feature": 0,
                       "dimensionality": round(float(D[0]), 2), "x": 1.0, "y": 0.0, "end": 1}
    assert spec["title"] == "T"
    assert spec["facet"]["column"]["sort"] == ["S = 0", "S = 0.9"]
    assert spec["facet"]["row"]["sort"] == ["equal"]


def test_geometry_chart_refuses_models_that_are_not_2_dimensional():
    for W in (torch.zeros(1, 3, 4), torch.zeros(1, 3, 2)):  # [model, d_hidden, feature]: 2 features are not 2 dims
        with pytest.raises(ValueError) as e:
            L.geometry_chart({"wide": SimpleNamespace(W=W, sparsities=[0.0])})
        assert str(e.value) == "geometry_chart draws 2-dimensional toy models; 'wide' has d_hidden=3"
    five = L.geometry_chart({"pentagon": SimpleNamespace(W=PENTAGON[None], sparsities=[0.9])})  # 5 features in 2 dims
    assert len(five.to_dict()["data"]["values"]) == 10


def test_gram_chart_shows_every_overlap_of_every_model():
    W = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]], [[0.1234, 0.0, 1.0], [0.0, 0.5678, 1.0]]])
    spec = L.gram_chart(SimpleNamespace(W=W, sparsities=[0.7, 0.95]), title="G").to_dict()
    rows = spec["data"]["values"]
    want = []
    for m, s in enumerate(("S = 0.7", "S = 0.95")):
        G = W[m].T @ W[m]
        want += [{"sparsity": s, "i": i, "j": j, "value": round(float(G[i, j]), 3)} for i in range(3) for j in range(3)]
    assert rows == want
    assert rows[9]["value"] == 0.015  # 0.1234 ** 2, to 3 decimals
    assert spec["title"] == "G" and spec["facet"]["column"]["sort"] == ["S = 0.7", "S = 0.95"]


def _chart_spec(chart) -> dict:
    spec = chart.to_dict()
    for key in ("data", "$schema", "config"):
        spec.pop(key, None)
    return spec


def test_gram_chart_draws_a_red_blue_grid_of_overlaps_between_minus_1_and_1():
    spec = _chart_spec(L.gram_chart(SimpleNamespace(W=torch.ones(1, 2, 2), sparsities=[0.5])))
    no_axis = {"labels": False, "ticks": False}
    assert spec == {
        "facet": {"column": {"field": "sparsity", "sort": ["S = 0.5"], "title": None, "type": "nominal"}},
        "spec": {"mark": {"type": "rect"}, "encoding": {
            "color": {"field": "value", "scale": {"domain": [-1, 1], "reverse": True, "scheme": "redblue"},
                      "title": "W_i · W_j", "type": "quantitative"},
            "tooltip": [{"field": "i", "type": "ordinal"}, {"field": "j", "type": "ordinal"},
                        {"field": "value", "type": "quantitative"}],
            "x": {"axis": no_axis, "field": "j", "title": None, "type": "ordinal"},
            "y": {"axis": no_axis, "field": "i", "title": None, "type": "ordinal"}},
            "height": 110, "width": 110},
        "title": ""}


def test_geometry_chart_draws_arrows_from_the_origin_with_a_tip_that_shows_the_dimensionality():
    toy = SimpleNamespace(W=torch.ones(2, 2, 2), sparsities=[0.7, 0.9])
    chart = L.geometry_chart({"b": toy, "a": toy})
    rows = chart.to_dict()["data"]["values"]
    assert len(rows) == 2 * 2 * 2 * 2  # both rows of the grid, both models, both features, two ends each
    assert [r["importance"] for r in rows[::8]] == ["b", "a"]
    spec = _chart_spec(chart)
    pos = {"scale": {"domain": [-1.3, 1.3]}, "title": None, "type": "quantitative"}
    color = {"field": "feature", "title": "feature (0 = most important)", "type": "nominal"}
    assert spec == {
        "facet": {"column": {"field": "sparsity", "sort": ["S = 0.7", "S = 0.9"], "title": None, "type": "nominal"},
                  "row": {"field": "importance", "sort": ["b", "a"], "title": None, "type": "nominal"}},
        "spec": {"layer": [
            {"mark": {"type": "line", "strokeWidth": 2},
             "encoding": {"color": color, "detail": {"field": "feature", "type": "nominal"},
                          "order": {"field": "end", "type": "quantitative"},
                          "x": {"field": "x", **pos}, "y": {"field": "y", **pos}}},
            {"mark": {"type": "point", "filled": True, "size": 40},
             "encoding": {"color": color, "tooltip": [{"field": "feature", "type": "nominal"},
                                                      {"field": "dimensionality", "type": "quantitative"}],
                          "x": {"field": "x", **pos}, "y": {"field": "y", **pos}},
             "transform": [{"filter": "datum.end == 1"}]}],
            "height": 130, "width": 130},
        "title": ""}


# ------------------------------------------------------------------------------------------ on facts-4l
@pytest.fixture(scope="module")
def facts():
    import kit
    from kit.analysis import mlp_io
    from kit.models import ZOO_DIR

    if not (ZOO_DIR / "facts-4l" / "config.json").is_file():
        pytest.skip("facts-4l is not shipped")
    torch.manual_seed(0)
    model = kit.load("facts-4l", device="cpu")
    prompts = ["The capital of Veloria is", "The currency of Veloria is the", "Paris is a city in", "The cat"]
    io = mlp_io(model, prompts, 0)
    held = mlp_io(model, ["The capital of Mistport is", "Rome is a city in the south of"], 0)  # other tokens
    g = torch.Generator().manual_seed(0)
    d, k = io.hidden.shape[0], 8
    Z = torch.randn(d, k, generator=g)
    Z = Z / Z.norm(dim=0)
    sae = Dictionary(Z, torch.rand(k, 3, generator=g), [0.1], "sae", 0, 0.0, {}, 0.3 * torch.randn(k, d, generator=g),
                     torch.full((k,), 0.5), 0.1 * torch.randn(d, generator=g))
    return SimpleNamespace(model=model, prompts=prompts, io=io, held=held, sae=sae)


def test_clamped_logprobs_are_each_prompts_last_token_with_the_feature_set(facts):
    from kit.interventions import Edit

    model, sae = facts.model, facts.sae
    got = L.clamped_logprobs(model, facts.prompts, 1, sae, 3, 4.0)
    assert got.shape == (4, model.tokenizer.vocab_size) or got.shape[0] == 4
    clean = []
    for i, p in enumerate(facts.prompts):
        def edit(a):  # [1, pos, d_mlp]
            return _clamp_truth(a[0].T, sae, 3, 4.0).T[None]

        one = model.trace(p, capture=[], interventions=[Edit("mlp_post", 1, edit)]).logits[0, -1].float()
        assert torch.allclose(got[i], one.log_softmax(-1), atol=1e-4), i
        clean.append(model.trace(p, capture=[]).logits[0, -1].float().log_softmax(-1))
    assert float((got - torch.stack(clean)).abs().max()) > 0.05  # the edit does something
    assert torch.allclose(got.exp().sum(-1), torch.ones(4), atol=1e-4)


def test_decoded_tokens_are_the_tokens_the_features_output_direction_promotes(facts):
    model, sae = facts.model, facts.sae
    a = model.adapter
    out = sae.Z[:, 5] @ a.W_out(1).float()  # [d_model]
    w = getattr(a.final_norm, "weight", None)
    if w is not None:
        out = out * w.float()
    logits = out @ a.W_U.float()
    for k in (6, 3):
        want = model.to_str_tokens(logits.topk(k).indices)
        got = L.decoded_tokens(model, 1, sae, 5, k) if k != 6 else L.decoded_tokens(model, 1, sae, 5)
        assert got == want and len(got) == k


def test_compare_units_measures_each_kind_of_unit_per_seed(facts):
    from kit.analysis import chance_purity, train_sae, train_transcoder

    io, held = facts.io, facts.held
    n = io.hidden.shape[1]
    labels = torch.arange(n) % 3
    t = L.compare_units(facts.model, io, held, labels, k=4, seeds=(0, 2), snmf_iter=2, nmf_iter=2, steps=3)
    assert list(t.values) == list(L.UNITS) and t.seeds == [0, 2] and t.k == 4
    assert t.chance == chance_purity(labels)
    for u in L.UNITS:
        assert set(t.values[u]) == set(L.MEASURES)
        for m in L.MEASURES:
            assert t.values[u][m].shape == (2,), (u, m)
    for j, s in enumerate((0, 2)):
        sae = train_sae(io.hidden, 4, steps=3, seed=s)
        assert t.values["SAE"]["error"][j] == pytest.approx(sae.stats(held.hidden)["relative_error"], rel=1e-5)
        assert t.fits["SAE"][j].Y.shape == (4, n) and torch.allclose(t.fits["SAE"][j].Z, sae.Z)
        tc = train_transcoder(io.inputs, io.outputs, 4, steps=3, seed=s)
        assert t.values["transcoder"]["error"][j] == pytest.approx(
            tc.stats(held.inputs, held.outputs)["relative_error"], rel=1e-5)
        for u, fit in (("SAE", sae), ("transcoder", tc)):  # held-out error, not the training loss
            assert abs(float(t.values[u]["error"][j]) - fit.loss) > 1e-4, u  # 10x the tolerance above
        W_out = facts.model.adapter.W_out(0).detach().float()
        assert torch.allclose(t.fits["transcoder"][j].Z, tc.mlp_directions(W_out), atol=1e-5)
        assert t.fits["transcoder"][j].method == "transcoder" and torch.equal(t.fits["transcoder"][j].Y, tc.Y)
        for u in ("SNMF", "NMF"):
            assert t.values[u]["error"][j] == pytest.approx(t.fits[u][j].loss)
            assert t.values[u]["purity"][j] == pytest.approx(L._unit_measures(t.fits[u][j].Y, labels)["purity"])
        assert t.values["SAE"]["l0"][j] == pytest.approx(L._unit_measures(sae.Y, labels)["l0"])
    neurons = L._unit_measures(io.hidden, labels)
    assert t.values["neurons"]["error"].tolist() == [0.0, 0.0]
    assert t.values["neurons"]["l0"].tolist() == pytest.approx([neurons["l0"]] * 2)
    assert t.values["neurons"]["purity"].tolist() == pytest.approx([neurons["purity"]] * 2)
    assert torch.equal(t.fits["neurons"][1].Z, torch.eye(io.hidden.shape[0]))
    assert torch.equal(t.fits["neurons"][1].Y, io.hidden) and t.fits["neurons"][0].method == "neurons"
    assert t.fits["SNMF"][0].method == "snmf" and t.fits["NMF"][1].method == "nmf"
    assert t.fits["neurons"][0].losses == [] and t.fits["transcoder"][0].losses == []
    assert t.values["SAE"]["error"][0] != t.values["SAE"]["error"][1]  # a fit per seed


# ------------------------------------------------------------------------------------------ placeholders and crashes
def stub(*args):
    raise NotImplementedError


HINTS = {
    L.EX_DIM: "n = W.norm(dim=0); overlaps = (W / n).T @ W  ([feature, feature]); D = n**2 / (overlaps**2).sum(1)  "
              "(the sum includes j = i)",
    L.EX_STATS: "explained variance = 1 - ((target - prediction)**2).sum() / ((target - target.mean(1, keepdim=True))"
                "**2).sum(); L0 = (latents > 0).sum(0) (per token), then its mean",
    L.EX_CLAMP: "f = sae.encode(x)[feature] ([n_tokens]); z = sae.Z[:, feature] ([d_mlp]); return x + z[:, None] * "
                "(value - f)[None]",
}


def _run_check(name, fn, sae, x, cases):
    if name == L.EX_DIM:
        return L.check_dimensionality(fn)
    if name == L.EX_STATS:
        return L.check_reconstruction_stats(fn, cases)
    return L.check_clamp(fn, sae, x, 1, 2.5)


@pytest.mark.parametrize("name", list(HINTS), ids=["dim", "stats", "clamp"])
def test_an_open_exercise_is_to_do_with_its_hint(name, sae, x, cases):
    for fn in (stub, ..., None):
        verdict = _run_check(name, fn, sae, x, cases)
        assert (verdict.exercise, verdict.status) == (name, "unanswered")
        assert verdict.message == (f"write the function's body (it still raises NotImplementedError). "
                                   f"Hint: {HINTS[name]}")


@pytest.mark.parametrize("name", list(HINTS), ids=["dim", "stats", "clamp"])
def test_a_function_that_crashes_fails_under_its_exercise(name, sae, x, cases):
    def boom(*args):
        raise KeyError("oops")

    verdict = _run_check(name, boom, sae, x, cases)
    assert (verdict.exercise, verdict.status) == (name, "failed")
    assert verdict.message.startswith("your function raised KeyError: 'oops'")
    verdict = _run_check(name, 3, sae, x, cases)
    assert (verdict.exercise, verdict.message) == (name, "expected a function, got int")


def test_a_clamp_within_the_relative_tolerance_passes(sae, x):
    scale = float(x.abs().max())
    within = lambda a, d, i, v: (lambda t: t + 0.9e-4 * scale + 0.5e-4 * t.abs())(_clamp_truth(a, d, i, v))  # noqa: E731
    assert clamp(within, sae, x).passed
    t = _clamp_truth(x, sae, 1, 2.5)
    assert float((within(x, sae, 1, 2.5) - t).abs().max()) > 1.05e-4 * scale


def test_the_fixed_geometries_are_the_ones_the_check_names():
    """The check shows the learner a regular pentagon (D = 2/5 each), an antipodal pair with a feature of its own
    (1/2, 1/2, 1), the pentagon scaled by 3 (unchanged) and three features of different norms, in that order."""
    seen = []
    assert L.check_dimensionality(lambda W: seen.append(W.clone()) or _true_dim(W))
    assert len(seen) == 4
    pent, pair, scaled, mixed = seen
    ang = torch.tensor([2 * math.pi * i / 5 for i in range(5)])
    assert torch.allclose(pent, torch.stack([ang.cos(), ang.sin()]), atol=1e-6)
    assert torch.equal(pair, torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.allclose(scaled, 3 * pent, atol=1e-6)
    assert torch.equal(mixed, torch.tensor([[2.0, 0.0, 0.3], [0.0, 0.5, 0.4]]))
    assert _dim_loop(pair) == pytest.approx([0.5, 0.5, 1.0])
    assert _dim_loop(scaled) == pytest.approx([0.4] * 5, abs=1e-6)
    labels = ["a pentagon (5 features in 2 dimensions)", "an antipodal pair and a feature of its own",
              "a pentagon scaled by 3", "three features of different norms"]
    for i, label in enumerate(labels):
        calls = []

        def fn(W, i=i, calls=calls):
            calls.append(1)
            return _true_dim(W) + (0.05 if len(calls) == i + 1 else 0.0)

        assert L.check_dimensionality(fn).message.startswith(f"on {label}: you gave ")


def test_compare_units_fits_with_the_lessons_settings_by_default(facts, monkeypatch):
    """The defaults the lesson relies on: 64 units, seeds 0, 1, 2, SNMF 30 iterations, NMF 60, dictionaries 200
    steps (the fits are shortened here, after their arguments are recorded)."""
    import kit.analysis as A

    calls = []
    real = {n: getattr(A, n) for n in ("snmf", "nmf", "train_sae", "train_transcoder")}

    def spy(name, short):
        def fn(*args, **kw):
            calls.append((name, args[-1], {k: v for k, v in kw.items()}))
            return real[name](*args[:-1], 4, **{**kw, **short})  # 4 units: these prompts have 31 tokens
        return fn

    monkeypatch.setattr(A, "snmf", spy("snmf", {"n_iter": 1}))
    monkeypatch.setattr(A, "nmf", spy("nmf", {"n_iter": 1}))
    monkeypatch.setattr(A, "train_sae", spy("train_sae", {"steps": 1}))
    monkeypatch.setattr(A, "train_transcoder", spy("train_transcoder", {"steps": 1}))
    io = facts.io
    t = L.compare_units(facts.model, io, facts.held, torch.arange(io.hidden.shape[1]) % 3)
    assert t.k == 64 and t.seeds == [0, 1, 2]
    assert calls == [c for s in (0, 1, 2) for c in (
        ("snmf", 64, {"n_iter": 30, "seed": s, "progress": False}), ("nmf", 64, {"n_iter": 60, "seed": s}),
        ("train_sae", 64, {"steps": 200, "seed": s}), ("train_transcoder", 64, {"steps": 200, "seed": s}))]


def test_unit_measures_count_per_token_and_take_the_top_20_by_default():
    Y = torch.zeros(2, 30)
    Y[0, :21] = torch.arange(21.0, 0.0, -1.0)  # unit 0: tokens 0..20 in that order
    labels = torch.zeros(30, dtype=torch.long)  # unit 1 is dead: only unit 0's purity counts
    labels[20] = 1  # the 21st strongest token of unit 0 has another label
    got = L._unit_measures(Y, labels)
    # per token: tokens 0..20 have unit 0 above 1 % of 21 (0.21): 21 active over 30 tokens (per unit it is 10.5)
    assert got["l0"] == pytest.approx(21 / 30) and got["dead"] == 0.5
    assert got["purity"] == pytest.approx(1.0)  # unit 0's top 20 are all label 0
    assert L._unit_measures(Y, labels, top=21)["purity"] == pytest.approx(20 / 21)
