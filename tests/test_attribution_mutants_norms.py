"""Attribution's public helpers that no analysis test reached: ``frozen_norm`` and the repr.

Written from the mutants of ``kit/analysis/attribution.py`` that had no test (``python
benchmarks/mutation.py --group attribution``): the public ``kit.analysis.frozen_norm`` wrapper could
drop its ``offset`` or pass the wrong input and nothing failed. Norm inputs are O(1) with gains of
std 0.3 around 1, so an offset of 1 or a scale from the wrong tensor moves the output by O(1) against
a tolerance of 1e-5 (float32 rounding of one norm).
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

import kit.analysis as A
from kit.analysis.attribution import frozen_norm

TOL = 1e-5


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def _layernorm() -> torch.nn.LayerNorm:
    ln = torch.nn.LayerNorm(16, eps=1e-5)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.3 * torch.randn(16, generator=g))
        ln.bias.copy_(0.3 * torch.randn(16, generator=g))
    return ln


def _rmsnorm() -> LlamaRMSNorm:
    rms = LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        rms.weight.copy_(1 + 0.3 * torch.randn(16, generator=torch.Generator().manual_seed(2)))
    return rms


def test_frozen_layernorm_is_the_norm_as_a_linear_map_plus_its_bias():
    ln, x = _layernorm(), _x()
    linear, bias = frozen_norm(ln, x)
    torch.testing.assert_close(linear(x) + bias, ln(x), atol=TOL, rtol=0)
    torch.testing.assert_close(bias, ln.bias.detach(), atol=0, rtol=0)
    # linear in the part, with the scale frozen at x's: half the input, half the output
    torch.testing.assert_close(linear(x / 2), linear(x) / 2, atol=TOL, rtol=0)
    assert (linear(x / 2) + bias - ln(x / 2)).abs().max() > 0.3  # not the norm of the part: its scale is x's


def test_frozen_rmsnorm_adds_the_offset_to_the_gain_and_none_by_default():
    rms, x = _rmsnorm(), _x(3)
    linear, bias = frozen_norm(rms, x)
    torch.testing.assert_close(linear(x) + bias, rms(x), atol=TOL, rtol=0)
    assert float(bias.abs().max()) == 0.0  # RMSNorm has no bias
    lin1, _ = frozen_norm(rms, x, offset=1.0)  # Gemma's 1 + weight
    unit = x / x.pow(2).mean(-1, keepdim=True).add(rms.variance_epsilon).sqrt()
    torch.testing.assert_close(lin1(x), (1 + rms.weight.detach()) * unit, atol=TOL, rtol=0)
    assert (lin1(x) - linear(x)).abs().max() > 0.5  # the offset matters far above the tolerance


def test_attribution_repr_names_the_batch_layers_heads_and_totals():
    z = torch.zeros
    att = A.Attribution(embed=z(2), heads=z(2, 3, 4), attn_bias=z(2, 3), mlps=z(2, 3), neurons=None,
                        mlp_bias=z(2, 3), bias=z(2), total=torch.tensor([1.5, -2.0]))
    assert repr(att) == "Attribution(batch=2, layers=3, heads=4, total=[1.5, -2.0])"
