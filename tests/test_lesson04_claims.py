"""The claims lesson 04 makes about facts-4l, computed as the lesson computes them.

Thresholds are loose enough to survive a retrain of facts-4l on the same world design; each test
names the lesson's sentence it backs.
"""

from __future__ import annotations

import pytest
import torch

from kit.analysis import compare_purity, compare_steering, label_purity, random_sparse_like
from kit.lessons import mlp as lesson
from kit.models import ZOO_DIR
from tests.test_lesson04_exercises import lesson04_setup

pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")


@pytest.fixture(scope="module")
def s():
    return lesson04_setup()


def test_every_token_gets_a_label_of_the_world(s):
    assert len(s.labels) == s.col.n_tokens
    assert int(s.labels.min()) >= 0 and int(s.labels.max()) < len(lesson.label_names(s.world))
    assert int(s.mask.sum()) == sum(p.relation == s.concept for p in s.prompts)


def test_the_polysemantic_neuron_fires_on_many_kinds_of_token(s):
    # "One neuron, many unrelated kinds of token"
    n = lesson.polysemantic_neuron(s.col.acts, s.labels)
    top = s.labels[s.col.acts[n].topk(20).indices]
    assert len(set(top.tolist())) >= 4
    assert float(label_purity(s.col.acts[n][None], s.labels).purity[0]) <= 0.5


def test_snmf_features_are_purer_than_single_neurons_and_chance(s):
    pytest.importorskip("sklearn")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # scikit-learn's NMF: BLAS threads fight over a busy CPU
        cmp = compare_purity(s.col.acts, s.labels, k=40, n_iter=60)
    assert cmp.mean("SNMF features") > cmp.mean("single neurons")
    assert cmp.mean("SNMF features") > cmp.chance + 0.2
    torch.testing.assert_close(cmp.snmf.Z, s.res.Z)  # the lesson's feature comes from this very fit


def test_the_concept_feature_fires_on_the_concept_positions(s):
    # "The feature that fires on our concept's positions"
    hits = s.mask[s.res.top_tokens(s.feature, 20)].float().mean()
    assert float(hits) >= 0.5


@pytest.fixture(scope="module")
def steering(s):
    z = s.res.Z[:, s.feature]
    directions = {"SNMF feature": z, "DiffMeans": s.dm, "random (as sparse as z)": random_sparse_like(z)}
    return compare_steering(s.model, s.steer_prompts, s.LAYER, directions, target_kl=1.0,
                            concept=s.world.answers(s.concept), pos=-1)


def test_steering_directions_are_matched_in_kl(steering):
    assert all(r.matched for r in steering.values())


@pytest.fixture(scope="module")
def steering_tight(s):
    z = s.res.Z[:, s.feature]
    directions = {"SNMF feature": z, "DiffMeans": s.dm, "random (as sparse as z)": random_sparse_like(z)}
    return compare_steering(s.model, s.steer_prompts, s.LAYER, directions, target_kl=1.0,
                            concept=s.world.answers(s.concept), pos=-1, rtol=0.01)


def test_one_concept_cannot_tell_snmf_from_diff_means(steering_tight):
    # "On this one concept the SNMF feature and DiffMeans are within a few hundredths of each other"
    assert all(abs(r.kl - 1.0) <= 0.01 for r in steering_tight.values())
    assert abs(steering_tight["SNMF feature"].gain - steering_tight["DiffMeans"].gain) < 0.1


def test_the_currency_feature_is_a_relation_feature(s, steering_tight):
    # "Steered with the currency feature, 'Fusuvaria's capital city is' continues with Fusuvaria's own currency,
    # and so do most prompts"
    facts = [p for p in s.world.prompts("held_out", next(r for r in s.world.relations if r != s.concept))][:20]
    assert [p.text for p in facts] == s.steer_prompts
    said = {name: lesson.steered_answers(s.model, s.world, facts, r.logprobs, s.concept)
            for name, r in steering_tight.items()}
    assert said["SNMF feature"]["own"] >= 0.5 and said["DiffMeans"]["own"] >= 0.5
    assert said["SNMF feature"]["other"] == 0 and said["DiffMeans"]["other"] == 0  # never another country's
    assert said["random (as sparse as z)"]["own"] == 0
    own = " " + next(c[s.concept] for c in s.world.countries if c["name"] == facts[0].subject)
    top = int(steering_tight["SNMF feature"].logprobs[0].argmax())
    assert s.model.to_str_tokens([top])[0] == own


@pytest.fixture(scope="module")
def fits(s):
    from kit.analysis import snmf
    from kit.analysis.sae import train_sae

    return {"SNMF": [snmf(s.col.acts, 40, n_iter=60, seed=k, progress=False) for k in range(3)],
            "SAE": [train_sae(s.col.acts, 40, seed=k) for k in range(3)]}


@pytest.fixture(scope="module")
def matched(s, fits):
    return lesson.matched_kl_comparison(s.model, s.world, s.col, s.prompts, fits, target_kl=1.0, rtol=0.01)


def test_over_concepts_and_seeds_snmf_and_diff_means_tie_and_both_beat_random(matched):
    assert all(bool(((k - 1.0).abs() <= 0.01).all()) for k in matched.kl.values())
    assert matched.gain["SNMF"].shape == (6, 3)
    assert matched.verdict("SNMF", "DiffMeans") == "tie"
    assert matched.verdict("SNMF", "random (sparse)") == "SNMF ahead"
    assert matched.verdict("DiffMeans", "random (sparse)") == "DiffMeans ahead"
    mean, _, n = matched.difference("SNMF", "DiffMeans")
    assert abs(mean) < 0.3 and n == 18


def test_sae_purity_is_level_with_snmf_and_neither_shows_a_hierarchy(s, fits):
    pur = {m: torch.tensor([float(label_purity(f.Y, s.labels).purity.mean()) for f in runs]) for m, runs in fits.items()}
    assert abs(float(pur["SNMF"].mean() - pur["SAE"].mean())) < float(pur["SNMF"].std() + pur["SAE"].std()) + 0.02
    assert float(pur["SAE"].mean()) > 0.7 and float(pur["SNMF"].mean()) > 0.7
    for runs in fits.values():
        overlap = torch.tensor([lesson.feature_overlap(f, s.model, s.col, s.prompts, s.world) for f in runs])
        assert float(overlap[:, 0].mean()) < float(overlap[:, 1].mean())  # within a subject type < across


def test_matched_comparison_verdict_calls_a_tie_a_tie():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(6, 3, generator=g)
    tie = lesson.MatchedComparison({"a": noise + 0.05, "b": noise.roll(1, 0)}, {}, list("abcdef"), [0, 1, 2], 1.0)
    assert tie.verdict("a", "b") == "tie"
    ahead = lesson.MatchedComparison({"a": noise + 3, "b": noise}, {}, list("abcdef"), [0, 1, 2], 1.0)
    assert ahead.verdict("a", "b") == "a ahead" and ahead.verdict("b", "a") == "a ahead"
    assert "± 0.00" not in ahead.table() and ahead.table().count("\n") == 8


def test_feature_and_diff_means_steer_toward_the_concept_better_than_random(steering):
    # "At matched KL, steering with a feature and with DiffMeans raises the concept's probability ...
    # both are measured against a random direction"
    gain = {name: r.gain for name, r in steering.items()}
    assert gain["SNMF feature"] > gain["random (as sparse as z)"]
    assert gain["DiffMeans"] > gain["random (as sparse as z)"]
    assert min(gain.values()) > 0
