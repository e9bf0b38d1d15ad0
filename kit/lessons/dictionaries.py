"""Lesson 06 (superposition and sparse dictionaries): the lesson's helpers, charts and exercise checks.

Toy models of superposition (Elhage et al. 2022, :mod:`kit.analysis.superposition`): :func:`dimensionality`
is the per-feature dimensionality ``D_i = ||W_i||^2 / sum_j (W_i/||W_i|| . W_j)^2`` (1: a dimension of its
own, 1/2: an antipodal pair, 2/5: a pentagon, 0: not represented); :func:`geometry_chart` and
:func:`gram_chart` draw the toy models with altair (offline, through :mod:`kit.charts`).

Every ``check_*`` computes its truth from what it is given (never a stored answer), returns a
:class:`~kit.lessons.CheckResult`, names the common wrong answers it recognises, and records the verdict
for the current student. The exercises' instances are drawn per student with :func:`kit.lessons.variant`
and :func:`kit.lessons.variant_seed` under the exercise names ``EX_*`` below: the lesson and the tests
draw with the same names, so they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import altair as alt
import torch

from .. import charts as _charts  # noqa: F401  (switches altair to the offline renderer)
from ._check import CheckResult, failed, is_unanswered, passed
from ._learner import run_learner, todo

__all__ = [
    "EX_DIM", "EX_STATS", "EX_FEATURE", "EX_CLAMP",
    "dimensionality", "geometry_chart", "gram_chart", "check_dimensionality",
    "reconstruction_stats", "check_reconstruction_stats", "precision_at", "check_relation_feature",
    "clamp_feature", "check_clamp", "clamped_logprobs", "decoded_tokens",
    "UNITS", "MEASURES", "UnitComparison", "compare_units",
]

EX_DIM = "6.1 feature dimensionality"
EX_STATS = "6.2 reconstruction and sparsity"
EX_FEATURE = "6.3 a relation's SAE feature"
EX_CLAMP = "6.4 clamp a dictionary feature"


# ---------------------------------------------------------------------------------- toy models
def dimensionality(W: torch.Tensor) -> torch.Tensor:
    """``D[feature]`` of one toy model's ``W[d_hidden, feature]``: ``||W_i||^2 / sum_j (Ŵ_i . W_j)^2``
    (the sum includes ``j = i``); 0 for a feature whose column is 0."""
    W = W.detach().float()
    norm = W.norm(dim=0)  # [feature]
    unit = W / norm.clamp_min(1e-12)
    denom = ((unit.T @ W) ** 2).sum(1)  # [feature]
    return torch.where(norm > 1e-6, norm ** 2 / denom.clamp_min(1e-12), torch.zeros_like(norm))


def geometry_chart(models: dict[str, Any], title: str = "") -> alt.Chart:
    """Each feature's column ``W[:, i]`` of 2-dimensional toy models, as an arrow from the origin.

    ``models``: ``{row label: ToyModels}``, all with ``d_hidden == 2``; one panel per (row, sparsity).
    Feature 0 is the most important; colour follows the feature's index.
    """
    rows = []
    for label, toy in models.items():
        if toy.W.shape[1] != 2:
            raise ValueError(f"geometry_chart draws 2-dimensional toy models; {label!r} has d_hidden={toy.W.shape[1]}")
        D = [dimensionality(toy.W[m]) for m in range(len(toy.sparsities))]
        for m, s in enumerate(toy.sparsities):
            for i in range(toy.W.shape[2]):
                x, y = (round(float(v), 3) for v in toy.W[m, :, i])
                common = {"importance": label, "sparsity": f"S = {s:g}", "feature": i,
                          "dimensionality": round(float(D[m][i]), 2)}
                rows += [{**common, "x": 0.0, "y": 0.0, "end": 0}, {**common, "x": x, "y": y, "end": 1}]
    scale = alt.Scale(domain=[-1.3, 1.3])
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("x:Q", scale=scale, title=None), y=alt.Y("y:Q", scale=scale, title=None),
        color=alt.Color("feature:N", title="feature (0 = most important)"),
    )
    lines = base.mark_line(strokeWidth=2).encode(detail="feature:N", order="end:Q")
    tips = base.mark_point(filled=True, size=40).encode(tooltip=["feature:N", "dimensionality:Q"]).transform_filter(
        "datum.end == 1")
    sparsities = list(dict.fromkeys(r["sparsity"] for r in rows))
    return (lines + tips).properties(width=130, height=130).facet(
        column=alt.Column("sparsity:N", title=None, sort=sparsities),
        row=alt.Row("importance:N", title=None, sort=list(models)),
    ).properties(title=title)


def gram_chart(toy: Any, title: str = "") -> alt.Chart:
    """``W^T W`` of each toy model (``[feature, feature]``, one panel per sparsity): the diagonal is each
    feature's squared norm, the rest is interference between features."""
    rows = []
    for m, s in enumerate(toy.sparsities):
        G = toy.W[m].T @ toy.W[m]
        n = G.shape[0]
        rows += [{"sparsity": f"S = {s:g}", "i": i, "j": j, "value": round(float(G[i, j]), 3)}
                 for i in range(n) for j in range(n)]
    return alt.Chart(alt.Data(values=rows)).mark_rect().encode(
        x=alt.X("j:O", title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("i:O", title=None, axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True), title="W_i · W_j"),
        tooltip=["i:O", "j:O", "value:Q"],
    ).properties(width=110, height=110).facet(
        column=alt.Column("sparsity:N", title=None, sort=[f"S = {s:g}" for s in toy.sparsities])).properties(title=title)


def _dim_cases(extra: Sequence[torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Toy geometries with known dimensionalities, then the learner's own models."""
    ang = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([ang.cos(), ang.sin()])  # [2, 5]: D = 2/5 each
    pair = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # an antipodal pair (1/2 each) and a feature alone (1)
    mixed = torch.tensor([[2.0, 0.0, 0.3], [0.0, 0.5, 0.4]])  # norms 2, 0.5, 0.5
    cases = [("a pentagon (5 features in 2 dimensions)", pentagon),
             ("an antipodal pair and a feature of its own", pair),
             ("a pentagon scaled by 3", 3 * pentagon), ("three features of different norms", mixed)]
    return cases + [(f"your toy model {i}", W.detach().float()) for i, W in enumerate(extra)]


def check_dimensionality(fn: Callable[[torch.Tensor], Any], toy: Any = None) -> CheckResult:
    """Exercise 6.1: ``fn(W[d_hidden, feature]) -> D[feature]``, the dimensionality of every feature.

    Checked on geometries with known answers (a pentagon: 2/5 each; an antipodal pair: 1/2; a feature of its
    own: 1; the same scaled: unchanged) and on every model of ``toy`` (a :class:`ToyModels`).
    """
    name = EX_DIM
    hint = ("n = W.norm(dim=0); overlaps = (W / n).T @ W  ([feature, feature]); "
            "D = n**2 / (overlaps**2).sum(1)  (the sum includes j = i)")
    if is_unanswered(fn):
        return todo(name, hint)
    models = [] if toy is None else [toy.W[m] for m in range(toy.W.shape[0])]
    for label, W in _dim_cases(models):
        got, verdict = run_learner(name, hint, fn, W.clone())
        if verdict is not None:
            return verdict
        try:
            got = torch.as_tensor(got).detach().float().cpu()
        except (TypeError, ValueError, RuntimeError):
            return failed(name, f"return a tensor D[feature]; got {type(got).__name__}")
        n_feat = W.shape[1]
        if got.shape != (n_feat,):
            why = ""
            if got.shape == (W.shape[0],):
                why = (" That is one number per hidden dimension: W is [d_hidden, feature], so a feature is a "
                       "column W[:, i] (norms over dim=0).")
            elif got.ndim == 0:
                why = " You reduced to one number: give one dimensionality per feature."
            return failed(name, f"on {label}, W of shape {list(W.shape)}: give D of shape [feature={n_feat}], "
                                f"got {list(got.shape)}.{why}")
        truth = dimensionality(W)
        if bool(torch.isfinite(got).all()) and torch.allclose(got, truth, atol=2e-3, rtol=2e-3):
            continue
        return failed(name, f"on {label}: you gave {_fmt(got)}, the dimensionalities are {_fmt(truth)}."
                            f"{_dim_mistake(got, W)}")
    summary = "a pentagon gives 0.4 each, an antipodal pair 0.5, a feature alone 1"
    return passed(name, f"right on {4 + len(models)} geometries ({summary}).")


def _fmt(t: torch.Tensor, n: int = 6) -> str:
    vals = [f"{float(v):.2f}" for v in t.flatten()[:n]]
    return "[" + ", ".join(vals) + (", …]" if t.numel() > n else "]")


def _dim_mistake(got: torch.Tensor, W: torch.Tensor) -> str:
    """Name the common mistake that gives ``got`` on ``W``, if it is one."""
    n = W.norm(dim=0)
    unit = W / n.clamp_min(1e-12)
    ov = unit.T @ W
    near = lambda x: bool(torch.isfinite(x).all()) and got.shape == x.shape and torch.allclose(  # noqa: E731
        got, x.float(), atol=2e-3, rtol=2e-3)
    if not bool(torch.isfinite(got).all()) or near(n ** 2 / ((ov ** 2).sum(1) - n ** 2).clamp_min(1e-12)):
        return (" The sum over j must include the feature itself (j = i): without it, a feature with no "
                "interference divides by 0.")
    if near(n ** 2 / ((W.T @ W) ** 2).sum(1)):
        return " Normalise W_i in the overlaps: (W_i / ||W_i||) . W_j, so that D does not depend on the scale of W."
    if near(n / (ov ** 2).sum(1)) or near(n ** 4 / (ov ** 2).sum(1)):
        return " The numerator is the squared norm ||W_i||^2."
    if near(n ** 2 / ov.abs().sum(1)):
        return " Square the overlaps before summing them: sum_j (Ŵ_i . W_j)^2, not |Ŵ_i . W_j|."
    if near(W.shape[0] / (n ** 2).sum() * torch.ones_like(n)):
        return (" That is the model's dimensions per feature, d_hidden / ||W||_F^2, the same for every feature; "
                "give each feature's own D_i.")
    return ""


# ---------------------------------------------------------------------------------- dictionaries
def reconstruction_stats(target: torch.Tensor, prediction: torch.Tensor, latents: torch.Tensor) -> tuple[float, float]:
    """``(explained_variance, l0)`` of a dictionary on some tokens: ``target[d, n_tokens]`` (what it should
    write), ``prediction[d, n_tokens]`` (what it wrote), ``latents[k, n_tokens]``. Explained variance:
    ``1 - sum (target - prediction)^2 / sum (target - its mean over tokens)^2``; L0: active latents
    (``> 0``) per token, averaged over tokens."""
    t, p = target.detach().float(), prediction.detach().float()
    err = (t - p).pow(2).sum()
    var = (t - t.mean(1, keepdim=True)).pow(2).sum().clamp_min(1e-12)
    return float(1 - err / var), float((latents > 0).float().sum(0).mean())


def check_reconstruction_stats(fn: Callable[..., Any], cases: Sequence[tuple[str, torch.Tensor, torch.Tensor,
                                                                             torch.Tensor]]) -> CheckResult:
    """Exercise 6.2: ``fn(target, prediction, latents) -> (explained_variance, l0)`` on each case
    ``(label, target[d, n], prediction[d, n], latents[k, n])`` (an SAE's and a transcoder's held-out tokens)."""
    name = EX_STATS
    hint = ("explained variance = 1 - ((target - prediction)**2).sum() / ((target - target.mean(1, keepdim=True))**2)"
            ".sum(); L0 = (latents > 0).sum(0) (per token), then its mean")
    if is_unanswered(fn):
        return todo(name, hint)
    for label, target, prediction, latents in cases:
        got, verdict = run_learner(name, hint, fn, target.clone(), prediction.clone(), latents.clone())
        if verdict is not None:
            return verdict
        try:
            ev, l0 = (float(torch.as_tensor(v)) for v in got)
        except (TypeError, ValueError, RuntimeError):
            return failed(name, f"return two numbers, (explained_variance, l0); got {str(got)[:80]}")
        true_ev, true_l0 = reconstruction_stats(target, prediction, latents)
        ok_ev, ok_l0 = abs(ev - true_ev) < 1e-3, abs(l0 - true_l0) < 1e-2 * max(1.0, true_l0)
        if ok_ev and ok_l0:
            continue
        why = []
        if not ok_ev:
            why.append(f"explained variance {ev:.3f}, not {true_ev:.3f}.{_ev_mistake(ev, target, prediction)}")
        if not ok_l0:
            why.append(f"L0 {l0:.3f}, not {true_l0:.2f}.{_l0_mistake(l0, latents)}")
        return failed(name, f"on {label}: " + " ".join(why))
    label, target, prediction, latents = cases[0]
    ev, l0 = reconstruction_stats(target, prediction, latents)
    return passed(name, f"right on {len(cases)} cases; on {label}: {ev:.0%} of the variance explained with "
                        f"{l0:.1f} active latents per token.")


def _ev_mistake(ev: float, target: torch.Tensor, prediction: torch.Tensor) -> str:
    t, p = target.float(), prediction.float()
    err = (t - p).pow(2).sum()
    if abs(ev - float(1 - err / t.pow(2).sum())) < 1e-3:
        return (" You divided by the raw sum of squares: subtract the target's mean over tokens first (MLP activations"
                " are far from centred, so the uncentred version flatters every dictionary).")
    if abs(ev - float(1 - err / (t - t.mean(0, keepdim=True)).pow(2).sum())) < 1e-3:
        return " You centred over the wrong axis: the mean is over tokens (dim 1 of [d, n_tokens])."
    if abs(ev - float(err / (t - t.mean(1, keepdim=True)).pow(2).sum())) < 1e-3:
        return " That is the variance left unexplained: explained variance is 1 minus it."
    if abs(ev - float(1 - err.sqrt() / t.norm())) < 1e-3 or abs(ev - float(err.sqrt() / t.norm())) < 1e-3:
        return " That uses the relative error ||t - p|| / ||t||: compare squared errors with the variance."
    return ""


def _l0_mistake(l0: float, latents: torch.Tensor) -> str:
    on = latents > 0
    if abs(l0 - float(on.float().mean())) < 1e-3:
        return " That is the share of active (latent, token) pairs: count the active latents per token instead."
    if abs(l0 - float(on.float().sum(1).mean())) < 1e-2 * max(1.0, l0):
        return " That counts tokens per latent (sum over dim 1): count latents per token (sum over dim 0)."
    if abs(l0 - float((latents >= 0).float().sum(0).mean())) < 1e-2:
        return " A latent at 0 is not active: count latents > 0, not >= 0."
    if abs(l0 - float(latents.float().sum(0).mean())) < 1e-2 * max(1.0, l0):
        return " That is the mean L1 norm of the latents: L0 counts the active ones."
    return ""


def precision_at(Y: torch.Tensor, mask: torch.Tensor, top: int = 20) -> torch.Tensor:
    """``[k]``: for each feature (row of ``Y[k, n_tokens]``), the share of its ``top`` strongest tokens
    that fall in ``mask[n_tokens]``."""
    idx = Y.topk(min(top, Y.shape[1]), dim=1).indices  # [k, top]
    return mask.to(Y.device)[idx].float().mean(1).cpu()


def check_relation_feature(answer: Any, dictionary: Any, mask: torch.Tensor, relation: str,
                           acts: torch.Tensor | None = None, top: int = 20) -> CheckResult:
    """Exercise 6.3: a feature of ``dictionary`` (latents ``dictionary.Y[k, n_tokens]``) whose ``top`` strongest
    tokens are the last prompt tokens of ``relation`` (``mask``) as often as any feature's. ``acts``: the
    neurons ``[d_mlp, n_tokens]``, to recognise a neuron's index given instead."""
    name = EX_FEATURE
    if is_unanswered(answer):
        return CheckResult(name, "unanswered", f"replace the `...` with a feature index. Hint: for each feature, the "
                                               f"share of its top {top} tokens (topk on its row of Y) inside the "
                                               "mask; take the feature where it is largest")
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, int) or isinstance(answer, bool):
        return failed(name, f"give one feature index (an int); got {type(answer).__name__} {str(answer)[:40]}")
    Y = dictionary.Y
    prec = precision_at(Y, mask, top)
    best = float(prec.max())
    if not 0 <= answer < Y.shape[0]:
        return failed(name, f"feature {answer} does not exist: this dictionary has features 0..{Y.shape[0] - 1}")
    if float(prec[answer]) >= best - 1e-6:
        return passed(name, f"feature {answer}: {best:.0%} of its top {top} tokens are where the model is about to "
                            f"answer a {relation} prompt.")
    hint = ""
    m = mask.to(Y.device)
    if answer == int(Y[:, m].mean(1).argmax()):
        hint = (" That feature has the largest mean activation on the relation's tokens, but it fires as much "
                "elsewhere: rank features by the share of their own top tokens in the mask.")
    elif answer == int(Y.sum(1).argmax()):
        hint = " That is the feature most active overall, on every kind of token."
    elif acts is not None and answer == int((acts[:, m].mean(1) - acts[:, ~m].mean(1)).argmax()):
        hint = " That is the index of a neuron (the DiffMeans argmax), not of a feature of the dictionary."
    elif float(prec[answer]) == 0:
        hint = " None of its top tokens is in the mask: did you take its weakest tokens (topk, not the bottom)?"
    return failed(name, f"feature {answer}: {float(prec[answer]):.0%} of its top {top} tokens are in the mask; some "
                        f"feature reaches {best:.0%}.{hint}")


def clamp_feature(x: torch.Tensor, dictionary: Any, feature: int, value: float) -> torch.Tensor:
    """``x'[d, n_tokens]``: the activations ``x[d, n_tokens]`` an SAE reads, with SAE feature ``feature`` set to
    ``value``: its term ``f z`` of the reconstruction replaced by ``value z``
    (``x + (value - f(x)) z``), everything else (other features, the SAE's error) kept."""
    f = dictionary.encode(x)[feature]  # [n_tokens]
    z = dictionary.Z[:, feature].to(x.device, torch.float32)  # [d]
    return (x.float() + z[:, None] * (value - f)[None]).to(x.dtype)


def check_clamp(fn: Callable[..., Any], dictionary: Any, x: torch.Tensor, feature: int, value: float) -> CheckResult:
    """Exercise 6.4: ``fn(x[d_mlp, n_tokens], sae, feature, value) -> x'[d_mlp, n_tokens]`` sets one SAE feature
    (see :func:`clamp_feature`), checked at ``value`` and at 0 (ablation)."""
    name = EX_CLAMP
    hint = ("f = sae.encode(x)[feature] ([n_tokens]); z = sae.Z[:, feature] ([d_mlp]); "
            "return x + z[:, None] * (value - f)[None]")
    if is_unanswered(fn):
        return todo(name, hint)
    for v in dict.fromkeys([float(value), 0.0]):
        got, verdict = run_learner(name, hint, fn, x.clone(), dictionary, feature, v)
        if verdict is not None:
            return verdict
        try:
            got = torch.as_tensor(got).detach().float()
        except (TypeError, ValueError, RuntimeError):
            return failed(name, f"return the edited activations, a tensor [d_mlp, n_tokens]; got {type(got).__name__}")
        if got.shape != x.shape:
            return failed(name, f"return a tensor of the shape of x, {list(x.shape)}; got {list(got.shape)}")
        truth = clamp_feature(x, dictionary, feature, v).float()
        scale = float(x.float().abs().max())
        if torch.allclose(got, truth, atol=1e-4 * scale, rtol=1e-4):
            continue
        return failed(name, f"setting feature {feature} to {v:g}: your activations differ from the expected ones by up "
                            f"to {float((got - truth).abs().max()):.3g}.{_clamp_mistake(got, x, dictionary, feature, v)}")
    f_after = dictionary.encode(clamp_feature(x, dictionary, feature, value))[feature]
    return passed(name, f"feature {feature} set to {value:g} on {x.shape[1]} tokens; re-encoded, it reads "
                        f"{float(f_after.mean()):.2f} on average (an SAE's encoder is not the exact inverse of its "
                        "decoder).")


def _clamp_mistake(got: torch.Tensor, x: torch.Tensor, d: Any, i: int, v: float) -> str:
    x = x.float()
    z = d.Z[:, i].float()
    f = d.encode(x)[i]
    pre = d.W_enc[i].float() @ (x - d.b_dec[:, None]) + d.b_enc[i]
    scale = float(x.abs().max())
    near = lambda y: got.shape == y.shape and torch.allclose(got, y.float(), atol=1e-4 * scale, rtol=1e-4)  # noqa: E731
    if near(x + v * z[:, None]):
        return (" You added value * z on top of what the feature already writes: replace its term, "
                "x + (value - f) z.")
    if near(d.reconstruct(x) + z[:, None] * (v - f)[None]):
        return (" You started from the SAE's reconstruction and lost its error term: edit the real activations x, "
                "so that only this feature's part changes.")
    if near(x + d.W_enc[i].float()[:, None] * (v - f)[None]):
        return " You moved along the encoder's row: a feature writes along its decoder direction, sae.Z[:, feature]."
    if near(x + z[:, None] * (v - pre)[None]):
        return " You used the pre-activation: the feature's value is after the ReLU (sae.encode gives it)."
    if near(x - z[:, None] * (v - f)[None]):
        return " The sign is flipped: x + (value - f) z."
    pre_nob = torch.relu(d.W_enc[i].float() @ x + d.b_enc[i])
    if near(x + z[:, None] * (v - pre_nob)[None]):
        return " An SAE encodes x - b_dec: use sae.encode(x), which subtracts the decoder bias first."
    return ""


@torch.no_grad()
def clamped_logprobs(model: Any, prompts: Sequence[str], layer: int, dictionary: Any, feature: int,
                     value: float) -> torch.Tensor:
    """``logprobs[prompt, vocab]`` of each prompt's next token with SAE ``feature`` of MLP ``layer`` set to
    ``value`` (:func:`clamp_feature`) at every position of the prompt."""
    from ..interventions import Edit

    def edit(a: torch.Tensor) -> torch.Tensor:  # mlp_post [batch, pos, d_mlp]
        flat = a.reshape(-1, a.shape[-1]).T
        return clamp_feature(flat, dictionary, feature, value).T.reshape(a.shape)

    tr = model.trace(list(prompts), capture=[], interventions=[Edit("mlp_post", layer, edit)])
    rows, last = torch.arange(len(prompts)), torch.tensor(tr.lengths) - 1
    return tr.logits[rows, last].float().log_softmax(-1).cpu()


def decoded_tokens(model: Any, layer: int, dictionary: Any, feature: int, k: int = 6) -> list[str]:
    """The ``k`` tokens a dictionary feature's decoder direction promotes most (an SAE's through ``W_out``, a
    transcoder's directly), read through the final norm's weight and the unembedding."""
    from ..widgets._features import DictionaryFeatures
    from ..widgets._probe import decode_residual

    out = DictionaryFeatures(dictionary).out_directions(model, layer)[feature]  # [d_model]
    return model.to_str_tokens(decode_residual(model, out[None], k)[0])


# ---------------------------------------------------------------------------------- comparison
UNITS = ("SNMF", "NMF", "SAE", "transcoder", "neurons")
MEASURES = {"error": "relative error", "l0": "L0 (active units per token)", "dead": "dead units", "purity": "purity"}


def _unit_measures(Y: torch.Tensor, labels: torch.Tensor, top: int = 20) -> dict[str, float]:
    """L0 (units above 1 % of their own maximum, per token), dead share (never above 1e-6 of the largest
    activation), mean label purity of the live units' ``top`` tokens, for unit activations ``Y[units, n]``."""
    from ..analysis import label_purity

    Y = Y.float()
    peak = Y.max(1).values  # [units]
    l0 = float((Y > 0.01 * peak.clamp_min(0)[:, None]).float().sum(0).mean())
    live = peak > 1e-6 * float(peak.max())
    purity = float(label_purity(Y[live], labels, top).purity.mean()) if bool(live.any()) else 0.0
    return {"l0": l0, "dead": float((~live).float().mean()), "purity": purity}


class UnitComparison:
    """``values[unit][measure]``: one value per seed (``[seed]``) of each measure (:data:`MEASURES`) for each
    kind of unit (:data:`UNITS`); ``chance``: the purity of random tokens."""

    def __init__(self, values: dict[str, dict[str, torch.Tensor]], chance: float, seeds: Sequence[int], k: int,
                 fits: dict[str, list] | None = None):
        self.values, self.chance, self.seeds, self.k = values, chance, list(seeds), k
        self.fits = fits or {}  # fits[unit][seed]: a Decomposition whose Z[d_mlp, k] are neuron-space directions

    def steering_fits(self, units: Sequence[str]) -> dict[str, list]:
        """``{unit: [fit per seed]}`` with ``Z`` in the neurons' space (a transcoder's features through
        :meth:`kit.analysis.Dictionary.mlp_directions`), for :func:`kit.lessons.mlp.matched_kl_comparison`."""
        return {u: self.fits[u] for u in units}

    def mean(self, measure: str, unit: str) -> float:
        return float(self.values[unit][measure].mean())

    def difference(self, measure: str, a: str, b: str) -> str:
        """``"+0.05 ± 0.02 over 3 seeds -> a ahead"``: mean and sd of ``a - b`` per seed, and the verdict (a tie
        when the 95 % interval, mean ± 2 sd / √n, contains 0)."""
        d = self.values[a][measure] - self.values[b][measure]
        mean, sd, n = float(d.mean()), float(d.std()) if d.numel() > 1 else 0.0, d.numel()
        verdict = "tie" if abs(mean) <= 2 * sd / n ** 0.5 else (f"{a} ahead" if mean > 0 else f"{b} ahead")
        return f"{mean:+.2f} ± {sd:.2f} over {n} seeds -> {verdict}"

    def markdown(self) -> str:
        """A table: per kind of unit, each measure as mean ± sd over the seeds."""
        lines = ["| units | " + " | ".join(MEASURES.values()) + " |", "| --- |" + " ---: |" * len(MEASURES)]
        for u, vals in self.values.items():
            cells = []
            for m in MEASURES:
                v = vals[m]
                fmt = "{:.0%}" if m == "dead" else "{:.2f}"
                cells.append(fmt.format(float(v.mean())) + (" ± " + fmt.format(float(v.std())) if v.numel() > 1 and
                                                            float(v.std()) > 0 else ""))
            lines.append(f"| {u} | " + " | ".join(cells) + " |")
        lines.append(f"| random tokens | | | | {self.chance:.2f} |")
        return "\n".join(lines)


def compare_units(model: Any, io: Any, held_io: Any, labels: torch.Tensor, k: int = 64,
                  seeds: Sequence[int] = (0, 1, 2), snmf_iter: int = 30, nmf_iter: int = 60, steps: int = 200
                  ) -> UnitComparison:
    """SNMF, NMF, an SAE and a transcoder (``k`` units each, one fit per seed) and the single neurons, on the
    tokens of ``io`` (:func:`kit.analysis.mlp_io`) labelled ``labels[n_tokens]``; reconstruction on
    ``held_io``'s tokens for the SAE and the transcoder (they have encoders), on the training tokens for
    SNMF and NMF (the best iterate's relative error; NMF's of the clipped activations)."""
    from ..analysis import chance_purity, nmf, snmf, train_sae, train_transcoder

    from ..analysis import Decomposition

    values: dict[str, dict[str, list[float]]] = {u: {m: [] for m in MEASURES} for u in UNITS}
    kept: dict[str, list] = {u: [] for u in UNITS}
    W_out = model.adapter.W_out(io.layer).detach().float().cpu()
    for s in seeds:
        fits = {"SNMF": snmf(io.hidden, k, n_iter=snmf_iter, seed=s, progress=False), "NMF": nmf(io.hidden, k, n_iter=nmf_iter, seed=s),
                "SAE": train_sae(io.hidden, k, steps=steps, seed=s),
                "transcoder": train_transcoder(io.inputs, io.outputs, k, steps=steps, seed=s)}
        for u, fit in fits.items():
            got = _unit_measures(fit.Y, labels)
            if u == "SAE":
                got["error"] = fit.stats(held_io.hidden)["relative_error"]
            elif u == "transcoder":
                got["error"] = fit.stats(held_io.inputs, held_io.outputs)["relative_error"]
            else:
                got["error"] = fit.loss
            for m in MEASURES:
                values[u][m].append(got[m])
            kept[u].append(fit if u != "transcoder" else
                           Decomposition(fit.mlp_directions(W_out), fit.Y, [], "transcoder"))
        kept["neurons"].append(Decomposition(torch.eye(io.hidden.shape[0]), io.hidden, [], "neurons"))
        got = _unit_measures(io.hidden, labels)
        got["error"] = 0.0
        for m in MEASURES:
            values["neurons"][m].append(got[m])
    tensors = {u: {m: torch.tensor(v) for m, v in ms.items()} for u, ms in values.items()}
    return UnitComparison(tensors, chance_purity(labels), seeds, k, kept)
