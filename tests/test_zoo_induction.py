"""Every figure of ``kit/zoo/induction-2l/MODEL_CARD.md``, checked against the shipped weights and log."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from kit.train import (
    InductionRecipe,
    TrainingHistory,
    TrainLog,
    measure_induction,
    phase_change,
)
from kit.train.build import HISTORY_FILE, train_control
from kit.train.card import ratio_holds_from, render_card
from kit.train.induction import OFFSET_LENGTHS, OFFSET_PREFIXES, curve_lengths, induction_curve, offset_curve
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
    assert figures["model"] == "induction-2l" and render_card(figures).startswith("# induction-2l\n")
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
    assert figures["recipe"]["n_ctx"] >= 128


@pytest.fixture(scope="module")
def curve(model):
    return induction_curve(model)


def test_the_whole_curve_is_the_recorded_one(curve, figures):
    assert len(curve) == len(figures["curve"])
    for got, want in zip(curve, figures["curve"]):
        assert (got["bos"], got["half_len"], got["induction_head"]) == (want["bos"], want["half_len"], want["induction_head"])
        for key in ("induction_score", "loss_first", "loss_second", "loss_ratio"):
            assert got[key] == pytest.approx(want[key], abs=2e-3), (got, want)


def test_induction_holds_at_every_length_from_4_to_half_the_context_with_and_without_bos(curve, model):
    """The brief, at every point of the curve: best layer-1 induction score >= 0.8 and loss on the second
    copy <= 0.2 x the first (tokens 2..T of each copy), for every T from 4 to half the context, with and
    without a first <|bos|>."""
    n_ctx = model.config.n_positions
    for bos in (True, False):
        part = [c for c in curve if c["bos"] == bos]
        assert [c["half_len"] for c in part] == curve_lengths(n_ctx, bos)
        assert part[0]["half_len"] == 4 and part[-1]["half_len"] == (n_ctx - bos) // 2
        for c in part:
            assert c["induction_score"] >= 0.8, c
            assert c["loss_first"] > 3.5, c  # the first copy stays unpredictable: the ratio is not cheap
            assert c["loss_ratio"] <= 0.2, c
        assert ratio_holds_from(curve, bos) == 4


@pytest.fixture(scope="module")
def offsets(model):
    return offset_curve(model)


def test_the_offset_table_is_the_recorded_one(offsets, figures, model):
    assert [(c["bos"], c["prefix"], c["half_len"]) for c in offsets] == [
        (c["bos"], c["prefix"], c["half_len"]) for c in figures["offset_curve"]]
    n_ctx = model.config.n_positions
    assert {(c["bos"], c["prefix"], c["half_len"]) for c in offsets} == {
        (bos, P, T) for bos in (True, False) for P in OFFSET_PREFIXES for T in OFFSET_LENGTHS if bos + P + 2 * T <= n_ctx}
    for got, want in zip(offsets, figures["offset_curve"]):
        for key in ("induction_score", "loss_ratio"):
            assert got[key] == pytest.approx(want[key], abs=2e-3), (got, want)


def test_induction_holds_after_random_tokens_and_short_repeats_fall_short_only_there(offsets):
    """Where the repeat starts later: the induction head still attends (score >= 0.8 everywhere), and the
    loss ratio holds from T = 8 on; the card says which short repeats exceed it."""
    assert min(c["induction_score"] for c in offsets) >= 0.8
    assert all(c["loss_ratio"] <= 0.2 for c in offsets if c["half_len"] >= 8)
    over = [c for c in offsets if c["loss_ratio"] > 0.2]
    card = (DIR / "MODEL_CARD.md").read_text()
    assert f"The loss ratio exceeds 0.2 in {len(over)} of {len(offsets)} cells" in card
    assert "## When the repeat does not start the sequence" in card


def test_the_shipped_history_is_of_this_run(log, figures):
    history = TrainingHistory.load(DIR / HISTORY_FILE)
    recipe = figures["recipe"]
    assert history.meta["model"] == "induction-2l" and (history.n_layers, history.n_heads) == (2, recipe["n_heads"])
    every = recipe["history_every"]
    steps = recipe["train"]["steps"]
    assert history.steps == list(range(0, steps + 1, every)) and history.finished
    best = [float(s[1].max()) for s in history.induction]
    assert best[0] < 0.2 and best[-1] >= 0.8
    # the scores of the log's probe and of the history's are the same measurement at the same steps
    logged = dict(zip(*log.series("induction_score")))
    common = [(logged[s], v) for s, v in zip(history.steps, best) if s in logged]
    assert len(common) >= len(history) - 1
    assert all(abs(a - b) < 1e-4 for a, b in common)
    assert (DIR / HISTORY_FILE).stat().st_size < 3_000_000


def test_the_zoo_stays_small():
    assert sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file()) < 20_000_000


def test_log_shows_the_phase_change(log, figures):
    pc = phase_change(log)
    assert pc == figures["training"]["phase_change"]
    steps = figures["recipe"]["train"]["steps"]
    assert abs(pc["induction_crosses_half"] - pc["repeated_loss_drop"]) <= min(50, 0.1 * steps)  # co-timed
    scores = dict(zip(*log.series("induction_score")))
    assert max(v for s, v in scores.items() if s < pc["induction_crosses_half"] - 50) < 0.3  # flat, then a jump


def test_training_time_and_final_loss_match_the_log(log, figures):
    t = figures["training"]
    assert t["wall_time_s"] == pytest.approx(log.wall_time_s, abs=0.01)
    assert t["cpu_time_s"] <= 75.0  # "about a minute" on one thread
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
