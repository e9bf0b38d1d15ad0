"""Voids, factual recall and toy models, with teeth (the survivors of ``benchmarks/mutation.py --group analysis3``).

The ``deep`` teeth model (12 sharpened layers) has voids at every alpha a user would try: at alpha 0.8 about 70 % of
(token, layer) pairs are void, at 0.3 about 45 %, so each definition below is checked on both outcomes.
"""

from __future__ import annotations

import pytest
import torch

import kit.analysis as A
from tests.fixtures_teeth import PROMPT

PROMPTS = [PROMPT, "Hi there friend"]  # the second is shorter: right padding in the batch


def _active_by_definition(tr, alpha: float) -> torch.Tensor:
    """``active[batch, pos, layer]`` straight from the definition, in float64, one token at a time."""
    L = tr.model.n_layers
    out = torch.zeros(tr.batch, tr.n_pos, L, dtype=torch.bool)
    for b in range(tr.batch):
        for p in range(tr.lengths[b]):
            n = [float(tr["resid_pre", 0][b, p].double().norm())]
            n += [float(tr["resid_post", l][b, p].double().norm()) for l in range(L)]
            d = [n[i + 1] - n[i] for i in range(L)]
            out[b, p, 0] = True
            for l in range(1, L):
                out[b, p, l] = d[l] >= alpha * (max(d[:l]) - min(d[:l]))
    return out


@pytest.fixture(scope="module")
def deep(teeth):
    return teeth["deep"]


@pytest.fixture(scope="module")
def full(deep):
    return deep.trace(PROMPTS, capture=["resid_pre", "resid_post"])


@pytest.mark.parametrize("alpha", [0.3, 0.8])
def test_active_layers_follow_the_definition_token_by_token_and_padding_is_never_active(full, alpha):
    active = A.active_layers(full, alpha)
    assert active.shape == (2, full.n_pos, 12) and active.dtype == torch.bool
    expected = _active_by_definition(full, alpha)
    assert torch.equal(active, expected)
    real = full.mask
    assert not active[~real].any()  # padding positions
    share = float(active[real][:, 1:].float().mean())
    assert 0.1 < share < 0.9  # both outcomes occur: the test sees a flipped comparison either way


def test_a_larger_alpha_marks_fewer_layers_active(full):
    low, high = A.active_layers(full, 0.3), A.active_layers(full, 0.8)
    assert bool((high <= low).all()) and int(low.sum()) > int(high.sum()) + 20
    assert torch.equal(A.active_layers(full), high)  # the default alpha is 0.8


def test_skipping_a_void_passes_its_residual_through_and_leaves_active_layers_working(deep, full):
    tr, active = A.skip_voids(deep, PROMPTS, alpha=0.8, capture=["resid_pre", "resid_post"])
    assert torch.equal(active, A.active_layers(full, 0.8))  # the mask comes from the unskipped pass
    torch.testing.assert_close(tr["resid_pre", 0], full["resid_pre", 0], atol=0, rtol=0)  # embeddings untouched
    voids = actives = 0
    for l in range(deep.n_layers):
        change = (tr["resid_post", l] - tr["resid_pre", l]).norm(dim=-1)  # [batch, pos]
        void, act = ~active[..., l] & full.mask, active[..., l]
        assert not bool(change[void].any())  # exactly passed through
        assert bool((change[act] > 1e-3).all())  # an active layer still writes
        voids, actives = voids + int(void.sum()), actives + int(act.sum())
    assert voids > 50 and actives > 50
    clean = deep.trace(PROMPTS, capture=[])
    assert float((tr.logits - clean.logits)[full.mask].abs().max()) > 0.1  # skipping changed the output


def test_voids_refuse_a_trace_without_every_layer_or_without_both_residuals(deep):
    msg = "active_layers needs a trace of every layer with 'resid_pre' and 'resid_post'"
    for capture, layers in ((["resid_post"], None), (["resid_pre"], None), (["resid_pre", "resid_post"], [0, 1])):
        tr = deep.trace(PROMPT, capture=capture, layers=layers)
        with pytest.raises(ValueError) as err:
            A.active_layers(tr)
        assert str(err.value) == msg
    with pytest.raises((TypeError, ValueError), match="alpha"):
        A.skip_voids(deep, PROMPT, alpha="high")
