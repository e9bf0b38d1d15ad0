"""Lesson 05's checks and helpers (``kit/lessons/circuit.py``) against mutation survivors (issue 16): the exact
message of every branch, both sides of every tolerance and margin, the instances the checks hand the learner
(the lesson's and a student's), the defaults, and the optional GPT-2 pipeline checked against its definition
on small random GPT-2s whose top patched head sits in layer 0 (no senders) or layer 1."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import kit
import kit.analysis as A
import kit.lessons as lessons
from kit.lessons import circuit as c

ZOO_MODEL = "ioi-3l"  # the conftest `model` fixture loads it
pytestmark = pytest.mark.usefixtures("no_student")
LESSON_IO, LESSON_S = [3, 9, 4, 20, 11, 0], [8, 2, 17, 5, 29, 14]  # 5.1's own instance (no student)
STUDENTS = [f"s{i}" for i in range(8)]


@pytest.fixture(scope="module")
def batch():
    return c.ioi_batch(32)


@pytest.fixture(scope="module")
def grid(model, batch):
    return c.patching_by_head(model, batch)


def _reference(logits, io, s):
    rows = torch.arange(logits.shape[0])
    return logits[rows, -1, io] - logits[rows, -1, s]


def _spy(answer=_reference):
    """A learner's 5.1 function that records what the check hands it and answers with ``answer``."""
    seen = []

    def fn(logits, io, s):
        seen.append((logits.clone(), io.clone(), s.clone()))
        return answer(logits, io, s)

    return seen, fn


# --- 5.1 the logit difference --------------------------------------------------------------------------

def test_the_lessons_instance_is_fixed_and_the_same_on_every_call():
    seen, fn = _spy()
    for _ in range(2):
        verdict = c.check_logit_diff(fn)
        assert verdict.passed and verdict.exercise == c.EX_DIFF
        assert verdict.message == "one logit difference per prompt, at the last position"
    (logits, io, s), (again, _, _) = seen
    assert io.tolist() == LESSON_IO and s.tolist() == LESSON_S
    assert logits.shape == (6, 7, 30) and torch.equal(logits, again)  # seeded: the same logits every time
    assert 2.7 < float(logits.std()) < 3.3  # on a logit scale (std 3): probabilities differ from logits


def test_each_student_gets_other_answers_and_never_an_answer_equal_to_its_subject():
    seen, fn = _spy()
    c.check_logit_diff(fn)
    lesson_logits = seen[0][0]
    draws = []
    for student in [f"s{i}" for i in range(20)]:
        lessons.start(student, record=False)
        seen, fn = _spy()
        assert c.check_logit_diff(fn).passed, student
        (logits, io, s), = seen
        assert logits.shape == (6, 7, 30) and not torch.equal(logits, lesson_logits)
        assert io.shape == s.shape == (6,) and len(set(io.tolist())) == 6
        assert all(0 <= int(x) < 30 for x in io.tolist() + s.tolist())
        assert (io != s).all(), (student, io, s)
        draws.append((tuple(io.tolist()), tuple(s.tolist())))
    assert len(set(draws)) == 20 and (tuple(LESSON_IO), tuple(LESSON_S)) not in draws


def _instance(student):
    lessons.start(student, record=False)
    seen, fn = _spy()
    assert c.check_logit_diff(fn).passed
    lessons.stop()
    return seen[0]


def test_a_students_instance_comes_from_their_id_alone_not_from_torchs_global_generator():
    for student in ("s0", "s1", "s2"):
        torch.manual_seed(0)
        logits, io, s = _instance(student)
        torch.manual_seed(1)
        again = _instance(student)
        assert torch.equal(logits, again[0]) and torch.equal(io, again[1]) and torch.equal(s, again[2]), student


def test_students_logits_are_on_a_logit_scale_and_any_other_token_can_be_the_subject():
    offsets = set()
    for student in [f"s{i}" for i in range(20)]:
        logits, io, s = _instance(student)
        assert 2.7 < float(logits.std()) < 3.3, student  # std 3: 1260 draws put the sample std within 0.2
        offsets |= set(((s - io) % 30).tolist())
    assert offsets == set(range(1, 30))  # the subject is any of the 29 other tokens (here after 14 students)


def _near(x, gap):
    """``x`` moved by ``gap`` plus the relative part of ``torch.allclose``'s tolerance (rtol 1e-5): inside
    atol=1e-5 for gap < 1e-5, outside the default atol (1e-8) for gap > 1e-8."""
    return (x.double() + gap + 1e-5 * x.double().abs()).float()


def test_float_error_passes_and_a_gap_of_a_hundredth_fails_exactly():
    assert c.check_logit_diff(lambda lg, io, s: _near(_reference(lg, io, s), 5e-6)).passed
    verdict = c.check_logit_diff(lambda lg, io, s: _reference(lg, io, s) + 0.01)
    assert verdict.status == "failed" and verdict.message == (
        "your values differ from logits[b, -1, io[b]] - logits[b, -1, s[b]]")


def _first(lg, io, s):
    rows = torch.arange(len(io))
    return lg[rows, 0, io] - lg[rows, 0, s]


def _probs(lg, io, s):
    p = lg[:, -1].softmax(-1)
    rows = torch.arange(len(io))
    return p[rows, io] - p[rows, s]


REVERSED = ("your sign is reversed: the metric is logit[IO] - logit[S], positive when the model prefers the right "
            "name")
FIRST = ("you read the first position; the prediction of the answer is at the last one (index -1 on the position "
         "axis)")
PROBS = ("you compared probabilities; the metric compares logits (before the softmax), which add up linearly over "
         "components and do not saturate")
DIFFER = "your values differ from logits[b, -1, io[b]] - logits[b, -1, s[b]]"


@pytest.mark.parametrize("slip, message", [
    (lambda lg, io, s: -_reference(lg, io, s), REVERSED), (_first, FIRST), (_probs, PROBS)],
    ids=["reversed", "first", "probabilities"])
def test_each_named_slip_is_recognised_within_float_error_and_not_a_hundredth_away(slip, message):
    for gap in (0.0, 5e-6):
        verdict = c.check_logit_diff(lambda lg, io, s: _near(slip(lg, io, s), gap))
        assert verdict.status == "failed" and verdict.message == message, gap
    assert c.check_logit_diff(lambda lg, io, s: slip(lg, io, s) + 0.01).message == DIFFER


@pytest.mark.parametrize("answer, message", [
    (lambda lg, io, s: _reference(lg, io, s).tolist(), "return a tensor diff[batch], got list"),
    (lambda lg, io, s: _reference(lg, io, s).mean(),
     "you returned one number: keep one value per prompt (no mean yet), shape [6]"),
    (lambda lg, io, s: _reference(lg, io, s)[:1],
     "you returned one number: keep one value per prompt (no mean yet), shape [6]"),
    (lambda lg, io, s: lg[:, -1, io] - lg[:, -1, s],
     "you got a [batch, batch] table: logits[:, -1, io] pairs every prompt with every answer; index the batch "
     "with torch.arange(batch) alongside io"),
    (lambda lg, io, s: _reference(lg, io, s)[:2], "expected shape [6] (one value per prompt), got [2]"),
    (lambda lg, io, s: lg[:, -1, :6] - lg[:, -1, 6:12], "you got a [batch, batch] table: logits[:, -1, io] pairs "
     "every prompt with every answer; index the batch with torch.arange(batch) alongside io"),
    (lambda lg, io, s: lg[:, -1, :7], "expected shape [6] (one value per prompt), got [6, 7]"),
    (lambda lg, io, s: _reference(lg, io, s)[None], "expected shape [6] (one value per prompt), got [1, 6]"),
], ids=["list", "mean", "one-element", "table", "two", "square", "6x7", "1x6"])
def test_answers_of_the_wrong_type_or_shape_get_the_exact_message(answer, message):
    verdict = c.check_logit_diff(answer)
    assert verdict.status == "failed" and verdict.exercise == c.EX_DIFF and verdict.message == message


def test_a_stub_and_the_placeholder_get_the_hint_exactly():
    def stub(logits, io, s):
        raise NotImplementedError

    assert c.check_logit_diff(stub).message == (
        "write the function's body (it still raises NotImplementedError). Hint: " + c.HINT_DIFF)
    assert c.check_logit_diff(...).message == c.check_logit_diff(None).message == (
        "write the function's body (it still raises NotImplementedError). Hint: " + c.HINT_DIFF)
    assert c.check_logit_diff(stub).exercise == c.check_logit_diff(...).exercise == c.EX_DIFF


def test_the_learner_cannot_change_the_truth_by_editing_its_inputs():
    def vandal(logits, io, s):
        out = _reference(logits, io, s)
        logits.zero_(), io.zero_(), s.zero_()
        return out

    assert c.check_logit_diff(vandal).passed


# --- 5.2 the head that matters most ------------------------------------------------------------------

def test_the_top_head_passes_with_its_share(model, batch, grid):
    assert c._argmax_head(grid) == (1, 1)
    for answer in ((1, 1), "L1H1", [1, 1]):
        verdict = c.check_top_head(answer, model, batch)
        assert verdict.passed and verdict.exercise == c.EX_TOP
        assert verdict.message == f"L1H1 restores {float(grid[1, 1]):.2f} of the logit difference on its own"
    assert f"{float(grid[1, 1]):.2f}" == "0.72"


def test_without_a_batch_the_check_uses_the_lessons_prompts(model, batch):
    for answer in ((1, 1), (0, 3)):
        assert c.check_top_head(answer, model).message == c.check_top_head(answer, model, batch).message


def test_the_largest_direct_effect_is_named_as_such(model, batch, grid):
    tr = model.trace(batch.clean, capture=["resid_pre", "resid_post", "head_out", "mlp_out"])
    dla = A.direct_logit_attribution(tr, batch.io, batch.s, neurons=False).heads.mean(0)  # [layer, head]
    assert c._argmax_head(dla) == (2, 2) != c._argmax_head(grid)
    verdict = c.check_top_head("L2H2", model, batch)
    assert verdict.status == "failed" and verdict.message == (
        "L2H2 writes the largest *direct* effect on the logit difference, but the question is what patching "
        f"restores: its effect through every path. L2H2 restores {float(grid[2, 2]):.2f}")


def test_the_direct_effect_hint_is_about_the_logit_difference_not_the_answers_logit(model):
    b = c.ioi_batch(32, template=2, seed=1002)  # a batch where the two disagree
    grid = c.patching_by_head(model, b)
    tr = model.trace(b.clean, capture=["resid_pre", "resid_post", "head_out", "mlp_out"])
    on_diff = A.direct_logit_attribution(tr, b.io, b.s, neurons=False).heads.mean(0)
    on_io = A.direct_logit_attribution(tr, b.io, neurons=False).heads.mean(0)
    assert (c._argmax_head(grid), c._argmax_head(on_diff), c._argmax_head(on_io)) == ((1, 1), (2, 2), (2, 0))
    assert c.check_top_head("L2H2", model, b).message == (
        "L2H2 writes the largest *direct* effect on the logit difference, but the question is what patching "
        f"restores: its effect through every path. L2H2 restores {float(grid[2, 2]):.2f}")
    assert c.check_top_head("L2H0", model, b).message == (
        f"L2H0 restores {float(grid[2, 0]):.2f} of the logit difference; one head restores more. Patching asks "
        "what the head carries that differs between clean and corrupted prompts, not how much removing it hurts")


def test_token_ids_go_to_the_models_device(model, monkeypatch):
    names = c.ioi_batch(2).io
    ids = c._ids(model, names)  # [batch, 1]: what patching_by_head and gpt2_ioi gather the logits with
    assert ids.tolist() == [[A.token_id(model, t)] for t in names] and ids.device == model.device
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("meta")))  # as a GPU would
    assert c._ids(model, names).device.type == "meta"  # else gather() on a GPU model's logits fails


@pytest.mark.parametrize("head", [(0, 3), (2, 0), (0, 0), (1, 2)])
def test_another_head_is_told_one_head_restores_more(model, batch, grid, head):
    verdict = c.check_top_head(head, model, batch)
    assert verdict.status == "failed" and verdict.message == (
        f"L{head[0]}H{head[1]} restores {float(grid[head]):.2f} of the logit difference; one head restores more. "
        "Patching asks what the head carries that differs between clean and corrupted prompts, not how much "
        "removing it hurts")


@pytest.mark.parametrize("answer", [(3, 0), (0, 4), "L1H9", "1,1", 1.1])
def test_a_head_the_model_lacks_is_refused_exactly(model, batch, answer):
    verdict = c.check_top_head(answer, model, batch)
    assert verdict.status == "failed" and verdict.message == (
        f"{answer!r} is not a head; write a head as 'L<layer>H<head>' (e.g. 'L1H2') or as (layer, head), with "
        "layer in 0..2 and head in 0..3")


def test_the_top_head_placeholder_hint_is_exact(model, batch):
    assert c.check_top_head(..., model, batch).message == (
        "replace the `...` with your answer. Hint: read the patching grid above: the brightest cell, as (layer, head)")


# --- 5.3 who feeds the receiver? ------------------------------------------------------------------------

def test_the_strongest_sender_passes_with_its_cost(model, batch):
    (best, effect), = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1).top(1)
    assert best == (1, 1) and f"{-effect:.2f}" == "0.14"
    verdict = c.check_sender("L1H1", model, (2, 2), batch)
    assert verdict.passed and verdict.exercise == c.EX_SEND
    assert verdict.message == "corrupting L1H1's path into L2H2 alone costs 0.14 of the clean-corrupted gap"
    assert c.check_sender("L1H1", model, (2, 2)).message == verdict.message  # no batch: the lesson's prompts


@pytest.fixture(scope="module")
def direct(model, batch):
    return A.path_patching(model, *batch.args(), receivers="logits").effect


def test_the_direct_path_clause_is_added_only_beyond_five_hundredths(model, batch, direct):
    # L0H1's direct path costs 0.098 (> 0.05: named), L0H3's 0.049 (a near miss under 0.05: not named)
    assert float(direct[0, 1]) < -0.09 and -0.05 < float(direct[0, 3]) < -0.045
    into = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1).effect
    v = c.check_sender((0, 1), model, (2, 2), batch)
    assert v.status == "failed" and v.message == (
        f"L0H1's path into L2H2 carries {-float(into[0, 1]):.2f} of the gap, less than the strongest sender's 0.14 "
        "(its direct path to the logits carries 0.10: a head can matter directly without feeding this receiver)")
    v = c.check_sender((0, 3), model, (2, 2), batch)
    assert v.status == "failed" and v.message == (
        f"L0H3's path into L2H2 carries {-float(into[0, 3]):.2f} of the gap, less than the strongest sender's 0.14")


def test_a_receiver_in_layer_1_takes_senders_of_layer_0_only(model, batch):
    r = A.path_patching(model, *batch.args(), receivers=[(1, 1)], receiver_pos=-1)
    (best, effect), = r.top(1)
    assert best == (0, 0)
    assert c.check_sender((0, 0), model, (1, 1), batch).message == (
        f"corrupting L0H0's path into L1H1 alone costs {-effect:.2f} of the clean-corrupted gap")
    v = c.check_sender((0, 3), model, (1, 1), batch)
    assert v.status == "failed" and v.message == (
        f"L0H3's path into L1H1 carries {-float(r.effect[0, 3]):.2f} of the gap, less than the strongest sender's "
        f"{-effect:.2f}")


@pytest.mark.parametrize("receiver", [(2, 0), (2, 1)], ids=["L2H0", "L2H1"])
def test_any_head_of_a_lower_layer_may_send_whatever_the_receivers_head_index(model, batch, direct, receiver):
    # the layers are compared: L1H1 and L0H2 sit below L2H0 and L2H1 although their head index is not smaller
    r = A.path_patching(model, *batch.args(), receivers=[receiver], receiver_pos=-1)
    (best, effect), = r.top(1)
    name = f"L{receiver[0]}H{receiver[1]}"
    assert best == (1, 1) and -effect > 0.05
    assert c.check_sender((1, 1), model, receiver, batch).message == (
        f"corrupting L1H1's path into {name} alone costs {-effect:.2f} of the clean-corrupted gap")
    clause = (f" (its direct path to the logits carries {-float(direct[0, 2]):.2f}: a head can matter directly "
              "without feeding this receiver)") if float(direct[0, 2]) < -0.05 else ""
    v = c.check_sender((0, 2), model, receiver, batch)
    assert v.status == "failed" and v.message == (
        f"L0H2's path into {name} carries {-float(r.effect[0, 2]):.2f} of the gap, less than the strongest "
        f"sender's {-effect:.2f}" + clause)


@pytest.mark.parametrize("head, receiver", [((2, 3), (2, 2)), ((2, 2), (2, 2)), ((1, 0), (1, 1)), ((2, 0), (1, 1))])
def test_a_head_not_below_the_receiver_is_refused_exactly(model, batch, head, receiver):
    verdict = c.check_sender(head, model, receiver, batch)
    assert verdict.status == "failed" and verdict.message == (
        f"L{head[0]}H{head[1]} is not below the receiver L{receiver[0]}H{receiver[1]}: a head can only send to heads "
        "of later layers (it writes into the residual stream they read)")


def test_sender_refusals_and_placeholder_are_exact(model, batch):
    assert c.check_sender((5, 0), model, (2, 2), batch).message == (
        "(5, 0) is not a head; write a head as 'L<layer>H<head>' (e.g. 'L1H2') or as (layer, head), with layer in "
        "0..2 and head in 0..3")
    assert c.check_sender(..., model, (2, 2), batch).message == (
        "replace the `...` with your answer. Hint: read the path-patching grid into the receiver: the most negative "
        "effect")


# --- the prompts, and each student's instances -----------------------------------------------------------

def test_ioi_batch_pairs_prompts_of_one_token_length_with_their_answers(model):
    b = c.ioi_batch()
    assert len(b) == 32 and vars(b) == vars(c.ioi_batch(32, template=0, seed=1000))
    assert b.args() == (b.clean, b.corrupted, b.io, b.s)
    lengths = {len(model.trace(p, capture=[]).tokens[0]) for p in b.clean + b.corrupted}
    assert len(lengths) == 1  # one token length: the last position is the same for every prompt
    assert len(c.ioi_batch(5, template=1, seed=7)) == 5
    assert c.ioi_batch(5, template=1, seed=7).clean != c.ioi_batch(5, template=0, seed=7).clean
    assert c.ioi_batch(5, template=1, seed=7).io != c.ioi_batch(5, template=1, seed=8).io


def test_patching_by_head_is_the_share_restored_by_one_patch_per_head(model, grid):
    b = c.ioi_batch(8, template=2, seed=1002)
    got = c.patching_by_head(model, b)
    clean = model.trace(b.clean, capture=["z"])
    io = torch.tensor([[A.token_id(model, t)] for t in b.io])
    s = torch.tensor([[A.token_id(model, t)] for t in b.s])
    diff = lambda lg: float((lg[:, -1].gather(-1, io) - lg[:, -1].gather(-1, s)).mean())  # noqa: E731
    x = diff(model.trace(b.corrupted, capture=[]).logits)
    want = torch.tensor([[(diff(model.trace(b.corrupted, capture=[], interventions=[
        kit.Patch("z", layer, clean, head=head)]).logits) - x) / (diff(clean.logits) - x)
        for head in range(model.n_heads)] for layer in range(model.n_layers)])
    assert got.shape == (3, 4) and torch.allclose(got, want, atol=1e-5)
    assert float((want - want.mean()).abs().max()) > 0.2  # cells far apart: a swapped head or layer shows


def _share(model, b) -> float:
    first, second = c.patching_by_head(model, b).flatten().topk(2).values.tolist()
    return first - second


def test_each_students_prompts_have_a_clear_top_head_and_are_never_the_lessons(model):
    assert vars(c.exercise_batch(model)) == vars(c.ioi_batch(32))
    templates = set()
    for student in STUDENTS:
        b = c.exercise_batch(model, student=student)
        assert len(b) == 32 and b.clean != c.ioi_batch(32).clean
        assert _share(model, b) >= c.TOP_MARGIN, student
        (t, seed), = [(t, seed) for t, seed in c.BATCHES if c.ioi_batch(32, t, seed).clean == b.clean]
        templates.add(t)
    assert len(templates) >= 2  # another template, not only another draw of names


@pytest.fixture(scope="module")
def shares(model):
    """How far each batch's top patched head leads the next: ``{(template, seed): first - second}``."""
    return {b: _share(model, c.ioi_batch(32, *b)) for b in c.BATCHES}


def _first_tried(student):
    """The batch ``student`` tries first (their own order, before the filter)."""
    return lessons.variant(c.EX_TOP, c.BATCHES[1:], student=student, where=lambda b: True)


def test_some_batches_are_not_clear_so_the_margin_matters(shares):
    weak = [b for b in c.BATCHES[1:] if shares[b] < c.TOP_MARGIN]
    assert weak == [(0, 1002), (1, 1002), (2, 1002)]
    # s9 tries a weak batch first: the filter, not luck, keeps it out (none of STUDENTS above does)
    assert _first_tried("s9") == (2, 1002) and {_first_tried(st) for st in STUDENTS}.isdisjoint(weak)


def _key(b):
    (key,) = [k for k in c.BATCHES if c.ioi_batch(32, *k).clean == b.clean]
    return key


@pytest.mark.parametrize("student, first, got", [("s9", (2, 1002), (3, 1002)), ("s0", (3, 1002), (3, 1002)),
                                                 ("s1", (0, 1001), (0, 1001))], ids=["s9", "s0", "s1"])
def test_each_student_gets_the_first_batch_with_a_clear_top_head_in_their_own_order(model, shares, student,
                                                                                     first, got):
    # s9 tries the weak (2, 1002) first and gets (3, 1002), whose top head leads by 0.135 on its 32 prompts
    # (by 0.064 on 33, and (0, 1002) by 0.067: the filter must judge this very batch); s1 gets (0, 1001),
    # second of the student's batches
    assert _first_tried(student) == first
    want = lessons.variant(c.EX_TOP, c.BATCHES[1:], student=student, where=lambda b: shares[b] >= c.TOP_MARGIN)
    assert want == got and 0.13 < shares[(3, 1002)] < 0.14
    assert _key(c.exercise_batch(model, student=student)) == got
    lessons.start(student, record=False)  # the current student: the same batch as naming them
    assert _key(c.exercise_batch(model)) == got


def _sender_margin(model, b, receiver) -> float:
    (_, first), (_, second) = A.path_patching(model, *b.args(), receivers=[receiver], receiver_pos=-1).top(2)
    return second - first


def test_each_students_receiver_has_one_clear_sender(model, batch):
    assert c.exercise_receiver(model, batch) == (2, 2)
    got = set()
    for student in STUDENTS:
        b = c.exercise_batch(model, student=student)
        receiver = c.exercise_receiver(model, b, student=student)
        assert receiver in c.RECEIVERS and _sender_margin(model, b, receiver) >= c.SENDER_MARGIN, student
        got.add(receiver)
    assert len(got) >= 2


def test_a_students_receiver_is_the_first_with_a_clear_sender_in_their_own_order(model, batch):
    def clear(receiver):
        return _sender_margin(model, batch, receiver) >= c.SENDER_MARGIN

    assert lessons.variant(c.EX_SEND, c.RECEIVERS, student="s2", where=clear) == (2, 1)
    assert c.exercise_receiver(model, batch, student="s2") == (2, 1) != c.exercise_receiver(model, batch) == (2, 2)
    lessons.start("s2", record=False)  # the current student: the same receiver as naming them
    assert c.exercise_receiver(model, batch) == (2, 1)


# --- the optional GPT-2 section, on small random GPT-2s ---------------------------------------------------

def _word_gpt2(seed: int, n_layer: int = 3, n_head: int = 2):
    words = sorted({n.strip() for n in c.GPT2_NAMES} | set("When and went to the store, gave a drink to".split()))
    vocab = {w: i for i, w in enumerate(["<|endoftext|>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_layer=n_layer, n_head=n_head, n_embd=32, n_positions=32,
                                    initializer_range=0.5, bos_token_id=0, eos_token_id=0))
    return kit.Model(hf, fast, name=f"random-word-gpt2-{seed}-{n_layer}x{n_head}")


@pytest.mark.parametrize("seed, top_layer", [(0, 0), (3, 1)])
def test_gpt2_ioi_is_the_lessons_pipeline_by_definition(seed, top_layer):
    m = _word_gpt2(seed)
    r = c.gpt2_ioi(m)
    b = r["batch"]
    assert r["prompts"] == b.clean and len(b) == 8
    assert r["prompts"] == c.gpt2_ioi(m, seed=0)["prompts"] != c.gpt2_ioi(m, n=8, seed=1)["prompts"]
    for clean, corrupted, io, s in zip(*b.args()):
        assert clean == f"When{io} and{s} went to the store,{s} gave a drink to"
        third = corrupted.removeprefix(f"When{io} and{s} went to the store,").removesuffix(" gave a drink to")
        assert io != s and third not in (io, s) and {io, s, third} <= set(c.GPT2_NAMES)
    ids = lambda names: torch.tensor([[A.token_id(m, t)] for t in names])  # noqa: E731
    diff = lambda p: float((lambda lg: (lg.gather(-1, ids(b.io)) - lg.gather(-1, ids(b.s))).mean())(  # noqa: E731
        m.trace(p, capture=[]).logits[:, -1].float()))
    assert r["clean"] == pytest.approx(diff(b.clean), abs=1e-5)
    assert r["corrupted"] == pytest.approx(diff(b.corrupted), abs=1e-5)
    assert abs(r["clean"] - r["corrupted"]) > 0.1
    grid = c.patching_by_head(m, b)
    assert torch.equal(r["patching"], grid)
    order = sorted(((float(grid[l, h]), (l, h)) for l in range(3) for h in range(2)), reverse=True)
    assert r["top_heads"] == [(h, v) for v, h in order[:5]]
    top = r["top_heads"][0][0]
    assert top[0] == top_layer
    assert r["direct_paths"] == A.path_patching(m, *b.args(), receivers="logits").top(5)
    if top_layer == 0:
        assert r["senders_into_top"] is None  # no head below layer 0
    else:
        assert r["senders_into_top"] == A.path_patching(m, *b.args(), receivers=[top], receiver_pos=-1).top(5)


# --- 5.3's receiver position and gpt2_ioi's senders, on small random GPT-2s of 4 layers of 4 heads ------------

@pytest.fixture(scope="module")
def word_batch():
    """gpt2_ioi's eight prompt pairs (seed 0) as an IOIBatch, for the word-level models."""
    import random

    rng = random.Random(0)
    rows = []
    for _ in range(8):
        a, b, third = rng.sample(list(c.GPT2_NAMES), 3)
        rows.append((f"When{a} and{b} went to the store,{b} gave a drink to",
                     f"When{a} and{b} went to the store,{third} gave a drink to", a, b))
    return c.IOIBatch(*map(list, zip(*rows)))


def test_the_sender_check_patches_the_receiver_at_the_last_position_only(word_batch):
    # into L1H1 of a 4-layer model the receiver's output at earlier positions reaches the logits through
    # layers 2 and 3: patched at every position, L0H2 would be the strongest sender; at the last one, L0H3
    m = _word_gpt2(0, 4, 4)
    (last, effect), = A.path_patching(m, *word_batch.args(), receivers=[(1, 1)], receiver_pos=-1).top(1)
    (every, _), = A.path_patching(m, *word_batch.args(), receivers=[(1, 1)]).top(1)
    assert (last, every) == ((0, 3), (0, 2)) and f"{-effect:.2f}" == "0.56"
    assert c.check_sender("L0H3", m, (1, 1), word_batch).message == (
        "corrupting L0H3's path into L1H1 alone costs 0.56 of the clean-corrupted gap")
    assert c.check_sender("L0H2", m, (1, 1), word_batch).status == "failed"


def test_a_receiver_is_kept_for_a_clear_sender_at_the_last_position(word_batch):
    # the lesson's L2H2 comes first; on this model its top sender leads by 0.02 at the last position (too
    # little) and by 0.56 when the receiver is patched at every position; L2H1's leads by 0.45
    m = _word_gpt2(12, 4, 4)
    margin = lambda pos, r: (lambda t: t[1][1] - t[0][1])(  # noqa: E731
        A.path_patching(m, *word_batch.args(), receivers=[r], receiver_pos=pos).top(2))
    assert margin(-1, (2, 2)) < 0.03 and margin(None, (2, 2)) > 0.5
    assert margin(-1, (2, 0)) < 0.01 and margin(-1, (2, 1)) > 0.4
    assert c.exercise_receiver(m, word_batch) == (2, 1)


def test_gpt2_ioi_lists_the_five_strongest_of_more_senders():
    m = _word_gpt2(27, 4, 4)
    r = c.gpt2_ioi(m)
    top = r["top_heads"][0][0]
    into = A.path_patching(m, *r["batch"].args(), receivers=[top], receiver_pos=-1)
    assert top == (2, 3) and len(into.senders) == 8  # the heads of layers 0 and 1
    assert r["senders_into_top"] == into.top(5) and len(r["senders_into_top"]) == 5
