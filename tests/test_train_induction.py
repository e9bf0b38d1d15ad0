"""Retraining ``induction-2l`` on a short schedule: the induction head must form, and a 1-layer
control trained by the same recipe must not learn the repeats (so the training code stays honest)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from kit.train import InductionRecipe, measure_induction, phase_change, train_induction
from kit.train.build import LAST_STEPS

SHORT = InductionRecipe().with_train(steps=500, device="cpu")


@pytest.fixture(scope="module")
def runs():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        two = train_induction(SHORT, progress=False)
        one = train_induction(replace(SHORT, n_layers=1), progress=False)
    finally:
        torch.set_num_threads(before)
    return two, one


def _last(result, name="loss_repeated"):
    values = result.log.series(name)[1][-LAST_STEPS:]
    return sum(values) / len(values)


def test_previous_token_and_induction_heads_form(runs):
    two, _ = runs
    fig = measure_induction(two.model, half_len=16, n_seqs=32)
    assert fig["prev_token_score"] >= 0.5, fig
    assert fig["induction_score"] >= 0.6, fig
    assert fig["loss_ratio"] <= 0.35, fig


def test_phase_change_is_abrupt_and_aligned(runs):
    two, _ = runs
    pc = phase_change(two.log)
    steps = SHORT.train.steps
    assert pc["induction_crosses_half"] is not None
    assert abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"]) <= 0.1 * steps, pc
    loss = two.log.series("loss_repeated")[1]
    drop = pc["repeated_loss_drop"]
    before, after = loss[drop - 60 : drop - 20], loss[drop + 20 : drop + 60]
    assert sum(before) / len(before) - sum(after) / len(after) > 1.0  # a sharp fall, not a slow slope


def test_one_layer_control_stays_far_from_the_two_layer_model(runs):
    two, one = runs
    assert _last(one) > _last(two) + 1.5, (_last(one), _last(two))
    fig = measure_induction(one.model, half_len=16, n_seqs=32)
    assert fig["induction_score"] < 0.3 and fig["loss_ratio"] > 0.5, fig
    # the control still learns the background language: it is not simply broken
    assert _last(one, "loss_background") < 3.9
