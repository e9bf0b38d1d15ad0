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
]

EX_DIM = "6.1 feature dimensionality"
EX_STATS = "6.2 reconstruction and sparsity"
EX_FEATURE = "6.3 the concept's transcoder feature"
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
