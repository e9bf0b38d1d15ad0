"""Voids: layers that barely change a token's residual norm (L2 adaptive computation).

After "Void in Language Models": per token, ``n_l = ||h_l||_2`` after block ``l`` (``n_{-1}`` is the
norm of the embeddings), ``delta_l = n_l - n_{l-1}``; layer ``l`` is active when
``delta_l >= alpha * (max_{j<l} delta_j - min_{j<l} delta_j)``. Layer 0 is always active.
"""

from __future__ import annotations

import torch

from .._validate import check_model, check_number, check_trace
from ..interventions import Edit
from ..models import Model
from ..trace import Trace

__all__ = ["active_layers", "skip_voids"]


def active_layers(tr: Trace, alpha: float = 0.8) -> torch.Tensor:
    """``active[batch, pos, layer]``: True where the layer is active for that token (False on padding)."""
    check_trace(tr, "active_layers")
    check_number(alpha, "alpha")
    if "resid_post" not in tr.names or "resid_pre" not in tr.names or len(tr.layers) != tr.model.n_layers:
        raise ValueError("active_layers needs a trace of every layer with 'resid_pre' and 'resid_post'")
    norms = torch.stack([tr["resid_pre", 0].float().norm(dim=-1)] +
                        [tr["resid_post", l].float().norm(dim=-1) for l in tr.layers], -1)  # [batch, pos, L+1]
    delta = norms.diff(dim=-1)  # [batch, pos, layer]
    L = delta.shape[-1]
    active = torch.ones_like(delta, dtype=torch.bool)
    for l in range(1, L):
        prev = delta[..., :l]
        spread = prev.max(-1).values - prev.min(-1).values
        active[..., l] = delta[..., l] >= alpha * spread
    return active & tr.mask[..., None]


def skip_voids(model: Model, prompts, alpha: float = 0.8, skip: bool = True, capture=()) -> tuple[Trace, torch.Tensor]:
    """Trace ``prompts`` with each token's void layers skipped (its residual passes through unchanged).

    The active mask comes from an unskipped pass. ``skip=False`` runs the model unchanged and so
    reproduces its output exactly. Returns ``(trace, active[batch, pos, layer])``.
    """
    check_model(model, "skip_voids")
    check_number(alpha, "alpha")
    full = model.trace(prompts, capture=["resid_pre", "resid_post"])
    active = active_layers(full, alpha)
    if not skip:
        return model.trace(prompts, capture=capture), active
    edits = []
    for l in range(model.n_layers):
        void = ~active[..., l] & full.mask  # [batch, pos]
        if void.any():
            edits.extend(_passthrough(l, void))
    # the block's output becomes its input for void tokens: resid_post[l] = resid_pre[l]
    return model.trace(prompts, capture=capture, interventions=edits), active


def _passthrough(layer: int, void: torch.Tensor) -> list:
    store: dict[str, torch.Tensor] = {}

    def remember(x: torch.Tensor) -> torch.Tensor:
        store["pre"] = x
        return x

    def restore(x: torch.Tensor) -> torch.Tensor:
        return torch.where(void[..., None], store["pre"].to(x.dtype), x)

    return [Edit("resid_pre", layer, remember), Edit("resid_post", layer, restore)]
