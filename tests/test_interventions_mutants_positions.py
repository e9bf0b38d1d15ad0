"""Interventions: every form of a positions argument reaches the positions it names, and no other.

Written from the mutants of ``kit/interventions.py`` that survived ``python benchmarks/mutation.py
--group interventions`` (see docs/mutation.md): positions given as a 0-d integer tensor (``torch.tensor(-1)``,
what indexing a tensor of positions returns) were never tested, so reading them without ``.tolist()``
went unnoticed. Sharpened gpt2 (``tests/fixtures_teeth.py``): a random steering vector at scale 4 moves the
logits by O(1), and what must stay is compared exactly.
"""

from __future__ import annotations

import pytest
import torch

import kit
from tests.fixtures_teeth import PROMPT

EXACT = dict(atol=0.0, rtol=0.0)


@pytest.fixture()
def m(teeth):
    return teeth["gpt2"]


def _vector(m) -> torch.Tensor:
    return torch.randn(m.d_model, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("as_tensor, as_int", [(torch.tensor(-1), -1), (torch.tensor(2), 2),
                                               (torch.tensor([1, -1]), [1, -1])],
                         ids=["0d-negative", "0d", "1d"])
def test_positions_as_an_integer_tensor_act_like_the_same_integers(m, as_tensor, as_int):
    n = len(m.to_tokens(PROMPT))
    base = m.trace(PROMPT, capture=None)
    by_tensor = m.trace(PROMPT, capture=None, interventions=[kit.Steer(_vector(m), 0, pos=as_tensor, scale=4.0)])
    by_int = m.trace(PROMPT, capture=None, interventions=[kit.Steer(_vector(m), 0, pos=as_int, scale=4.0)])
    torch.testing.assert_close(by_tensor.logits, by_int.logits, **EXACT)
    first = min(p % n for p in ([as_int] if isinstance(as_int, int) else as_int))
    moved = (by_tensor.logits - base.logits).abs().amax(-1)[0]  # [pos]
    assert (moved[:first] == 0).all()  # positions before the first steered one are left alone (causal)
    assert moved[first] > 0.05  # and the steered one moves


def test_a_0d_tensor_position_patches_that_position_only(m):
    other = m.trace("A capital of Veloria is", capture=["resid_pre"])
    base = m.trace(PROMPT, capture=["resid_pre"])
    assert (other["resid_pre", 1][:, 0] - base["resid_pre", 1][:, 0]).abs().max() > 0.1  # the patch changes it
    tr = m.trace(PROMPT, capture=["resid_pre"],
                 interventions=[kit.Patch("resid_pre", 1, other, pos=torch.tensor(0))])
    torch.testing.assert_close(tr["resid_pre", 1][:, 0], other["resid_pre", 1][:, 0], **EXACT)
    torch.testing.assert_close(tr["resid_pre", 1][:, 1:], base["resid_pre", 1][:, 1:], **EXACT)
