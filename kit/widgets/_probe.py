"""Data behind NeuronProbe: MLP activations over several texts, decoded neurons and features,
and the next-token distribution with a neuron or a feature clamped.

Glossary: ``layer``, ``d_mlp`` (neurons), ``k`` (features), ``tokens`` (every real token of every
text, concatenated text after text), ``vocab``.

A *feature* is a direction over neurons ``z[d_mlp]`` (e.g. a column of SNMF's ``Z``). Its
activation on a token is ``mlp_post · z``; clamping it to ``v`` moves ``mlp_post`` along ``z`` by
the amount that makes ``mlp_post · z == v`` (``mlp_post + (v - mlp_post · z) z / ‖z‖²``), leaving
every direction orthogonal to ``z`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..interventions import Clamp, Edit

__all__ = ["MLPActs", "collect_acts", "decode_directions", "decode_residual", "next_token_change", "CLAMP_MULTIPLES"]

# The clamp slider's stops, in units of the unit's largest |activation| over the texts.
CLAMP_MULTIPLES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


class MLPActs:
    """``acts[tokens, d_mlp]`` of one layer over all texts, with ``offsets[text]`` into the token axis."""

    def __init__(self, acts: torch.Tensor, lengths: list[int]):
        self.acts = acts
        self.lengths = lengths
        self.offsets = [sum(lengths[:i]) for i in range(len(lengths))]

    def of_text(self, text: int) -> torch.Tensor:
        """``[pos, d_mlp]`` of one text."""
        start = self.offsets[text]
        return self.acts[start : start + self.lengths[text]]


@torch.no_grad()
def collect_acts(model: Any, texts: Sequence[str], layer: int, batch_size: int = 16, name: str = "mlp_post") -> MLPActs:
    """``name`` (default ``mlp_post``) of ``layer`` at every real token of every text (float32, CPU)."""
    rows, lengths = [], []
    for start in range(0, len(texts), batch_size):
        tr = model.trace(list(texts[start : start + batch_size]), capture=[name], layers=[layer])
        acts = tr[name, layer].float().cpu()  # [batch, pos, d]
        for b, n in enumerate(tr.lengths):
            rows.append(acts[b, :n])
            lengths.append(int(n))
    return MLPActs(torch.cat(rows), lengths)


@torch.no_grad()
def decode_directions(model: Any, layer: int, directions: torch.Tensor, k: int = 8) -> torch.Tensor:
    """``ids[unit, k]``: tokens each MLP-space direction (``directions[unit, d_mlp]``) promotes most.

    Its output ``directions @ W_out`` times the final norm's weight, through the unembedding (the
    same recipe as :func:`kit.analysis.decode_neurons`; for one-hot directions it gives the same tokens).
    """
    out = directions.to(model.device).float() @ model.adapter.W_out(layer).float()  # [unit, d_model]
    return decode_residual(model, out, k)


@torch.no_grad()
def decode_residual(model: Any, directions: torch.Tensor, k: int = 8) -> torch.Tensor:
    """``ids[unit, k]``: tokens each residual-stream direction (``directions[unit, d_model]``) promotes most,
    read through the final norm's weight and the unembedding."""
    a = model.adapter
    out = directions.to(model.device).float()
    w = getattr(a.final_norm, "weight", None)
    if w is not None:
        out = out * w.float()
    return (out @ a.W_U.float()).topk(k, dim=-1).indices.cpu()


def _feature_edit(layer: int, z: torch.Tensor, value: float) -> Edit:
    def fn(x: torch.Tensor) -> torch.Tensor:  # x: mlp_post [batch, pos, d_mlp]
        zz = z.to(x.device, x.dtype)
        current = x @ zz  # [batch, pos]
        return x + (value - current)[..., None] * zz / zz.dot(zz).clamp_min(1e-12)

    return Edit("mlp_post", layer, fn)


@torch.no_grad()
def next_token_change(
    model: Any,
    prompt: str,
    layer: int,
    value: float,
    neuron: int | None = None,
    feature: torch.Tensor | None = None,
    k: int = 8,
    edits: Sequence[Edit] | None = None,
) -> dict[str, Any]:
    """Next-token probabilities after ``prompt`` with a neuron (or a feature ``z[d_mlp]``) clamped to
    ``value`` at every position of the prompt; or with the given ``edits`` (then ``value`` is unused).

    Returns ``{"ids": [n], "tokens": [n], "before": [n], "after": [n], "kl": float}`` for the union of
    the top ``k`` tokens before and after and the ``k`` largest changes each way, largest ``after`` first.
    """
    if sum(x is not None for x in (neuron, feature, edits)) != 1:
        raise ValueError("give one of: a neuron, a feature direction, or the edits")
    if edits is None:
        edits = [Clamp(layer, neuron, float(value)) if neuron is not None else _feature_edit(layer, feature, float(value))]
    before = model.trace(prompt, capture=[]).logits[0, -1].float().softmax(-1).cpu()
    after = model.trace(prompt, capture=[], interventions=list(edits)).logits[0, -1].float().softmax(-1).cpu()
    delta = after - before
    picks = torch.cat([before.topk(k).indices, after.topk(k).indices, delta.topk(k).indices, (-delta).topk(k).indices])
    ids = torch.unique(picks)
    ids = ids[after[ids].argsort(descending=True)]
    kl = float((after * (after.clamp_min(1e-12).log() - before.clamp_min(1e-12).log())).sum())
    return {
        "ids": ids,
        "tokens": model.to_str_tokens(ids),
        "before": before[ids],
        "after": after[ids],
        "kl": kl,
        "before_all": before,
        "after_all": after,
    }
