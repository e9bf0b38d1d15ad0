"""The kit's attention function, registered with ``transformers`` as implementation ``"kit"``.

For the layers a trace observes it computes ordinary (eager) attention, and lets the active hook
session read the attention probabilities and edit the pre-softmax scores (knockout) or the
probabilities (patching). A query left with no visible key after an edit of the scores attends to
nothing (a zero pattern row), never to the future. The tracer switches a model to it only for a
trace that needs patterns, scores, queries, keys or values; layers of such a trace that need none
of them (and heads whose patterns were not asked for) still run the model's own SDPA kernel, and
every other trace runs the model's own attention untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

IMPLEMENTATION = "kit"

# The active session (observer) and the implementation the model had before, for the duration
# of one forward pass. The observer maps a module to its layer and says what that layer needs.
_observer: list[tuple[Any, str]] = []


def _math(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
          attention_mask: torch.Tensor | None, scaling: float, softcap: float | None, dropout: float,
          observer: Any, layer: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, grouped-query heads without copying keys and values."""
    B, H, T, D = query.shape
    kv, S = key.shape[1], key.shape[2]
    rep = H // kv
    # [batch, kv_head, rep, q, d_head] @ [batch, kv_head, 1, d_head, k]: query head h uses kv head h // rep
    scores = torch.matmul(query.view(B, kv, rep, T, D), key[:, :, None].transpose(-1, -2)).view(B, H, T, S)
    scores.mul_(scaling)  # in place: the [batch, head, q, k] tensors are the cost of eager attention
    if softcap is not None:  # Gemma 2 / 3: logit soft-capping before the mask
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores.add_(attention_mask[..., :S])
    blocked = None
    if observer is not None and layer is not None:
        if observer.edits_scores(layer):  # an edit (knockout) may block every key a query could see
            scores = observer.on_scores(layer, scores)
            blocked = blocked_queries(scores)
        else:
            scores = observer.on_scores(layer, scores)
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if blocked is not None:
        pattern = pattern.masked_fill(blocked, 0.0)
    if observer is not None and layer is not None:
        pattern = observer.on_pattern(layer, pattern)
    used = nn.functional.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(used.reshape(B, kv, rep, T, S), value[:, :, None]).reshape(B, H, T, value.shape[-1])
    return out.transpose(1, 2).contiguous(), pattern


def kit_attention(
    module: nn.Module,
    query: torch.Tensor,  # [batch, head, q, d_head]
    key: torch.Tensor,  # [batch, kv_head, k, d_head]
    value: torch.Tensor,  # [batch, kv_head, k, d_head]
    attention_mask: torch.Tensor | None,  # additive float mask [batch, 1, q, k]
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with observation points; returns ``(out[batch, q, head, d_head], pattern or None)``.

    Layers whose patterns, scores or queries/keys/values nobody asked for run the model's own
    SDPA kernel (when it had one and no soft-capping is needed); the others run eager attention.
    """
    observer, before = _observer[-1] if _observer else (None, "eager")
    layer = observer.layer_of(module) if observer is not None else None
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if layer is not None:
        observer.on_qkv(layer, query, key, value)
    needs_math = layer is not None and observer.needs_pattern(layer)
    subset = observer.observed_heads(layer) if needs_math else None
    if subset is not None:  # patterns of a few heads only: the output from the model's own kernel
        out, _ = kit_attention_plain(module, query, key, value, attention_mask, scaling, softcap, dropout, before,
                                     **kwargs)
        _observe_heads(query, key, attention_mask, scaling, softcap, value.dtype, observer, layer, subset)
        return out, None
    if not needs_math:
        return kit_attention_plain(module, query, key, value, attention_mask, scaling, softcap, dropout, before,
                                   **kwargs)
    return _math(module, query, key, value, attention_mask, scaling, softcap, dropout, observer, layer)


def kit_attention_plain(module, query, key, value, attention_mask, scaling, softcap, dropout, before, **kwargs):
    """The attention output as the model computes it: its SDPA kernel, or eager math when it has none."""
    if softcap is None and before == "sdpa":
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return _math(module, query, key, value, attention_mask, scaling, softcap, dropout, None, None)


def _observe_heads(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float,
                   softcap: float | None, dtype: torch.dtype, observer: Any, layer: int, heads: list[int]) -> None:
    """Scores and pattern ``[batch, len(heads), q, k]`` of the chosen query heads only."""
    rep = query.shape[1] // key.shape[1]
    idx = torch.tensor(heads, device=query.device)
    q = query.index_select(1, idx)  # [batch, n, q, d_head]
    k = key.index_select(1, idx // rep)  # each chosen head's key/value head
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[..., : k.shape[-2]]
    observer.on_scores(layer, scores)
    observer.on_pattern(layer, torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype))


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
    _observer.append((observer, before[0] if before else "eager"))
    try:
        for cfg in configs:
            cfg._attn_implementation = IMPLEMENTATION
        yield
    finally:
        _observer.pop()
        for cfg, impl in zip(configs, before):
            cfg._attn_implementation = impl

