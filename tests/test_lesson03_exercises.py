"""Lesson 03's exercise checks: every solution passes, plausible wrong answers fail and say why."""

from __future__ import annotations

import functools
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import kit
from kit.analysis import causal_trace
from kit.lessons import factual as lesson
from kit.models import ZOO_DIR
from kit.train import load_world

SOLUTIONS = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "03_factual_recall.py"
pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")


@functools.lru_cache(maxsize=1)  # shared by the exercise and claim tests: computed once
def lesson03_setup() -> SimpleNamespace:
    """The lesson's state before its exercises: model, world, facts, the first fact and its causal traces."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = kit.load("facts-4l", device="cpu")
    world = load_world()
    facts = lesson.lesson_facts(model, world, n=24)
    fact = facts[0]
    traces = {kind: causal_trace(model, fact.text, fact.subject, answer=fact.answer, kind=kind, samples=10, seed=0)
              for kind in ("resid", "mlp", "attn")}
    # the exercises' instances with no student set: the lesson's own (the variants are tested in
    # tests/test_lesson_variants_on_checks.py)
    return SimpleNamespace(model=model, world=world, facts=facts, traces=traces, prompt=fact.text,
                           subject=fact.subject, answer=fact.answer, facts_2=list(facts), ex=fact,
                           ex_trace=traces["resid"])


@pytest.fixture(scope="module")
def s():
    return lesson03_setup()


@pytest.fixture(scope="module")
def solution(s):
    return runpy.run_path(str(SOLUTIONS), init_globals=vars(s).copy())


def test_every_solution_passes_its_check(s, solution):
    m, ex = s.model, (s.prompt, s.subject, s.answer)
    verdicts = [
        lesson.check_subject_tokens(solution["subject_tokens"], m, s.world),
        lesson.check_mover_head(solution["answer_2"], m, s.facts),
        lesson.check_subject_peak(solution["answer_3"], m, *ex),
        lesson.check_knockout_drop(solution["answer_4"], m, *ex),
    ]
    for v in verdicts:
        assert v.passed, v


def test_placeholders_are_to_do_not_failures(s):
    assert lesson.check_mover_head(..., s.model, s.facts).status == "unanswered"
    assert lesson.check_subject_peak(..., s.model, s.prompt, s.subject, s.answer).status == "unanswered"
    assert lesson.check_knockout_drop(..., s.model, s.prompt, s.subject, s.answer).status == "unanswered"

    def todo(prompt, subject):
        raise NotImplementedError

    assert lesson.check_subject_tokens(todo, s.model, s.world).status == "unanswered"


def test_subject_tokens_that_forget_bos_are_told_about_position_0(s, solution):
    def shifted(prompt, subject):
        return [i - 1 for i in solution["subject_tokens"](prompt, subject)]

    v = lesson.check_subject_tokens(shifted, s.model, s.world)
    assert not v and "<|bos|>" in v.message


def test_subject_tokens_common_slips_are_named(s, solution):
    def ids(prompt, subject):
        toks = s.model.tokenizer(prompt)["input_ids"]
        return [toks[i] for i in solution["subject_tokens"](prompt, subject)]

    def chars(prompt, subject):
        start = prompt.index(subject)
        return list(range(start, start + len(subject)))

    def first_only(prompt, subject):
        return solution["subject_tokens"](prompt, subject)[:1]

    def with_next(prompt, subject):
        pos = solution["subject_tokens"](prompt, subject)
        return pos + [pos[-1] + 1]

    for fn, words in ((ids, "token ids"), (chars, "character positions"), (first_only, "only part"),
                      (with_next, "outside the subject")):
        v = lesson.check_subject_tokens(fn, s.model, s.world)
        assert not v and words in v.message, (words, v.message)


def test_subject_tokens_of_the_wrong_type_are_refused(s):
    v = lesson.check_subject_tokens(lambda p, subj: subj, s.model, s.world)
    assert not v and "list of ints" in v.message


def test_a_learner_bug_is_reported_not_raised(s):
    v = lesson.check_subject_tokens(lambda p, subj: p.index("not there"), s.model, s.world)
    assert not v and "ValueError" in v.message


def test_a_weaker_head_is_not_the_mover(s, solution):
    assert solution["answer_2"] == "L1H3"
    layer, head = 1, 3
    other = ((layer + 1) % s.model.n_layers, head)
    v = lesson.check_mover_head(other, s.model, s.facts)
    assert not v and "another head puts" in v.message


def test_mover_head_is_written_as_in_every_lesson(s):
    for spelling in ("L1H3", "l1h3", "L1 H3", (1, 3), [1, 3], torch.tensor([1, 3])):
        assert lesson.check_mover_head(spelling, s.model, s.facts), spelling


def test_mover_head_answers_of_the_wrong_form_are_refused(s):
    for wrong in ("1,3", (9, 0), "L9H0", 1.3, (1.0, 3.0)):
        v = lesson.check_mover_head(wrong, s.model, s.facts)
        assert not v and "is not a head of this model" in v.message and "L<layer>H<head>" in v.message


def test_mover_head_common_slips_are_named(s):
    v = lesson.check_mover_head("L3H1", s.model, s.facts)  # (head, layer) swapped
    assert not v and "swapped" in v.message
    v = lesson.check_mover_head("L1H0", s.model, s.facts)  # the top head on the first prompt only: a near miss
    assert not v and "first prompt" in v.message and "1.00" in v.message and "0.98" in v.message
    v = lesson.check_mover_head("L2H3", s.model, s.facts)  # a head that looks at the subject, less
    assert not v and "another head puts 1.00" in v.message
    assert "L1H3" not in v.message  # a failed check does not give the answer away


def test_a_peak_outside_the_subject_is_refused(s):
    last = len(s.traces["resid"].tokens) - 1
    v = lesson.check_subject_peak((s.model.n_layers - 1, last), s.model, s.prompt, s.subject, s.answer)
    assert not v and "last token" in v.message and "trivially" in v.message
    v = lesson.check_subject_peak((0, min(s.traces["resid"].subject) - 1), s.model, s.prompt, s.subject, s.answer)
    assert not v and "not a subject token" in v.message


def test_the_right_layer_at_the_wrong_subject_position_is_refused(s, solution):
    # a near miss: the layer alone is right
    layer, pos = solution["answer_3"]
    other = next(p for p in s.traces["resid"].subject if p != pos)
    v = lesson.check_subject_peak((layer, other), s.model, s.prompt, s.subject, s.answer)
    assert not v and "The layer is right, the position is not" in v.message


def test_a_swapped_peak_is_told_the_order(s, solution):
    layer, pos = solution["answer_3"]
    v = lesson.check_subject_peak((pos, layer), s.model, s.prompt, s.subject, s.answer)
    assert not v and "layer first" in v.message


def test_a_weaker_subject_cell_is_not_the_peak(s, solution):
    layer, pos = solution["answer_3"]
    v = lesson.check_subject_peak(((layer + 1) % s.model.n_layers, pos), s.model, s.prompt, s.subject, s.answer)
    assert not v and "another subject cell" in v.message
    assert "two ints" in lesson.check_subject_peak(3.5, s.model, s.prompt, s.subject, s.answer).message


def test_knockout_answers_that_give_p_after_or_the_wrong_type_are_told_why(s, solution):
    ex = (s.prompt, s.subject, s.answer)
    p_before = float(s.traces["resid"].clean)
    v = lesson.check_knockout_drop(p_before - solution["answer_4"], s.model, *ex)
    assert not v and "after the knockout" in v.message
    v = lesson.check_knockout_drop(-solution["answer_4"], s.model, *ex)
    assert not v and "sign" in v.message
    assert "one number" in lesson.check_knockout_drop("0.9", s.model, *ex).message


def test_knockout_near_misses_and_the_ratio_are_refused(s, solution):
    ex = (s.prompt, s.subject, s.answer)
    drop = solution["answer_4"]
    assert lesson.check_knockout_drop(drop + 0.005, s.model, *ex)  # rounding to two decimals is fine
    for near in (drop + 0.03, drop - 0.03):
        v = lesson.check_knockout_drop(near, s.model, *ex)
        assert not v and "different amount" in v.message


def test_stub_functions_get_their_exercise_hint(s):
    def todo(prompt, subject):
        raise NotImplementedError

    v = lesson.check_subject_tokens(todo, s.model, s.world)
    assert v.status == "unanswered" and "NotImplementedError" in v.message and "offsets_mapping" in v.message
    assert "replace the `...`" not in v.message
