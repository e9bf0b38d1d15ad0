"""Retraining ``induction-2l`` on lesson 02's short schedule: the induction head must form, and a 1-layer
control trained by the same recipe must not learn the repeats (so the training code stays honest)."""

from __future__ import annotations

import pytest

from kit.train import measure_induction, phase_change
from kit.train.build import LAST_STEPS
from tests.induction_runs import LIVE, live_runs


@pytest.fixture(scope="module")
def runs():
    return live_runs()


def _last(result, name="loss_repeated"):
    values = result.log.series(name)[1][-LAST_STEPS:]
    return sum(values) / len(values)


def test_previous_token_and_induction_heads_form(runs):
    two, _ = runs
    fig = measure_induction(two.model, half_len=16, n_seqs=32)
    assert fig["prev_token_score"] >= 0.6, fig
    assert fig["induction_score"] >= 0.6, fig
    assert fig["loss_ratio"] <= 0.35, fig


def test_phase_change_is_abrupt_and_aligned(runs):
    two, _ = runs
    pc = phase_change(two.log)
    steps = LIVE.train.steps
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


def test_the_history_records_the_same_probe_as_the_log(runs):
    two, _ = runs
    h = two.history
    assert h.steps[0] == 0 and h.steps[-1] == LIVE.train.steps and len(h) == LIVE.train.steps // LIVE.history_every + 1
    logged = dict(zip(*two.log.series("induction_score")))
    for step, scores in zip(h.steps, h.induction):
        if step in logged:
            assert float(scores[-1].max()) == pytest.approx(logged[step], abs=1e-5)
