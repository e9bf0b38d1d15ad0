"""Head scores: previous-token, induction and copying, each a tensor ``[layer, head]``.

Conventions follow TransformerLens / ARENA: a previous-token score is the mean of the attention
pattern's first sub-diagonal on random tokens; an induction score is the mean attention from each
token of the second copy of a repeated random sequence to the token after its first occurrence
(query ``i``, key ``i - T + 1``); ARENA calls a head above 0.4 an induction head. The copying score
(Elhage et al. 2021) is the share of positive real eigenvalue mass of the head's OV circuit taken
through the embedding and unembedding: ``sum(Re(lambda)) / sum(|lambda|)``, in [-1, 1].
"""

from __future__ import annotations

import torch

from .._validate import check_int, check_model
from ..models import Model
from ._common import bos_prefix, sample_tokens

__all__ = ["prev_token_scores", "induction_scores", "copying_scores", "repeated_tokens"]


def _default_len(model: Model, copies: int) -> int:
    return max(2, min(50, (model.n_ctx - len(bos_prefix(model))) // copies))


def _check_args(where: str, model: Model, seq_len: int | None, batch: int, copies: int) -> int:
    """Validate the shared arguments of the head scores; returns the sequence length to use."""
    check_model(model, where)
    check_int(batch, "batch", low=1)
    room = (model.n_ctx - (len(bos_prefix(model)) if copies > 1 else 0)) // copies
    if seq_len is None:
        return _default_len(model, copies)
    return check_int(seq_len, "seq_len", low=2, high=room)


def repeated_tokens(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``ids[batch, prefix + 2 * seq_len]``: random tokens repeated twice (after a BOS if the model uses one)."""
    T = _check_args("repeated_tokens", model, seq_len, batch, copies=2)
    prefix = bos_prefix(model)
    half = sample_tokens(model, batch, T, seed)
    ids = torch.cat([half, half], dim=1)
    if prefix:
        ids = torch.cat([torch.tensor(prefix).expand(batch, -1), ids], dim=1)
    return ids


@torch.no_grad()
def prev_token_scores(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: mean attention from each position to the one before it, on random tokens."""
    T = _check_args("prev_token_scores", model, seq_len, batch, copies=1)
    ids = sample_tokens(model, batch, T, seed)
    tr = model.trace(ids, capture=["pattern"])
    p = tr.stack("pattern")  # [layer, batch, head, query, key]
    return p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((1, 3)).float().cpu()


@torch.no_grad()
def induction_scores(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: on a random sequence of length T repeated twice, mean attention from
    each token of the second copy to the token after its first occurrence."""
    T = _check_args("induction_scores", model, seq_len, batch, copies=2)
    ids = repeated_tokens(model, T, batch, seed)
    offset = ids.shape[1] - 2 * T
    tr = model.trace(ids, capture=["pattern"])
    p = tr.stack("pattern")  # [layer, batch, head, query, key]
    # query i in the second copy attends to key i - T + 1; the diagonal offset is -(T - 1)
    diag = p.diagonal(offset=-(T - 1), dim1=-2, dim2=-1)  # [layer, batch, head, n]
    # diagonal entries start at query T - 1; the second copy starts at query offset + T
    start = offset + T - (T - 1)
    return diag[..., start:].mean((1, 3)).float().cpu()


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
    gram = lambda A: A.transpose(-1, -2) @ A  # noqa: E731  [.., d_head, d_head]
    G_V1, G_Y = gram(V), gram(Y)
    norm_A = torch.einsum("lhij,lhji->lh", G_V1, O @ O.transpose(-1, -2)).clamp_min(0).sqrt()  # ||V O||_F
    norm_B = torch.einsum("lhij,lhji->lh", gram(X), G_Y).clamp_min(0).sqrt()  # ||X Y^T||_F
    out = torch.zeros(L, H, L, H)
    for l1 in range(L - 1):
        M = torch.einsum("hid,mgdj->hmgij", O[l1], X[l1 + 1:])  # [head1, layer2, head2, d_head, d_head]
        sq = torch.einsum("hab,hmgbc,mgcd,hmgad->hmg", G_V1[l1], M, G_Y[l1 + 1:], M)
        out[l1, :, l1 + 1:] = sq.clamp_min(0).sqrt() / (norm_A[l1][:, None, None] * norm_B[l1 + 1:][None])
    return out
