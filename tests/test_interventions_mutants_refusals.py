"""Interventions: every refusal's exact message, and the near misses next to each check.

Written from the mutants of ``kit/interventions.py`` that survived ``python benchmarks/mutation.py
--group interventions``: a message blanked or cut, a check loosened (``all`` -> ``any``, ``> 1`` -> ``> 2``),
a constant moved (the ``clamp_min(1)`` of the mean), each of which the older tests let through because
they matched a word of the message only, or fed inputs that are wrong everywhere (a vector of NaNs
only, never one NaN among finite values). Sharpened gpt2 (``tests/fixtures_teeth.py``): an edit moves
the logits by O(1), and what must stay is compared exactly.
"""

from __future__ import annotations

import re

import pytest
import torch

import kit
from tests.fixtures_teeth import PROMPT

EXACT = dict(atol=0.0, rtol=0.0)


@pytest.fixture()
def m(teeth):
    return teeth["gpt2"]


def _refused(m, iv, message: str) -> None:
    """``iv`` is refused with exactly ``message`` (the whole of it)."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        m.trace(PROMPT, capture=None, interventions=[iv])


def test_ablate_refuses_an_unknown_how_naming_zero_and_mean(m):
    _refused(m, kit.Ablate(0, 1, how="half"), "Ablate how='half'; valid: 'zero', 'mean'")


def test_patch_head_on_a_point_without_heads_is_refused_naming_the_points_with_heads(m):
    src = torch.zeros(1, len(m.to_tokens(PROMPT)), m.d_model)
    _refused(m, kit.Patch("mlp_out", 0, src, head=1),
             "Patch head= applies to 'z', 'head_out' and 'pattern', not 'mlp_out'")


def test_clamp_refuses_a_value_of_the_wrong_shape_with_the_number_of_neurons(m):
    _refused(m, kit.Clamp(0, [1, 5], torch.ones(1, 2)),
             "Clamp value must be a number or one value per neuron (2), got shape [1, 2]")
    _refused(m, kit.Clamp(0, [1, 5], torch.ones(3)),
             "Clamp value must be a number or one value per neuron (2), got shape [3]")


def test_clamp_with_a_one_element_value_sets_every_chosen_neuron_to_it(m):
    one = m.trace(PROMPT, capture=["mlp_post"], interventions=[kit.Clamp(0, [1, 5], torch.tensor([3.5]))])
    assert (one["mlp_post", 0][..., [1, 5]] == 3.5).all()
    scalar = m.trace(PROMPT, capture=["mlp_post"], interventions=[kit.Clamp(0, [1, 5], 3.5)])
    torch.testing.assert_close(one.logits, scalar.logits, **EXACT)


def test_steer_refuses_an_unknown_name_naming_resid_pre_and_resid_post(m):
    _refused(m, kit.Steer(torch.ones(m.d_model), 0, name="mlp_out"),
             "Steer name='mlp_out'; valid: 'resid_pre', 'resid_post'")


def test_steer_refuses_a_vector_of_the_wrong_width_naming_d_model(m):
    _refused(m, kit.Steer(torch.ones(5), 0), f"Steer vector must have shape [d_model] = [{m.d_model}], got [5]")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_steer_refuses_a_vector_with_a_single_non_finite_value(m, bad):
    vec = torch.ones(m.d_model)
    vec[3] = bad  # one bad entry among finite ones: a check of "any" instead of "all" lets it through
    _refused(m, kit.Steer(vec, 0), "Steer vector contains NaN or infinite values")


def test_edit_refuses_a_function_that_is_not_callable(m):
    _refused(m, kit.Edit("resid_pre", 0, 3.0), "Edit fn must be callable: fn(activation) -> activation")


def test_an_unknown_intervention_is_refused_naming_the_kinds(m):
    _refused(m, "ablate", "unknown intervention 'ablate'; use kit.Ablate, kit.Patch, kit.Clamp, kit.Steer, "
                          "kit.Knockout or kit.Edit")


@pytest.mark.parametrize("iv", [kit.Ablate(0, []), kit.Clamp(0, []), kit.Knockout(0, -1, 0, head=[])],
                         ids=["head", "neuron", "knockout-head"])
def test_an_empty_list_of_heads_or_neurons_is_refused(m, iv):
    what = "neuron" if isinstance(iv, kit.Clamp) else "head"
    _refused(m, iv, f"{what} list is empty")


def test_mean_ablation_over_a_single_token_writes_that_token_back(m):
    """The mean over one real token is that token: the head's output, and so the logits, do not change."""
    ids = m.to_tokens(PROMPT)[None, :1]  # one prompt of one token
    base = m.trace(ids, capture=["z"])
    tr = m.trace(ids, capture=["z"], interventions=[kit.Ablate(1, [0, 2], how="mean")])
    torch.testing.assert_close(tr["z", 1], base["z", 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(tr.logits, base.logits, atol=1e-5, rtol=0)
    zeroed = m.trace(ids, capture=None, interventions=[kit.Ablate(1, [0, 2])])
    assert (zeroed.logits - base.logits).abs().max() > 0.05  # and the head matters: zeroing it moves them


@pytest.mark.parametrize("iv, message", [
    (kit.Patch("resid_pre", 7, torch.zeros(1)), "layer 7 is out of range: valid layers are 0..2"),
    (kit.Patch("z", 0, torch.zeros(1), head=9), "head 9 is out of range: valid heads are 0..3"),
    (kit.Clamp(-4, 1), "layer -4 is out of range: valid layers are 0..2"),
], ids=["patch-layer", "patch-head", "clamp-layer"])
def test_patch_and_clamp_name_the_valid_layers_and_heads(m, iv, message):
    _refused(m, iv, message)
