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
