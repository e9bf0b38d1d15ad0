"""Lesson 02's exercises: every solution passes its check; plausible wrong answers fail with a useful message."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.lessons.induction import (
    ablation_table, check_ablation_prediction, check_heads, check_induction_score, check_prev_token_score,
    parse_head, repeated_ids,
)

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "02_induction_heads.py"
ZOO_MODEL = "induction-2l"  # the conftest `model` fixture loads it



def stub(*args):
    raise NotImplementedError


# --- 2.1 ---------------------------------------------------------------------------------------------

def test_prev_token_solution_passes(sol, model):
    assert check_prev_token_score(sol.prev_token_score, model)


def test_prev_token_stub_is_to_do(model):
    verdict = check_prev_token_score(stub, model)
    assert verdict.status == "unanswered" and "diagonal" in verdict.message


def test_prev_token_upper_diagonal_fails_naming_the_future(model):
    verdict = check_prev_token_score(lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean((0, 2)), model)
    assert not verdict and "offset=-1" in verdict.message and "future" in verdict.message


def test_prev_token_main_diagonal_fails_naming_itself(model):
    verdict = check_prev_token_score(lambda p: p.diagonal(dim1=-2, dim2=-1).mean((0, 2)), model)
    assert not verdict and "itself" in verdict.message


def test_prev_token_not_averaged_over_the_batch_fails_with_the_shape(model):
    verdict = check_prev_token_score(lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(2), model)
    assert not verdict and "shape" in verdict.message and "batch" in verdict.message


def test_prev_token_wrong_type_fails_readably(model):
    verdict = check_prev_token_score(lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2)).tolist(), model)
    assert not verdict and "list" in verdict.message and "tensor" in verdict.message


# --- 2.2 ---------------------------------------------------------------------------------------------

def test_induction_solution_passes(sol, model):
    assert check_induction_score(sol.induction_score, model)


def test_induction_same_token_instead_of_next_fails_naming_the_offset(model):
    def same_token(pattern, half_len):
        q = torch.arange(1 + half_len, 1 + 2 * half_len)
        return pattern[:, :, q, q - half_len].mean((0, 2))

    verdict = check_induction_score(same_token, model)
    assert not verdict and "first occurrence of the same token" in verdict.message and "+ 1" in verdict.message


def test_induction_hard_coded_length_fails(sol, model):
    verdict = check_induction_score(lambda pattern, half_len: sol.induction_score(pattern, 16), model)
    assert not verdict and "half_len 9" in verdict.message


def test_induction_forgetting_the_bos_offset_fails(model):
    def no_bos(pattern, half_len):  # second copy taken as positions T .. 2T - 1
        q = torch.arange(half_len, 2 * half_len)
        return pattern[:, :, q, q - half_len + 1].mean((0, 2))

    verdict = check_induction_score(no_bos, model)
    assert not verdict and "differ" in verdict.message


def test_induction_stub_and_wrong_type(model):
    assert check_induction_score(stub, model).status == "unanswered"
    verdict = check_induction_score(lambda pattern, half_len: 0.8, model)
    assert not verdict and "float" in verdict.message


# --- 2.3 ---------------------------------------------------------------------------------------------

def test_heads_solution_passes(sol, model):
    assert check_heads(sol.prev_token_head, sol.induction_heads, model)


def test_heads_accept_strings_and_any_order(sol, model):
    names = [f"L{l}H{h}" for l, h in reversed(sol.induction_heads)]
    assert check_heads("L{}H{}".format(*sol.prev_token_head), names, model)


def test_heads_an_induction_head_as_prev_token_head_fails(sol, model):
    verdict = check_heads(sol.induction_heads[0], sol.induction_heads, model)
    assert not verdict and "previous-token score" in verdict.message and "sub-diagonal" in verdict.message


def test_heads_missing_or_extra_induction_heads_fail(sol, model):
    verdict = check_heads(sol.prev_token_head, sol.induction_heads[:-1], model)
    assert not verdict and "missing" in verdict.message
    verdict = check_heads(sol.prev_token_head, sol.induction_heads + [sol.prev_token_head], model)
    assert not verdict and "not an induction head" in verdict.message


def test_heads_malformed_answers_fail_with_the_format(sol, model):
    for bad in ((0, 9), "head zero", 0):
        verdict = check_heads(bad, sol.induction_heads, model)
        assert not verdict and "(layer, head)" in verdict.message
    verdict = check_heads(sol.prev_token_head, 4, model)
    assert not verdict and "list" in verdict.message
    assert check_heads(..., ..., model).status == "unanswered"


def test_parse_head_spellings():
    assert parse_head((1, 2), 2, 4) == (1, 2) and parse_head("l1h2", 2, 4) == (1, 2) and parse_head([0, 3], 2, 4) == (0, 3)
    assert parse_head((True, 0), 2, 4) is None and parse_head((2, 0), 2, 4) is None and parse_head("L1", 2, 4) is None


# --- 2.4 ---------------------------------------------------------------------------------------------

def test_ablation_solution_passes(sol, model):
    assert check_ablation_prediction(sol.biggest_ablation, model)


def test_ablation_an_induction_head_fails_with_a_hint_about_backups(sol, model):
    wrong = next(h for h in sol.induction_heads if h != sol.biggest_ablation)
    verdict = check_ablation_prediction(wrong, model)
    assert not verdict and "nats" in verdict.message and "share each job" in verdict.message


def test_ablation_answer_is_the_previous_token_head_and_the_runner_up_fails(sol, model):
    # the shipped model has one previous-token head and four induction heads: the lone head is the answer
    assert sol.biggest_ablation == sol.prev_token_head == (0, 0)
    table = ablation_table(model, repeated_ids(model, n_seqs=32, half_len=16), 16)
    runner_up = sorted(table, key=table.get)[-2]  # the second-largest rise (L0H1, which helps L0H0)
    verdict = check_ablation_prediction(runner_up, model)
    assert not verdict and "nats" in verdict.message


def test_ablation_malformed_answer_fails(model):
    verdict = check_ablation_prediction("the previous-token head", model)
    assert not verdict and "(layer, head)" in verdict.message
    assert check_ablation_prediction(None, model).status == "unanswered"
