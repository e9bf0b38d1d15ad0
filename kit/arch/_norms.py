"""The norms of the supported families, as the tracer and attribution need them.

Every norm the kit meets is ``out = gain * center(x) / scale(x) + bias`` with

* LayerNorm: ``center(x) = x - mean(x)``, ``scale = sqrt(var(x) + eps)``, ``gain = weight``;
* RMSNorm: ``center(x) = x``, ``scale = sqrt(mean(x**2) + eps)``, ``gain = weight`` (Llama, OLMo 2,
  Phi-3, ...) or ``1 + weight`` (Gemma, Gemma 2, Gemma 3: the family table says which).

``normalized = center(x) / scale`` is what TransformerLens calls ``hook_normalized`` and
``scale`` its ``hook_scale``. With ``scale`` frozen (taken from the actual forward pass) a norm
is linear in its input, which is how a head's share of a post-norm output, or a component's
direct effect through the final norm, is defined exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["is_layernorm", "norm_eps", "norm_gain", "norm_bias", "norm_scale", "normalized", "frozen_norm"]


def is_layernorm(norm: nn.Module) -> bool:
    """True for a centring norm (``nn.LayerNorm`` and subclasses), False for an RMSNorm."""
    return isinstance(norm, nn.LayerNorm)


def norm_eps(norm: nn.Module) -> float:
    for attr in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(norm, attr, None)
        if value is not None:
            return float(value)
    raise ValueError(f"cannot find the epsilon of norm {type(norm).__name__}")


def norm_gain(norm: nn.Module, offset: float = 0.0) -> torch.Tensor | None:
    """``gain[d_model]`` (float32): the weight, plus ``offset`` (1 for Gemma's ``1 + weight``); None if absent."""
    weight = getattr(norm, "weight", None)
    if weight is None:
        return None
    return weight.detach().float() + offset


def norm_bias(norm: nn.Module) -> torch.Tensor | None:
    bias = getattr(norm, "bias", None)
    return None if bias is None else bias.detach().float()


def norm_scale(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``scale[..., 1]`` (float32): the divisor the norm applies to ``x[..., d_model]``."""
    xf = x.float()
    if is_layernorm(norm):
        return (xf.var(-1, unbiased=False, keepdim=True) + norm_eps(norm)).sqrt()
    return (xf.pow(2).mean(-1, keepdim=True) + norm_eps(norm)).sqrt()


def normalized(norm: nn.Module, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``center(x) / scale`` (float32), before the gain and bias."""
    xf = x.float()
    if scale is None:
        scale = norm_scale(norm, x)
    if is_layernorm(norm):
        xf = xf - xf.mean(-1, keepdim=True)
    return xf / scale


def frozen_norm(norm: nn.Module, x: torch.Tensor, offset: float = 0.0
                ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The norm as a linear map with its scale taken from ``x``: ``(linear, bias)``.

    ``norm(x) == linear(x) + bias`` (to float rounding), and ``linear(part)`` maps any part of the
    residual stream with the same frozen scale (float32).
    """
    scale = norm_scale(norm, x)
    gain = norm_gain(norm, offset)
    w = torch.ones(x.shape[-1], device=x.device) if gain is None else gain.to(x.device)
    bias = norm_bias(norm)
    b = torch.zeros_like(w) if bias is None else bias.to(x.device)
    if is_layernorm(norm):
        return (lambda part: w * (part.float() - part.float().mean(-1, keepdim=True)) / scale), b
    return (lambda part: w * part.float() / scale), b
