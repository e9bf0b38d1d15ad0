"""Attention patterns of one prompt, taken from a trace (or a model and a prompt).

Glossary: ``layer``, ``head``, ``query`` and ``key`` positions, ``pos`` a token position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_tensor
from ._source import resolve_source

__all__ = ["PromptAttention", "from_source", "thumbnails", "check_scores"]

THUMB = 64  # thumbnails are max-pooled to at most THUMB x THUMB cells


@dataclass
class PromptAttention:
    """The attention of every layer for one prompt."""

    tokens: list[str]
    patterns: list[torch.Tensor]  # per layer: [head, query, key], float32 on CPU

    @property
    def n_layers(self) -> int:
        return len(self.patterns)

    @property
    def n_heads(self) -> int:
        return self.patterns[0].shape[0]


def _count_layers(trace: Any) -> int:
    """Layers in a trace: its n_layers (or its model's), else probe tr["pattern", l] until it refuses."""
    for owner in (trace, getattr(trace, "model", None)):
        n = getattr(owner, "n_layers", None)
        if isinstance(n, int):
            return n
    n = 0
    while n < 10_000:
        try:
            trace["pattern", n]
        except (ValueError, IndexError, KeyError):
            break
        n += 1
    return n


def from_source(source: Any, prompt: Any = None, batch_index: int = 0) -> PromptAttention:
    """Patterns of prompt `batch_index` of a trace, or of `source.trace(prompt)` for a model."""
    resolved = resolve_source("AttentionViewer", source, prompt, ["pattern"])
    trace = resolved.trace
    n_layers = getattr(resolved.model, "n_layers", None) if prompt is not None else None
    n_layers = n_layers if isinstance(n_layers, int) else _count_layers(trace)
    tokens_all = trace.tokens
    if not 0 <= batch_index < len(tokens_all):
        raise ValueError(
            f"batch_index must be in 0..{len(tokens_all) - 1} (the trace holds {len(tokens_all)} prompts); got {batch_index}"
        )
    tokens = [str(t) for t in tokens_all[batch_index]]
    if n_layers == 0:
        raise ValueError('the trace holds no attention patterns: trace with capture=["pattern"]')
    positions = _real_positions(trace, batch_index, len(tokens))
    patterns = []
    for layer in range(n_layers):
        p = trace["pattern", layer]  # [batch, head, query, key]
        if p.ndim != 4:
            raise ValueError(f'tr["pattern", {layer}] should be [batch, head, query, key]; got shape {tuple(p.shape)}')
        p = p[batch_index].detach().to("cpu", torch.float32)  # [head, query, key]
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f'the attention pattern of layer {layer} holds NaN or infinite values; the model '
                             f'overflowed or its weights are broken (trace it in float32)')
        if positions is None:
            p = p[:, : len(tokens), : len(tokens)]
        else:
            p = p[:, positions][:, :, positions]
        patterns.append(p)
    shapes = {tuple(p.shape) for p in patterns}
    if len(shapes) != 1 or patterns[0].shape[-1] != len(tokens):
        raise ValueError(f"attention patterns do not match the {len(tokens)} tokens: shapes {sorted(shapes)}")
    return PromptAttention(tokens, patterns)


def _real_positions(trace: Any, batch_index: int, n_tokens: int) -> torch.Tensor | None:
    """Positions of real tokens when padding is not simply on the right; None for a prefix."""
    mask = getattr(trace, "mask", None)
    if mask is None:
        return None
    row = torch.as_tensor(mask)[batch_index].bool().cpu()
    if int(row.sum()) != n_tokens:
        raise ValueError(
            f"trace.mask marks {int(row.sum())} real tokens for prompt {batch_index} but trace.tokens has {n_tokens}"
        )
    if bool(row[:n_tokens].all()):
        return None
    return row.nonzero().squeeze(-1)


def thumbnails(patterns: list[torch.Tensor], size: int = THUMB) -> torch.Tensor:
    """[layer, head, s, s] with s = min(tokens, size): max-pooled so sharp patterns survive."""
    n = patterns[0].shape[-1]
    s = min(n, size)
    pooled = [F.adaptive_max_pool2d(p, s) if n > s else p for p in patterns]  # each [head, s, s]
    return torch.stack(pooled)


def check_scores(scores: Any, n_layers: int, n_heads: int) -> dict[str, torch.Tensor]:
    """Validate head scores: {name: [layer, head]}, e.g. {"induction": ..., "prev_token": ...}."""
    if scores is None:
        return {}
    if not isinstance(scores, dict):
        raise TypeError(
            'scores must be a dict such as {"induction": Tensor[layer, head], "prev_token": Tensor[layer, head]}'
        )
    out = {}
    for name, value in scores.items():
        t = check_tensor(value, f"scores[{name!r}]", finite=False).detach().to("cpu", torch.float32)
        if tuple(t.shape) != (n_layers, n_heads):
            raise ValueError(
                f"scores[{name!r}] must have shape [layer, head] = ({n_layers}, {n_heads}); got {tuple(t.shape)}"
            )
        out[str(name)] = check_tensor(t, f"scores[{name!r}]")
    return out
