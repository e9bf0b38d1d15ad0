"""Every figure of ``kit/zoo/ioi-3l/MODEL_CARD.md``, checked against the shipped weights and log; the head
roles the card names, checked again with ``kit.analysis`` (an independent implementation)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import kit
import kit.analysis as A
from kit.train import TrainLog
from kit.train.ioi import IOIRecipe, eval_prompts, measure_ioi, train_ioi
from kit.train.ioi_card import head_roles, render_ioi_card
from kit.train.ioi_data import IOITask, ioi_prompts
from tests.zoo import ZOO

DIR = ZOO / "ioi-3l"


@pytest.fixture(scope="module")
def figures():
    return json.loads((DIR / "figures.json").read_text())


@pytest.fixture(scope="module")
def hf():
    return AutoModelForCausalLM.from_pretrained(DIR).eval()


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(DIR)


def test_loads_with_auto_classes_and_kit(hf, tok):
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.n_layer == 3
    assert len(tok) == hf.config.vocab_size
    text = ioi_prompts(IOIRecipe().names(), 1, seed=3)[0].text
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert "ioi-3l" in kit.models()


def test_card_states_exactly_the_recorded_figures(figures):
    assert (DIR / "MODEL_CARD.md").read_text() == render_ioi_card(figures)
    assert figures["command"] == "python -m kit.train ioi-3l --out kit/zoo/ioi-3l --quiet"
    assert figures["recipe"] == json.loads(json.dumps(IOIRecipe().to_dict()))
    assert figures["names"] == IOIRecipe().names()


def test_weights_give_the_recorded_figures(hf, tok, figures):
    measured = measure_ioi(hf, tok)
    rec = figures["measured"]
    for key in ("accuracy_train", "logit_diff_train", "accuracy_held_out", "logit_diff_held_out"):
        assert measured[key] == pytest.approx(rec[key], abs=1e-3), key
    for key, value in rec["heads"].items():
        torch.testing.assert_close(torch.tensor(measured["heads"][key]), torch.tensor(value), atol=1e-3, rtol=0)


def test_figures_meet_the_brief(figures):
    m = figures["measured"]
    assert m["accuracy_train"] >= 0.95 and m["logit_diff_train"] >= 5.0
    assert m["accuracy_held_out"] >= 0.6  # generalises to unseen templates, if less surely
    h = m["heads"]
    assert h["logit_diff_clean"] >= 5.0 and abs(h["logit_diff_corrupted"]) < 1.0  # ABC: no repeated name, no answer
    assert figures["training"]["wall_time_s"] <= 240  # "a few minutes on one CPU thread"


def test_the_training_log_matches_the_card(figures):
    log = TrainLog.from_json(DIR / "training_log.json")
    assert figures["training"]["wall_time_s"] == pytest.approx(log.wall_time_s, abs=0.01)
    steps, acc = log.series("acc_train")
    assert figures["training"]["first_step_acc_train_0.9"] == next(s for s, a in zip(steps, acc) if a >= 0.9)
    assert acc[0] < 0.2 and acc[-1] == 1.0  # learnt, from chance


def test_the_card_names_the_heads_that_carry_the_answer(figures):
    roles = head_roles(figures["measured"]["heads"])
    assert len(roles["answer"]) >= 1
    assert roles["duplicate"] == []  # stated honestly in the card: no duplicate-token head formed


def test_kit_analysis_finds_the_same_answer_heads(figures):
    """Path patching to the logits (kit.analysis) ranks the card's answer heads first: the two strongest
    direct paths are exactly those heads, each far beyond every other head."""
    m = kit.load("ioi-3l", device="cpu")
    roles = head_roles(figures["measured"]["heads"])
    ps = eval_prompts(IOIRecipe(), "heads", 32)
    r = A.path_patching(m, [p.text for p in ps], [p.corrupted for p in ps], [p.io for p in ps],
                        [p.s for p in ps], receivers="logits")
    top = r.top(len(roles["answer"]) + 1)
    assert {f"L{l}H{h}" for (l, h), _ in top[:-1]} == set(roles["answer"])
    assert top[-2][1] < 2 * top[-1][1]  # the weakest answer head's path is over twice the next head's


def test_training_is_deterministic_and_the_data_varies_the_subject_position():
    recipe = IOIRecipe().with_train(steps=6, probe_every=3)
    a, b = train_ioi(recipe, progress=False), train_ioi(recipe, progress=False)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n
    tok = a.tokenizer
    task = IOITask(recipe.names(), tok.get_vocab())
    batch = task.batch(256, torch.Generator().manual_seed(0))
    names = set(task.name_ids.tolist())
    offsets = set()
    for row, mask in zip(batch.input_ids, batch.loss_mask):
        end = int(mask.nonzero()) - 1  # the position before the answer
        prompt = row[:end + 1].tolist()
        s2 = max(i for i, t in enumerate(prompt) if t in names)
        assert prompt.count(prompt[s2]) == 2 and int(row[end + 1]) != prompt[s2]  # S repeats; the answer is IO
        offsets.add(end - s2)
    assert len(offsets) >= 4  # no fixed distance from the end finds S2


def test_the_whole_zoo_stays_under_20_mb():
    size = sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file())
    assert size < 20 * 2**20
