"""Direct logit attribution: how much each component writes onto a token's logit, directly.

The final residual stream is a sum of parts: the embeddings, each head's output, each attention
output bias, each MLP output (each neuron's ``mlp_post * W_out`` plus the MLP bias). The final norm
is linear once its scale is frozen at the value of the actual forward pass, so each part's direct
effect is ``norm_linear(part) @ W_U[:, token]``; the parts plus the norm's and unembedding's biases
sum to the logit exactly. Gemma 2/3 soft-cap their final logits: there the parts sum to the
logit before soft-capping (``total`` is that logit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..arch import _norms
from .._validate import check_finite_trace, check_trace
from ..trace import Trace
from ._common import last_positions, token_ids_per_prompt

__all__ = ["Attribution", "direct_logit_attribution", "frozen_norm"]


@dataclass
class Attribution:
    """Direct effects on ``logit[token] - logit[contrast]`` at one position per prompt.

    ``embed[batch]``, ``heads[batch, layer, head]``, ``attn_bias[batch, layer]``,
    ``mlps[batch, layer]``, ``neurons[batch, layer, d_mlp]``, ``mlp_bias[batch, layer]``,
    ``bias[batch]`` (final norm and unembedding biases), ``total[batch]`` (the logit or logit
    difference of the actual forward pass).
    """

    embed: torch.Tensor
    heads: torch.Tensor
    attn_bias: torch.Tensor
    mlps: torch.Tensor
    neurons: torch.Tensor | None
    mlp_bias: torch.Tensor
    bias: torch.Tensor
    total: torch.Tensor

    def parts_sum(self) -> torch.Tensor:
        """Sum of every part: equals ``total`` up to float error."""
        return (self.embed + self.heads.sum((1, 2)) + self.attn_bias.sum(1) + self.mlps.sum(1) + self.bias)

    def __repr__(self) -> str:
        B, L, H = self.heads.shape
        return f"Attribution(batch={B}, layers={L}, heads={H}, total={self.total.tolist()})"


def frozen_norm(norm: torch.nn.Module, x: torch.Tensor, offset: float = 0.0):
    """The final norm as ``f(part) = gain * center(part) / scale`` with ``scale`` taken from ``x``.

    Returns ``(linear, bias)``: ``linear(part)`` maps any residual part linearly and
    ``norm(x) == linear(x) + bias``. Handles LayerNorm and RMSNorm; ``offset`` is added to an
    RMSNorm's weight (1 for Gemma's ``1 + weight``: ``model.adapter.frozen_final_norm(x)`` knows it).
    One implementation: :func:`kit.arch._norms.frozen_norm`.
    """
    return _norms.frozen_norm(norm, x, offset)


@torch.no_grad()
def direct_logit_attribution(tr: Trace, token: int | str | list, contrast: int | str | list | None = None,
                             pos: int | list[int] = -1, neurons: bool = True) -> Attribution:
    """Direct effect of every part of the final residual onto ``logit[token]`` (minus ``logit[contrast]``).

    ``tr`` must have captured ``resid_pre``, ``resid_post``, ``z`` (or ``head_out``), ``mlp_out`` and,
    for ``neurons=True``, ``mlp_post``. ``pos``: one position per prompt (default: each one's last token).
    """
    model, a = check_trace(tr, "direct_logit_attribution").model, tr.model.adapter
    need = {"resid_pre", "resid_post", "head_out", "mlp_out"} | ({"mlp_post"} if neurons else set())
    missing = sorted(need - set(tr.names))
    if missing or len(tr.layers) != model.n_layers:
        raise ValueError(f"direct_logit_attribution needs a trace of every layer with {sorted(need)}; missing {missing}")
    check_finite_trace(tr, ["resid_pre", "resid_post", "z", "mlp_out", "mlp_post"], "direct_logit_attribution")
    B = tr.batch
    rows = torch.arange(B)
    p = last_positions(tr, pos)
    dev = model.device
    t = token_ids_per_prompt(model, token, B).to(dev)
    direction = a.W_U.float()[:, t].T  # [batch, d_model]
    b_U = a.b_U.float()[t] if a.b_U is not None else torch.zeros(B, device=dev)
    if contrast is not None:
        c = token_ids_per_prompt(model, contrast, B).to(dev)
        direction = direction - a.W_U.float()[:, c].T
        b_U = b_U - (a.b_U.float()[c] if a.b_U is not None else 0)
    final = tr["resid_post", -1][rows, p]  # [batch, d_model]
    linear, norm_bias = a.frozen_final_norm(final)  # Gemma's 1 + weight gain included

    def effect(part: torch.Tensor) -> torch.Tensor:  # part [batch, ..., d_model] -> [batch, ...]
        shape = part.shape
        flat = part.reshape(B, -1, shape[-1])
        lin = linear(flat.transpose(0, 1)).transpose(0, 1) if flat.shape[1] else flat  # scale per prompt
        return (lin * direction[:, None]).sum(-1).reshape(shape[:-1])

    L = model.n_layers
    embed = effect(tr["resid_pre", 0][rows, p])
    heads = torch.stack([effect(tr["head_out", l][rows, p]) for l in range(L)], 1)  # [batch, layer, head]
    zeros = torch.zeros(B, model.d_model, device=dev)
    attn_bias = torch.stack([effect(zeros + (a.b_O(l).float() if a.b_O(l) is not None else 0)) for l in range(L)], 1)
    mlps = torch.stack([effect(tr["mlp_out", l][rows, p]) for l in range(L)], 1)
    mlp_bias = torch.stack([effect(zeros + (a.b_out(l).float() if a.b_out(l) is not None else 0)) for l in range(L)], 1)
    neuron_fx = None
    if neurons:
        # effect is linear: neuron n contributes mlp_post[n] * effect(W_out[n])
        # (times the frozen post-MLP norm's factor where the block has one: Gemma 2/3, OLMo 2)
        factors = [tr.post_norm_factor("mlp", l) for l in range(L)]
        per = [tr["mlp_post", l][rows, p].float() * effect(a.W_out(l).float().expand(B, -1, -1) if f is None
                                                          else a.W_out(l).float()[None] * f[rows, p][:, None])
               for l, f in enumerate(factors)]
        neuron_fx = torch.stack(per, 1)
    bias = (norm_bias * direction).sum(-1) + b_U
    logits = tr.logits[rows, p].float()
    if a.final_softcap is not None:  # Gemma 2/3: attribute to the logits before the final soft-capping
        logits = torch.atanh(logits / a.final_softcap) * a.final_softcap
    total = logits.gather(-1, t[:, None])[:, 0]
    if contrast is not None:
        total = total - logits.gather(-1, c[:, None])[:, 0]
    cpu = lambda x: None if x is None else x.cpu()  # noqa: E731
    return Attribution(cpu(embed), cpu(heads), cpu(attn_bias), cpu(mlps), cpu(neuron_fx), cpu(mlp_bias),
                       cpu(bias), cpu(total))
