"""The kit's attention function, registered with ``transformers`` as implementation ``"kit"``.

It computes ordinary (eager) attention, and lets the active hook session read the attention
probabilities and edit the pre-softmax scores (knockout) or the probabilities (patching). A query
left with no visible key after an edit of the scores attends to nothing (a zero pattern row), never
to the future. The
tracer switches a model to it only for a trace that needs patterns; every other trace runs the
model's own (SDPA) attention untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

IMPLEMENTATION = "kit"

# The active session's callback: (module, scores[batch, head, q, k]) edited scores, and
# (module, pattern) edited pattern. Set by the tracer for the duration of one forward pass.
_observer: list[Any] = []


def kit_attention(
    module: nn.Module,
    query: torch.Tensor,  # [batch, head, q, d_head]
    key: torch.Tensor,  # [batch, kv_head, k, d_head]
    value: torch.Tensor,  # [batch, kv_head, k, d_head]
    attention_mask: torch.Tensor | None,  # additive float mask [batch, 1, q, k]
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention with observation points; returns ``(out[batch, q, head, d_head], pattern)``."""
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: each key/value head serves n_rep query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # [batch, head, q, k]
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    observer = _observer[-1] if _observer else None
    blocked = None
    if observer is not None:
        if observer.edits_scores(module):  # an edit (knockout) may block every key a query could see
            scores = observer.on_scores(module, scores)
            blocked = blocked_queries(scores)
        else:
            scores = observer.on_scores(module, scores)
    pattern = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    if blocked is not None:
        pattern = pattern.masked_fill(blocked, 0.0)
    if observer is not None:
        pattern = observer.on_pattern(module, pattern)
    pattern_used = nn.functional.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(pattern_used, value).transpose(1, 2).contiguous()
    return out, pattern


def blocked_queries(scores: torch.Tensor) -> torch.Tensor:
    """``blocked[batch, head, query, 1]``: True where every key of the query is masked out.

    A masked score carries the mask's large negative value (``finfo.min``); a query whose whole row
    is masked would otherwise get a uniform softmax over *all* positions, future ones included.
    Such a query attends to nothing instead: its pattern row, and so its head output, is zero.
    """
    return (scores <= torch.finfo(scores.dtype).min / 2).all(dim=-1, keepdim=True)


AttentionInterface.register(IMPLEMENTATION, kit_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, eager_mask)


def _configs(hf: nn.Module) -> list[Any]:
    """The model's config and any sub-configs that carry an attention implementation."""
    seen, out = set(), []
    for mod in hf.modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and id(cfg) not in seen:
            seen.add(id(cfg))
            out.append(cfg)
    return out


@contextlib.contextmanager
def observing(hf: nn.Module, observer: Any) -> Iterator[None]:
    """Run ``hf`` with kit attention and ``observer`` for the duration of the block."""
    configs = _configs(hf)
    before = [cfg._attn_implementation for cfg in configs]
    _observer.append(observer)
    try:
        for cfg in configs:
            cfg._attn_implementation = IMPLEMENTATION
        yield
    finally:
        _observer.pop()
        for cfg, impl in zip(configs, before):
            cfg._attn_implementation = impl

