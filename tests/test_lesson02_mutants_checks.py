"""Lesson 02's checks 2.1 and 2.2 (``kit.lessons.induction``) against mutation survivors (issue 16): the
tolerance from both sides, the layer a verdict names (the worst one, not the first), both sequence lengths,
both off-by-one query ranges, the digits that show a small gap, and the exact messages."""

from __future__ import annotations

import re

import pytest
import torch

from kit.lessons.induction import (
    EX_IND, EX_PREV, HINT_IND, HINT_PREV, OFFSET, SCORE_ATOL, check_induction_score, check_prev_token_score,
    induction_score_of, prev_token_score_of,
)


ZOO_MODEL = "induction-2l"  # the `model` fixture of tests/conftest.py


def stub(*args):
    raise NotImplementedError


def right_prev(pattern):
    return prev_token_score_of(pattern)


def right_ind(pattern, half_len):
    return induction_score_of(pattern, half_len)


# --- 2.1 ---------------------------------------------------------------------------------------------

def test_prev_token_placeholder_and_stub_are_to_do_with_the_hint(model):
    for answer in (..., stub):
        verdict = check_prev_token_score(answer, model)
        assert verdict.status == "unanswered" and verdict.exercise == EX_PREV and HINT_PREV in verdict.message


def test_prev_token_right_answer_passes_with_its_message(model):
    verdict = check_prev_token_score(right_prev, model)
    assert verdict.passed and verdict.message == "your previous-token scores match on every layer"


@pytest.mark.parametrize("factor, ok", [(0.5, True), (1.5, False)])
def test_prev_token_tolerance_is_score_atol_from_both_sides(model, factor, ok):
    assert SCORE_ATOL == 1e-4  # float32 means of a few hundred probabilities agree to ~1e-7
    verdict = check_prev_token_score(lambda p: right_prev(p) + factor * SCORE_ATOL, model)
    assert verdict.passed is ok
    if not ok:
        assert verdict.message.startswith("layer 0: previous-token scores: your scores [")


def test_prev_token_wrong_only_on_the_last_layer_names_that_layer(model):
    def late(pattern):
        s = right_prev(pattern)
        return s + 1e-2 if float(s.max()) > 0.9 else s  # layer 0 holds the previous-token head (0.95)

    tr = model.trace(torch.zeros(1, 4, dtype=torch.long), capture=["pattern"])
    assert model.n_layers == 2 and tr is not None
    verdict = check_prev_token_score(late, model)
    assert not verdict and verdict.exercise == EX_PREV and verdict.message.startswith("layer 0: ")


def test_prev_token_wrong_type_and_shape_messages_are_exact(model):
    verdict = check_prev_token_score(lambda p: right_prev(p).tolist(), model)
    assert verdict.exercise == EX_PREV and verdict.message == (
        "layer 0: your function returned list; return a tensor score[head] with one previous-token score per head")
    verdict = check_prev_token_score(lambda p: right_prev(p)[None], model)
    assert verdict.message == (
        "layer 0: your scores have shape (1, 4); expected (4,), one per head: average over the batch and over the "
        "queries (dimensions 0 and 2 of pattern[batch, head, query, key])")


def test_prev_token_diagonal_slips_are_named_exactly(model):
    verdict = check_prev_token_score(lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean((0, 2)), model)
    assert verdict.exercise == EX_PREV and verdict.message == (
        "you read the diagonal above the main one, key i + 1: a causal model never attends to the future, so it "
        "is all zeros. The previous token is key i - 1 (offset=-1)")
    verdict = check_prev_token_score(lambda p: p.diagonal(dim1=-2, dim2=-1).mean((0, 2)), model)
    assert verdict.exercise == EX_PREV and verdict.message == (
        "you read the main diagonal: how much each token attends to itself. The previous token is key i - 1 "
        "(offset=-1)")


def test_prev_token_a_function_that_edits_the_pattern_does_not_change_the_truth(model):
    def in_place(pattern):
        out = right_prev(pattern)
        pattern.zero_()  # a learner's in-place edit must not move the expected scores
        return out

    assert check_prev_token_score(in_place, model)


# --- 2.2 ---------------------------------------------------------------------------------------------

def test_induction_placeholder_and_stub_are_to_do_with_the_hint(model):
    for answer in (..., stub):
        verdict = check_induction_score(answer, model)
        assert verdict.status == "unanswered" and verdict.exercise == EX_IND and HINT_IND in verdict.message


def test_induction_right_answer_passes_with_its_message(model):
    verdict = check_induction_score(right_ind, model)
    assert verdict.passed and verdict.exercise == EX_IND
    assert verdict.message == "your induction scores match on every layer and for two sequence lengths"


@pytest.mark.parametrize("factor, ok", [(0.5, True), (1.5, False)])
def test_induction_tolerance_is_score_atol_from_both_sides(model, factor, ok):
    verdict = check_induction_score(lambda p, h: right_ind(p, h) + factor * SCORE_ATOL, model)
    assert verdict.passed is ok


def test_induction_a_near_miss_on_one_head_names_that_head_with_four_digits(model):
    def one_head(pattern, half_len):
        s = right_ind(pattern, half_len).clone()
        s[2] += 5e-4
        return s

    verdict = check_induction_score(one_head, model)
    assert not verdict and verdict.exercise == EX_IND
    assert re.match(r"layer [01], half_len 16: induction scores: your scores \[", verdict.message)
    heads = re.findall(r"head (\d): yours (\d\.\d{4}), expected (\d\.\d{4})", verdict.message)
    assert [h for h, _, _ in heads] == ["2"], verdict.message  # only the head that differs is listed
    _, yours, expected = heads[0]
    assert abs(float(yours) - float(expected) - 5e-4) < 1.5e-4


def test_induction_the_layer_named_is_the_one_with_the_largest_gap(model):
    def both(pattern, half_len):
        s = right_ind(pattern, half_len)
        return s + (1e-3 if float(s.max()) > 0.5 else 1e-2)  # layer 1 (induction heads) off by less

    verdict = check_induction_score(both, model)
    assert not verdict and verdict.message.startswith("layer 0, half_len 16: ")
    verdict = check_induction_score(lambda p, h: right_ind(p, h) + (1e-2 if float(right_ind(p, h).max()) > 0.5
                                                                    else 1e-3), model)
    assert not verdict and verdict.message.startswith("layer 1, half_len 16: ")


def test_induction_right_for_16_wrong_for_9_names_half_len_9(model):
    verdict = check_induction_score(lambda p, h: right_ind(p, h) + (0.0 if h == 16 else 1e-3), model)
    assert not verdict and re.match(r"layer [01], half_len 9: induction scores: ", verdict.message)


@pytest.mark.parametrize("shift, words", [(-1, "one query too early"), (1, "one query too late")])
def test_induction_off_by_one_query_ranges_are_named(model, shift, words):
    def shifted(pattern, half_len):
        q = torch.arange(OFFSET + half_len, OFFSET + 2 * half_len) + shift
        q = q[(q - half_len + 1 >= 0) & (q < pattern.shape[2])]
        return pattern[:, :, q, q - half_len + 1].mean((0, 2))

    verdict = check_induction_score(shifted, model)
    assert not verdict and verdict.message.startswith("layer 1, half_len 16: ")
    assert verdict.message.endswith(f". Your query range starts {words}: the second copy holds positions 17 .. 32 "
                                    f"(<|bos|> is position 0)")


def test_induction_same_token_message_is_exact(model):
    def same_token(pattern, half_len):
        q = torch.arange(OFFSET + half_len, OFFSET + 2 * half_len)
        return pattern[:, :, q, q - half_len].mean((0, 2))

    verdict = check_induction_score(same_token, model)
    assert verdict.exercise == EX_IND and verdict.message == (
        "you measured attention to the first occurrence of the same token (key i - half_len); an induction head "
        "attends to the token *after* it (key i - half_len + 1), whose value is the prediction")


def test_induction_wrong_type_and_shape_messages_name_layer_0_and_half_len_16(model):
    verdict = check_induction_score(lambda p, h: 0.8, model)
    assert verdict.exercise == EX_IND and verdict.message == (
        "layer 0, half_len 16: your function returned float; return a tensor score[head] with one induction score "
        "per head")
    verdict = check_induction_score(lambda p, h: right_ind(p, h)[:2], model)
    assert verdict.message.startswith("layer 0, half_len 16: your scores have shape (2,); expected (4,), one per head")


@pytest.mark.parametrize("gap, digits", [(0.1, 2), (1e-2, 3), (4e-3, 4), (5.5e-4, 4), (2e-4, 5)])
def test_induction_differences_are_shown_with_just_enough_digits(model, gap, digits):
    # the rounded lists must differ where the scores do: 2 digits for gaps of 0.05 or more, one more per
    # decade below that
    def two_heads(pattern, half_len):
        s = right_ind(pattern, half_len).clone()
        s[0] += gap
        s[2] -= gap
        return s

    verdict = check_induction_score(two_heads, model)
    m = re.fullmatch(r"layer [01], half_len 16: induction scores: your scores \[(.*)\] differ from the expected "
                     r"\[(.*)\] \((.*)\)", verdict.message)
    assert m, verdict.message
    for listed in (m.group(1), m.group(2)):
        assert all(re.fullmatch(rf"-?\d\.\d{{{digits}}}", x) for x in listed.split(", ")), verdict.message
    assert re.fullmatch(rf"head 0: yours -?\d\.\d{{{digits}}}, expected -?\d\.\d{{{digits}}}, "
                        rf"head 2: yours -?\d\.\d{{{digits}}}, expected -?\d\.\d{{{digits}}}", m.group(3)), verdict.message


def test_induction_half_len_read_from_the_pattern_passes(model):
    # a learner may take half_len from the sequence (<bos> + 2 * half_len tokens): the check must hand it
    # sequences of the half_len it names, for both lengths
    def from_shape(pattern, half_len):
        return induction_score_of(pattern, (pattern.shape[-1] - OFFSET) // 2)

    assert check_induction_score(from_shape, model)
