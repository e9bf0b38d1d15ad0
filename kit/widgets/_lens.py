"""Data behind ResidualLens: the logit lens of one prompt, residual norms, and direct logit
attribution at every position at once.

Glossary: ``layer``, ``pos``, ``head``, ``k`` (top-k), ``d_model``, ``vocab``. The trace's batch
axis is dropped: everything here is about prompt ``b`` of the trace, cut to its real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..analysis import logit_lens

__all__ = ["LensData", "lens_data", "dla_by_position", "DLA_NEEDS", "target_stats", "residual_norms"]

DLA_NEEDS = ("resid_pre", "resid_post", "head_out", "mlp_out")


@dataclass
class LensData:
    """Logit lens of one prompt: ``top_ids[layer, pos, k]``, ``top_probs[layer, pos, k]``."""

    tokens: list[str]
    top_ids: torch.Tensor
    top_probs: torch.Tensor


def lens_data(tr: Any, b: int, k: int) -> LensData:
    """Top-``k`` tokens of every layer's ``resid_post`` for prompt ``b`` (its real tokens only)."""
    n = int(tr.lengths[b])
    lens = logit_lens(tr, k=k)
    return LensData(list(tr.tokens[b]), lens.top_ids[:, b, :n], lens.top_probs[:, b, :n].float())


@torch.no_grad()
def target_stats(tr: Any, b: int, target_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rank[layer, pos], prob[layer, pos])`` of one token under the logit lens (rank 0 = top)."""
    n = int(tr.lengths[b])
    ranks, probs = [], []
    for layer in tr.layers:
        logp = tr.model.unembed(tr["resid_post", layer][b, :n]).float().log_softmax(-1)  # [pos, vocab]
        t = logp[:, target_id : target_id + 1]  # [pos, 1]
        ranks.append((logp > t).sum(-1).cpu())
        probs.append(t[:, 0].exp().cpu())
    return torch.stack(ranks), torch.stack(probs)


@torch.no_grad()
def residual_norms(tr: Any, b: int) -> torch.Tensor:
    """``norms[1 + layer, pos]``: L2 norm of the residual stream entering layer 0, then after each layer."""
    n = int(tr.lengths[b])
    rows = [tr["resid_pre", 0][b, :n].float().norm(dim=-1)] if "resid_pre" in tr.names else []
    rows += [tr["resid_post", layer][b, :n].float().norm(dim=-1) for layer in tr.layers]
    return torch.stack(rows).cpu()


@torch.no_grad()
def dla_by_position(tr: Any, b: int, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Direct logit attribution of prompt ``b`` at every real position ``p`` onto token ``ids[p]``.

    The same quantity as :func:`kit.analysis.direct_logit_attribution` (final norm frozen at its
    scale in the actual forward pass), computed for all positions in one go. Returns
    ``embed[pos]``, ``heads[pos, layer, head]``, ``attn_bias[pos, layer]``, ``mlps[pos, layer]``
    (``mlp_out``, its bias included), ``bias[pos]`` (final norm and unembedding biases) and
    ``total[pos]`` (the logit of the actual forward pass); the parts sum to ``total``.
    """
    model, a = tr.model, tr.model.adapter
    n = int(tr.lengths[b])
    dev = model.device
    ids = ids.to(dev)
    direction = a.W_U.float()[:, ids].T  # [pos, d_model]
    final = tr["resid_post", model.n_layers - 1][b, :n]  # [pos, d_model]
    linear, norm_bias = a.frozen_final_norm(final)  # the model's own gain (Gemma: 1 + weight)

    def effect(part: torch.Tensor) -> torch.Tensor:  # [pos, ..., d_model] -> [pos, ...]
        moved = part.float().movedim(0, -2)  # [..., pos, d_model]: the norm's scale is per position
        lin = linear(moved).movedim(-2, 0)
        return (lin * direction.view(n, *([1] * (part.ndim - 2)), -1)).sum(-1)

    zeros = torch.zeros(n, model.d_model, device=dev)
    layers = range(model.n_layers)
    b_O = [a.b_O(l) for l in layers]
    parts = {
        "embed": effect(tr["resid_pre", 0][b, :n]),
        "heads": torch.stack([effect(tr["head_out", l][b, :n]) for l in layers], 1),  # [pos, layer, head]
        "attn_bias": torch.stack([effect(zeros + (x.float() if x is not None else 0)) for x in b_O], 1),
        "mlps": torch.stack([effect(tr["mlp_out", l][b, :n]) for l in layers], 1),
        "bias": (norm_bias * direction).sum(-1) + (a.b_U.float()[ids] if a.b_U is not None else 0),
        "total": tr.logits[b, :n].float().gather(-1, ids[:, None])[:, 0],
    }
    return {name: t.cpu() for name, t in parts.items()}
