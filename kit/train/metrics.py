"""Head scores and in-context losses computed from a Hugging Face causal LM.

Conventions follow TransformerLens / ARENA. Every function takes a plain
``transformers`` model (``PreTrainedModel`` with ``config.n_layer``-style
attributes and ``output_attentions`` support) and runs it with eager attention,
the only implementation that returns attention probabilities.

Shapes: ``pattern[layer, batch, head, query, key]``; scores are returned as
``scores[layer, head]`` (float tensors on the CPU).

Random token sequences are drawn uniformly from the model's *ordinary* tokens
(every id except ``bos``/``eos``/``pad`` of the config) and, when the config has
a ``bos_token_id``, start with it unless ``bos=False``. The scores themselves are
defined once, in :mod:`kit.head_scores` (this module runs the model and calls it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from kit import head_scores as hs

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


def _bos(model: torch.nn.Module, bos: bool) -> int | None:
    return getattr(model.config, "bos_token_id", None) if bos else None


def random_tokens(model: torch.nn.Module, n_seqs: int, length: int, seed: int = 0) -> torch.Tensor:
    """Uniformly random ordinary tokens, ``tokens[batch, pos]`` with ``pos = length``."""
    return hs.random_tokens(_ordinary_ids(model), n_seqs, length, seed)


def repeated_tokens(model: torch.nn.Module, n_seqs: int, half_len: int, seed: int = 0,
                    bos: bool = True, prefix: int = 0) -> tuple[torch.Tensor, int]:
    """Random sequences of ``half_len`` tokens repeated twice, after the model's ``bos`` (if it has one
    and ``bos`` is true) and ``prefix`` other random tokens.

    Returns ``(input_ids[batch, pos], offset)`` where ``offset`` (``prefix`` + 0 or 1) is the
    position of the first copy's first token; the second copy starts at
    ``offset + half_len``. The copies do not depend on ``prefix``: the prefix is drawn from seed
    ``seed + 1``, so a curve over prefixes repeats the same segments.
    """
    if prefix < 0:
        raise ValueError(f"prefix must be >= 0 random tokens before the first copy, got {prefix}")
    ids, offset = hs.repeated_tokens(_ordinary_ids(model), n_seqs, half_len, seed, bos=_bos(model, bos))
    if prefix == 0:
        return ids, offset
    before = random_tokens(model, n_seqs, prefix, seed + 1)
    return torch.cat([ids[:, :offset], before, ids[:, offset:]], dim=1), offset + prefix


def _n_ctx(model: torch.nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "n_positions", None) or cfg.max_position_embeddings)


def _check_fits(model: torch.nn.Module, n_tokens: int, what: str) -> None:
    if n_tokens > _n_ctx(model):
        raise ValueError(f"{what} needs {n_tokens} positions, but the model's context is {_n_ctx(model)}")


def _half_len(model: torch.nn.Module, half_len: int | None, bos: bool, prefix: int = 0) -> int:
    if half_len is None:
        half_len = hs.default_len(_n_ctx(model) - prefix, _bos(model, bos) is not None, copies=2)
    what = f"two copies of {half_len} tokens" + (f" after {prefix} random tokens" if prefix else "")
    _check_fits(model, 2 * half_len + prefix + (_bos(model, bos) is not None), what)
    return half_len


def prev_token_scores(model: torch.nn.Module, n_seqs: int = hs.DEFAULT_BATCH, length: int | None = None,
                      seed: int = 0, bos: bool = True) -> torch.Tensor:
    """``scores[layer, head]``: :func:`kit.head_scores.prev_token_score` on ``n_seqs`` random sequences of
    ``length`` tokens after the model's ``bos`` (default length: ``kit.head_scores.default_len``)."""
    has_bos = _bos(model, bos) is not None
    if length is None:
        length = hs.default_len(_n_ctx(model), has_bos, copies=1)
    _check_fits(model, length + has_bos, f"a random sequence of {length} tokens")
    ids, _ = hs.with_bos(random_tokens(model, n_seqs, length, seed), _bos(model, bos))
    pattern = attention_patterns(model, ids)  # [layer, batch, head, query, key]
    return hs.prev_token_score(pattern).mean(1)


def induction_scores(model: torch.nn.Module, n_seqs: int = hs.DEFAULT_BATCH, half_len: int | None = None,
                     seed: int = 0, bos: bool = True, prefix: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: :func:`kit.head_scores.induction_score` on ``n_seqs`` random sequences of
    ``half_len`` tokens repeated twice, after the model's ``bos`` when ``bos`` is true and ``prefix``
    other random tokens."""
    half_len = _half_len(model, half_len, bos, prefix)
    ids, offset = repeated_tokens(model, n_seqs, half_len, seed, bos, prefix)
    pattern = attention_patterns(model, ids)  # [layer, batch, head, query, key]
    return hs.induction_score(pattern, half_len, offset).mean(1)


def repeated_sequence_losses(model: torch.nn.Module, n_seqs: int = hs.DEFAULT_BATCH, half_len: int | None = None,
                             seed: int = 0, bos: bool = True, prefix: int = 0) -> dict[str, float]:
    """Mean next-token loss (nats) on each copy of random sequences repeated twice (after ``bos`` when
    true and ``prefix`` other random tokens).

    Returns ``{"first": ..., "second": ...}`` (:func:`kit.head_scores.copy_losses`): the mean
    cross-entropy of tokens ``2..half_len`` of each copy; only induction can predict them in the second.
    """
    half_len = _half_len(model, half_len, bos, prefix)
    ids, offset = repeated_tokens(model, n_seqs, half_len, seed, bos, prefix)
    with torch.no_grad():
        logits = model(ids.to(_device(model))).logits.float().cpu()  # [batch, pos, vocab]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    loss = torch.nn.functional.pad(loss, (1, 0))  # [batch, pos]: loss[:, p] predicts the token at p
    return hs.copy_losses(loss, half_len, offset)


top_heads = hs.top_heads
