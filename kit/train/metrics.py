"""Head scores and in-context losses computed from a Hugging Face causal LM.

Conventions follow TransformerLens / ARENA. Every function takes a plain
``transformers`` model (``PreTrainedModel`` with ``config.n_layer``-style
attributes and ``output_attentions`` support) and runs it with eager attention,
the only implementation that returns attention probabilities.

Shapes: ``pattern[layer, batch, head, query, key]``; scores are returned as
``scores[layer, head]`` (float tensors on the CPU).

Random token sequences are drawn uniformly from the model's *ordinary* tokens
(every id except ``bos``/``eos``/``pad`` of the config) and, when the config has
a ``bos_token_id``, start with it (as the models of the zoo were trained).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

__all__ = [
    "attention_patterns",
    "eager_attention",
    "induction_scores",
    "prev_token_scores",
    "random_tokens",
    "repeated_sequence_losses",
    "repeated_tokens",
    "top_heads",
]


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Switch ``model`` to eager attention for the block, then restore its setting.

    SDPA and flash attention silently return no attention probabilities.
    """
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def attention_patterns(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Attention probabilities of every layer: ``pattern[layer, batch, head, query, key]``.

    ``input_ids`` is ``[batch, pos]``; the result is on the CPU.
    """
    with torch.no_grad(), eager_attention(model):
        out = model(input_ids.to(_device(model)), output_attentions=True)
    return torch.stack([a.float().cpu() for a in out.attentions])


def _ordinary_ids(model: torch.nn.Module) -> torch.Tensor:
    cfg = model.config
    special = {getattr(cfg, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return torch.tensor([i for i in range(cfg.vocab_size) if i not in special])


def random_tokens(model: torch.nn.Module, n_seqs: int, length: int, seed: int = 0) -> torch.Tensor:
    """Uniformly random ordinary tokens, ``tokens[batch, pos]`` with ``pos = length``."""
    ids = _ordinary_ids(model)
    g = torch.Generator().manual_seed(seed)
    return ids[torch.randint(0, len(ids), (n_seqs, length), generator=g)]


def _with_bos(model: torch.nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, int]:
    bos = getattr(model.config, "bos_token_id", None)
    if bos is None:
        return tokens, 0
    return torch.cat([torch.full((tokens.shape[0], 1), bos, dtype=tokens.dtype), tokens], dim=1), 1


def repeated_tokens(model: torch.nn.Module, n_seqs: int, half_len: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Random sequences of ``half_len`` tokens repeated twice, after an optional ``bos``.

    Returns ``(input_ids[batch, pos], offset)`` where ``offset`` (0 or 1) is the
    position of the first copy's first token; the second copy starts at
    ``offset + half_len``.
    """
    half = random_tokens(model, n_seqs, half_len, seed)
    return _with_bos(model, torch.cat([half, half], dim=1))


def _n_ctx(model: torch.nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "n_positions", None) or cfg.max_position_embeddings)


def _has_bos(model: torch.nn.Module) -> int:
    return int(getattr(model.config, "bos_token_id", None) is not None)


def _check_fits(model: torch.nn.Module, n_tokens: int, what: str) -> None:
    if n_tokens > _n_ctx(model):
        raise ValueError(f"{what} needs {n_tokens} positions, but the model's context is {_n_ctx(model)}")


def prev_token_scores(
    model: torch.nn.Module, n_seqs: int = 32, length: int | None = None, seed: int = 0
) -> torch.Tensor:
    """``scores[layer, head]``: mean attention from position i to i-1 on random tokens.

    The mean of the pattern's first sub-diagonal over every query ``i >= 1`` of
    ``n_seqs`` random sequences of ``length`` tokens after the optional ``bos``
    (default: fill the context, at most 64 tokens).
    """
    if length is None:
        length = min(64, _n_ctx(model) - _has_bos(model))
    _check_fits(model, length + _has_bos(model), f"a random sequence of {length} tokens")
    ids, _ = _with_bos(model, random_tokens(model, n_seqs, length, seed))
    pattern = attention_patterns(model, ids)  # [layer, batch, head, query, key]
    sub_diagonal = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # [layer, batch, head, query-1]
    return sub_diagonal.mean(dim=(1, 3))


def induction_scores(model: torch.nn.Module, n_seqs: int = 32, half_len: int = 20, seed: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: attention from the second copy to the token after the first occurrence.

    On random sequences of ``half_len`` tokens repeated twice, the mean over every
    query ``i`` in the second copy of ``pattern[i, i - half_len + 1]``.
    """
    _check_fits(model, 2 * half_len + _has_bos(model), f"two copies of {half_len} tokens")
    ids, offset = repeated_tokens(model, n_seqs, half_len, seed)
    pattern = attention_patterns(model, ids)  # [layer, batch, head, query, key]
    stripe = pattern.diagonal(offset=1 - half_len, dim1=-2, dim2=-1)  # query i = key + T - 1
    # stripe[..., k] has key k and query k + T - 1; the second copy's queries are keys offset+1 .. offset+T
    return stripe[..., offset + 1 : offset + 1 + half_len].mean(dim=(1, 3))


def repeated_sequence_losses(
    model: torch.nn.Module, n_seqs: int = 32, half_len: int = 20, seed: int = 0
) -> dict[str, float]:
    """Mean next-token loss (nats) on each copy of random sequences repeated twice.

    Returns ``{"first": ..., "second": ...}``: the mean cross-entropy of
    predicting every one of the ``half_len`` tokens of the first copy, and of the
    second copy (its first token included, although only induction beyond it
    can be predicted).
    """
    _check_fits(model, 2 * half_len + _has_bos(model), f"two copies of {half_len} tokens")
    ids, offset = repeated_tokens(model, n_seqs, half_len, seed)
    with torch.no_grad():
        logits = model(ids.to(_device(model))).logits.float().cpu()  # [batch, pos, vocab]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"
    )  # [batch, pos-1]; loss[:, p-1] is the loss of the token at position p
    first = loss[:, max(offset, 1) - 1 : offset + half_len - 1]
    second = loss[:, offset + half_len - 1 : offset + 2 * half_len - 1]
    return {"first": float(first.mean()), "second": float(second.mean())}


def top_heads(scores: torch.Tensor, k: int = 3) -> Sequence[tuple[int, int, float]]:
    """The ``k`` highest-scoring heads as ``(layer, head, score)``."""
    flat = scores.flatten()
    idx = flat.argsort(descending=True)[:k]
    n_heads = scores.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads, float(flat[i])) for i in idx]
