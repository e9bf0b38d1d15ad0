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

from ..models import Model
from ._common import bos_prefix, sample_tokens

__all__ = ["prev_token_scores", "induction_scores", "copying_scores", "repeated_tokens"]


def _default_len(model: Model, copies: int) -> int:
    return max(2, min(50, (model.n_ctx - len(bos_prefix(model))) // copies))


def repeated_tokens(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``ids[batch, prefix + 2 * seq_len]``: random tokens repeated twice (after a BOS if the model uses one)."""
    T = seq_len or _default_len(model, 2)
    prefix = bos_prefix(model)
    if len(prefix) + 2 * T > model.n_ctx:
        raise ValueError(f"seq_len={T} repeated twice does not fit the context of {model.n_ctx} tokens")
    half = sample_tokens(model, batch, T, seed)
    ids = torch.cat([half, half], dim=1)
    if prefix:
        ids = torch.cat([torch.tensor(prefix).expand(batch, -1), ids], dim=1)
    return ids


@torch.no_grad()
def prev_token_scores(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: mean attention from each position to the one before it, on random tokens."""
    T = seq_len or _default_len(model, 1)
    ids = sample_tokens(model, batch, T, seed)
    tr = model.trace(ids, capture=["pattern"])
    p = tr.stack("pattern")  # [layer, batch, head, query, key]
    return p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((1, 3)).float().cpu()


@torch.no_grad()
def induction_scores(model: Model, seq_len: int | None = None, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """``scores[layer, head]``: on a random sequence of length T repeated twice, mean attention from
    each token of the second copy to the token after its first occurrence."""
    T = seq_len or _default_len(model, 2)
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
    a = model.adapter
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
