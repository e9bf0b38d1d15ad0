"""What lesson 01 states about facts-4l and induction-2l, asserted on the shipped weights."""

from __future__ import annotations

import pytest
import torch

import kit
from kit.analysis import contrast_attribution, direct_logit_attribution, logit_lens
from kit.lessons.attention import relation_competitors
from kit.train import load_world

ZOO_MODEL = "facts-4l"  # the conftest `model` fixture loads it


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def fact(world):
    country = world.countries[0]
    return f"The capital of {country['name']} is", " " + country["capital"]


@pytest.fixture(scope="module")
def tr(model, fact):
    return model.trace(fact[0])


@pytest.fixture(scope="module")
def subject(model, world, fact, tr):
    prompt = next(p for p in world.prompts("train", "capital") if p.text == fact[0])
    return prompt.subject_positions(model.tokenizer)


def test_the_subject_spans_several_tokens(subject):
    assert len(subject) >= 2


def test_several_late_heads_look_from_the_last_token_at_the_subject(model, tr, subject):
    looking = [(l, h) for l in (1, 2, 3) for h in range(model.n_heads)
               if int(tr["pattern", l][0, h, -1].argmax()) in subject]
    assert len(looking) >= 3 and {l for l, _ in looking} == {1, 2, 3}, looking
    # the head whose row the lesson prints (L1H0) puts most of its attention on the subject
    assert float(tr["pattern", 1][0, 0, -1, subject].sum()) > 0.5


def test_the_answer_climbs_from_far_down_to_the_top_after_layer_2_before_the_last_block(model, tr, fact):
    # "climbs from far down the list after layer 0 to the top after layer 2, already with a high
    # probability: the fact is found before the last block"
    lens = logit_lens(tr, k=1, target=fact[1])
    ranks = lens.target_rank[:, 0, -1].tolist()
    assert ranks[0] > 10 and ranks[1] > 0 and ranks[2] == 0 and ranks[3] == 0, ranks
    assert float(lens.target_prob[2, 0, -1]) > 0.5


def test_the_last_row_of_the_lens_is_the_models_output(model, tr):
    lens = logit_lens(tr, k=1)
    assert torch.equal(lens.top_ids[-1, 0, :, 0], tr.logits[0].argmax(-1).cpu())


def test_direct_effects_add_up_to_the_logit(tr, fact):
    att = direct_logit_attribution(tr, fact[1])
    assert torch.allclose(att.parts_sum(), att.total, atol=1e-3)


def test_contrast_effects_add_up_to_the_logit_difference(model, world, tr, fact):
    others = relation_competitors(model, world, "capital", fact[1])
    att = contrast_attribution(tr, [fact[1]], [others], neurons=True)
    diff = tr.logits[0, -1, model.tokenizer(fact[1], add_special_tokens=False)["input_ids"][0]] - tr.logits[0, -1, others].mean()
    assert float(att.total[0]) == pytest.approx(float(diff), abs=1e-4)
    assert torch.allclose(att.parts_sum(), att.total, atol=1e-3)
    assert torch.allclose(att.neurons.sum(-1) + att.mlp_bias, att.mlps, atol=1e-3)


def test_the_raw_logit_trap_mlp1_is_largest_raw_but_small_against_the_other_capitals(model, world, tr, fact):
    # "On the raw logit MLP1 looks like the main writer of the answer; against the other capitals it adds
    # far less ... The heads that look at the country's name (L1H3, L2H2, L2H3) single out this capital."
    others = relation_competitors(model, world, "capital", fact[1])
    att = contrast_attribution(tr, [fact[1]], [others])
    raw = direct_logit_attribution(tr, fact[1], neurons=False)
    assert int(raw.mlps[0].argmax()) == 1 and float(raw.mlps[0, 1]) > 3
    assert float(att.mlps[0, 1]) < float(raw.mlps[0, 1]) / 4
    top3 = {divmod(int(i), model.n_heads) for i in att.heads[0].flatten().topk(3).indices}
    assert top3 == {(1, 3), (2, 2), (2, 3)}
    assert float(att.heads[0].max()) > 2 * float(att.mlps[0].max())


def test_the_exercise_answers_are_not_the_tour_answers(model, world):
    # exercise 1.3/1.4 use another prompt, whose answers the tour does not give away
    person = world.people[0]  # as the lesson picks it
    prompt, answer = f"{person['name']} works as a", " " + person["profession"]
    tr = model.trace(prompt)
    assert int(tr.logits[0, -1].argmax()) == model.tokenizer(answer, add_special_tokens=False)["input_ids"][0]
    ranks = logit_lens(tr, k=1, target=answer).target_rank[:, 0, -1].tolist()
    assert ranks.index(0) < model.n_layers - 1  # top-1 before the last layer, unlike the tour's prompt


def test_induction_2l_peek_prev_token_and_induction_stripes():
    small = kit.load("induction-2l", device="cpu")
    segment = "ba ko mi du se ra va te"
    tr = small.trace(f"{segment} {segment}")
    T = len(segment.split())
    p0 = tr["pattern", 0][0, 0]  # L0H0 [query, key]
    assert float(p0.diagonal(-1).mean()) > 0.5  # each token attends to the previous one
    p1 = tr["pattern", 1][0]  # [head, query, key]
    queries = torch.arange(1 + T, 1 + 2 * T)
    stripe = p1[:, queries, queries - T + 1].mean(-1)  # [head]: second copy -> token after the first occurrence
    assert float(stripe.max()) > 0.5
