"""The graph behind CircuitDiagram: node weights from an attribution or patching result, and
head-to-head edges from composition scores.

Nodes: ``embed``, every head ``(layer, head)``, every ``mlp`` of a layer, and ``logits``.

- **Node weight** ``w``: what the result says about the component. From
  :func:`kit.analysis.direct_logit_attribution`: its *direct effect* on the answer's logit (or logit
  difference) at the chosen position. From :func:`kit.analysis.activation_patching`: its patching
  score normalised to the clean-corrupted gap (``kind="heads"`` for heads, ``"mlp"`` for MLPs; an
  MLP's ``[layer, pos]`` row is summarised by its largest-magnitude position). Or any weights you pass.
- **Edges into the logits** carry the node's weight ``w``. For direct effects this is exactly the
  node's contribution through the direct path; for patching scores it is the node's total effect
  (through every path), drawn as an edge to the output for lack of a finer measurement.
- **Head-to-head edges** ``(l1, h1) -> (l2, h2)``, ``l1 < l2``: ``c * sqrt(|w1| * |w2|)`` where ``c``
  is the larger of the Q-, K- and V-composition scores (:func:`kit.analysis.composition_scores`,
  weights only, norms not folded in). It is large only when both heads matter for this result and
  the later head reads the subspace the earlier one writes. It is a heuristic built from weights,
  not a measured path effect (path patching would measure that). Only the strongest ``max_edges``
  are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..analysis import composition_scores

__all__ = ["Graph", "weights_from", "head_edges", "measured_edges", "KINDS"]

KINDS = ("q", "k", "v")


@dataclass
class Graph:
    """``embed`` (float), ``heads[layer, head]``, ``mlps[layer]``, ``logit`` (the output value or None),
    ``label`` (what a weight means)."""

    embed: float
    heads: torch.Tensor
    mlps: torch.Tensor
    logit: float | None
    label: str


def _tensor(x: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    if tuple(t.shape) != shape:
        raise ValueError(f"{what} must have shape {list(shape)}; got {list(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} holds NaN or infinite values")
    return t


def weights_from(
    n_layers: int,
    n_heads: int,
    attribution: Any = None,
    patching: Any = None,
    mlp_patching: Any = None,
    weights: dict | None = None,
    batch_index: int = 0,
) -> Graph:
    """Node weights from exactly one of: an Attribution, patching results, or a dict of tensors."""
    given = [x is not None for x in (attribution, patching if patching is not None else mlp_patching, weights)]
    if sum(given) != 1:
        raise ValueError("give exactly one of attribution=..., patching=... (and/or mlp_patching=...), weights={...}")
    L, H = n_layers, n_heads
    if attribution is not None:
        b = batch_index
        return Graph(
            float(attribution.embed[b]),
            _tensor(attribution.heads[b], (L, H), "attribution.heads[batch]"),
            _tensor(attribution.mlps[b], (L,), "attribution.mlps[batch]"),
            float(attribution.total[b]),
            "direct effect on the logit",
        )
    if weights is not None:
        unknown = set(weights) - {"heads", "mlps", "embed"}
        if unknown:
            raise ValueError(f"weights takes the keys 'heads', 'mlps', 'embed'; got {sorted(unknown)}")
        heads = _tensor(weights.get("heads", torch.zeros(L, H)), (L, H), "weights['heads']")
        mlps = _tensor(weights.get("mlps", torch.zeros(L)), (L,), "weights['mlps']")
        return Graph(float(weights.get("embed", 0.0)), heads, mlps, None, "weight")
    heads, mlps = torch.zeros(L, H), torch.zeros(L)
    if patching is not None:
        if getattr(patching, "kind", None) != "heads":
            raise ValueError(
                "patching= takes activation_patching(..., kind='heads'); pass an MLP grid as mlp_patching="
            )
        heads = _tensor(patching.normalized, (L, H), "patching.scores")
    if mlp_patching is not None:
        if getattr(mlp_patching, "kind", None) != "mlp":
            raise ValueError("mlp_patching= takes activation_patching(..., kind='mlp')")
        grid = torch.as_tensor(mlp_patching.normalized, dtype=torch.float32)
        if grid.ndim != 2 or grid.shape[0] != L:
            raise ValueError(f"mlp_patching.scores must be [layer={L}, pos]; got {list(grid.shape)}")
        idx = grid.abs().argmax(1)
        mlps = grid[torch.arange(L), idx]
    return Graph(0.0, heads, mlps, None, "patching: share of the gap restored")


@torch.no_grad()
def head_edges(
    model: Any, heads: torch.Tensor, max_edges: int = 400
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pairs[E, 2], weight[E], kind[E])``: the strongest head-to-head edges, strongest first.

    ``pairs`` holds flat head indices ``layer * n_heads + head`` (source, then destination);
    ``kind`` indexes :data:`KINDS` (which composition was largest).
    """
    L, H = heads.shape
    comp = torch.stack([composition_scores(model, kind).float().cpu() for kind in KINDS])  # [3, L, H, L, H]
    best, kind = comp.max(0)  # [L, H, L, H]
    mag = heads.abs()
    strength = best * (mag[:, :, None, None] * mag[None, None, :, :]).sqrt()
    flat = strength.reshape(L * H, L * H)
    order = flat.flatten().argsort(descending=True)
    keep = order[:max_edges][flat.flatten()[order[:max_edges]] > 0]
    src, dst = keep // (L * H), keep % (L * H)
    return torch.stack([src, dst], 1), flat.flatten()[keep], kind.reshape(L * H, L * H).flatten()[keep]


def measured_edges(edges: Any, n_layers: int, n_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pairs[E, 2], weight[E], kind[E])`` from measured edges ``[((l1, h1), (l2, h2), weight), ...]`` (``l1 <
    l2``), strongest first; ``weight`` is drawn as ``|weight|``, ``kind`` is 0 (one kind: a measured path)."""
    rows = []
    for item in edges:
        try:
            (l1, h1), (l2, h2), w = item
            l1, h1, l2, h2, w = int(l1), int(h1), int(l2), int(h2), float(w)
        except (TypeError, ValueError):
            raise ValueError(f"each edge is ((layer, head), (layer, head), weight); got {item!r}") from None
        for l, h in ((l1, h1), (l2, h2)):
            if not (0 <= l < n_layers and 0 <= h < n_heads):
                raise ValueError(f"edge {item!r} names head L{l}H{h}; valid layers 0..{n_layers - 1}, "
                                 f"heads 0..{n_heads - 1}")
        if l1 >= l2:
            raise ValueError(f"edge {item!r} must go from an earlier layer to a later one")
        rows.append((l1 * n_heads + h1, l2 * n_heads + h2, abs(w)))
    rows.sort(key=lambda r: -r[2])
    pairs = torch.tensor([[a, b] for a, b, _ in rows], dtype=torch.long).reshape(-1, 2)
    weight = torch.tensor([w for _, _, w in rows], dtype=torch.float32)
    return pairs, weight, torch.zeros(len(rows), dtype=torch.long)
