"""Lesson 05's exercises: every solution passes its check; common wrong answers fail with a useful message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kit.lessons.circuit import check_logit_diff, check_sender, check_top_head, ioi_batch

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "05_find_a_circuit.py"
ZOO_MODEL = "ioi-3l"  # the conftest `model` fixture loads it


@pytest.fixture(scope="module")
def batch():
    return ioi_batch(32)


def stub(*args):
    raise NotImplementedError


# --- 5.1 ---------------------------------------------------------------------------------------------

def test_logit_diff_solution_passes(sol):
    assert check_logit_diff(sol.logit_diff)


def test_logit_diff_open_exercise_is_unanswered_not_failed():
    assert check_logit_diff(stub).status == "unanswered"
    assert check_logit_diff(...).status == "unanswered"


@pytest.mark.parametrize("wrong,says", [
    (lambda lg, io, s: lg[torch.arange(len(io)), -1, s] - lg[torch.arange(len(io)), -1, io], "sign is reversed"),
    (lambda lg, io, s: lg[torch.arange(len(io)), 0, io] - lg[torch.arange(len(io)), 0, s], "first position"),
    (lambda lg, io, s: (lambda p: p[torch.arange(len(io)), io] - p[torch.arange(len(io)), s])(lg[:, -1].softmax(-1)),
     "probabilities"),
    (lambda lg, io, s: (lg[torch.arange(len(io)), -1, io] - lg[torch.arange(len(io)), -1, s]).mean(), "one number"),
    (lambda lg, io, s: lg[:, -1, io] - lg[:, -1, s], "[batch, batch]"),
    (lambda lg, io, s: lg[torch.arange(len(io)), -2, io] - lg[torch.arange(len(io)), -2, s], "differ"),
    (lambda lg, io, s: 1 / 0, "ZeroDivisionError"),
])
def test_logit_diff_wrong_answers_fail_with_a_reason(wrong, says):
    verdict = check_logit_diff(wrong)
    assert verdict.status == "failed" and says in verdict.message


# --- 5.2 ---------------------------------------------------------------------------------------------

def test_top_head_solution_passes(sol, model, batch):
    verdict = check_top_head(sol.top_head, model, batch)
    assert verdict and "L1H1" in verdict.message
    assert check_top_head("l1 h1", model, batch)  # any spelling of the head


@pytest.mark.parametrize("wrong,says", [
    ((2, 2), "direct"),  # the largest direct effect, not the largest patching effect
    ((0, 3), "restores"),  # the head whose ablation hurts although patching it restores nothing
    ((2, 3), "restores"),
    ((0, 1), "restores"),
    ((7, 0), "not a head"),
    ("H1L1", "not a head"),
])
def test_top_head_wrong_answers_fail(model, batch, wrong, says):
    verdict = check_top_head(wrong, model, batch)
    assert verdict.status == "failed" and says in verdict.message


def test_top_head_unanswered(model, batch):
    assert check_top_head(..., model, batch).status == "unanswered"


# --- 5.3 ---------------------------------------------------------------------------------------------

def test_sender_solution_passes(sol, model, batch):
    verdict = check_sender(sol.sender, model, (2, 2), batch)
    assert verdict and "L1H1" in verdict.message


@pytest.mark.parametrize("wrong,says", [
    ((2, 2), "not below"),  # the receiver itself
    ((2, 3), "not below"),  # same layer
    ((0, 1), "direct path"),  # matters directly (-0.10), barely through L2H2
    ((0, 3), "less than"),
    ((1, 3), "less than"),
])
def test_sender_wrong_answers_fail(model, batch, wrong, says):
    verdict = check_sender(wrong, model, (2, 2), batch)
    assert verdict.status == "failed" and says in verdict.message


def test_checks_compute_the_truth_from_the_model_they_are_given(tiny_models):
    """On another model the same answer is judged by that model's own measurements, not a stored one."""
    m = tiny_models["gpt2"]
    assert check_top_head((9, 9), m).status == "failed"
