"""Attribution patching (Nanda 2023): activation patching approximated by one gradient.

Patching a component's clean activation ``a_clean`` into the corrupted run changes the metric ``M`` by
about ``(a_clean - a_corrupted) . dM/da``, the gradient taken once, on the corrupted run. One forward and
one backward pass estimate every cell of an activation-patching grid at once, instead of one forward
pass per cell.

When it fails (the estimate is a first-order Taylor expansion, exact only for a metric linear in the
activation):

- **Saturated softmax.** Where a softmax sits at 0 or 1 its gradient vanishes: with ``p(answer)`` as the
  metric and a corrupted run that is already sure of another token, every estimate is about 0 while real
  patching moves ``p`` all the way. The same holds inside attention: a head whose pattern is saturated
  on one key gets no gradient through its queries and keys. Prefer a logit difference as the metric.
- **Large patches.** When clean and corrupted activations differ by a lot (a whole residual stream
  position, a head that switches which token it attends to), the curvature the expansion ignores
  dominates, and estimates can be off in size or even in sign. Small, component-level differences
  (one head's output) are where it agrees best with real patching; check a few cells with
  :func:`kit.analysis.activation_patching` before trusting a whole grid (:func:`agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validate import check_model
from ..interventions import Edit
from ..models import Model
from ._common import token_ids_per_prompt
from .path_patching import logit_diff, prompt_pair

__all__ = ["AttributionPatching", "Agreement", "agreement", "attribution_patching"]

_KIND_POINT = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out", "heads": "z"}


@dataclass
class AttributionPatching:
    """``scores[layer, pos]`` (or ``[layer, head]`` for heads): the *estimated* metric with one cell patched
    from the clean run into the corrupted run, on the same scale as
    :class:`kit.analysis.PatchingResult` (``corrupted + estimated change``)."""

    scores: torch.Tensor
    clean: float
    corrupted: float
    kind: str
    metric: str

    @property
    def normalized(self) -> torch.Tensor:
        """0 where the estimate leaves the corrupted value, 1 where it restores the clean value."""
        return (self.scores - self.corrupted) / (self.clean - self.corrupted)

    def __repr__(self) -> str:
        return (f"AttributionPatching(kind={self.kind!r}, metric={self.metric!r}, shape={list(self.scores.shape)}, "
                f"clean={self.clean:.3f}, corrupted={self.corrupted:.3f})")


def attribution_patching(model: Model, clean: str | Sequence[str], corrupted: str | Sequence[str], answer,
                         contrast=None, kind: str = "heads") -> AttributionPatching:
    """Estimate activation patching of every cell with one forward and one backward pass.

    ``kind``: ``"resid"`` (residual stream entering each layer, by position), ``"attn"`` / ``"mlp"``
    (attention or MLP output, by position) or ``"heads"`` (each head's output at every position).
    Metric: ``logit[answer] - logit[contrast]`` at the last position (mean over prompts), or
    ``p(answer)`` without a contrast (see the module docstring for why that one saturates).
    Prompts: one string or a list each, all of one token length.
    """
    check_model(model, "attribution_patching")
    if kind not in _KIND_POINT:
        raise ValueError(f"kind={kind!r}; valid kinds: {', '.join(_KIND_POINT)}")
    point = _KIND_POINT[kind]
    c_ids, x_ids = prompt_pair(model, clean, corrupted)
    P = c_ids.shape[0]
    a = token_ids_per_prompt(model, answer, P).to(model.device)
    c = None if contrast is None else token_ids_per_prompt(model, contrast, P).to(model.device)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        if c is not None:
            return logit_diff(logits, a, c).mean()
        last = logits[:, -1].float().softmax(-1)
        return last[torch.arange(P, device=last.device), a].mean()

    with torch.no_grad():
        clean_tr = model.trace(c_ids, capture=[point])
    L = model.n_layers
    deltas: list[torch.Tensor] = []

    def add(layer: int):
        def fn(x: torch.Tensor) -> torch.Tensor:
            d = torch.zeros_like(x, requires_grad=True)  # dM/dd = dM/dx
            deltas.append(d)
            return x + d
        return fn

    corr_tr = model.trace(x_ids, capture=[point], grad=True, interventions=[Edit(point, l, add(l)) for l in range(L)])
    value = metric(corr_tr.logits)
    grads = torch.autograd.grad(value, deltas)
    rows = []
    for l, g in enumerate(grads):
        diff = clean_tr[point, l].float() - corr_tr[point, l].detach().float()
        prod = diff * g.float()  # [prompt, pos, ...]
        rows.append(prod.sum((0, 1, 3)) if kind == "heads" else prod.sum((0, 2)))
    change = torch.stack(rows).cpu()  # the metric is already the mean over prompts
    corrupted_v = float(value.detach())
    clean_v = float(metric(clean_tr.logits))
    return AttributionPatching(corrupted_v + change, clean_v, corrupted_v, kind,
                               "logit_diff" if c is not None else "prob")


@dataclass
class Agreement:
    """Attribution estimate against real patching, per component: ``estimate`` and ``actual`` (metric values,
    same shape), ``error = estimate - actual``, and ``correlation`` (Pearson, over every component)."""

    estimate: torch.Tensor
    actual: torch.Tensor
    error: torch.Tensor
    correlation: float

    def worst(self, k: int = 3) -> list[tuple[tuple[int, int], float]]:
        """The ``k`` components with the largest absolute error: ``[((row, col), error), ...]``."""
        flat = self.error.abs().flatten().argsort(descending=True)[:k]
        W = self.error.shape[1]
        return [((int(i) // W, int(i) % W), float(self.error.flatten()[i])) for i in flat]

    def __repr__(self) -> str:
        return (f"Agreement(correlation={self.correlation:.3f}, max |error|={float(self.error.abs().max()):.3f}, "
                f"worst={[(f'{r},{c}', round(e, 3)) for (r, c), e in self.worst()]})")


def agreement(estimate: AttributionPatching, actual) -> Agreement:
    """Compare an :class:`AttributionPatching` with real patching (a ``PatchingResult`` of the same kind,
    prompts and metric), component by component."""
    e, r = estimate.scores.float(), actual.scores.float()
    if e.shape != r.shape:
        raise ValueError(f"shapes differ: estimate {list(e.shape)} vs patching {list(r.shape)}; "
                         f"compare results of the same kind and prompts")
    de, dr = (e - e.mean()).flatten(), (r - r.mean()).flatten()
    corr = float((de @ dr) / (de.norm() * dr.norm()).clamp_min(1e-12))
    return Agreement(e, r, e - r, corr)
