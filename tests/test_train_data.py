"""The synthetic data sets: repeated segments at random offsets, the background language, the world."""

from __future__ import annotations

import torch

from kit.train.induction import InductionRecipe, induction_task
from kit.train.induction_data import BackgroundLanguage
from kit.train.world import Prompt, World, build_world


def _batch(n=256, seed=0):
    return induction_task(InductionRecipe()).batch(n, torch.Generator().manual_seed(seed))


def test_repeated_tokens_copy_an_earlier_segment_and_start_at_varied_offsets():
    b = _batch()
    ids, rep = b.input_ids, b.groups["repeated"]  # [batch, pos]
    assert (ids[:, 0] == 0).all() and ids.shape == (256, InductionRecipe().n_ctx)
    starts, periods = [], []
    for row in range(len(ids)):
        pos = rep[row].nonzero().flatten()
        assert len(pos) > 0
        # each repeated token equals the token one period back, for one period per sequence
        period = next(p for p in range(1, 48) if all(ids[row, i] == ids[row, i - p] for i in pos.tolist()))
        periods.append(period)
        starts.append(int(pos[0]) - period)
    assert len(set(starts)) >= 20, "repeats must come at many offsets, or a 1-layer model solves them by position"
    assert len(set(periods)) >= 10


def test_repeated_fraction_and_background_are_both_substantial():
    b = _batch()
    targets = b.loss_mask.sum()
    assert 0.25 < b.groups["repeated"].sum() / targets < 0.75
    assert 0.2 < b.groups["background"].sum() / targets
    assert not (b.groups["repeated"] & b.groups["background"]).any()


def test_background_language_mixes_bigram_and_skip_bigram():
    lang = BackgroundLanguage(10, skip=0.8, concentration=0.1, seed=0)
    probs = lang.next_distribution(torch.tensor([3, 3]), torch.tensor([4, 5]))  # [batch, next]
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    expected = 0.2 * lang.bigram[1] + 0.8 * lang.skip_bigram[0]
    assert torch.allclose(probs[0], expected)
    assert lang.entropy() < torch.log(torch.tensor(10.0))


def test_batches_repeat_for_a_seed_and_differ_across_seeds():
    assert torch.equal(_batch(8, 1).input_ids, _batch(8, 1).input_ids)
    assert not torch.equal(_batch(8, 1).input_ids, _batch(8, 2).input_ids)


def test_world_meets_the_brief():
    world = build_world(0)
    assert world.n_entities >= 200
    names = [c["name"] for c in world.countries] + [p["name"] for p in world.people]
    assert len(set(names)) == len(names)
    for rel in world.relations.values():
        assert len(rel.templates) >= 8 and 1 <= len(rel.held_out) < len(rel.templates)
        assert all("{subject}" in t for t in rel.templates)
    prompts = world.prompts("all")
    # the subject comes before the last position: the prompt never ends with it
    assert all(p.subject_span[1] < len(p.text) for p in prompts)
    assert {p.held_out for p in world.prompts("held_out")} == {True}
    assert len(world.prompts("train")) + len(world.prompts("held_out")) == len(prompts)


def test_no_template_is_a_prefix_of_another_for_the_same_subject_type():
    world = build_world(0)
    for a in world.relations.values():
        for b in world.relations.values():
            if a.subject_type != b.subject_type:
                continue
            for ta in a.templates:
                for tb in b.templates:
                    assert ta == tb or not tb.startswith(ta), (ta, tb)


def test_world_is_deterministic_and_round_trips_json():
    a, b = build_world(0), build_world(0)
    assert a.to_json() == b.to_json()
    assert build_world(1).to_json() != a.to_json()
    c = World.from_json(a.to_json())
    assert c.facts == a.facts and c.relations == a.relations


def test_prompt_text_and_subject_span():
    world = build_world(0)
    p: Prompt = world.prompts("train", relation="capital")[0]
    assert p.text == f"The capital of {p.subject} is" and p.answer.startswith(" ")
    assert p.text[slice(*p.subject_span)] == p.subject
    assert p.sentence == p.text + p.answer + "."
