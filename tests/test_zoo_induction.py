"""Every figure of ``kit/zoo/induction-2l/MODEL_CARD.md``, checked against the shipped weights and log."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from kit.train import InductionRecipe, TrainLog, measure_induction, phase_change
from kit.train.build import train_control
from kit.train.card import render_card
from tests.zoo import ZOO

DIR = ZOO / "induction-2l"


@pytest.fixture(scope="module")
def figures():
    return json.loads((DIR / "figures.json").read_text())


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(DIR).eval()


@pytest.fixture(scope="module")
def log():
    return TrainLog.from_json(DIR / "training_log.json")


def test_loads_with_auto_classes(model):
    tok = AutoTokenizer.from_pretrained(DIR)
    assert type(model).__name__ == "GPT2LMHeadModel" and model.config.n_layer == 2
    enc = tok("ba be bi")
    assert enc["input_ids"] == [0, 3, 4, 5]  # <|bos|> first, then the syllables
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "ba be bi"
    assert len(tok) == model.config.vocab_size


def test_card_states_exactly_the_recorded_figures(figures):
    assert (DIR / "MODEL_CARD.md").read_text() == render_card(figures)
    assert figures["command"] == "python -m kit.train induction-2l --out kit/zoo/induction-2l"
    # the shipped model is the default recipe (JSON turns tuples into lists)
    assert figures["recipe"] == json.loads(json.dumps(InductionRecipe().to_dict()))


def test_weights_give_the_recorded_figures(model, figures):
    measured = measure_induction(model, **figures["measure_settings"])
    for key, value in figures["measured"].items():
        assert measured[key] == pytest.approx(value, abs=1e-3), key


def test_figures_meet_the_brief(figures):
    m = figures["measured"]
    assert m["prev_token_score"] >= 0.8
    assert m["induction_score"] >= 0.8
    assert m["loss_second_copy"] <= 0.2 * m["loss_first_copy"]


def test_log_shows_the_phase_change(log, figures):
    pc = phase_change(log)
    assert pc == figures["training"]["phase_change"]
    steps = figures["recipe"]["train"]["steps"]
    assert abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"]) <= 0.1 * steps
    scores = dict(zip(*log.series("induction_score")))
    assert max(v for s, v in scores.items() if s < pc["induction_crosses_half"] - 50) < 0.3  # flat, then a jump


def test_training_time_and_final_loss_match_the_log(log, figures):
    t = figures["training"]
    assert t["wall_time_s"] == pytest.approx(log.wall_time_s, abs=0.01)
    assert t["wall_time_s"] <= 30.0
    last = log.series("loss_repeated")[1][-50:]
    assert t["loss_repeated_last50"] == pytest.approx(sum(last) / len(last), abs=1e-4)


def test_one_layer_control_figure_and_gap(figures):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        control = train_control(InductionRecipe().with_train(device="cpu"))
    finally:
        torch.set_num_threads(before)
    assert control == pytest.approx(figures["control"]["loss_repeated"], abs=0.1)
    assert control > figures["training"]["loss_repeated_last50"] + 1.5
