"""Head scores from attention patterns: one definition, shared by training, analysis, lessons and cards.

Pure functions of tensors (no model here): the callers in ``kit.train.metrics`` (a plain Hugging
Face model) and ``kit.analysis.head_scores`` (a traced ``kit`` model) draw the sequences with
:func:`random_tokens` / :func:`repeated_tokens`, run their model, and score its patterns with
:func:`prev_token_score` / :func:`induction_score`, so both give the same number for the same model.

Convention (TransformerLens / ARENA): a model that starts every prompt with a BOS token sees it first
(``offset = 1``: the first random token sits at position 1), and the BOS position counts like any
other: the previous-token score includes query 1 attending to key 0.

- **previous-token score**: mean of ``pattern[..., i, i - 1]`` over every query ``i >= 1`` of random
  tokens (the first sub-diagonal);
- **induction score**: on ``[bos] x x`` with ``x`` of ``T`` random tokens, the mean of
  ``pattern[..., i, i - T + 1]`` over the queries ``i`` of the second copy
  (``offset + T .. offset + 2T - 1``): from each token to the token after its first occurrence.
  ARENA calls a head above 0.4 an induction head.
- **copy losses**: the mean next-token loss on tokens ``2..T`` of each copy (the first token of a copy
  follows nothing it could be copied from, so both copies leave it out and compare like with like).

Shapes: ``pattern[..., query, key]`` (any leading dimensions, e.g. ``[layer, batch, head]``);
``loss[batch, pos]`` where ``loss[b, p]`` is the loss of predicting token ``p`` (``p >= 1``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_LEN", "INDUCTION_THRESHOLD", "copy_losses", "default_len", "induction_score",
    "prev_token_score", "random_tokens", "repeated_tokens", "top_heads",
]

DEFAULT_LEN = 50  # random tokens per sequence (per copy for induction), when the context allows
DEFAULT_BATCH = 32  # random sequences per score
INDUCTION_THRESHOLD = 0.4  # ARENA calls a head with an induction score above 0.4 an induction head


def default_len(n_ctx: int, has_bos: bool, copies: int) -> int:
    """``min(DEFAULT_LEN, room)``: the default number of random tokens per copy that fits the context."""
    return max(2, min(DEFAULT_LEN, (n_ctx - int(has_bos)) // copies))


def random_tokens(allowed: torch.Tensor | Sequence[int], batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """``ids[batch, length]`` drawn uniformly (seeded) from the token ids ``allowed`` (e.g. every
    ordinary token: the special ones left out)."""
    allowed = torch.as_tensor(allowed, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    return allowed[torch.randint(len(allowed), (batch, length), generator=g)]


def with_bos(ids: torch.Tensor, bos: int | None) -> tuple[torch.Tensor, int]:
    """``(ids[batch, offset + pos], offset)``: ``ids`` after a BOS column when ``bos`` is an id."""
    if bos is None:
        return ids, 0
    return torch.cat([torch.full((ids.shape[0], 1), int(bos), dtype=ids.dtype), ids], dim=1), 1


def repeated_tokens(allowed: torch.Tensor | Sequence[int], batch: int, seq_len: int, seed: int = 0,
                    bos: int | None = None) -> tuple[torch.Tensor, int]:
    """``(ids[batch, offset + 2 * seq_len], offset)``: random tokens repeated twice, after ``bos``
    when given; ``offset`` (0 or 1) is the first copy's first position."""
    half = random_tokens(allowed, batch, seq_len, seed)
    return with_bos(torch.cat([half, half], dim=1), bos)


def prev_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """``score[...]``: mean of ``pattern[..., i, i - 1]`` over every query ``i >= 1``."""
    if pattern.shape[-1] < 2:
        raise ValueError(f"a previous-token score needs at least 2 positions, got {pattern.shape[-1]}")
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).float().mean(-1)


def induction_score(pattern: torch.Tensor, seq_len: int, offset: int = 0) -> torch.Tensor:
    """``score[...]``: on ``x x`` starting at position ``offset`` (``x`` of ``seq_len`` tokens), the mean of
    ``pattern[..., i, i - seq_len + 1]`` over the queries ``i = offset + seq_len .. offset + 2 * seq_len - 1``."""
    T = int(seq_len)
    if T < 2 or offset < 0 or offset + 2 * T > pattern.shape[-1]:
        raise ValueError(f"seq_len={T}, offset={offset} do not fit a pattern over {pattern.shape[-1]} positions "
                         f"(need 2 <= seq_len and offset + 2 * seq_len <= positions)")
    queries = torch.arange(offset + T, offset + 2 * T, device=pattern.device)
    return pattern[..., queries, queries - T + 1].float().mean(-1)


def copy_losses(loss: torch.Tensor, seq_len: int, offset: int = 0) -> dict[str, float]:
    """``{"first", "second"}``: mean of ``loss[batch, pos]`` over tokens ``2..T`` of each copy of ``x x``
    starting at ``offset`` (``loss[b, p]``: the loss of predicting token ``p``)."""
    T = int(seq_len)
    if T < 2 or offset + 2 * T > loss.shape[-1]:
        raise ValueError(f"seq_len={T}, offset={offset} do not fit {loss.shape[-1]} positions")
    first = loss[:, offset + 1: offset + T]
    second = loss[:, offset + T + 1: offset + 2 * T]
    return {"first": float(first.float().mean()), "second": float(second.float().mean())}


def top_heads(scores: torch.Tensor, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` highest of ``scores[layer, head]`` as ``(layer, head, score)``, best first."""
    flat = scores.flatten()
    n_heads = scores.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads, float(flat[i])) for i in flat.argsort(descending=True)[:k]]
