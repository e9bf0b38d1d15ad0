"""Lesson 04's exercise 4 (``check_steering_scale``) against mutation survivors (issue 16): the KL band is
two-sided and its width is ``rtol``, a scale given as a tensor counts, and the exact messages."""

from __future__ import annotations

import re

import pytest
import torch

from kit.lessons import mlp as lesson
from kit.models import ZOO_DIR
from tests.test_lesson04_exercises import lesson04_setup

pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")
NAME = "04.4 steering scale"


@pytest.fixture(scope="module")
def s():
    return lesson04_setup()


@pytest.fixture(scope="module")
def alpha(s):
    from kit.analysis import steer_at_matched_kl

    return steer_at_matched_kl(s.model, s.steer_prompts, s.LAYER, s.dm, 0.5, pos=-1, rtol=0.01).alpha


def check(s, answer, **kw):
    verdict = lesson.check_steering_scale(answer, s.model, s.steer_prompts, s.LAYER, s.dm, 0.5, **kw)
    assert verdict.exercise == NAME
    return verdict


def _kl(verdict) -> float:
    return float(re.search(r"gives KL (\d+\.\d{3})", verdict.message).group(1))


def test_a_matched_scale_passes_and_says_the_kl_it_reached(s, alpha):
    for answer in (alpha, torch.tensor(alpha)):
        verdict = check(s, answer)
        assert verdict.passed and verdict.message == f"α = {alpha:.3g} gives KL {_kl(verdict):.3f} (target 0.5)."
        assert abs(_kl(verdict) - 0.5) <= 0.01


def test_a_scale_too_large_is_told_to_shrink_with_the_band(s, alpha):
    verdict = check(s, alpha * 1.12)
    kl = _kl(verdict)
    assert 0.55 < kl < 1.0  # outside the 10 % band, above
    assert verdict.message == (f"α = {alpha * 1.12:.3g} gives KL {kl:.3f}, not within 10% of 0.5: try a smaller α "
                               f"(the KL grows with α).")


def test_the_band_is_rtol_wide_on_both_sides(s, alpha):
    assert check(s, alpha * 1.12, rtol=0.7).passed and check(s, alpha * 0.88, rtol=0.7).passed
    verdict = check(s, alpha * 0.88, rtol=0.05)
    assert not verdict and "not within 5% of 0.5: try a larger α" in verdict.message


def test_zero_is_a_scale_too_small(s):
    verdict = check(s, 0)
    assert verdict.message == "α = 0 gives KL 0.000, not within 10% of 0.5: try a larger α (the KL grows with α)."


def test_a_negative_scale_message_is_exact(s, alpha):
    verdict = check(s, -alpha)
    assert verdict.message == (f"α = {-alpha:.3g} is negative: it steers away from the concept. The scale is a size "
                               f"(α >= 0) along the direction; find the positive α that gives KL 0.5.")


@pytest.mark.parametrize("answer, kind", [(True, "bool"), ("1.0", "str"), ([1.0], "list"),
                                          (torch.tensor([1.0, 2.0]), "Tensor")])
def test_answers_that_are_not_one_number_are_refused(s, answer, kind):
    assert check(s, answer).message == f"give the scale as one number; got {kind}"


def test_the_placeholder_hint_says_how_to_search(s):
    verdict = check(s, ...)
    assert verdict.status == "unanswered" and verdict.message == (
        "replace the `...` with your answer. Hint: try a scale, measure the KL, double it or halve it, then bisect")


def test_the_band_is_relative_to_the_target(s, alpha):
    # 20 % above the target KL 0.5 is outside a 10 % band (0.05 wide), though inside 0.1 / 0.5 = 0.2
    verdict = check(s, alpha * 1.045)
    assert 0.56 < _kl(verdict) < 0.69 and not verdict.passed and "try a smaller α" in verdict.message


def test_the_target_itself_given_as_the_scale_is_named_exactly(s):
    verdict = check(s, 0.5)
    kl = _kl(verdict)
    assert kl < 0.45 and verdict.message == (
        f"α = 0.5 gives KL {kl:.3f}, not within 10% of 0.5: try a larger α (the KL grows with α). You gave the target "
        f"KL itself; give the scale α that produces it.")


# --- 04.2 label purity, on a unit built so that every common wrong answer has its own value ---------------

PURITY = "04.2 label purity"


def _purity_case():
    """``scores[100]`` ranked 99 .. 0 and the label of each rank: the top 20 hold 13 tokens of label 1, 5 of
    label 0 and 2 unlabelled (-1): purity 0.65; the top 10 hold 9 of label 1 (0.9); the top 50 add 30 of label
    3 (0.6); the bottom 20 hold 14 of label 2 (0.7), the bottom 10 only label 2 (1.0); a count would be 13 and
    label 0's share 0.25."""
    ranks = ([1] * 9 + [0]) + ([1] * 4 + [0] * 4 + [-1] * 2) + [3] * 30 + [0] * 30 + [0] * 6 + [2] * 14
    scores = torch.arange(100, 0, -1).float()
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(0))  # tokens in no particular order
    return scores[perm], torch.tensor(ranks)[perm]


def _purity(answer, top=20):
    scores, labels = _purity_case()
    verdict = lesson.check_feature_purity(answer, scores, labels, top)
    assert verdict.exercise == PURITY
    return verdict


def _wrong(answer, hint="", top=20):
    return (f"you gave {answer:.3f}; recount the labels of the {top} highest-scoring tokens (topk on the feature's "
            f"row of Y); label -1, if any, never counts.{hint}")


def test_the_synthetic_unit_has_the_values_it_is_built_for():
    from kit.analysis import label_purity

    scores, labels = _purity_case()
    got = {n: float(label_purity(scores[None], labels, n).purity[0]) for n in (10, 20, 50)}
    assert got == pytest.approx({10: 0.9, 20: 0.65, 50: 0.6})
    assert float(label_purity(-scores[None], labels, 20).purity[0]) == pytest.approx(0.7)


@pytest.mark.parametrize("answer", [0.65, 0.6491, 0.6509, torch.tensor(0.65), torch.tensor([0.65])])
def test_purity_within_a_thousandth_passes_with_its_message(answer):
    verdict = _purity(answer)
    assert verdict.passed and verdict.message == "0.65 of the feature's top 20 tokens share one label."


@pytest.mark.parametrize("answer", [0.6489, 0.6511])
def test_purity_just_outside_a_thousandth_fails_with_no_hint(answer):
    verdict = _purity(answer)
    assert verdict.status == "failed" and verdict.message == _wrong(answer)


@pytest.mark.parametrize("answer, hint", [
    (13, " That is a count: divide by 20."), (13.0009, " That is a count: divide by 20."),
    (13.0011, " Purity is a share, between 0 and 1."), (1.0001, " Purity is a share, between 0 and 1."),
    (0.9, " You used another number of top tokens: take exactly the top 20."),
    (0.9009, " You used another number of top tokens: take exactly the top 20."), (0.9011, ""),
    (0.6, " You used another number of top tokens: take exactly the top 20."), (0.5989, ""),
    (0.7, " You took the tokens where the feature is smallest: take the largest (topk, not the bottom)."),
    (0.6991, " You took the tokens where the feature is smallest: take the largest (topk, not the bottom)."),
    (0.7011, ""),
    (0.25, " That is the share of another label, not of the most common one."),
    (0.2509, " That is the share of another label, not of the most common one."), (0.2489, ""),
    (1.0, ""), (0.0, ""), (0.1, ""),
])
def test_each_named_mistake_is_recognised_within_a_thousandth_and_not_beyond(answer, hint):
    verdict = _purity(answer)
    assert verdict.status == "failed" and verdict.message == _wrong(answer, hint)


def test_with_top_10_the_other_number_of_tokens_is_50():
    assert _purity(0.9, top=10).message == "0.90 of the feature's top 10 tokens share one label."
    assert _purity(0.6, top=10).message == _wrong(0.6, " You used another number of top tokens: take exactly the "
                                                       "top 10.", top=10)
    assert _purity(0.65, top=10).message == _wrong(0.65, "", top=10)  # the top 20 is not "another number" here
    assert _purity(9, top=10).message == _wrong(9, " That is a count: divide by 10.", top=10)
    assert _purity(1.0, top=10).message == _wrong(1.0, " You took the tokens where the feature is smallest: take "
                                                       "the largest (topk, not the bottom).", top=10)


def test_a_unit_whose_top_tokens_are_all_unlabelled_has_purity_0():
    scores, labels = torch.arange(30, 0, -1).float(), torch.tensor([-1] * 20 + [0] * 10)
    assert lesson.check_feature_purity(0.0, scores, labels).passed
    assert lesson.check_feature_purity(0.3, scores, labels).message == _wrong(0.3)


@pytest.mark.parametrize("answer, kind", [("0.65", "str"), (True, "bool"), (None, None), ([0.65], "list"),
                                          (torch.tensor([0.6, 0.7]), "Tensor")])
def test_purity_answers_that_are_not_one_number_are_refused_exactly(answer, kind):
    verdict = _purity(answer)
    if kind is None:
        assert verdict.status == "unanswered" and verdict.message == (
            "replace the `...` with your answer. Hint: take the 20 tokens where the feature is largest, count "
            "their labels, divide the most common count by 20")
    else:
        assert verdict.status == "failed" and verdict.message == f"give one number between 0 and 1; got {kind}"


def test_the_purity_hint_names_the_number_of_tokens():
    assert _purity(..., top=10).message == (
        "replace the `...` with your answer. Hint: take the 10 tokens where the feature is largest, count their "
        "labels, divide the most common count by 10")


def test_purity_of_a_unit_with_fewer_tokens_than_top():
    scores, labels = torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 1, 0])
    assert lesson.check_feature_purity(2 / 3, scores, labels).passed  # the top 20 of 3 tokens are all 3
    verdict = lesson.check_feature_purity(0.3, scores, labels)
    assert verdict.message == _wrong(0.3, "")


# --- 04.3 DiffMeans, on random activations -------------------------------------------------------------

DIFF = "04.3 DiffMeans"


@pytest.fixture(scope="module")
def dm_case():
    """``acts[6, 10]`` (positive and negative, entries of size ~1) and a mask of 3 tokens."""
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(6, 10, generator=g) * 2 + 0.5
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[1, 4, 7]] = True
    truth = acts[:, mask].mean(1) - acts[:, ~mask].mean(1)
    return acts, mask, truth


def _dm(answer, case):
    acts, mask, _ = case
    verdict = lesson.check_diff_means(answer, acts, mask)
    assert verdict.exercise == DIFF
    return verdict


def _off(x, gap, atol=1e-4, rtol=1e-3):
    """``x`` moved by ``gap`` times ``torch.allclose``'s tolerance (``atol + rtol * |x|``) in every entry."""
    return x + gap * (atol + rtol * x.abs())


def _dm_failed(v, truth, hint=""):
    return (f"your vector differs from the DiffMeans direction (largest gap {float((v - truth).abs().max()):.3f})."
            f"{hint}")


def test_diff_means_within_its_tolerance_passes_with_the_top_neuron(dm_case):
    acts, mask, truth = dm_case
    top = int(truth.argmax())
    for answer in (truth, _off(truth, 0.9), _off(truth, -0.9), truth.tolist(), truth.double()):
        verdict = _dm(answer, dm_case)
        assert verdict.passed and verdict.message == (
            f"the concept's mean minus the others' mean; its largest entry is neuron {top} ({float(truth.max()):+.2f}).")


def test_diff_means_just_outside_its_tolerance_fails_with_the_gap(dm_case):
    acts, mask, truth = dm_case
    for gap in (1.1, -1.1):
        v = _off(truth, gap)
        assert _dm(v, dm_case).message == _dm_failed(v, truth)
    v = truth.clone()
    v[0] += 1e-4 + 1e-3 * abs(float(truth[0])) + 2e-5  # one entry out is enough
    assert _dm(v, dm_case).message == _dm_failed(v, truth)


@pytest.mark.parametrize("which, hint", [
    ("flipped", " The sign is flipped: concept minus others."),
    ("concept", " That is the concept's mean alone: subtract the mean over the other tokens."),
    ("all", " You subtracted the mean over all tokens; subtract the mean over the tokens outside the mask."),
])
def test_each_named_slip_is_recognised_within_its_tolerance_and_not_beyond(dm_case, which, hint):
    acts, mask, truth = dm_case
    slip = {"flipped": -truth, "concept": acts[:, mask].mean(1),
            "all": acts[:, mask].mean(1) - acts.mean(1)}[which]
    for gap in (0.0, 0.9, -0.9):
        v = _off(slip, gap)
        assert _dm(v, dm_case).message == _dm_failed(v, truth, hint), gap
    for gap in (1.1, -1.1):
        v = _off(slip, gap)
        assert _dm(v, dm_case).message == _dm_failed(v, truth), gap


def test_sums_are_recognised_within_a_thousandth_and_not_beyond(dm_case):
    acts, mask, truth = dm_case
    sums = acts[:, mask].sum(1) - acts[:, ~mask].sum(1)
    hint = " You subtracted sums; subtract means (the two groups have different sizes)."
    for gap in (0.0, 0.9, -0.9):
        v = _off(sums, gap, atol=1e-3)
        assert _dm(v, dm_case).message == _dm_failed(v, truth, hint)
    v = _off(sums, 1.1, atol=1e-3)
    assert _dm(v, dm_case).message == _dm_failed(v, truth)


def test_a_normalised_direction_is_recognised_and_a_slightly_turned_one_is_not(dm_case):
    acts, mask, truth = dm_case
    unit = truth / truth.norm()
    hint = " Right direction, wrong length: do not normalise it (the check compares the raw difference)."
    nudged = unit.clone()
    nudged[0] += 5e-5  # turned by less than the 1e-4 the check allows on unit vectors
    for v in (unit, unit * 3, unit * 0.25, nudged):  # shorter than 1 too: the norm is divided out, not clamped
        assert _dm(v, dm_case).message == _dm_failed(v, truth, hint)
    turned = unit.clone()
    turned[0] += 3e-4
    assert _dm(turned, dm_case).message == _dm_failed(turned, truth)


@pytest.mark.parametrize("answer, message", [
    ("abc", "give a vector of shape [d_mlp=6] (one number per neuron); got str"),
    (object(), "give a vector of shape [d_mlp=6] (one number per neuron); got object"),
    (torch.zeros(10), "give a vector of shape [d_mlp=6] (one number per neuron); got [10]. You averaged over the "
                      "neuron axis: average over the token axis (dim 1) of acts[d_mlp, n_tokens]"),
    (torch.tensor(1.0), "give a vector of shape [d_mlp=6] (one number per neuron); got []. You reduced to one "
                        "number: keep one entry per neuron (average over tokens only)"),
    (torch.zeros(7), "give a vector of shape [d_mlp=6] (one number per neuron); got [7]"),
    (torch.zeros(6, 10), "give a vector of shape [d_mlp=6] (one number per neuron); got [6, 10]"),
    (torch.zeros(1, 6), "give a vector of shape [d_mlp=6] (one number per neuron); got [1, 6]"),
], ids=["str", "object", "tokens", "scalar", "seven", "matrix", "row"])
def test_diff_means_of_the_wrong_shape_are_refused_exactly(dm_case, answer, message):
    verdict = _dm(answer, dm_case)
    assert verdict.status == "failed" and verdict.message == message


def test_diff_means_placeholder_hint_is_exact(dm_case):
    assert _dm(..., dm_case).message == (
        "replace the `...` with your answer. Hint: acts[:, mask].mean(1) minus the mean over the other tokens")


# --- 04.1 decode a neuron ---------------------------------------------------------------------------------

DECODE = "04.1 decode a neuron"
HINT_DECODE = ("multiply model.adapter.W_out(layer)[neuron] by model.adapter.final_norm.weight, then by "
               "model.adapter.W_U, and take the top k")


def decode(s, fn, cases=((0, 0),), k=8):
    verdict = lesson.check_decoded_tokens(fn, s.model, list(cases), k)
    assert verdict.exercise == DECODE
    return verdict


def _top(s, layer, neuron, k=8, suppressed=False):
    from kit.analysis import decode_neurons

    return decode_neurons(s.model, k=k, layers=[layer]).tokens(0, neuron, suppressed=suppressed)


def _decode_failed(s, layer, neuron, texts, hint="", k=8):
    return (f"layer {layer}, neuron {neuron}: you gave {texts}, which are not its top {k} promoted tokens.{hint} Its "
            "output row is model.adapter.W_out(layer)[neuron] ([d_model]); read it through the final norm's weight "
            "and model.adapter.W_U ([d_model, vocab]).")


def test_decoding_passes_with_texts_ids_or_a_tensor_of_ids(s):
    for fn in (lambda l, n, k: _top(s, l, n, k), lambda l, n, k: _id_list(s, l, n, k),
               lambda l, n, k: torch.tensor(_id_list(s, l, n, k))):
        verdict = decode(s, fn, [(0, 3), (1, 7)])
        assert verdict.passed and verdict.message == (
            f"right on 2 neurons, e.g. layer 0, neuron 3 promotes {_top(s, 0, 3)[:4]}.")


def _id_list(s, layer, neuron, k):
    w = s.model.adapter.W_out(layer)[neuron].detach().float() * s.model.adapter.final_norm.weight.detach().float()
    return (w @ s.model.adapter.W_U.detach().float()).topk(k).indices.tolist()


def test_the_check_asks_for_k_tokens_of_each_case_in_turn(s):
    calls = []

    def fn(layer, neuron, k):
        calls.append((layer, neuron, k))
        return _top(s, layer, neuron, k) if len(calls) == 1 else _top(s, layer, neuron, k)[::-1]

    verdict = decode(s, fn, [(0, 3), (1, 7), (2, 1)], k=5)
    assert calls == [(0, 3, 5), (1, 7, 5)]
    assert verdict.message == _decode_failed(s, 1, 7, _top(s, 1, 7, 5)[::-1],
                                             " Right tokens, wrong order: the most promoted token comes first.", k=5)


@pytest.mark.parametrize("slip, hint", [
    ("suppressed", " Those are the most suppressed tokens: take the largest logits, not the smallest."),
    ("shuffled", " Right tokens, wrong order: the most promoted token comes first."),
    ("one_off", ""), ("next_neuron", ""),
])
def test_each_decoding_slip_gets_its_hint_and_the_whole_message(s, slip, hint):
    top = _top(s, 0, 3)
    texts = {"suppressed": _top(s, 0, 3, suppressed=True), "shuffled": top[1:] + top[:1],
             "one_off": top[:-1] + _top(s, 0, 3, k=9)[-1:], "next_neuron": _top(s, 0, 4)}[slip]
    assert texts != top
    assert decode(s, lambda l, n, k: texts, [(0, 3)]).message == _decode_failed(s, 0, 3, texts, hint)


@pytest.mark.parametrize("got", ["abcdefgh", "tokens", ["a"] * 7, ["a"] * 9, None, 8, {"a": 1}])
def test_an_answer_that_is_not_a_list_of_k_tokens_is_refused_exactly(s, got):
    verdict = decode(s, lambda l, n, k: got, [(2, 5)])
    assert verdict.status == "failed" and verdict.message == (
        f"return a list of 8 tokens (texts or ids); for layer 2, neuron 5 you returned {type(got).__name__} "
        f"{str(got)[:80]}")


def test_a_long_wrong_answer_is_cut_to_80_characters(s):
    got = ["token"] * 30
    assert decode(s, lambda l, n, k: got).message == (
        f"return a list of 8 tokens (texts or ids); for layer 0, neuron 0 you returned list {str(got)[:80]}")


def test_a_decoding_stub_and_the_placeholder_get_the_hint_exactly(s):
    def stub(layer, neuron, k):
        raise NotImplementedError

    for fn in (stub, ..., None):
        verdict = decode(s, fn)
        assert verdict.status == "unanswered" and verdict.message == (
            "write the function's body (it still raises NotImplementedError). Hint: " + HINT_DECODE)


def test_the_passed_message_names_the_first_case_of_its_own_layer_and_k(s):
    right = lambda l, n, k: _top(s, l, n, k)  # noqa: E731
    assert decode(s, right, [(1, 7), (0, 3)]).message == (
        f"right on 2 neurons, e.g. layer 1, neuron 7 promotes {_top(s, 1, 7)[:4]}.")
    assert _top(s, 1, 7)[:4] != _top(s, 0, 7)[:4]
    assert decode(s, right, [(2, 5)], k=3).message == f"right on 1 neurons, e.g. layer 2, neuron 5 promotes {_top(s, 2, 5, 3)}."


def test_leaving_out_the_final_norm_weight_gets_the_whole_hint(s):
    def raw(layer, neuron, k):
        w = s.model.adapter.W_out(layer)[neuron].detach().float()
        return s.model.to_str_tokens((w @ s.model.adapter.W_U.detach().float()).topk(k).indices)

    case = next((layer, n) for layer in range(s.model.n_layers) for n in range(20)
                if raw(layer, n, 8) != _top(s, layer, n))
    assert decode(s, raw, [case]).message == _decode_failed(
        s, *case, raw(*case, 8), " You left out the final norm's weight: multiply W_out[neuron] by "
                                 "model.adapter.final_norm.weight.")
