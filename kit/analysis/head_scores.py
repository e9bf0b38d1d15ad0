"""Head scores: previous-token, induction and copying, each a tensor ``[layer, head]``.

The previous-token and induction scores are defined once, in :mod:`kit.head_scores` (pure functions of
attention patterns, shared with ``kit.train`` and the lessons); this module draws the random sequences,
traces a ``kit`` model and scores its patterns. Conventions follow TransformerLens / ARENA: a model whose
tokenizer starts every prompt with a BOS token sees it first (``bos=False`` leaves it out), and the BOS
position counts like any other; an induction score is the mean attention from each token of the second
copy of a repeated random sequence to the token after its first occurrence (query ``i``, key
``i - T + 1``); ARENA calls a head above 0.4 an induction head. Defaults: ``kit.head_scores.DEFAULT_BATCH``
sequences of ``kit.head_scores.default_len`` tokens (50, or what fits the context), seed 0: the
settings the model cards of the zoo report. The copying score (Elhage et al. 2021) is the share of
positive real eigenvalue mass of the head's OV circuit taken through the embedding and unembedding:
``sum(Re(lambda)) / sum(|lambda|)``, in [-1, 1].
"""

from __future__ import annotations

import torch

from .. import head_scores as hs
from .._validate import check_int, check_model
from ..models import Model
from ._common import bos_prefix

__all__ = ["copying_scores", "induction_scores", "prev_token_scores", "repeated_tokens"]


def _allowed(model: Model) -> torch.Tensor:
    special = set(model.tokenizer.all_special_ids)
    return torch.tensor([i for i in range(model.vocab_size) if i not in special])


def _bos(model: Model, bos: bool) -> int | None:
    prefix = bos_prefix(model) if bos else []
    return prefix[0] if prefix else None


def _check_args(where: str, model: Model, seq_len: int | None, batch: int, copies: int, bos: bool) -> int:
    """Validate the shared arguments of the head scores; returns the sequence length to use."""
    check_model(model, where)
    check_int(batch, "batch", low=1)
    has_bos = _bos(model, bos) is not None
    if seq_len is None:
        return hs.default_len(model.n_ctx, has_bos, copies)
    return check_int(seq_len, "seq_len", low=2, high=(model.n_ctx - has_bos) // copies)


def repeated_tokens(model: Model, seq_len: int | None = None, batch: int = hs.DEFAULT_BATCH, seed: int = 0,
                    bos: bool = True) -> torch.Tensor:
    """``ids[batch, prefix + 2 * seq_len]``: random tokens repeated twice (after a BOS if the model uses
    one and ``bos`` is true)."""
    T = _check_args("repeated_tokens", model, seq_len, batch, copies=2, bos=bos)
    return hs.repeated_tokens(_allowed(model), batch, T, seed, bos=_bos(model, bos))[0]


@torch.no_grad()
def prev_token_scores(model: Model, seq_len: int | None = None, batch: int = hs.DEFAULT_BATCH, seed: int = 0,
                      bos: bool = True) -> torch.Tensor:
    """``scores[layer, head]``: mean attention from each position to the one before it, on ``batch``
    random sequences of ``seq_len`` tokens (after the model's BOS, which counts as the first position)."""
    T = _check_args("prev_token_scores", model, seq_len, batch, copies=1, bos=bos)
    ids, _ = hs.with_bos(hs.random_tokens(_allowed(model), batch, T, seed), _bos(model, bos))
    p = model.trace(ids, capture=["pattern"]).stack("pattern")  # [layer, batch, head, query, key]
    return hs.prev_token_score(p).mean(1).cpu()


@torch.no_grad()
def induction_scores(model: Model, seq_len: int | None = None, batch: int = hs.DEFAULT_BATCH, seed: int = 0,
                     bos: bool = True) -> torch.Tensor:
    """``scores[layer, head]``: on a random sequence of length ``seq_len`` repeated twice, mean attention from
    each token of the second copy to the token after its first occurrence."""
    T = _check_args("induction_scores", model, seq_len, batch, copies=2, bos=bos)
    ids, offset = hs.repeated_tokens(_allowed(model), batch, T, seed, bos=_bos(model, bos))
    p = model.trace(ids, capture=["pattern"]).stack("pattern")  # [layer, batch, head, query, key]
    return hs.induction_score(p, T, offset).mean(1).cpu()


@torch.no_grad()
def copying_scores(model: Model) -> torch.Tensor:
    """``scores[layer, head]``: ``sum(Re(lambda)) / sum(|lambda|)`` over the eigenvalues of each head's
    OV circuit ``W_E W_V W_O W_U`` (norms not folded in). Computed on the small ``[d_head, d_head]``
    matrix ``W_O W_U W_E W_V``, which has the same non-zero eigenvalues."""
    a = check_model(model, "copying_scores").adapter
    W_E = a.embed.weight.float()  # [vocab, d_model]
    W_U = a.W_U.float()  # [d_model, vocab]
    UE = W_U @ W_E  # [d_model, d_model]
    out = torch.zeros(model.n_layers, model.n_heads)
    for l in range(model.n_layers):
        W_V = a.W_QKV(l)[2].float()  # [head, d_model, d_head]
        W_O = a.W_O(l).float()  # [head, d_head, d_model]
        M = W_O @ UE @ W_V  # [head, d_head, d_head]
        eig = torch.linalg.eigvals(M.cpu().double())
        out[l] = (eig.real.sum(-1) / eig.abs().sum(-1).clamp_min(1e-12)).float()
    return out


@torch.no_grad()
def composition_scores(model: Model, kind: str = "k") -> torch.Tensor:
    """``scores[layer1, head1, layer2, head2]``: how much head 2 reads what head 1 writes (Elhage et al. 2021).

    ``kind="q" | "k" | "v"``: composition through head 2's queries, keys or values,
    ``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` with ``W_A = W_OV`` of head 1 and ``W_B = W_QK``,
    ``W_QK^T`` or ``W_OV`` of head 2. Entries with ``layer1 >= layer2`` are 0. Norms are not folded in.
    Computed from ``[d_head, d_head]`` factors, never ``[d_model, d_model]`` products.
    """
    check_model(model, "composition_scores")
    if kind not in ("q", "k", "v"):
        raise ValueError(f"kind={kind!r}; valid kinds: 'q', 'k', 'v'")
    a, L, H = model.adapter, model.n_layers, model.n_heads
    Q, K, V = (torch.stack(x).float() for x in zip(*(a.W_QKV(l) for l in range(L))))  # [layer, head, d_model, d_head]
    O = torch.stack([a.W_O(l).float() for l in range(L)])  # [layer, head, d_head, d_model]
    X, Y = {"q": (Q, K), "k": (K, Q), "v": (V, O.transpose(-1, -2))}[kind]  # W_B = X @ Y^T
    gram = lambda A: A.transpose(-1, -2) @ A
    G_V1, G_Y = gram(V), gram(Y)
    norm_A = torch.einsum("lhij,lhji->lh", G_V1, O @ O.transpose(-1, -2)).clamp_min(0).sqrt()  # ||V O||_F
    norm_B = torch.einsum("lhij,lhji->lh", gram(X), G_Y).clamp_min(0).sqrt()  # ||X Y^T||_F
    out = torch.zeros(L, H, L, H)
    for l1 in range(L - 1):
        M = torch.einsum("hid,mgdj->hmgij", O[l1], X[l1 + 1:])  # [head1, layer2, head2, d_head, d_head]
        sq = torch.einsum("hab,hmgbc,mgcd,hmgad->hmg", G_V1[l1], M, G_Y[l1 + 1:], M)
        out[l1, :, l1 + 1:] = sq.clamp_min(0).sqrt() / (norm_A[l1][:, None, None] * norm_B[l1 + 1:][None])
    return out
