"""Every figure of ``kit/zoo/facts-4l/MODEL_CARD.md``, checked against the shipped weights, world and log."""

from __future__ import annotations

import json

from scripts.factual_story import STORY_HEADING

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from kit.train import FactsRecipe, TrainLog, load_world, measure_facts
from kit.train.build import _world_figures
from kit.train.card import render_card
from kit.train.world import DEFAULT_WORLD_PATH
from tests.zoo import ZOO

DIR = ZOO / "facts-4l"


@pytest.fixture(scope="module")
def figures():
    return json.loads((DIR / "figures.json").read_text())


@pytest.fixture(scope="module")
def shipped():
    return AutoModelForCausalLM.from_pretrained(DIR).eval(), AutoTokenizer.from_pretrained(DIR)


@pytest.fixture(scope="module")
def world():
    return load_world(DIR / "world.json")


def test_card_states_exactly_the_recorded_figures(figures):
    # the card is render_card's text, followed by the factual-recall section of scripts/factual_story.py
    card = (DIR / "MODEL_CARD.md").read_text().split(STORY_HEADING)[0].rstrip() + "\n"
    assert card == render_card(figures).rstrip() + "\n"
    assert figures["command"] == "python -m kit.train facts-4l --out kit/zoo/facts-4l"
    assert figures["recipe"] == json.loads(json.dumps(FactsRecipe().to_dict()))


def test_weights_give_the_recorded_accuracies(shipped, world, figures):
    model, tok = shipped
    measured = measure_facts(model, tok, world)
    assert measured == pytest.approx(figures["measured"], abs=1e-9)


def test_accuracies_meet_the_brief(figures):
    assert figures["measured"]["acc_train_templates"] >= 0.95
    assert figures["measured"]["acc_held_out_templates"] >= 0.8


def test_shipped_world_is_the_recipe_world_and_the_default(world):
    assert world.to_json() == FactsRecipe().world().to_json()
    assert DEFAULT_WORLD_PATH == DIR / "world.json"
    assert load_world().facts == world.facts


def test_world_and_tokenizer_figures(shipped, world, figures):
    _, tok = shipped
    assert _world_figures(world, tok) == figures["world"]
    w = figures["world"]
    assert w["entities"] >= 200 and w["templates_per_relation"] >= 8 and w["held_out_per_relation"] >= 1
    assert w["subject_multi_token_fraction"] >= 0.5  # names often span several tokens


def test_tokenizer_conventions(shipped, world):
    model, tok = shipped
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    assert len(tok) == model.config.vocab_size
    for fact in world.facts:  # every answer is one token, with GPT-2's leading space
        assert len(tok(" " + fact.answer, add_special_tokens=False)["input_ids"]) == 1, fact
    p = world.prompts("train", relation="capital")[0]
    ids = tok(p.text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == p.text
    positions = p.subject_positions(tok)
    assert positions and max(positions) < len(ids) - 1  # the subject ends before the last position


def test_training_figures_match_the_log(figures):
    log = TrainLog.from_json(DIR / "training_log.json")
    assert figures["training"]["wall_time_s"] == pytest.approx(log.wall_time_s, abs=0.01)
    last = log.series("loss_answer")[1][-50:]
    assert figures["training"]["loss_answer_last50"] == pytest.approx(sum(last) / len(last), abs=1e-4)
