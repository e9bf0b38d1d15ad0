"""Direct logit attribution on models with an unembedding bias and O(1) parts (``tests/fixtures_teeth.py``).

The gpt2 teeth model has ``lm_head.bias`` of std 1, a final LayerNorm with a bias, and heads whose
direct effects reach several logits; parts and totals are O(1) to O(10) and float32 sums agree to 3e-6
(measured), so the tolerance 1e-4 is far below what a wrong sign or a missing bias moves.
"""

from __future__ import annotations

import pytest
import torch

import kit.analysis as A
from tests.fixtures_teeth import PROMPT

TOL = 1e-4  # parts vs total; measured max 2.9e-6 (gpt2), 8.3e-7 (llama)
PROMPTS = [PROMPT, "The cat sat on the mat."]


@pytest.fixture(params=["gpt2", "llama"])
def m(request, teeth):
    return teeth[request.param]


def _last(tr) -> torch.Tensor:
    return torch.tensor(tr.lengths) - 1


@pytest.mark.parametrize("contrast", [None, 7, [9, 40]])
def test_parts_sum_to_the_logit_difference_with_an_unembedding_bias(m, contrast):
    tr = m.trace(PROMPTS)
    att = A.direct_logit_attribution(tr, token=[5, 11], contrast=contrast)
    rows, last = torch.arange(2), _last(tr)
    c = None if contrast is None else torch.tensor([contrast] * 2 if isinstance(contrast, int) else contrast)
    logit = tr.logits[rows, last, [5, 11]] - (0 if c is None else tr.logits[rows, last, c])
    torch.testing.assert_close(att.total, logit, atol=0, rtol=0)
    torch.testing.assert_close(att.parts_sum(), att.total, atol=TOL, rtol=0)
    torch.testing.assert_close(att.neurons.sum(-1) + att.mlp_bias, att.mlps, atol=TOL, rtol=0)
    assert att.heads.abs().max() > 0.5  # the parts are O(1): a sign error cannot hide in the tolerance


def test_the_bias_part_is_the_unembedding_bias_difference_plus_the_norm_bias(teeth):
    m = teeth["gpt2"]
    b_U = m.adapter.b_U.detach()
    assert b_U is not None and b_U.abs().max() > 1  # the fixture's point: a real unembedding bias
    tr = m.trace(PROMPTS)
    att = A.direct_logit_attribution(tr, token=5, contrast=[7, 8])
    W_U, ln = m.adapter.W_U.detach(), m.adapter.final_norm
    direction = W_U[:, [5, 5]].T - W_U[:, [7, 8]].T  # [batch, d_model]
    expected = (ln.bias.detach() * direction).sum(-1) + b_U[5] - b_U[[7, 8]]
    torch.testing.assert_close(att.bias, expected, atol=1e-5, rtol=0)
    assert float((b_U[5] - b_U[[7, 8]]).abs().min()) > 0.1  # a flipped sign would move it by twice that


def test_each_head_and_neuron_effect_is_its_output_through_the_frozen_norm(m):
    tr = m.trace(PROMPT)
    att = A.direct_logit_attribution(tr, token=5, contrast=9, pos=-3)
    p = tr.n_pos - 3
    final = tr["resid_post", -1][0, p]
    scale = final.var(-1, unbiased=False).add(m.adapter.final_norm.eps).sqrt() if m.family == "gpt2" else \
        final.pow(2).mean(-1).add(m.adapter.final_norm.variance_epsilon).sqrt()
    w = m.adapter.final_norm.weight.detach()
    direction = m.adapter.W_U[:, 5].detach() - m.adapter.W_U[:, 9].detach()

    def effect(part):  # the definition: the final norm with its scale frozen, then the unembedding
        centred = part - part.mean(-1, keepdim=True) if m.family == "gpt2" else part
        return (w * centred / scale) @ direction

    for layer in range(m.n_layers):
        for head in range(m.n_heads):
            want = effect(tr["head_out", layer][0, p, head])
            assert float(att.heads[0, layer, head]) == pytest.approx(float(want), abs=TOL)
        assert float(att.mlps[0, layer]) == pytest.approx(float(effect(tr["mlp_out", layer][0, p])), abs=TOL)
        n = int(tr["mlp_post", layer][0, p].abs().argmax())  # the most active neuron
        want = tr["mlp_post", layer][0, p, n] * effect(m.adapter.W_out(layer)[n].detach())
        assert float(att.neurons[0, layer, n]) == pytest.approx(float(want), abs=TOL)
    assert float(att.embed[0]) == pytest.approx(float(effect(tr["resid_pre", 0][0, p])), abs=TOL)
    assert float(att.total[0]) == pytest.approx(float(tr.logits[0, p, 5] - tr.logits[0, p, 9]), abs=1e-6)
