"""Lesson 01's exercises: every solution passes its check; plausible wrong answers fail with a useful message."""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from tests.lesson_solutions import load_solution
from kit.lessons.attention import (
    check_first_top1_layer, check_most_attended, check_residual_from_parts, check_top_component,
    component_effects,
)
from kit.train import load_world

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "01_attention_and_the_residual_stream.py"



@pytest.fixture(scope="module")
def sol():
    return load_solution(SOLUTION)


@pytest.fixture(scope="module")
def model():
    return kit.load("facts-4l", device="cpu")


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def tr(model, world):
    return model.trace(f"The capital of {world.countries[0]['name']} is")


@pytest.fixture(scope="module")
def fact(world):
    person = world.people[0]  # as the lesson picks it
    return f"{person['name']} works as a", " " + person["profession"]


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


def test_residual_wrong_shape_and_type_fail_readably(tr):
    verdict = check_residual_from_parts(lambda tr, layer: tr["resid_post", layer][0], tr)
    assert not verdict and "shape" in verdict.message
    verdict = check_residual_from_parts(lambda tr, layer: tr["resid_post", layer].tolist(), tr)
    assert not verdict and "list" in verdict.message and "tensor" in verdict.message


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


def test_most_attended_learner_bug_becomes_a_verdict(tr):
    verdict = check_most_attended(lambda tr, layer, head: tr["pattern", layer + 10], tr)
    assert not verdict and "raised" in verdict.message


# --- 1.3 ---------------------------------------------------------------------------------------------

def test_first_top1_solution_passes(sol, model, fact):
    assert check_first_top1_layer(sol.first_top1_layer, model, *fact)


def test_first_top1_later_layer_fails_asking_for_the_first(sol, model, fact):
    last = model.n_layers - 1
    assert sol.first_top1_layer < last, "the exercise prompt should not have the trivial answer"
    verdict = check_first_top1_layer(last, model, *fact)
    assert not verdict and "earlier" in verdict.message


def test_first_top1_too_early_fails_with_the_rank(sol, model, fact):
    if sol.first_top1_layer == 0:
        pytest.skip("the answer is top-1 from layer 0")
    verdict = check_first_top1_layer(sol.first_top1_layer - 1, model, *fact)
    assert not verdict and "ranks" in verdict.message and "later" in verdict.message


def test_first_top1_wrong_type_and_range_fail(model, fact):
    verdict = check_first_top1_layer("2", model, *fact)
    assert not verdict and "int" in verdict.message
    verdict = check_first_top1_layer(7, model, *fact)
    assert not verdict and "does not exist" in verdict.message
    assert check_first_top1_layer(..., model, *fact).status == "unanswered"


# --- 1.4 ---------------------------------------------------------------------------------------------

def test_top_component_solution_passes(sol, model, fact):
    assert check_top_component(sol.top_component, model, *fact)


def test_top_component_accepts_other_spellings(sol, model, fact):
    name = sol.top_component
    alt = name.lower() if name != "embed" else "embeddings"
    assert check_top_component(alt, model, *fact)


def test_top_component_runner_up_fails_with_both_effects(sol, model, fact):
    effects = component_effects(model, *fact)
    runner_up = sorted(effects, key=effects.get)[-2]
    verdict = check_top_component(runner_up, model, *fact)
    assert not verdict and "2nd largest" in verdict.message and f"{effects[runner_up]:+.2f}" in verdict.message


def test_top_component_unknown_names_fail_with_the_format(model, fact):
    for wrong in ("MLP9", "head 3", 3, ("mlp", 2)):
        verdict = check_top_component(wrong, model, *fact)
        assert not verdict and "names no component" in verdict.message and "MLP<layer>" in verdict.message
