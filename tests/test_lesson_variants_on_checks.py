"""Per-student variants on real exercise checks: for several students, the instance each draws (another
person for lesson 01's exercises 1.3 and 1.4) is solved by the reference answer and the common wrong
answers are rejected."""

from __future__ import annotations

import pytest
import torch

import kit
import kit.lessons as lessons
from kit.lessons.attention import (
    EX_DLA, EX_LENS, answer_ranks, check_first_top1_layer, check_top_component, component_effects,
    relation_competitors,
)
from kit.train import load_world

STUDENTS = ["ada", "bob", "cy", "dee", "eve", "fay"]
MARGIN = 0.3  # a well-posed 1.4: the top component leads the next by at least this much (logit difference)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return kit.load("facts-4l", device="cpu")


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("KIT_PROGRESS", "0")
    lessons.stop()


def instance(model, world, person):
    prompt, answer = f"{person['name']} works as a", " " + person["profession"]
    return prompt, answer, relation_competitors(model, world, "profession", answer)


def well_posed(model, world):
    def ok(person):
        prompt, answer, others = instance(model, world, person)
        effects = sorted(component_effects(model, prompt, answer, others).values(), reverse=True)
        return effects[0] - effects[1] >= MARGIN
    return ok


def test_students_draw_different_well_posed_people(model, world):
    people = [lessons.variant(EX_DLA, world.people[:16], student=s, where=well_posed(model, world))
              for s in STUDENTS]
    assert len({p["name"] for p in people}) >= 3  # not everyone gets the same person
    assert lessons.variant(EX_DLA, world.people[:16], where=well_posed(model, world)) is world.people[0]  # default


@pytest.mark.parametrize("student", STUDENTS)
def test_every_variant_is_solvable_and_rejects_the_common_wrong_answers(model, world, student):
    person = lessons.variant(EX_DLA, world.people[:16], student=student, where=well_posed(model, world))
    prompt, answer, others = instance(model, world, person)
    # 1.3: the first layer at which the logit lens ranks the answer top-1
    ranks = answer_ranks(model, prompt, answer)
    first = ranks.index(0)
    assert check_first_top1_layer(first, model, prompt, answer)
    for wrong in {first - 1, first + 1, model.n_layers - 1} - {first}:
        if 0 <= wrong < model.n_layers:
            assert not check_first_top1_layer(wrong, model, prompt, answer), (student, wrong)
    # 1.4: the component with the largest direct effect on the logit difference
    effects = component_effects(model, prompt, answer, others)
    ranked = sorted(effects, key=effects.get, reverse=True)
    assert check_top_component(ranked[0], model, prompt, answer, others)
    assert not check_top_component(ranked[1], model, prompt, answer, others)  # the runner-up
    assert not check_top_component(ranked[-1], model, prompt, answer, others)  # the most negative
    raw = component_effects(model, prompt, answer)
    raw_top = max(raw, key=raw.get)
    if raw_top != ranked[0]:  # the raw-logit trap, named in the message
        verdict = check_top_component(raw_top, model, prompt, answer, others)
        assert not verdict and "raw logit" in verdict.message
    assert EX_LENS.startswith("1.3") and EX_DLA.startswith("1.4")
