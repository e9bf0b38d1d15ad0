"""Lesson 01's exercises: every solution passes its check; plausible wrong answers fail with a useful message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kit.lessons.attention import (
    check_first_top1_layer, check_most_attended, check_residual_from_parts, check_top_component,
    component_effects, relation_competitors,
)
from kit.train import load_world

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "01_attention_and_the_residual_stream.py"
ZOO_MODEL = "facts-4l"  # the conftest `model` fixture loads it



@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def tr(model, world):
    return model.trace(f"The capital of {world.countries[0]['name']} is")


@pytest.fixture(scope="module")
def fact(model, world):
    person = world.people[0]  # as the lesson picks it
    answer = " " + person["profession"]
    return f"{person['name']} works as a", answer, relation_competitors(model, world, "profession", answer)


def stub(*args):
    raise NotImplementedError


# --- 1.1 ---------------------------------------------------------------------------------------------

def test_residual_solution_passes(sol, tr):
    assert check_residual_from_parts(sol.residual_after, tr)


def test_residual_stub_is_to_do(tr):
    assert check_residual_from_parts(stub, tr).status == "unanswered"
    assert check_residual_from_parts(..., tr).status == "unanswered"


def test_residual_without_mlps_fails_naming_the_mlps(tr):
    def no_mlp(tr, layer):
        return tr["resid_pre", 0] + sum(tr["attn_out", l] for l in range(layer + 1))

    verdict = check_residual_from_parts(no_mlp, tr)
    assert not verdict and "MLP" in verdict.message


def test_residual_one_layer_short_fails_naming_the_block(tr):
    def short(tr, layer):
        return tr["resid_pre", 0] + sum(tr["attn_out", l] + tr["mlp_out", l] for l in range(layer))

    verdict = check_residual_from_parts(short, tr)
    assert not verdict and "embeddings" in verdict.message  # layer 0: only the embeddings


def _parts(tr, layer):
    return tr["resid_pre", 0] + sum(tr["attn_out", l] + tr["mlp_out", l] for l in range(layer + 1))


def test_residual_wrong_shape_and_type_fail_readably(tr):
    verdict = check_residual_from_parts(lambda tr, layer: _parts(tr, layer)[0], tr)
    assert not verdict and "shape" in verdict.message
    verdict = check_residual_from_parts(lambda tr, layer: _parts(tr, layer).tolist(), tr)
    assert not verdict and "list" in verdict.message and "tensor" in verdict.message


def test_residual_read_from_the_trace_is_refused_as_a_shortcut(tr):
    # the answer itself is not the sum of its parts: reading resid_post (or resid_pre of the next layer) fails
    verdict = check_residual_from_parts(lambda tr, layer: tr["resid_post", layer], tr)
    assert not verdict and "tr['resid_post', 0]" in verdict.message and "parts" in verdict.message
    verdict = check_residual_from_parts(
        lambda tr, layer: tr["resid_pre", layer + 1] if layer + 1 < 4 else _parts(tr, layer), tr)
    assert not verdict and "tr['resid_pre', 1]" in verdict.message


def test_residual_right_at_layer_0_wrong_later_fails_at_that_layer(tr):
    # only block `layer`'s own outputs: equal to the truth at layer 0, wrong from layer 1 on
    def only_this_block(tr, layer):
        return tr["resid_pre", 0] + tr["attn_out", layer] + tr["mlp_out", layer]

    verdict = check_residual_from_parts(only_this_block, tr)
    assert not verdict and "layer 1" in verdict.message and "every earlier block" in verdict.message


def test_residual_near_miss_fails(tr):
    # a tiny, systematic error (one bias counted twice at the last layer) is not the residual stream
    def near(tr, layer):
        out = _parts(tr, layer)
        return out + 1e-2 * out.abs().max() if layer == 3 else out

    verdict = check_residual_from_parts(near, tr)
    assert not verdict and "layer 3" in verdict.message and "differs" in verdict.message


# --- 1.2 ---------------------------------------------------------------------------------------------

def test_most_attended_solution_passes(sol, tr):
    assert check_most_attended(sol.most_attended, tr)


def test_most_attended_wrong_axis_fails_naming_query_and_key(tr):
    def over_queries(tr, layer, head):  # the column of the last key: what attends to it
        return int(tr["pattern", layer][0, head, :, -1].argmax())

    verdict = check_most_attended(over_queries, tr)
    assert not verdict and "query" in verdict.message and "key" in verdict.message


def test_most_attended_weight_instead_of_position_fails(tr):
    verdict = check_most_attended(lambda tr, layer, head: float(tr["pattern", layer][0, head, -1].max()), tr)
    assert not verdict and "argmax" in verdict.message


def test_most_attended_wrong_type_fails_readably(tr):
    verdict = check_most_attended(lambda tr, layer, head: "ir", tr)
    assert not verdict and "str" in verdict.message and "int" in verdict.message


def test_most_attended_right_at_layer_0_wrong_later_fails(tr):
    # ignores `layer`: right on layer 0's heads, wrong on a later layer's
    verdict = check_most_attended(lambda tr, layer, head: int(tr["pattern", 0][0, head, -1].argmax()), tr)
    assert not verdict and re.search(r"for L[1-3]H\d you returned", verdict.message), verdict.message


def test_most_attended_out_of_range_and_fractional_positions_fail(tr):
    n = tr.lengths[0]
    verdict = check_most_attended(lambda tr, layer, head: n + 2, tr)
    assert not verdict and f"only {n} tokens" in verdict.message
    verdict = check_most_attended(lambda tr, layer, head: 2.5, tr)
    assert not verdict and "argmax, not the max" in verdict.message
    verdict = check_most_attended(lambda tr, layer, head: True, tr)
    assert not verdict and "bool" in verdict.message


def test_most_attended_negative_index_of_the_right_key_passes(tr):
    n = tr.lengths[0]
    assert check_most_attended(lambda tr, layer, head: int(tr["pattern", layer][0, head, -1].argmax()) - n, tr)


def test_most_attended_learner_bug_becomes_a_verdict(tr):
    verdict = check_most_attended(lambda tr, layer, head: tr["pattern", layer + 10], tr)
    assert not verdict and "raised" in verdict.message


# --- 1.3 ---------------------------------------------------------------------------------------------

def test_first_top1_solution_passes(sol, model, fact):
    assert check_first_top1_layer(sol.first_top1_layer, model, *fact[:2])


def test_first_top1_later_layer_fails_asking_for_the_first(sol, model, fact):
    last = model.n_layers - 1
    assert sol.first_top1_layer < last, "the exercise prompt should not have the trivial answer"
    verdict = check_first_top1_layer(last, model, *fact[:2])
    assert not verdict and "earlier" in verdict.message


def test_first_top1_too_early_fails_with_the_rank(sol, model, fact):
    if sol.first_top1_layer == 0:
        pytest.skip("the answer is top-1 from layer 0")
    verdict = check_first_top1_layer(sol.first_top1_layer - 1, model, *fact[:2])
    assert not verdict and "ranks" in verdict.message and "later" in verdict.message


def test_first_top1_wrong_type_and_range_fail(model, fact):
    verdict = check_first_top1_layer("2", model, *fact[:2])
    assert not verdict and "int" in verdict.message
    verdict = check_first_top1_layer(7, model, *fact[:2])
    assert not verdict and "does not exist" in verdict.message
    assert check_first_top1_layer(..., model, *fact[:2]).status == "unanswered"


# --- 1.4 ---------------------------------------------------------------------------------------------

def test_top_component_solution_passes_and_is_l1h3(sol, model, fact):
    # the contrast's answer: L1H3 (+3.39 against the other professions), not MLP0 (+3.86 raw, +0.10 contrast)
    assert sol.top_component == "L1H3"
    assert check_top_component(sol.top_component, model, *fact)


def test_top_component_accepts_other_spellings(sol, model, fact):
    for alt in ("l1h3", " L1H3 ", (1, 3), [1, 3]):
        assert check_top_component(alt, model, *fact), alt


def test_top_component_raw_logit_answer_is_rejected_as_the_trap(model, fact):
    raw = component_effects(model, fact[0], fact[1])
    contrast = component_effects(model, *fact)
    assert max(raw, key=raw.get) == "MLP0" and raw["MLP0"] > 3.5 and abs(contrast["MLP0"]) < 0.3
    assert contrast["L1H3"] > 3.0 and contrast["L1H3"] == max(contrast.values())
    verdict = check_top_component("MLP0", model, *fact)
    assert not verdict and "raw logit" in verdict.message and "logit difference" in verdict.message


def test_top_component_runner_up_fails_with_both_effects(sol, model, fact):
    effects = component_effects(model, *fact)
    runner_up = sorted(effects, key=effects.get)[-2]
    verdict = check_top_component(runner_up, model, *fact)
    assert not verdict and "2nd largest" in verdict.message and f"{effects[runner_up]:+.2f}" in verdict.message
    assert "L1H3" not in verdict.message  # a failed check does not give the answer away


def test_top_component_largest_in_size_but_negative_is_rejected(model, world):
    # a wrong target against the right answer: the most negative component is the largest in size,
    # and "largest" means most positive
    person = world.people[0]
    prompt, right = f"{person['name']} works as a", " " + person["profession"]
    wrong = next(" " + a for a in world.answers("profession") if " " + a != right)
    others = [right]
    effects = component_effects(model, prompt, wrong, others)
    most_negative = min(effects, key=effects.get)
    assert -effects[most_negative] > max(effects.values()) > 0
    verdict = check_top_component(most_negative, model, prompt, wrong, others)
    assert not verdict and "most positive" in verdict.message
    assert check_top_component(max(effects, key=effects.get), model, prompt, wrong, others)


def test_top_component_unknown_names_fail_with_the_format(model, fact):
    for wrong in ("MLP9", "head 3", 3, ("mlp", 2), "L9H0"):
        verdict = check_top_component(wrong, model, *fact)
        assert not verdict and "names no component" in verdict.message and "MLP<layer>" in verdict.message
    assert check_top_component(..., model, *fact).status == "unanswered"
