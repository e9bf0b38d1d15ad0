"""Exercise 2.2's check (``kit.lessons.induction``) against near misses: answers off by a little, on the
layer that matters, are refused, and the message shows where the scores differ at a precision that
shows it (issue 16: a tolerance loosened 500x went unnoticed; issue 17: two identical rounded lists)."""

from __future__ import annotations

import re

import pytest
import torch

from kit.lessons.induction import OFFSET, SCORE_ATOL, check_induction_score, induction_score_of

ZOO_MODEL = "induction-2l"  # the conftest `model` fixture loads it


def right(pattern, half_len):
    return induction_score_of(pattern, half_len)


def test_the_right_answer_passes_and_the_tolerance_is_tight(model):
    assert check_induction_score(right, model)
    assert SCORE_ATOL <= 1e-4


@pytest.mark.parametrize("offset", [2e-3, 5e-4])
def test_a_score_off_by_a_little_is_refused_with_digits_that_show_it(model, offset):
    verdict = check_induction_score(lambda p, h: right(p, h) + offset, model)
    assert not verdict
    lists = re.findall(r"\[([0-9., ]+)\]", verdict.message)
    assert len(lists) >= 2 and lists[0] != lists[1], verdict.message  # the rounded lists differ where the scores do


def test_an_off_by_one_query_range_is_reported_on_the_induction_layer(model):
    def one_early(pattern, half_len):  # the second copy starting one position too early
        q = torch.arange(OFFSET + half_len - 1, OFFSET + 2 * half_len - 1)
        return pattern[:, :, q, q - half_len + 1].mean((0, 2))

    verdict = check_induction_score(one_early, model)
    assert not verdict and verdict.message.startswith("layer 1,")  # the layer with the induction heads
    assert "one query too early" in verdict.message
    lists = re.findall(r"\[([0-9., ]+)\]", verdict.message)
    assert lists[0] != lists[1]


def test_a_wrong_answer_only_on_the_last_layer_is_caught(model):
    def wrong_late(pattern, half_len):
        s = right(pattern, half_len)
        return s + 1e-3 if float(s.max()) > 0.3 else s  # exact on layer 0, off on the induction layer

    verdict = check_induction_score(wrong_late, model)
    assert not verdict and verdict.message.startswith("layer 1,")
