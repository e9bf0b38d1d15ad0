"""Lesson 03's exercise 3 (``check_subject_peak``: where the subject's information lives) against mutation
survivors (issue 16): every near miss around the peak (right layer, right position, neither, swapped), the
bounds of the grid from both sides, and the exact messages."""

from __future__ import annotations

import pytest

from kit.lessons import factual as lesson
from kit.models import ZOO_DIR
from tests.test_lesson03_exercises import lesson03_setup

pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")
NAME = "03.3 where the subject's information lives"


@pytest.fixture(scope="module")
def s():
    return lesson03_setup()


@pytest.fixture(scope="module")
def peak(s):
    """The peak of the lesson's residual trace over the subject's cells, and the trace (same samples and seed)."""
    ct = s.traces["resid"]
    sub = ct.scores[:, ct.subject]
    i = int(sub.argmax())
    layer, pos = i // sub.shape[1], ct.subject[i % sub.shape[1]]
    # the lesson's fact: the peak is at layer 0 on the subject's last token, far above every other subject cell
    assert (layer, pos) == (0, max(ct.subject)) and ct.subject == [4, 5, 6]
    assert float(sub.max()) > 3 * float(sub.flatten().topk(2).values[1])
    return layer, pos, ct


def check(s, answer):
    verdict = lesson.check_subject_peak(answer, s.model, s.prompt, s.subject, s.answer)
    assert verdict.exercise == NAME
    return verdict


def test_the_peak_passes_with_its_probabilities(s, peak):
    layer, pos, ct = peak
    verdict = check(s, (layer, pos))
    assert verdict.passed and verdict.message == (
        f"restoring the residual stream after layer {layer} at {ct.tokens[pos]!r} (position {pos}) brings p(answer) "
        f"back to {float(ct.scores[layer, pos]):.2f} (clean {ct.clean:.2f}, corrupted {ct.corrupted:.2f}).")


def _failure(ct, layer, pos, hint):
    sub = ct.scores[:, ct.subject]
    return (f"restoring (layer {layer}, position {pos}) gives p(answer) {float(ct.scores[layer, pos]):.2f}; another "
            f"subject cell gives {float(sub.max()):.2f}.{hint}")


def test_the_right_layer_at_another_subject_position_is_told_the_layer_is_right(s, peak):
    layer, pos, ct = peak
    verdict = check(s, (layer, pos - 1))
    assert verdict.message == _failure(ct, layer, pos - 1, " The layer is right, the position is not: within layer "
                                                             "0, compare the subject's positions [4, 5, 6].")


def test_the_right_position_at_another_layer_is_told_the_position_is_right(s, peak):
    layer, pos, ct = peak
    verdict = check(s, (layer + 1, pos))
    assert verdict.message == _failure(ct, layer + 1, pos, " The position is right, the layer is not: compare every "
                                                           "layer in that column.")


def test_neither_right_is_told_to_take_the_argmax_over_both(s, peak):
    layer, pos, ct = peak
    verdict = check(s, (layer + 1, pos - 1))
    assert verdict.message == _failure(ct, layer + 1, pos - 1, " Take the argmax over every layer and every subject "
                                                               "position.")


def test_a_swapped_answer_is_told_the_order_even_when_it_is_out_of_range(s, peak):
    layer, pos, _ = peak
    verdict = check(s, (pos, layer))
    assert verdict.message == f"you gave ({pos}, {layer}); the order is (layer, position): layer first."


@pytest.mark.parametrize("answer", [(4, 5), (-1, 5), (0, 8), (0, -1)])
def test_cells_just_outside_the_grid_are_out_of_range(s, answer):
    verdict = check(s, answer)
    assert verdict.message == (f"(layer, position) = {answer} is out of range: layers 0..3, positions 0..7")


def test_the_last_token_is_refused_as_trivial(s):
    verdict = check(s, [3, 7])
    assert verdict.message == ("position 7 is the last token: restoring it restores everything trivially. Look only "
                               "at the subject's columns [4, 5, 6].")


def test_a_position_before_the_subject_is_named_with_its_token(s):
    verdict = check(s, (0, 3))
    assert verdict.message == ("position 3 is ' of', not a subject token; the subject is at [4, 5, 6]. Look only at "
                               "the subject's columns.")


@pytest.mark.parametrize("answer", [3.5, (0,), (0, 6, 1), (0.0, 6.0), (True, 6), "0, 6"])
def test_answers_that_are_not_two_ints_are_refused(s, answer):
    verdict = check(s, answer)
    assert verdict.message == f"give (layer, position) as two ints, layer first; got {answer!r}"


def test_the_placeholder_hint_says_where_to_look(s):
    verdict = check(s, ...)
    assert verdict.status == "unanswered" and "ct.scores[:, ct.subject]" in verdict.message


def test_position_0_is_inside_the_grid_and_named_as_bos(s):
    verdict = check(s, (0, 0))
    assert verdict.message == ("position 0 is '<|bos|>', not a subject token; the subject is at [4, 5, 6]. Look only "
                               "at the subject's columns.")


def test_the_placeholder_hint_is_exact(s):
    assert check(s, None).message == ("replace the `...` with your answer. Hint: index ct.scores[:, ct.subject] and "
                                      "find its argmax; map the column back to a position.")


def test_the_check_traces_with_the_samples_and_seed_it_is_given(s, peak):
    from kit.analysis import causal_trace

    layer, pos, _ = peak
    ct = causal_trace(s.model, s.prompt, s.subject, answer=s.answer, kind="resid", samples=3, seed=1)
    verdict = lesson.check_subject_peak((layer, pos), s.model, s.prompt, s.subject, s.answer, samples=3, seed=1)
    assert verdict.passed and verdict.message == (
        f"restoring the residual stream after layer {layer} at {ct.tokens[pos]!r} (position {pos}) brings p(answer) "
        f"back to {float(ct.scores[layer, pos]):.2f} (clean {ct.clean:.2f}, corrupted {ct.corrupted:.2f}).")
    assert f"{float(ct.scores[layer, pos]):.2f}" != f"{float(s.traces['resid'].scores[layer, pos]):.2f}"


# --- 03.4 attention knockout ----------------------------------------------------------------------------

KNOCKOUT = "03.4 attention knockout"


@pytest.fixture(scope="module")
def ko(s):
    """p(answer) before and after the knockout, for the lesson's answer and for another capital (which the
    model does not predict: before ~1e-4, after 0.04, so the ratio after / before is ~600, far from both)."""
    from kit.analysis import attention_knockout, subject_positions

    out = {}
    for target in (s.answer, " Brailport"):
        k = attention_knockout(s.model, s.prompt, key=subject_positions(s.model, s.prompt, s.subject), answer=target)
        out[target] = (float(k["before"][0]), float(k["after"][0]))
    before, after = out[s.answer]
    assert before > 0.95 and after < 0.01  # the lesson's fact: the knockout removes the answer
    before, after = out[" Brailport"]
    assert before < 1e-3 and 0.03 < after < 0.05 and after / before > 100
    return out


def knock(s, answer, target=None):
    verdict = lesson.check_knockout_drop(answer, s.model, s.prompt, s.subject, target or s.answer)
    assert verdict.exercise == KNOCKOUT
    return verdict


def _ko_failed(answer, hint=""):
    return (f"you gave {answer:.3f}; blocking the last token's attention to the subject in every layer changes "
            f"p(answer) by a different amount.{hint} Knock out every layer (layer=list(range(model.n_layers))) and "
            "use softmax probabilities, not logits.")


AFTER = " That is p(answer) after the knockout; give before minus after."
SIGN = " The sign is flipped: before minus after."
RATIO = " That is the ratio after / before; give the difference."


def test_the_drop_within_a_hundredth_passes_with_the_probabilities(s, ko):
    import torch

    before, after = ko[s.answer]
    drop = before - after
    for answer in (drop, drop + 0.009, drop - 0.009, torch.tensor(drop), torch.tensor([drop])):
        verdict = knock(s, answer)
        assert verdict.passed and verdict.message == (
            f"p(answer) falls from {before:.2f} to {after:.2f} (drop {drop:.2f}) when the last token cannot see "
            "the subject.")


def test_the_drop_is_measured_for_the_target_it_is_given(s, ko):
    before, after = ko[" Brailport"]
    verdict = knock(s, before - after, target=" Brailport")
    assert verdict.passed and verdict.message == (
        f"p(answer) falls from {before:.2f} to {after:.2f} (drop {before - after:.2f}) when the last token cannot "
        "see the subject.")
    assert not knock(s, before - after)  # the lesson's own answer drops by ~0.99


def test_each_named_slip_is_recognised_within_a_hundredth_and_not_beyond(s, ko):
    before, after = ko[s.answer]
    drop = before - after
    cases = [(drop + 0.011, ""), (drop - 0.011, ""), (after, AFTER), (after + 0.009, AFTER), (after - 0.009, AFTER),
             (after + 0.011, ""), (after - 0.011, ""), (-drop, SIGN), (-drop + 0.009, SIGN), (-drop - 0.009, SIGN),
             (-drop + 0.011, ""), (-drop - 0.011, ""), (-0.5, ""), (0.5, "")]
    for answer, hint in cases:
        verdict = knock(s, answer)
        assert verdict.status == "failed" and verdict.message == _ko_failed(answer, hint), answer


def test_the_ratio_is_recognised_within_a_hundredth_and_not_beyond(s, ko):
    before, after = ko[" Brailport"]
    ratio = after / before
    for answer, hint in [(ratio, RATIO), (ratio + 0.009, RATIO), (ratio - 0.009, RATIO), (ratio + 0.011, ""),
                         (ratio - 0.5, ""), (-ratio, ""), (after * before, "")]:
        verdict = knock(s, answer, target=" Brailport")
        assert verdict.message == _ko_failed(answer, hint), answer


@pytest.mark.parametrize("answer, kind", [("0.9", "str"), (True, "bool"), ([0.9], "list"), ((0.9,), "tuple")])
def test_knockout_answers_that_are_not_one_number_are_refused_exactly(s, answer, kind):
    assert knock(s, answer).message == f"give the drop as one number (p before minus p after); got {kind}"


def test_a_tensor_of_two_numbers_is_refused(s):
    import torch

    assert knock(s, torch.tensor([0.9, 0.1])).message == (
        "give the drop as one number (p before minus p after); got Tensor")


def test_the_knockout_placeholder_hint_is_exact(s):
    for answer in (..., None):
        verdict = knock(s, answer)
        assert verdict.status == "unanswered" and verdict.message == (
            "replace the `...` with your answer. Hint: trace with interventions=[kit.Knockout(layers, query=-1, "
            "key=subject_positions)] and compare p(answer) at the last position with the clean trace's.")


def test_the_peak_is_traced_for_the_target_it_is_given(s, peak):
    from kit.analysis import causal_trace

    ct = causal_trace(s.model, s.prompt, s.subject, answer=" Brailport", kind="resid", samples=10, seed=0)
    sub = ct.scores[:, ct.subject]
    i = int(sub.argmax())
    layer, pos = i // sub.shape[1], ct.subject[i % sub.shape[1]]
    verdict = lesson.check_subject_peak((layer, pos), s.model, s.prompt, s.subject, " Brailport")
    assert verdict.passed and verdict.message == (
        f"restoring the residual stream after layer {layer} at {ct.tokens[pos]!r} (position {pos}) brings p(answer) "
        f"back to {float(ct.scores[layer, pos]):.2f} (clean {ct.clean:.2f}, corrupted {ct.corrupted:.2f}).")
    own = peak[2]
    assert f"clean {ct.clean:.2f}" != f"clean {own.clean:.2f}"  # p of another capital, not of the model's answer


# --- 03.1 subject tokens ----------------------------------------------------------------------------------

TOKENS = "03.1 subject tokens"
HINT_TOKENS = ("tokenize with model.tokenizer(prompt, return_offsets_mapping=True) and keep the tokens whose span "
               "overlaps the subject")


def _positions(s, prompt, subject):
    from kit.analysis import subject_positions

    return subject_positions(s.model, prompt, subject)


def tokens_check(s, fn):
    verdict = lesson.check_subject_tokens(fn, s.model, s.world)
    assert verdict.exercise == TOKENS
    return verdict


def _first_case(s):
    """The prompt 03.1 checks first (the first relation's first prompt, with no student)."""
    p = s.world.prompts("all", next(iter(s.world.relations)))[0]
    return p, _positions(s, p.text, p.subject)


def _tokens_failed(s, p, items, hint=""):
    truth = _positions(s, p.text, p.subject)
    tokens = s.model.to_str_tokens(p.text)
    shown = ", ".join(f"{i}:{tokens[i]!r}" for i in truth)
    return (f"for {p.text!r} with subject {p.subject!r} you gave {items}; the subject covers positions {truth} "
            f"({shown}).{hint} Tokenize with model.tokenizer(prompt, return_offsets_mapping=True) and keep the tokens "
            "whose character span overlaps the subject's.")


def test_subject_tokens_passes_on_one_prompt_per_relation_of_different_templates(s):
    calls = []

    def right(prompt, subject):
        calls.append((prompt, subject))
        return _positions(s, prompt, subject)

    verdict = tokens_check(s, right)
    p, truth = _first_case(s)
    assert verdict.passed and verdict.message == (
        f"right on {len(s.world.relations)} prompts of different templates, e.g. {p.subject!r} in {p.text!r} is at "
        f"{truth}.")
    assert len(calls) == len(s.world.relations) and calls[0] == (p.text, p.subject)
    for (prompt, subject), rel in zip(calls, s.world.relations):
        assert prompt in [q.text for q in s.world.prompts("all", rel)] and subject in prompt
    assert len({_positions(s, *c)[0] for c in calls}) > 1  # the subject sits at different positions


def test_each_student_gets_other_prompts(s):
    import kit.lessons as lessons

    def spy(calls):
        def fn(prompt, subject):
            calls.append((prompt, subject))
            return _positions(s, prompt, subject)
        return fn

    lesson_calls = []
    assert tokens_check(s, spy(lesson_calls))
    drawn = []
    for student in ("s0", "s1", "s2"):
        lessons.start(student, record=False)
        try:
            calls = []
            verdict = tokens_check(s, spy(calls))
            (text, subject) = calls[0]
            assert verdict.passed and verdict.message == (  # the student's own first prompt is named
                f"right on {len(s.world.relations)} prompts of different templates, e.g. {subject!r} in {text!r} is "
                f"at {_positions(s, text, subject)}.")
            assert len(calls) == len(lesson_calls) and calls != lesson_calls
            drawn.append(calls)
        finally:
            lessons.stop()
    assert drawn[0] != drawn[1] != drawn[2] != drawn[0]  # one instance per student, not one for all students


@pytest.mark.parametrize("slip, hint", [
    ("minus_one", " Your positions are one too small: position 0 is the <|bos|> token that the tokenizer adds."),
    ("ids", " Those are the subject's token ids; give their positions in the prompt."),
    ("chars", " Those are character positions; give token positions."),
    ("first", " You found only part of the subject: invented names span several tokens."),
    ("with_next", " You included tokens outside the subject: keep only spans that overlap it."),
    ("with_before", " You included tokens outside the subject: keep only spans that overlap it."),
    ("empty", " You found only part of the subject: invented names span several tokens."),
    ("plus_one", ""), ("reversed", ""), ("repeated", ""), ("minus_two", ""),
])
def test_each_slip_gets_its_hint_and_the_whole_message(s, slip, hint):
    p, truth = _first_case(s)
    assert len(truth) >= 2  # an invented name of several tokens
    ids = s.model.tokenizer(p.text)["input_ids"]
    start = p.text.index(p.subject)
    items = {"minus_one": [i - 1 for i in truth], "ids": [ids[i] for i in truth],
             "chars": list(range(start, start + len(p.subject))), "first": truth[:1],
             "with_next": truth + [truth[-1] + 1], "with_before": [truth[0] - 1] + truth,
             "plus_one": [i + 1 for i in truth], "reversed": truth[::-1], "repeated": truth + truth[-1:],
             "minus_two": [i - 2 for i in truth], "empty": []}[slip]
    verdict = tokens_check(s, lambda prompt, subject: items if prompt == p.text else _positions(s, prompt, subject))
    assert verdict.status == "failed" and verdict.message == _tokens_failed(s, p, items, hint)


@pytest.mark.parametrize("kind", ["tensor", "tuple", "range"])
def test_positions_as_a_tensor_tuple_or_range_count(s, kind):
    import torch

    def fn(prompt, subject):
        pos = _positions(s, prompt, subject)
        return {"tensor": torch.tensor(pos), "tuple": tuple(pos), "range": range(pos[0], pos[-1] + 1)}[kind]

    assert tokens_check(s, fn).passed


@pytest.mark.parametrize("got", ["Fusuvaria", 4, [4.0, 5.0], [True, False], None, [[4, 5]]])
def test_an_answer_that_is_not_a_list_of_ints_is_refused_exactly(s, got):
    p, _ = _first_case(s)
    verdict = tokens_check(s, lambda prompt, subject: got)
    assert verdict.status == "failed" and verdict.message == (
        f"return a list of ints (token positions); for {p.text!r} you returned {type(got).__name__} {got!r}")


def test_every_prompt_is_checked_not_only_the_first(s):
    p, _ = _first_case(s)
    calls = []

    def right_on_the_first_only(prompt, subject):
        calls.append(prompt)
        pos = _positions(s, prompt, subject)
        return pos if prompt == p.text else pos[:-1]

    verdict = tokens_check(s, right_on_the_first_only)
    second = next(q for rel in list(s.world.relations)[1:2] for q in s.world.prompts("all", rel) if q.text == calls[1])
    assert len(calls) == 2 and verdict.message == _tokens_failed(
        s, second, _positions(s, second.text, second.subject)[:-1],
        " You found only part of the subject: invented names span several tokens.")


def test_a_stub_and_the_placeholder_get_the_hint_exactly(s):
    def stub(prompt, subject):
        raise NotImplementedError

    for fn in (stub, ..., None):
        verdict = tokens_check(s, fn)
        assert verdict.status == "unanswered" and verdict.message == (
            "write the function's body (it still raises NotImplementedError). Hint: " + HINT_TOKENS)


# --- 03.2 the head that moves the subject -------------------------------------------------------------------

MOVER = "03.2 the head that moves the subject"


def mover(s, answer, facts=None):
    verdict = lesson.check_mover_head(answer, s.model, s.facts if facts is None else facts)
    assert verdict.exercise == MOVER
    return verdict


def _attention(s, facts):
    """``att[layer, head]``: mean over ``facts`` of the attention from the last token to the subject."""
    from kit.analysis import recall_summary

    return recall_summary(s.model, [f.text for f in facts], [f.subject for f in facts],
                          [f.answer for f in facts]).subject_attention


def _mover_failed(s, facts, head, hint=""):
    att = _attention(s, facts)
    return (f"L{head[0]}H{head[1]} puts {float(att[head]):.2f} of its attention from the last token on the subject; "
            f"another head puts {float(att.max()):.2f} there.{hint} Compare every layer and head, summing the "
            "attention over all the subject's tokens.")


def test_the_mover_passes_with_its_attention_and_the_number_of_facts(s):
    att = _attention(s, s.facts)
    assert divmod(int(att.argmax()), 4) == (1, 3)
    assert mover(s, "L1H3").message == (
        f"L1H3 puts {float(att.max()):.2f} of its attention from the last token on the subject (mean over 24 facts).")
    few = [s.facts[i] for i in (9, 17)]
    assert mover(s, (1, 3), few).message == (
        f"L1H3 puts {float(_attention(s, few).max()):.2f} of its attention from the last token on the subject (mean "
        "over 2 facts).")


def test_the_mover_hints_for_a_swapped_head_and_the_first_prompts_head(s):
    assert mover(s, (3, 1)).message == _mover_failed(s, s.facts, (3, 1), " You swapped the two numbers: (layer, "
                                                                           "head), layer first.")
    # the first fact's own top head is L1H0 (the second fact's too); the lesson's facts in order
    first = " That is the top head on the first prompt; average over all the facts."
    assert mover(s, (1, 0)).message == _mover_failed(s, s.facts, (1, 0), first)
    # with a first fact whose top head is L1H3 (the overall one), L1H0 is only very close
    close = " Very close: average over all the facts, not one prompt."
    order = [s.facts[4]] + s.facts[:4] + s.facts[5:]
    assert mover(s, (1, 0), order).message == _mover_failed(s, order, (1, 0), close)
    # the first fact decides, not the second: fact 0 (top head L1H0) before fact 4 (top head L1H3)
    order = [s.facts[0], s.facts[4]] + s.facts[1:4] + s.facts[5:]
    assert mover(s, (1, 0), order).message == _mover_failed(s, order, (1, 0), first)


def test_very_close_means_under_three_hundredths(s):
    att = _attention(s, s.facts)
    assert 0.015 < float(att[1, 3] - att[1, 0]) < 0.03
    few = [s.facts[i] for i in (9, 17)]  # here L1H0 trails L1H3 by 0.037 (and is not fact 9's top head)
    gap = float(_attention(s, few).max() - _attention(s, few)[1, 0])
    assert 0.03 < gap < 0.04
    assert mover(s, (1, 0), few).message == _mover_failed(s, few, (1, 0))


@pytest.mark.parametrize("head", [(2, 3), (0, 0), (3, 3), (2, 2)])
def test_other_heads_get_no_hint(s, head):
    assert mover(s, head).message == _mover_failed(s, s.facts, head)


@pytest.mark.parametrize("answer", ["L4H0", (0, 4), "1,3", 1.3, (1.0, 3.0), "H3L1", None, ...])
def test_mover_answers_that_name_no_head_are_refused_exactly(s, answer):
    verdict = mover(s, answer)
    if answer is None or answer is Ellipsis:
        assert verdict.status == "unanswered" and verdict.message == (
            "replace the `...` with your answer. Hint: for each layer l, tr['pattern', l][b, :, last, subject].sum(-1) "
            "is each head's attention from the last token to the subject; average over the facts.")
    else:
        assert verdict.status == "failed" and verdict.message == (
            f"{answer!r} is not a head of this model; write a head as 'L<layer>H<head>' (e.g. 'L1H2') or as (layer, "
            "head), with layer in 0..3 and head in 0..3")


@pytest.mark.parametrize("which, head", [((), (1, 3)), ((16,), (1, 0)), ((20,), (2, 2)), ((3,), (2, 3)),
                                         ((16, 19, 13), (1, 0)), ((2, 20), (2, 2)),
                                         ((16, 19, 13, 0), (1, 0))])  # the last fact alone: L1H3
def test_the_max_token_head_is_the_largest_single_weight_summed_over_facts(s, which, head):
    import torch
    from kit.analysis import subject_positions

    facts = [s.facts[i] for i in which] or s.facts
    tr = s.model.trace([f.text for f in facts], capture=["pattern"])
    score = torch.zeros(4, 4)
    for b, f in enumerate(facts):
        pos = subject_positions(s.model, f.text, f.subject)
        for layer in range(4):
            score[layer] += tr["pattern", layer][b, :, tr.lengths[b] - 1, pos].max(-1).values
    assert divmod(int(score.argmax()), 4) == head
    assert lesson._max_token_head(s.model, facts) == head
