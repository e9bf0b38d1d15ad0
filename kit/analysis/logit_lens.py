"""Logit lens: the final norm and unembedding applied to the residual stream after every layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_finite_trace, check_int, check_trace
from ..trace import Trace
from ._common import token_ids_per_prompt

__all__ = ["LogitLens", "logit_lens"]


@dataclass
class LogitLens:
    """What the residual stream after each layer would predict.

    ``top_ids[layer, batch, pos, k]`` and ``top_probs[layer, batch, pos, k]``; with a target,
    ``target_rank[layer, batch, pos]`` (0 = top) and ``target_prob[layer, batch, pos]``.
    """

    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_tokens: list  # [layer][batch][pos][k] token texts
    target_ids: torch.Tensor | None = None  # [batch]
    target_rank: torch.Tensor | None = None
    target_prob: torch.Tensor | None = None

    def __repr__(self) -> str:
        L, B, T, k = self.top_ids.shape
        return f"LogitLens(layers={L}, batch={B}, pos={T}, k={k}, target={'yes' if self.target_ids is not None else 'no'})"


@torch.no_grad()
def logit_lens(tr: Trace, k: int = 5, target: int | str | list | None = None) -> LogitLens:
    """Top-``k`` tokens and probabilities of every layer's ``resid_post`` at every position.

    ``target``: a token id or text (or one per prompt); its rank and probability are reported too.
    The last layer's row equals the model's own output distribution.
    """
    model = check_trace(tr, "logit_lens").model
    check_int(k, "k", low=1, high=model.vocab_size)
    check_finite_trace(tr, ["resid_post"], "logit_lens")
    tids = None if target is None else token_ids_per_prompt(model, target, tr.batch).to(model.device)
    top_ids, top_probs, ranks, probs = [], [], [], []
    for l in tr.layers if "resid_post" in tr.names else ():
        logp = model.unembed(tr["resid_post", l]).float().log_softmax(-1)  # [batch, pos, vocab]
        v, i = logp.topk(k, dim=-1)
        top_ids.append(i.cpu())
        top_probs.append(v.exp().cpu())
        if tids is not None:
            t = logp.gather(-1, tids[:, None, None].expand(-1, logp.shape[1], 1))  # [batch, pos, 1]
            ranks.append((logp > t).sum(-1).cpu())
            probs.append(t[..., 0].exp().cpu())
    if not top_ids:
        raise ValueError("logit_lens needs a trace that captured 'resid_post'")
    ids = torch.stack(top_ids)
    tokens = [[[model.to_str_tokens(row) for row in b] for b in layer] for layer in ids]
    return LogitLens(ids, torch.stack(top_probs), tokens, None if tids is None else tids.cpu(),
                     torch.stack(ranks) if ranks else None, torch.stack(probs) if probs else None)
