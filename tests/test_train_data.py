"""The synthetic data sets: repeated segments at random offsets, the background language, the world."""

from __future__ import annotations

from dataclasses import replace

import torch

from kit.train.induction import InductionRecipe, induction_task
from kit.train.induction_data import BackgroundLanguage
from kit.train.world import Prompt, World, build_world


def _batch(n=256, seed=0, **changes):
    recipe = replace(InductionRecipe(), **changes)
    return induction_task(recipe).batch(n, torch.Generator().manual_seed(seed))


def _copies(ids, rep):
    """Per row: the (start, period) of every run of repeated tokens, each token equal to the one a period
    back (the smallest such period)."""
    out = []
    for row in range(len(ids)):
        runs, pos = [], rep[row].nonzero().flatten().tolist()
        for p in pos:
            if runs and p == runs[-1][1] + 1:
                runs[-1][1] = p
            else:
                runs.append([p, p])
        found = []
        for a, b in runs:
            period = next(m for m in range(1, a + 1) if all(ids[row, i] == ids[row, i - m] for i in range(a, b + 1)))
            found.append((a - 1, period))  # the copy starts one token before its first repeated target
        out.append(found)
    return out


def test_repeated_tokens_copy_an_earlier_segment_at_varied_offsets_and_lengths():
    b = _batch(n=128, short_prob=0.0)
    ids, rep = b.input_ids, b.groups["repeated"]  # [batch, pos]
    assert ids.shape == (128, InductionRecipe().n_ctx)
    copies = _copies(ids, rep)
    assert all(copies), "every sequence holds a repeat"
    starts = {a for row in copies for a, _ in row}
    periods = {m for row in copies for _, m in row}
    assert len(starts) >= 40, "repeats must come at many offsets, or a 1-layer model solves them by position"
    assert min(periods) <= 6 and max(periods) >= 56, "lengths from 4 to half the context"
    assert sum(len(row) > 1 for row in copies) > 0.3 * len(copies), "often several repeats per sequence"


def test_log_uniform_lengths_make_short_repeats_common_and_long_ones_still_occur():
    periods = {dist: [m for row in _copies(*_rep(_batch(n=128, short_prob=0.0, segment_dist=dist))) for _, m in row]
               for dist in ("uniform", "log")}
    n = {d: len(p) for d, p in periods.items()}
    mean = {d: sum(p) / len(p) for d, p in periods.items()}
    # measured (seeds 0, 1): 500 / 552 repeats of mean length 13.8 / 12.7 against 375 / 384 of 18.9 / 19.4
    assert n["log"] >= 1.2 * n["uniform"] and mean["log"] <= 0.85 * mean["uniform"], (n, mean)
    assert max(periods["log"]) >= 48  # long repeats remain


def test_first_gap_puts_the_first_segment_near_the_start_and_gap_the_others():
    for first_gap, low, high in (((0, 2), 0, 2), (None, 10, 12)):
        ids, rep = _rep(_batch(n=64, short_prob=0.0, first_gap=first_gap, gap=(10, 12), early_prob=0.0))
        for row, ((start, period), *_) in enumerate(_copies(ids, rep)):
            bos = int(ids[row, 0] == 0)
            assert bos + low <= start - period <= bos + high, (first_gap, row, start, period)
    try:
        _batch(n=2, segment_dist="zipf")
    except ValueError as err:
        assert "'uniform', 'log'" in str(err)
    else:
        raise AssertionError("an unknown segment_dist must be refused")


def test_early_prob_starts_that_share_of_first_segments_within_early_gap_and_leaves_the_rest_alone():
    for early_prob in (0.0, 0.5):
        ids, rep = _rep(_batch(n=256, short_prob=0.0, first_gap=(10, 12), gap=(10, 12), early_prob=early_prob,
                               early_gap=(0, 1)))
        offsets = [start - period - int(ids[row, 0] == 0) for row, ((start, period), *_) in
                   enumerate(_copies(ids, rep))]  # background tokens before the first segment
        early = sum(o <= 1 for o in offsets) / len(offsets)
        assert all(o <= 1 or 10 <= o <= 12 for o in offsets), sorted(set(offsets))
        assert (early == 0.0) if early_prob == 0.0 else (0.4 <= early <= 0.6), (early_prob, early)
    for bad in (-0.1, 1.5):
        try:
            _batch(n=2, early_prob=bad)
        except ValueError as err:
            assert "early_prob" in str(err)
        else:
            raise AssertionError(f"early_prob={bad} must be refused")


def _rep(b):
    return b.input_ids, b.groups["repeated"]


def test_the_recipes_share_of_sequences_starts_with_bos_and_bos_never_appears_later():
    for bos_prob in (InductionRecipe().bos_prob, 0.75):
        ids = _batch(n=512, bos_prob=bos_prob).input_ids
        first_is_bos = float((ids[:, 0] == 0).float().mean())
        assert abs(first_is_bos - bos_prob) < 0.08, (bos_prob, first_is_bos)
    assert not (ids[:, 1:] == 0).any() and not (ids == 1).any() and not (ids == 2).any()


def test_short_batches_are_drawn_with_their_share():
    lengths = [_batch(n=2, seed=s, short_prob=0.5).input_ids.shape[1] for s in range(40)]
    assert set(lengths) == {InductionRecipe().short_len, InductionRecipe().n_ctx}
    assert 10 <= lengths.count(InductionRecipe().n_ctx) <= 30


def test_repeated_fraction_and_background_are_both_substantial():
    b = _batch(short_prob=0.0)
    targets = b.loss_mask.sum()
    assert 0.25 < b.groups["repeated"].sum() / targets < 0.75
    assert 0.15 < b.groups["background"].sum() / targets
    assert not (b.groups["repeated"] & b.groups["background"]).any()


def test_layout_is_the_same_with_and_without_uniform_first_copies():
    a, b = _batch(8, 3), _batch(8, 3, segment_from_language=True)
    assert torch.equal(a.groups["repeated"], b.groups["repeated"])


def test_language_sampling_matches_its_mixture():
    lang = BackgroundLanguage(10, skip=0.7, concentration=0.3, seed=1)
    n = 200_000
    prev2, prev1 = torch.full((n,), 5), torch.full((n,), 8)
    drawn = lang.sample_next(prev2, prev1, torch.rand(n, 1, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(drawn - lang.first_id, minlength=10).float() / n
    assert torch.allclose(freq, lang.next_distribution(prev2[:1], prev1[:1])[0], atol=0.005)


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
