"""What lesson 02 states, asserted: the live training run (same recipe and settings as the lesson) and the
shipped induction-2l (scores, ablations, K-composition)."""

from __future__ import annotations

import math

import pytest
import torch

import kit
from kit.analysis import composition_scores
from kit.lessons.induction import (
    INDUCTION_THRESHOLD,
    copy_losses,
    induction_score_of,
    repeated_ids,
)
from kit.train import InductionRecipe, induction_scores, phase_change, prev_token_scores
from kit.train.induction import build_induction_model, induction_tokenizer
from tests.induction_runs import live_runs

T = 16
EARLY_STEPS, CLIMB_STEPS = 500, 150  # the lesson's checked cell


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(one_thread):
    two, one = live_runs()
    return two.log, one.log


@pytest.fixture(scope="module")
def history(runs):
    return live_runs()[0].history


@pytest.fixture(scope="module")
def model(one_thread):
    return kit.load("induction-2l", device="cpu")


def _mean_last(log, name, n=50):
    values = log.series(name)[1][-n:]
    return sum(values) / len(values)


# --- the live run -------------------------------------------------------------------------------------

def test_live_run_shows_an_abrupt_phase_change(runs):
    log, _ = runs
    steps, score = log.series("induction_score")
    assert max(v for s, v in zip(steps, score) if s <= EARLY_STEPS) < 0.3  # flat at first
    assert score[-1] > 0.8
    last_low = max(s for s, v in zip(steps, score) if v < 0.2)
    first_high = min(s for s, v in zip(steps, score) if v > 0.8)
    assert 0 < first_high - last_low <= CLIMB_STEPS  # within a few dozen steps
    pc = phase_change(log)
    assert abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"]) <= 50


def test_history_shows_the_previous_token_head_first_and_the_loss_falling_with_the_induction_head(history):
    steps = history.steps
    best_prev = [float(s[0].max()) for s in history.prev_token]
    best_ind = [float(s[1].max()) for s in history.induction]
    first_step = lambda values, t: next(s for s, v in zip(steps, values) if v >= t)
    assert first_step(best_ind, 0.3) - first_step(best_prev, 0.3) >= 200
    i = steps.index(first_step(best_ind, 0.8))
    assert history.loss_repeated[i] < 0.5 * history.loss_repeated[0]
    assert history.loss_plain[i] > 0.9 * history.loss_plain[0]
    assert best_ind[-1] > 0.8 and best_prev[-1] > 0.8


def test_one_layer_control_never_gets_there(runs):
    log, control = runs
    assert max(control.series("induction_score")[1]) < 0.3
    assert _mean_last(control, "loss_repeated") - _mean_last(log, "loss_repeated") > 1.5


# --- the shipped model ----------------------------------------------------------------------------------

def test_scores_name_one_previous_token_head_and_four_induction_heads(model):
    prev = prev_token_scores(model.hf)
    ind = induction_scores(model.hf, half_len=T)
    assert divmod(int(prev.argmax()), model.n_heads) == (0, 0) and prev[0, 0] > 0.85  # the lesson's L0H0
    assert int((prev[0] > 0.5).sum()) == 1 and sorted(prev[0])[-2] < 0.3  # no second one; the next near 0.26
    assert bool((ind[1] > INDUCTION_THRESHOLD).all()) and bool((ind[0] < INDUCTION_THRESHOLD).all())


def test_first_copy_is_unpredictable_and_second_is_not(model):
    clean = copy_losses(model, repeated_ids(model, n_seqs=32, half_len=T, seed=0), T)
    assert clean["first"] > math.log(61) - 0.1  # "about ln 61 or worse"
    assert clean["second"] < 0.2 * clean["first"]


def test_no_induction_head_alone_breaks_the_second_copy_but_the_previous_token_head_does(model):
    ids = repeated_ids(model, n_seqs=32, half_len=T, seed=0)
    clean = copy_losses(model, ids, T)
    second = {(l, h): copy_losses(model, ids, T, [kit.Ablate(l, h)])["second"] for l in range(2) for h in range(4)}
    assert max(second[1, h] for h in range(4)) < 0.5 * clean["first"]  # four induction heads back each other up
    assert second[0, 0] > 0.75 * clean["first"]  # the previous-token head has no backup
    ranked = sorted(second, key=second.get)
    assert ranked[-1] == (0, 0) and second[0, 0] > second[ranked[-2]] + 1.0  # exercise 2.4's answer, clearly
    assert 1.2 < second[0, 1] - clean["second"] < 1.6  # "the next-best head of layer 0 costs about 1.4 nats"
    all_layer1 = copy_losses(model, ids, T, [kit.Ablate(1, [0, 1, 2, 3])])["second"]
    assert all_layer1 > 0.75 * clean["first"]


def test_without_the_previous_token_head_the_induction_heads_stop_inducting(model):
    ids = repeated_ids(model, n_seqs=8, half_len=T, seed=1)
    scores = lambda iv: induction_score_of(model.trace(ids, capture=["pattern"], interventions=iv)["pattern", 1], T)
    assert bool((scores([]) > INDUCTION_THRESHOLD).all())
    assert bool((scores([kit.Ablate(0, 0)]) < 0.2).all())
    assert bool((scores([kit.Ablate(0, [1, 2, 3])]) > INDUCTION_THRESHOLD).all())  # the other three: not needed


def test_k_composition_links_the_previous_token_head_to_layer_1(model):
    comp = {kind: composition_scores(model, kind)[0, :, 1, :] for kind in "qkv"}
    recipe = InductionRecipe()
    untrained = kit.Model(build_induction_model(recipe), induction_tokenizer(recipe))
    baseline = composition_scores(untrained, "k")[0, :, 1, :]
    assert 0.08 < float(baseline.max()) < 0.16  # "about 0.12"
    assert all(int(i) == 0 for i in comp["k"].argmax(0))
    assert bool((comp["k"][0] > baseline.max()).all())
    assert bool((comp["k"][0] > comp["q"][0]).all() and (comp["k"][0] > comp["v"][0]).all())


def test_the_live_run_remakes_the_shipped_model(history):
    from kit.train import TrainingHistory

    shipped = TrainingHistory.load("induction-2l")
    assert history.steps == shipped.steps
    torch.testing.assert_close(history.scores("induction")[-1], shipped.scores("induction")[-1], atol=1e-3, rtol=0)
