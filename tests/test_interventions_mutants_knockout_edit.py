"""Interventions: the refusals of Knockout and Edit word for word, and interventions on a bfloat16 model.

Written from the mutants of ``kit/interventions.py`` that survived ``python benchmarks/mutation.py
--group interventions`` (docs/mutation.md): the words ``query``, ``key`` and ``edit point`` of the
refusals were blanked or changed unnoticed (the older tests matched a fragment of the message), and
the dtype casts of Steer and Clamp (``d.to(x.dtype)``, ``full.to(x.dtype)``) were dropped unnoticed,
because every test model was float32.
"""

from __future__ import annotations


import pytest
import torch

import kit
from tests import families as F
from tests.fixtures_teeth import PROMPT
from tests.test_families import _tokenizer
from tests.test_interventions_mutants_refusals import _refused


@pytest.fixture()
def m(teeth):
    return teeth["gpt2"]


def test_knockout_names_the_query_or_key_position_that_is_out_of_range(m):
    n = len(m.to_tokens(PROMPT))
    _refused(m, kit.Knockout(0, 40, 0), f"query 40 is out of range: valid querys are 0..{n - 1}")
    _refused(m, kit.Knockout(0, -1, 40), f"key 40 is out of range: valid keys are 0..{n - 1}")


def test_edit_refuses_an_unknown_point_naming_it_an_edit_point(m):
    with pytest.raises(ValueError) as err:
        m.trace(PROMPT, capture=None, interventions=[kit.Edit("head_out", 0, lambda x: x)])
    assert str(err.value).startswith("unknown edit point 'head_out'; valid names: pattern, resid_pre, resid_post, "
                                      "attn_out, z, mlp_out, mlp_post, attn_scores."), str(err.value)


@pytest.fixture(scope="module")
def bf16() -> kit.Model:
    return kit.Model(F.build("llama", dtype=torch.bfloat16), _tokenizer(), name="llama-bf16")


@pytest.mark.parametrize("iv", [
    kit.Steer(torch.ones(F.build("llama").config.hidden_size), 1, scale=2.0),
    kit.Clamp(1, [0, 3], 1.5),
], ids=["steer", "clamp"])
def test_an_intervention_on_a_bfloat16_model_keeps_it_in_bfloat16_and_acts(bf16, iv):
    base = bf16.trace("a b c d", capture=["resid_post"])
    tr = bf16.trace("a b c d", capture=["resid_post"], interventions=[iv])
    for l in range(bf16.n_layers):
        assert tr["resid_post", l].dtype == torch.bfloat16
    assert tr.logits.dtype == base.logits.dtype
    assert (tr["resid_post", 1].float() - base["resid_post", 1].float()).abs().max() > 0.1  # it acts
    torch.testing.assert_close(tr["resid_post", 0], base["resid_post", 0], atol=0, rtol=0)  # before it: untouched


def test_edit_names_the_valid_layers(m):
    _refused(m, kit.Edit("resid_pre", 5, lambda x: x), "layer 5 is out of range: valid layers are 0..2")
