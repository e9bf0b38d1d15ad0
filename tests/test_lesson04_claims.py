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


def test_feature_and_diff_means_steer_toward_the_concept_better_than_random(steering):
    # "At matched KL, steering with a feature and with DiffMeans raises the concept's probability ...
    # both are measured against a random direction"
    gain = {name: r.gain for name, r in steering.items()}
    assert gain["SNMF feature"] > gain["random (as sparse as z)"]
    assert gain["DiffMeans"] > gain["random (as sparse as z)"]
    assert min(gain.values()) > 0
