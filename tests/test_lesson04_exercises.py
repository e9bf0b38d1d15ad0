"""Lesson 04's exercise checks: every solution passes, plausible wrong answers fail and say why."""

from __future__ import annotations

import functools
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import kit
from kit.analysis import decode_neurons, diff_means, label_purity, mlp_activations, snmf
from kit.lessons import mlp as lesson
from kit.models import ZOO_DIR
from kit.train import load_world

SOLUTIONS = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "04_mlp_decomposition.py"
pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")


@functools.lru_cache(maxsize=1)  # shared by the exercise and claim tests: computed once
def lesson04_setup() -> SimpleNamespace:
    """The lesson's state before its exercises: activations of the first MLP over the world's sentences,
    token labels, the concept mask, DiffMeans, SNMF (k=40, as the lesson fits it) and its concept feature."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = kit.load("facts-4l", device="cpu")
    world = load_world()
    layer = 0  # the lesson's LAYER
    prompts = lesson.world_sentences(world, per_relation=60)
    col = mlp_activations(model, [p.sentence for p in prompts], layer)
    per_prompt = lesson.token_labels(model, world, prompts)
    labels = torch.tensor([per_prompt[b][q] for b, q in zip(col.prompt.tolist(), col.pos.tolist())])
    concept = "currency" if "currency" in world.relations else list(world.relations)[0]
    mask = lesson.concept_mask(model, col, prompts, concept)
    res = snmf(col.acts, 40, n_iter=60)
    source = next(r for r in world.relations if r != concept)
    return SimpleNamespace(
        model=model, world=world, LAYER=layer, prompts=prompts, col=col, labels=labels, concept=concept, mask=mask,
        dm=diff_means(col.acts, mask), res=res, feature=lesson.pick_feature(res.Y, mask),
        steer_prompts=[p.text for p in world.prompts("held_out", source)][:20],
        # the exercises' instances with no student set: the lesson's own (the variants are tested in
        # tests/test_lesson_variants_on_checks.py)
        feature_2=lesson.pick_feature(res.Y, mask), mask_3=mask, TARGET_KL=0.5)


@pytest.fixture(scope="module")
def s():
    return lesson04_setup()


@pytest.fixture(scope="module")
def solution(s):
    return runpy.run_path(str(SOLUTIONS), init_globals=vars(s).copy())


def test_every_solution_passes_its_check(s, solution):
    verdicts = [
        lesson.check_decoded_tokens(solution["decode"], s.model, [(s.LAYER, 0), (0, 0), (1, 7)]),
        lesson.check_feature_purity(solution["answer_2"], s.res.Y[s.feature], s.labels),
        lesson.check_diff_means(solution["answer_3"], s.col.acts, s.mask),
        lesson.check_steering_scale(solution["answer_4"], s.model, s.steer_prompts, s.LAYER, s.dm, 0.5),
    ]
    for v in verdicts:
        assert v.passed, v


def test_placeholders_are_to_do_not_failures(s):
    assert lesson.check_feature_purity(..., s.res.Y[s.feature], s.labels).status == "unanswered"
    assert lesson.check_diff_means(..., s.col.acts, s.mask).status == "unanswered"
    assert lesson.check_steering_scale(..., s.model, s.steer_prompts, s.LAYER, s.dm, 0.5).status == "unanswered"


def test_decoding_without_the_final_norm_weight_is_told_so(s):
    def raw(layer, neuron, k):
        w = s.model.adapter.W_out(layer)[neuron].detach().float()
        return s.model.to_str_tokens((w @ s.model.adapter.W_U.detach().float()).topk(k).indices)

    cases = [(layer, n) for layer in range(s.model.n_layers) for n in range(20)]
    wrong = [c for c in cases if raw(*c, 8) != decode_neurons(s.model, 8, [c[0]]).tokens(0, c[1])]
    assert wrong, "folding the norm weight changes no neuron's top tokens: this wrong answer cannot be told apart"
    v = lesson.check_decoded_tokens(raw, s.model, wrong[:1])
    assert not v and "final norm" in v.message


def test_decoding_the_suppressed_tokens_or_the_wrong_type_fails(s, solution):
    def lowest(layer, neuron, k):
        return decode_neurons(s.model, k, [layer]).tokens(0, neuron, suppressed=True)

    v = lesson.check_decoded_tokens(lowest, s.model, [(s.LAYER, 0)])
    assert not v and "suppressed" in v.message
    v = lesson.check_decoded_tokens(lambda layer, n, k: "tokens", s.model, [(s.LAYER, 0)])
    assert not v and "list of 8 tokens" in v.message


def test_purity_given_as_a_count_or_a_string_fails(s, solution):
    v = lesson.check_feature_purity(solution["answer_2"] * 20, s.res.Y[s.feature], s.labels)
    assert not v and "divide by 20" in v.message
    assert "one number" in lesson.check_feature_purity("0.5", s.res.Y[s.feature], s.labels).message


def test_diff_means_mistakes_are_named(s, solution):
    acts, mask = s.col.acts, s.mask
    v = lesson.check_diff_means(-solution["answer_3"], acts, mask)
    assert not v and "sign is flipped" in v.message
    v = lesson.check_diff_means(acts[:, mask].mean(1), acts, mask)
    assert not v and "concept's mean alone" in v.message
    v = lesson.check_diff_means(acts.mean(0), acts, mask)
    assert not v and "shape [d_mlp=" in v.message and "token axis" in v.message


def test_a_scale_far_too_small_is_told_to_grow(s, solution):
    v = lesson.check_steering_scale(solution["answer_4"] / 10, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "larger" in v.message
    assert "one number" in lesson.check_steering_scale([1.0], s.model, s.steer_prompts, s.LAYER, s.dm, 0.5).message


def test_decode_stub_gets_the_exercise_hint_from_the_shared_runner(s):
    def stub(layer, neuron, k):
        raise NotImplementedError

    for answer in (stub, ...):
        v = lesson.check_decoded_tokens(answer, s.model, [(s.LAYER, 0)])
        assert v.status == "unanswered" and "NotImplementedError" in v.message and "final_norm.weight" in v.message


def test_purity_common_mistakes_are_named(s, solution):
    y = s.res.Y[s.feature]
    assert solution["answer_2"] == pytest.approx(1.0)  # the lesson's feature: all its top tokens share a label
    bottom = float(label_purity(-y[None], s.labels).purity[0])
    assert bottom < 0.9
    v = lesson.check_feature_purity(bottom, y, s.labels)  # the 20 *lowest* tokens
    assert not v and "smallest" in v.message
    v = lesson.check_feature_purity(1.5, y, s.labels)
    assert not v and "between 0 and 1" in v.message
    v = lesson.check_feature_purity(solution["answer_2"] - 0.05, y, s.labels)  # one token miscounted: a near miss
    assert not v and "recount" in v.message


def test_purity_with_the_wrong_number_of_top_tokens_is_named(s):
    # a feature whose top-10 and top-20 purities differ: taking 10 tokens is a named mistake
    p10 = label_purity(s.res.Y, s.labels, 10).purity
    p20 = label_purity(s.res.Y, s.labels, 20).purity
    j = int(((p10 - p20).abs() > 0.05).float().argmax())
    assert abs(float(p10[j] - p20[j])) > 0.05
    v = lesson.check_feature_purity(float(p10[j]), s.res.Y[j], s.labels)
    assert not v and "top 20" in v.message


def test_diff_means_more_mistakes_are_named(s, solution):
    acts, mask = s.col.acts, s.mask
    v = lesson.check_diff_means(acts[:, mask].sum(1) - acts[:, ~mask].sum(1), acts, mask)
    assert not v and "sums" in v.message
    truth = solution["answer_3"]
    v = lesson.check_diff_means(truth / truth.norm(), acts, mask)
    assert not v and "wrong length" in v.message
    v = lesson.check_diff_means(truth.mean(), acts, mask)
    assert not v and "one number" in v.message
    v = lesson.check_diff_means(truth + 1e-2, acts, mask)  # a near miss
    assert not v and "largest gap 0.010" in v.message


@pytest.fixture(scope="module")
def alpha_half(s):
    from kit.analysis import steer_at_matched_kl

    return steer_at_matched_kl(s.model, s.steer_prompts, s.LAYER, s.dm, 0.5, pos=-1, rtol=0.01).alpha


def test_a_scale_slightly_too_large_or_too_small_is_refused(s, alpha_half):
    # near misses on both sides of the 10 % band: the tolerance is two-sided
    assert lesson.check_steering_scale(alpha_half, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    v = lesson.check_steering_scale(alpha_half * 1.12, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "smaller" in v.message
    v = lesson.check_steering_scale(alpha_half * 0.88, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "larger" in v.message
    v = lesson.check_steering_scale(alpha_half * 5, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "smaller" in v.message


def test_a_negative_scale_or_the_target_itself_is_named(s, alpha_half):
    v = lesson.check_steering_scale(-alpha_half, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "negative" in v.message
    v = lesson.check_steering_scale(0.5, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5)
    assert not v and "target KL itself" in v.message
