"""``kit.analysis.dictionary`` against mutation survivors (issue 16): the maps and measures of a hand-built
``Dictionary`` against loops, training against the algorithm its docstring states (re-run here step by step for a
few steps: the same minibatches, loss, Adam and renormalisation), and the exact refusals."""

from __future__ import annotations

import math

import pytest
import torch

from kit.analysis.dictionary import Dictionary, train_dictionary, train_sae, train_transcoder
from kit.analysis.snmf import Decomposition


def _hand(kind: str = "sae", seed: int = 0, d_in: int = 5, d_out: int = 5, k: int = 4, n: int = 7) -> Dictionary:
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(d_out, k, generator=g)
    return Dictionary(Z / Z.norm(dim=0), torch.rand(k, n, generator=g), [0.5, 0.25, 0.125], kind, 1, 2.5,
                      {"l1": 0.3}, torch.randn(k, d_in, generator=g), torch.randn(k, generator=g),
                      torch.randn(d_out, generator=g))


def _x(d: int, n: int = 7, seed: int = 1) -> torch.Tensor:
    return 2 * torch.randn(d, n, generator=torch.Generator().manual_seed(seed)) + 0.5


# ------------------------------------------------------------------------------------------ shape and maps
def test_a_dictionarys_shape_properties():
    sae = _hand()
    tc = _hand("transcoder", d_in=6, d_out=3)
    assert (sae.kind, sae.d_in, sae.d_out, sae.k) == ("sae", 5, 5, 4)
    assert (tc.kind, tc.d_in, tc.d_out, tc.k) == ("transcoder", 6, 3, 4)
    assert torch.equal(tc.W_dec, tc.Z.T) and torch.equal(tc.features, tc.Z.T) and tc.W_dec.shape == (4, 3)
    assert tc.l1 == 0.3
    bare = Dictionary(tc.Z, tc.Y, [], "transcoder", 0, 0.0, {}, tc.W_enc, tc.b_enc, tc.b_dec)
    assert math.isnan(bare.l1)


def test_encode_and_decode_are_the_formulas_token_by_token():
    for kind, d_in in (("sae", 5), ("transcoder", 6)):
        dic = _hand(kind, d_in=d_in)
        x = _x(d_in)
        y = dic.encode(x)
        for j in range(x.shape[1]):
            xin = x[:, j] - dic.b_dec if kind == "sae" else x[:, j]
            want = torch.relu(dic.W_enc @ xin + dic.b_enc)
            assert torch.allclose(y[:, j], want, atol=1e-5), (kind, j)
            assert torch.allclose(dic.decode(y)[:, j], dic.Z @ want + dic.b_dec, atol=1e-5)
        assert bool((y == 0).any()) and bool((y > 0).any())
        assert torch.allclose(dic(x), dic.decode(y)) and torch.allclose(dic.reconstruct(x), dic.decode(y))
        assert torch.allclose(dic.reconstruct(), dic.Z @ dic.Y + dic.b_dec[:, None])
    assert _hand().encode(_x(5).double()).dtype == torch.float32


def test_maps_refuse_inputs_of_the_wrong_width_with_exact_messages():
    tc = _hand("transcoder", d_in=6, d_out=3)
    with pytest.raises(ValueError) as e:
        tc.encode(torch.ones(5, 2))
    assert "[d_in=6, n_tokens] (one column per token)" in str(e.value) and str(e.value).startswith("x ")
    with pytest.raises(ValueError) as e:
        tc.decode(torch.ones(3, 2))
    assert "latents [k=4, n_tokens]" in str(e.value) and str(e.value).startswith("y ")


def test_stats_are_the_definitions():
    for kind, d_in, d_out in (("sae", 5, 5), ("transcoder", 6, 3)):
        dic = _hand(kind, d_in=d_in, d_out=d_out)
        x = _x(d_in)
        t = x if kind == "sae" else _x(d_out, seed=2) + 3.0
        st = dic.stats(x) if kind == "sae" else dic.stats(x, t)
        pred, y = dic(x), dic.encode(x)
        err = float(((t - pred) ** 2).sum())
        var = float(((t - t.mean(1, keepdim=True)) ** 2).sum())
        assert st["explained_variance"] == pytest.approx(1 - err / var, rel=1e-5)
        assert st["relative_error"] == pytest.approx(err ** 0.5 / float(t.norm()), rel=1e-5)
        assert st["l0"] == pytest.approx(sum(int((y[:, j] > 0).sum()) for j in range(7)) / 7)
        assert st["dead"] == pytest.approx(sum(1 for i in range(4) if not bool((y[i] > 0).any())) / 4)
    dead = _hand()
    dead.W_enc[1] = 0.0
    dead.b_enc[1] = -1.0  # latent 1 never fires
    assert dead.stats(_x(5))["dead"] >= 0.25


def test_stats_refusals_are_exact():
    tc = _hand("transcoder", d_in=6, d_out=3)
    with pytest.raises(ValueError) as e:
        tc.stats(_x(6))
    assert str(e.value) == ("a transcoder's stats need the target: stats(inputs, outputs) with the MLP's outputs "
                            "[d_out=3, n_tokens]")
    with pytest.raises(ValueError) as e:
        tc.stats(_x(6), torch.ones(3, 4))
    assert "[d_out=3, n_tokens=7] (as many tokens as x)" in str(e.value) and str(e.value).startswith("target ")


def test_as_decomposition_copies_and_encodes_new_tokens():
    sae = _hand()
    plain = sae.as_decomposition()
    assert type(plain) is Decomposition
    assert torch.equal(plain.Z, sae.Z) and plain.Z is not sae.Z and torch.equal(plain.Y, sae.Y)
    assert (plain.losses, plain.method, plain.best_iter, plain.seconds, plain.params) == (
        [0.5, 0.25, 0.125], "sae", 1, 2.5, {"l1": 0.3})
    assert plain.params is not sae.params and plain.losses is not sae.losses
    x = _x(5, n=3)
    assert torch.equal(sae.as_decomposition(x).Y, sae.encode(x))


def test_directions_of_a_transcoder_and_an_sae():
    tc = _hand("transcoder", d_in=6, d_out=3)
    rows = tc.Z.T * torch.tensor([[2.0], [3.0], [0.5], [1.0]])
    tc2 = Dictionary(rows.T, tc.Y, [], "transcoder", 0, 0.0, {}, tc.W_enc, tc.b_enc, tc.b_dec)
    assert torch.allclose(tc2.directions(), rows / rows.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(tc2.directions(normalize=False), rows)
    assert tc2.directions(normalize=False) is not tc2.Z.T
    sae = _hand()
    W_out = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    want = sae.Z.T @ W_out
    assert torch.allclose(sae.directions(W_out), want / want.norm(dim=1, keepdim=True), atol=1e-5)
    assert torch.allclose(sae.directions(W_out, normalize=False), want, atol=1e-5)
    with pytest.raises(ValueError) as e:
        sae.directions()
    assert str(e.value) == ("an SAE's features live in the space it was trained on; give W_out[d_mlp, d_model] "
                            "(model.adapter.W_out(layer)) to map MLP-neuron features to the residual stream")


def test_to_keeps_every_part_and_repr_summarises():
    tc = _hand("transcoder", d_in=6, d_out=3)
    moved = tc.to("cpu")
    for a in ("Z", "Y", "W_enc", "b_enc", "b_dec"):
        assert torch.equal(getattr(moved, a), getattr(tc, a)), a
    assert (moved.losses, moved.method, moved.best_iter, moved.seconds, moved.params) == (
        tc.losses, "transcoder", 1, 2.5, {"l1": 0.3})
    Y = torch.tensor([[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    d = Dictionary(tc.Z, Y, [0.5, 0.12345], "transcoder", 1, 2.54, {"l1": 0.3}, tc.W_enc, tc.b_enc, tc.b_dec)
    assert repr(d) == ("Dictionary(transcoder, 6 -> k=4 -> 3, n_tokens=3, loss=0.1235 (relative), L0=1.0, dead=50%, "
                       "l1=0.3, 2.5s)")
    empty = Dictionary(tc.Z, torch.zeros(4, 0), [], "transcoder", 0, 0.0, {}, tc.W_enc, tc.b_enc, tc.b_dec)
    assert repr(empty) == ("Dictionary(transcoder, 6 -> k=4 -> 3, n_tokens=0, loss=nan (relative), L0=nan, dead=nan%, "
                           "l1=None, 0.0s)")


@pytest.mark.parametrize("kind", ["method", "missing", "shapes", "Z-Y", "W_enc-ndim", "b_enc", "sae-space"])
def test_inconsistent_dictionaries_are_refused_with_exact_messages(kind):
    Z, Y = torch.eye(4)[:, :3], torch.zeros(3, 2)
    W, b, c = torch.zeros(3, 6), torch.zeros(3), torch.zeros(4)
    shapes = ("inconsistent shapes: Z [4, 3] = [d_out, k], Y {Y} = [k, n], W_enc {W} = [k, d_in], b_enc {b} = [k], "
              "b_dec {c} = [d_out]")
    cases = {
        "method": ((Z, Y, [0.0], "snmf", 0, 0.0, {}, W, b, c),
                   "a Dictionary's method is one of ('sae', 'transcoder'); got 'snmf'"),
        "missing": ((Z, Y, [0.0], "transcoder", 0, 0.0, {}, W, None, c),
                    "a Dictionary needs its encoder W_enc [k, d_in], b_enc [k] and decoder bias b_dec [d_out]"),
        "shapes": ((Z, Y, [0.0], "transcoder", 0, 0.0, {}, W, b, torch.zeros(5)),
                   shapes.format(Y=[3, 2], W=[3, 6], b=[3], c=[5])),
        "Z-Y": ((Z, torch.zeros(2, 2), [0.0], "transcoder", 0, 0.0, {}, W, b, c),
                shapes.format(Y=[2, 2], W=[3, 6], b=[3], c=[4])),
        "W_enc-ndim": ((Z, Y, [0.0], "transcoder", 0, 0.0, {}, torch.zeros(3, 6, 1), b, c),
                       shapes.format(Y=[3, 2], W=[3, 6, 1], b=[3], c=[4])),
        "b_enc": ((Z, Y, [0.0], "transcoder", 0, 0.0, {}, W, torch.zeros(4), c),
                  shapes.format(Y=[3, 2], W=[3, 6], b=[4], c=[4])),
        "sae-space": ((Z, Y, [0.0], "sae", 0, 0.0, {}, W, b, c),
                      "an SAE reads and writes the same space: W_enc [k, 4], got [3, 6]"),
    }
    args, message = cases[kind]
    with pytest.raises(ValueError) as e:
        Dictionary(*args)
    assert str(e.value) == message
    assert Dictionary(Z, Y, [0.0], "transcoder", 0, 0.0, {}, torch.zeros(3, 4), b, c).d_in == 4
    assert Dictionary(Z, Y, [0.0], "sae", 0, 0.0, {}, torch.zeros(3, 4), b, c).d_in == 4
    with pytest.raises(ValueError):
        Dictionary(Z, Y, [0.0], "transcoder", 0, 0.0, {}, torch.zeros(4, 6), b, c)  # W_enc rows != k


# ------------------------------------------------------------------------------------------ training
def _reference(X, T, k, l1, steps, batch, lr, seed):
    """The docstring's algorithm, written out: scale by mean token norms, tied (SAE) or random (transcoder) start,
    Adam on minibatches, decoder rows renormalised after every step; weights returned in the data's units."""
    sae = T is None
    s_in = float(X.norm(dim=0).mean())
    Xs = (X / s_in).T
    s_out = s_in if sae else float(T.norm(dim=0).mean())
    Ts = Xs if sae else (T / s_out).T
    n, d_in = Xs.shape
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(k, Ts.shape[1], generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.clone().T.contiguous() if sae else torch.randn(d_in, k, generator=g) / d_in ** 0.5
    b_enc, b_dec = torch.zeros(k), Ts.mean(0).clone()
    ps = [p.requires_grad_() for p in (W_enc, b_enc, W_dec, b_dec)]
    opt = torch.optim.Adam(ps, lr=lr)
    norm2 = float((Ts ** 2).sum(1).mean())
    losses = []
    for _ in range(steps):
        idx = torch.randint(n, (min(batch, n),), generator=g)
        xb, tb = Xs[idx], Ts[idx]
        y = torch.relu(((xb - b_dec) if sae else xb) @ W_enc + b_enc)
        err = ((y @ W_dec + b_dec - tb) ** 2).sum(1).mean() / norm2
        opt.zero_grad()
        (err + l1 * y.abs().sum(1).mean()).backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        losses.append(float(err) ** 0.5)
    with torch.no_grad():
        Y = torch.relu(((Xs - b_dec) if sae else Xs) @ W_enc + b_enc)
        losses.append(float((Y @ W_dec + b_dec - Ts).norm() / Ts.norm()))
    return {"Z": W_dec.detach().T, "Y": (Y * s_out).T, "W_enc": W_enc.detach().T * (s_out / s_in),
            "b_enc": b_enc.detach() * s_out, "b_dec": b_dec.detach() * s_out, "losses": losses,
            "scale": s_in, "target_scale": s_out}


@pytest.mark.parametrize("kind", ["sae", "transcoder"])
def test_training_is_the_stated_algorithm_step_by_step(kind):
    g = torch.Generator().manual_seed(5)
    X = 3 * torch.randn(6, 40, generator=g) + 1.0
    T = None if kind == "sae" else 0.2 * torch.randn(4, 40, generator=g) - 0.3
    got = train_dictionary(X, T, 5, l1=0.05, steps=4, batch=16, lr=0.01, seed=2)
    want = _reference(X, T, 5, 0.05, 4, 16, 0.01, 2)
    for a in ("Z", "Y", "W_enc", "b_enc", "b_dec"):
        assert torch.allclose(getattr(got, a), want[a], atol=1e-5, rtol=1e-4), a
    assert got.losses == pytest.approx(want["losses"], rel=1e-5)
    assert got.best_iter == 4 and got.loss == got.losses[-1] and got.method == kind and got.seconds > 0
    assert got.params == {"l1": 0.05, "steps": 4, "batch": 16, "lr": 0.01, "seed": 2, "scale": want["scale"],
                          "target_scale": want["target_scale"]}
    # the returned weights are in the data's units: encoding the training data gives Y back
    assert torch.allclose(got.encode(X), got.Y, atol=1e-4, rtol=1e-4)
    assert torch.allclose(got.Z.norm(dim=0), torch.ones(5), atol=1e-6)


def test_training_defaults_and_the_named_wrappers():
    g = torch.Generator().manual_seed(6)
    X = torch.randn(4, 300, generator=g)
    T = torch.randn(3, 300, generator=g)
    a = train_sae(X, 3, steps=2)
    want = _reference(X, None, 3, 0.1, 2, 256, 3e-3, 0)
    assert torch.allclose(a.Z, want["Z"], atol=1e-5) and a.params["batch"] == 256 and a.params["l1"] == 0.1
    assert a.params["lr"] == 3e-3 and a.params["seed"] == 0
    b = train_transcoder(X, T, 3, l1=0.2, steps=2, batch=50, lr=0.02, seed=4)
    want = _reference(X, T, 3, 0.2, 2, 50, 0.02, 4)
    assert torch.allclose(b.W_enc, want["W_enc"], atol=1e-5, rtol=1e-4) and b.kind == "transcoder"
    c = train_sae(X, 3, l1=0.0, steps=3, batch=7, lr=0.05, seed=9)
    assert torch.allclose(c.Z, _reference(X, None, 3, 0.0, 3, 7, 0.05, 9)["Z"], atol=1e-5)
    assert len(train_dictionary(X, k=2, steps=3).losses) == 4 and train_dictionary(X, k=2, steps=1).k == 2
    assert train_dictionary(X).k == 64


@pytest.mark.parametrize("call, message", [
    (lambda X: train_sae(X, 2, l1=-0.1), "l1 must be >= 0 and finite; got -0.1"),
    (lambda X: train_sae(X, 2, l1=True), "l1 must be >= 0 and finite; got True"),
    (lambda X: train_sae(X, 2, l1=float("nan")), "l1 must be >= 0 and finite; got nan"),
    (lambda X: train_sae(X, 2, lr=-1.0), "lr must be > 0 and finite; got -1.0"),
    (lambda X: train_sae(X, 2, lr=float("-inf")), "lr must be > 0 and finite; got -inf"),
    (lambda X: train_sae(X, 2, lr="1"), "lr must be > 0 and finite; got '1'"),
    (lambda X: train_sae(X[:, :1], 2), "inputs needs at least two tokens (columns); got shape [3, 1]"),
    (lambda X: train_transcoder(X, X[:, :1], 2), "targets needs at least two tokens (columns); got shape [3, 1]"),
    (lambda X: train_transcoder(X, X * float("inf"), 2), "targets holds 15 NaN or infinite value(s); every entry must be a finite number"),
    (lambda X: train_transcoder(X, X[:, :3], 2), "targets must have one column per input token: [d_out, 5], got [3, 3]"),
    (lambda X: train_transcoder(X, None, 2), "a transcoder needs the MLP's outputs [d_out, n_tokens]; for an SAE use "
                                             "train_sae"),
], ids=["l1-neg", "l1-bool", "l1-nan", "lr-neg", "lr-inf", "lr-str", "one-token", "t-one-token", "t-inf", "t-cols",
        "t-none"])
def test_training_refusals_are_exact(call, message):
    X = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError) as e:
        call(X)
    assert str(e.value) == message


def test_training_accepts_the_edges_of_its_ranges():
    X = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert train_sae(X, 1, l1=0, steps=1, batch=1, lr=1e-9).params["l1"] == 0.0
    assert train_sae(X, 1, l1=0, steps=1, batch=1, lr=1e-9).params["batch"] == 1
    with pytest.raises(ValueError, match="steps"):
        train_sae(X, 1, steps=0)
    with pytest.raises(ValueError, match="batch"):
        train_sae(X, 1, batch=0)
    with pytest.raises(TypeError, match="seed"):
        train_sae(X, 1, seed=1.5)


# ------------------------------------------------------------------------------------------ survivors of the first run
def test_repr_counts_dead_features_and_a_dictionary_without_features():
    tc = _hand("transcoder", d_in=6, d_out=3)
    Y = torch.tensor([[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]])  # one of four dead
    d = Dictionary(tc.Z, Y, [0.5], "transcoder", 0, 2.54, {"l1": 0.3}, tc.W_enc, tc.b_enc, tc.b_dec)
    assert repr(d) == ("Dictionary(transcoder, 6 -> k=4 -> 3, n_tokens=3, loss=0.5000 (relative), L0=1.3, dead=25%, "
                       "l1=0.3, 2.5s)")
    none = Dictionary(torch.zeros(3, 0), torch.zeros(0, 5), [], "transcoder", 0, 0.0, {}, torch.zeros(0, 6),
                      torch.zeros(0), torch.zeros(3))  # k = 0 on five tokens: no L0 to average
    assert repr(none) == ("Dictionary(transcoder, 6 -> k=0 -> 3, n_tokens=5, loss=nan (relative), L0=nan, dead=nan%, "
                          "l1=None, 0.0s)")


def test_to_moves_every_tensor_to_the_device():
    moved = _hand("transcoder", d_in=6, d_out=3).to("meta")
    assert {getattr(moved, a).device.type for a in ("Z", "Y", "W_enc", "b_enc", "b_dec")} == {"meta"}


@pytest.mark.parametrize("kind", ["1d", "str", "sae-width"])
def test_mlp_directions_refusals_are_exact(kind):
    sae = _hand()  # d_out = 5
    cases = {
        "1d": (lambda: sae.mlp_directions(torch.ones(5)), ValueError, "W_out must have shape [d_mlp, d_model]; got [5]"),
        "str": (lambda: sae.mlp_directions("W"), TypeError, "W_out must be a tensor [d_mlp, d_model]; got str"),
        "sae-width": (lambda: sae.mlp_directions(torch.ones(7, 4)), ValueError,
                      "this SAE has d_out=5, but W_out is [7, 4]: mlp_directions applies to an SAE of the MLP neurons "
                      "(mlp_post, d_mlp = W_out.shape[0])"),
    }
    call, error, message = cases[kind]
    with pytest.raises(error) as e:
        call()
    assert str(e.value) == message


def test_every_training_entry_point_has_the_documented_defaults_and_is_quiet(capsys):
    g = torch.Generator().manual_seed(7)
    X = torch.randn(4, 40, generator=g)
    T = torch.randn(3, 40, generator=g)
    want = {"l1": 0.1, "steps": 300, "batch": 256, "lr": 3e-3, "seed": 0}
    for fit in (train_dictionary(X, k=2), train_sae(X, 2), train_transcoder(X, T, 2), train_dictionary(X, T, 2)):
        assert {key: fit.params[key] for key in want} == want and len(fit.losses) == 301
    assert torch.equal(train_transcoder(X, T, 2).Z, train_dictionary(X, T, 2, seed=0).Z)
    assert capsys.readouterr().err == ""  # no progress bar unless asked


@pytest.mark.parametrize("kind, fit", [("sae", lambda X: train_sae(X, 2, steps=2, progress=True)),
                                       ("transcoder", lambda X: train_transcoder(X, X, 2, steps=2, progress=True))],
                         ids=["sae", "transcoder"])
def test_the_wrappers_pass_progress_on(kind, fit, capsys):
    fit(torch.randn(3, 20, generator=torch.Generator().manual_seed(8)))
    err = capsys.readouterr().err
    assert f"{kind}: " in err and "2/2" in err, err  # tqdm's bar on stderr (not a terminal), named by the kind


def test_inputs_of_small_norm_are_scaled_by_their_own_mean_norm():
    X = 0.01 * torch.randn(4, 30, generator=torch.Generator().manual_seed(9))
    fit = train_sae(X, 2, steps=1)
    assert fit.params["scale"] == pytest.approx(float(X.norm(dim=0).mean()), rel=1e-5) and fit.params["scale"] < 0.05


@pytest.mark.parametrize("call, error, message", [
    (lambda X: train_sae(X[0], 2), ValueError,
     "inputs must have shape [d, n_tokens] (one column per token; a trace's tr['mlp_post', l][tr.mask].T); got [5]"),
    (lambda X: train_sae(X, 2, steps=0), ValueError, "steps must be an integer >= 1; got 0"),
    (lambda X: train_sae(X, 2, batch=0), ValueError, "batch must be an integer >= 1; got 0"),
    (lambda X: train_sae(X, 2, seed=1.5), TypeError, "seed must be an integer; got 1.5"),
], ids=["1d", "steps", "batch", "seed"])
def test_training_argument_refusals_name_the_argument(call, error, message):
    X = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(error) as e:
        call(X)
    assert str(e.value) == message


def test_the_recorded_time_is_the_training_time():
    import time

    t0 = time.perf_counter()
    fit = train_sae(torch.randn(3, 20, generator=torch.Generator().manual_seed(10)), 2, steps=3)
    assert 0.0 <= fit.seconds <= time.perf_counter() - t0
