"""Per-student variants on the real exercise checks of lessons 01-05.

For several students, every exercise draws the student's own instance (another person, segment length,
set of facts, fact, neuron, feature, concept, target KL, prompts, receiver head, random data); the
reference solution, computed from that instance, passes, and the common wrong answers that the checks
already reject (the runner-up, a swapped pair, a flipped sign, ...) still fail. Without a student every
exercise keeps the lesson's own instance, so the notebooks nbval runs are unchanged.
"""

from __future__ import annotations

import runpy

import pytest
import torch

import kit
import kit.lessons as lessons
from kit.analysis import causal_trace, label_purity, path_patching
from kit.lessons import attention as l01
from kit.lessons import circuit as l05
from kit.lessons import factual as l03
from kit.lessons import induction as l02
from kit.lessons import mlp as l04
from kit.train import load_world
from tests.lesson_solutions import SOLUTIONS, load_solution

STUDENTS = ["ada", "bob", "cy", "dee", "eve"]


pytestmark = pytest.mark.usefixtures("no_student")  # tests/conftest.py


def as_student(student):
    lessons.start(student, record=False)


@pytest.fixture(scope="module")
def facts4l():
    torch.set_num_threads(1)
    return kit.load("facts-4l", device="cpu")


@pytest.fixture(scope="module")
def world():
    return load_world()


# --- lesson 01 ----------------------------------------------------------------------------------------

def test_01_without_a_student_the_person_is_the_lessons(facts4l, world):
    assert l01.exercise_person(facts4l, world) is world.people[0]


def test_01_students_draw_several_people(facts4l, world):
    people = {l01.exercise_person(facts4l, world, student=s)["name"] for s in STUDENTS}
    assert len(people) >= 3


@pytest.mark.parametrize("student", STUDENTS)
def test_01_the_solution_solves_each_students_person_and_near_misses_fail(facts4l, world, student):
    as_student(student)
    sol = load_solution(SOLUTIONS / "01_attention_and_the_residual_stream.py")
    person = l01.exercise_person(facts4l, world)
    prompt, answer = f"{person['name']} works as a", " " + person["profession"]
    others = l01.relation_competitors(facts4l, world, "profession", answer)
    # 1.3: the first top-1 layer; the layers next to it fail
    first = sol.first_top1_layer
    assert l01.check_first_top1_layer(first, facts4l, prompt, answer)
    for wrong in {first - 1, first + 1} & set(range(facts4l.n_layers)):
        assert not l01.check_first_top1_layer(wrong, facts4l, prompt, answer), wrong
    # 1.4: the top component; the runner-up and the most negative fail
    assert l01.check_top_component(sol.top_component, facts4l, prompt, answer, others)
    effects = l01.component_effects(facts4l, prompt, answer, others)
    ranked = sorted(effects, key=effects.get, reverse=True)
    assert ranked[0] == sol.top_component and effects[ranked[0]] - effects[ranked[1]] >= l01.DLA_MARGIN
    assert not l01.check_top_component(ranked[1], facts4l, prompt, answer, others)
    verdict = l01.check_top_component(ranked[-1], facts4l, prompt, answer, others)
    assert not verdict and "most positive" in verdict.message


@pytest.mark.parametrize("student", STUDENTS)
def test_01_functions_are_checked_on_each_students_own_sequence_too(facts4l, world, student):
    tr = facts4l.trace(f"The capital of {world.countries[0]['name']} is")
    sol = load_solution(SOLUTIONS / "01_attention_and_the_residual_stream.py")
    lesson_resid = [tr["resid_post", l] for l in range(facts4l.n_layers)]
    replay_resid = lambda t, layer: lesson_resid[layer]  # noqa: E731  (the lesson's answers, replayed)
    lesson_attended = {(l, h): int(tr["pattern", l][0, h, -1].argmax())
                       for l in range(facts4l.n_layers) for h in range(facts4l.n_heads)}
    replay_attended = lambda t, l, h: lesson_attended[l, h]  # noqa: E731
    assert l01.check_residual_from_parts(replay_resid, tr) and l01.check_most_attended(replay_attended, tr)
    as_student(student)
    assert l01.check_residual_from_parts(sol.residual_after, tr)
    assert l01.check_most_attended(sol.most_attended, tr)
    assert not l01.check_residual_from_parts(replay_resid, tr)  # another sequence: the lesson's numbers fail
    assert not l01.check_most_attended(replay_attended, tr)
    no_mlp = lambda t, layer: t["resid_pre", 0] + sum(t["attn_out", l] for l in range(layer + 1))  # noqa: E731
    assert "not the MLP" in l01.check_residual_from_parts(no_mlp, tr).message
    first_query = lambda t, l, h: int(t["pattern", l][0, h, 0].argmax())  # noqa: E731  (the wrong query)
    assert not l01.check_most_attended(first_query, tr)


# --- lesson 02 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def induction2l():
    torch.set_num_threads(1)
    return kit.load("induction-2l", device="cpu")


def test_02_without_a_student_the_length_is_16_and_the_data_the_lessons(induction2l):
    assert l02.exercise_half_len(induction2l) == 16
    assert lessons.variant_seed(l02.EX_PREV, 3) == 3 and lessons.variant_seed(l02.EX_IND, 4) == 4


def test_02_students_draw_other_lengths_each_with_a_clear_answer(induction2l):
    """Students get lengths other than the lesson's 16, each with one head whose ablation leads the next by
    ABLATION_MARGIN. On the shipped induction-2l that head is its only previous-token head, L0H0, at every
    length (the four induction heads back each other up): the numbers a student measures differ, the
    reasoning the exercise asks for does not."""
    lengths = {l02.exercise_half_len(induction2l, student=f"s{i}") for i in range(12)}
    assert len(lengths) >= 3 and 16 not in lengths  # never the length whose table the lesson prints
    for T in lengths:
        table = l02.ablation_table(induction2l, l02.repeated_ids(induction2l, n_seqs=32, half_len=T), T)
        ranked = sorted(table, key=table.get)
        assert ranked[-1] == (0, 0) and table[ranked[-1]] - table[ranked[-2]] >= l02.ABLATION_MARGIN, (T, table)


@pytest.mark.parametrize("student", STUDENTS)
def test_02_the_solution_solves_each_students_instance_and_near_misses_fail(induction2l, student):
    as_student(student)
    sol = load_solution(SOLUTIONS / "02_induction_heads.py")
    # 2.1 and 2.2 on the student's own random sequences
    assert l02.check_prev_token_score(sol.prev_token_score, induction2l)
    main_diag = lambda p: p.diagonal(dim1=-2, dim2=-1).mean((0, 2))  # noqa: E731
    assert "main diagonal" in l02.check_prev_token_score(main_diag, induction2l).message
    assert l02.check_induction_score(sol.induction_score, induction2l)
    same_token = lambda p, T: p.diagonal(offset=-T, dim1=-2, dim2=-1)[..., 1:1 + T].mean((0, 2))  # noqa: E731
    assert not l02.check_induction_score(same_token, induction2l)
    assert not l02.check_induction_score(lambda p, T: sol.induction_score(p, 16), induction2l)
    # 2.4 at the student's own length: the solution passes, the runner-up fails
    T = l02.exercise_half_len(induction2l)
    assert l02.check_ablation_prediction(sol.biggest_ablation, induction2l, half_len=T)
    table = l02.ablation_table(induction2l, l02.repeated_ids(induction2l, n_seqs=32, half_len=T), T)
    runner_up = sorted(table, key=table.get)[-2]
    assert not l02.check_ablation_prediction(runner_up, induction2l, half_len=T)


def test_02_students_check_on_data_other_than_the_lessons(induction2l):
    """A function fitted to the lesson's own sequences (seed 3) fails a student's check."""
    lesson_tr = induction2l.trace(l02.random_ids(induction2l, n_seqs=8, length=32, seed=3), capture=["pattern"])
    stored = [l02.prev_token_score_of(lesson_tr["pattern", l]) for l in range(induction2l.n_layers)]
    calls = iter(range(10**6))
    replay = lambda p: stored[next(calls) % len(stored)]  # noqa: E731  (the lesson's answers, replayed)
    assert l02.check_prev_token_score(replay, induction2l)
    calls = iter(range(10**6))
    as_student("ada")
    assert not l02.check_prev_token_score(replay, induction2l)


# --- lesson 03 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s03():
    from tests.test_lesson03_exercises import lesson03_setup

    return lesson03_setup()


def test_03_without_a_student_the_instances_are_the_lessons(s03):
    assert l03.exercise_facts(s03.model, s03.facts) == list(s03.facts)
    assert l03.exercise_fact(s03.model, s03.facts) is s03.facts[0]


def test_03_students_draw_other_facts(s03):
    drawn = {l03.exercise_fact(s03.model, s03.facts, student=s).text for s in STUDENTS}
    assert len(drawn) >= 3 and s03.facts[0].text not in drawn  # never the fact the lesson shows


@pytest.mark.parametrize("student", STUDENTS)
def test_03_the_solution_solves_each_students_instance_and_near_misses_fail(s03, student):
    as_student(student)
    m = s03.model
    facts_2 = l03.exercise_facts(m, s03.facts)
    ex = l03.exercise_fact(m, s03.facts)
    ex_trace = causal_trace(m, ex.text, ex.subject, answer=ex.answer, kind="resid", samples=10, seed=0)
    sol = runpy.run_path(str(SOLUTIONS / "03_factual_recall.py"),
                         init_globals={**vars(s03), "facts_2": facts_2, "ex": ex, "ex_trace": ex_trace})
    # 03.1 on the student's own prompts; positions one too small fail
    assert l03.check_subject_tokens(sol["subject_tokens"], m, s03.world)
    off = lambda p, s: [i - 1 for i in sol["subject_tokens"](p, s)]  # noqa: E731
    assert "one too small" in l03.check_subject_tokens(off, m, s03.world).message
    # 03.2 on the student's facts; the runner-up head fails
    assert len(facts_2) == 12 and l03.check_mover_head(sol["answer_2"], m, facts_2)
    from kit.analysis import recall_summary

    summary = recall_summary(m, [f.text for f in facts_2], [f.subject for f in facts_2], [f.answer for f in facts_2])
    (l2, h2, _), = summary.top_subject_heads(2)[1:]
    assert not l03.check_mover_head((l2, h2), m, facts_2)
    # 03.3 on the student's fact; the last position and the runner-up cell fail
    layer, pos = sol["answer_3"]
    assert l03.check_subject_peak((layer, pos), m, ex.text, ex.subject, ex.answer)
    assert "last token" in l03.check_subject_peak((layer, len(ex_trace.tokens) - 1), m, ex.text, ex.subject,
                                                  ex.answer).message
    sub = ex_trace.scores[:, ex_trace.subject]
    second = int(sub.flatten().topk(2).indices[1])
    runner_up = (second // sub.shape[1], ex_trace.subject[second % sub.shape[1]])
    assert not l03.check_subject_peak(runner_up, m, ex.text, ex.subject, ex.answer)
    # 03.4 on the student's fact; p after and the flipped sign fail
    drop = sol["answer_4"]
    assert drop >= l03.MIN_DROP and l03.check_knockout_drop(drop, m, ex.text, ex.subject, ex.answer)
    assert "flipped" in l03.check_knockout_drop(-drop, m, ex.text, ex.subject, ex.answer).message
    assert not l03.check_knockout_drop(drop / 2, m, ex.text, ex.subject, ex.answer)


# --- lesson 04 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s04():
    from tests.test_lesson04_exercises import lesson04_setup

    return lesson04_setup()


def test_04_without_a_student_the_instances_are_the_lessons(s04):
    assert l04.exercise_neurons(s04.model, s04.LAYER, 5) == [(s04.LAYER, 5), (0, 0), (1, 7)]
    assert l04.exercise_feature(s04.res.Y, s04.labels, s04.mask) == s04.feature
    assert l04.exercise_concept(s04.world, s04.concept) == s04.concept
    assert l04.exercise_target_kl() == 0.5


def test_04_students_draw_other_instances_never_a_printed_feature(s04):
    features = {l04.exercise_feature(s04.res.Y, s04.labels, s04.mask, student=s) for s in STUDENTS}
    assert len(features) >= 3 and not features & {s04.feature, 0, 1, 2, 3}
    assert len({l04.exercise_concept(s04.world, s04.concept, student=f"s{i}") for i in range(20)}) >= 3
    targets = {l04.exercise_target_kl(student=f"s{i}") for i in range(20)}
    assert len(targets) >= 3 and 1.0 not in targets  # never the KL whose scale the lesson prints


@pytest.mark.parametrize("student", STUDENTS)
def test_04_the_solution_solves_each_students_instance_and_near_misses_fail(s04, student):
    as_student(student)
    m = s04.model
    cases = l04.exercise_neurons(m, s04.LAYER, 5)
    feature_2 = l04.exercise_feature(s04.res.Y, s04.labels, s04.mask)
    concept_3 = l04.exercise_concept(s04.world, s04.concept)
    mask_3 = l04.concept_mask(m, s04.col, s04.prompts, concept_3)
    target = l04.exercise_target_kl()
    sol = runpy.run_path(str(SOLUTIONS / "04_mlp_decomposition.py"),
                         init_globals={**vars(s04), "feature_2": feature_2, "mask_3": mask_3, "TARGET_KL": target})
    # 04.1 on the student's neurons; the most suppressed tokens fail
    assert l04.check_decoded_tokens(sol["decode"], m, cases)
    suppressed = lambda l, n, k: l04.decode_neurons(m, k=k, layers=[l]).tokens(0, n, suppressed=True)  # noqa: E731
    assert "suppressed" in l04.check_decoded_tokens(suppressed, m, cases).message
    # 04.2 on the student's feature; the count and another number of top tokens fail
    scores = s04.res.Y[feature_2]
    purity = sol["answer_2"]
    assert l04.check_feature_purity(purity, scores, s04.labels)
    assert "count" in l04.check_feature_purity(purity * 20, scores, s04.labels).message
    top50 = float(label_purity(scores[None], s04.labels, 50).purity[0])
    assert not l04.check_feature_purity(top50, scores, s04.labels)
    # 04.3 for the student's concept; the flipped sign and the concept's mean alone fail
    dm3 = sol["answer_3"]
    assert mask_3.any() and l04.check_diff_means(dm3, s04.col.acts, mask_3)
    assert "flipped" in l04.check_diff_means(-dm3, s04.col.acts, mask_3).message
    assert "alone" in l04.check_diff_means(s04.col.acts[:, mask_3].mean(1), s04.col.acts, mask_3).message
    # 04.4 at the student's target KL; the target itself and a doubled scale fail
    alpha = sol["answer_4"]
    args = (m, s04.steer_prompts, s04.LAYER, s04.dm)
    assert l04.check_steering_scale(alpha, *args, target_kl=target)
    assert not l04.check_steering_scale(target, *args, target_kl=target)
    assert not l04.check_steering_scale(2 * alpha, *args, target_kl=target)
    assert "negative" in l04.check_steering_scale(-alpha, *args, target_kl=target).message


# --- lesson 05 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ioi3l():
    torch.set_num_threads(1)
    return kit.load("ioi-3l", device="cpu")


def test_05_without_a_student_the_instances_are_the_lessons(ioi3l):
    assert vars(l05.exercise_batch(ioi3l)) == vars(l05.ioi_batch(32))
    assert l05.exercise_receiver(ioi3l, l05.ioi_batch(32)) == (2, 2)
    assert lessons.variant_seed(l05.EX_DIFF, 5) == 5


def test_05_students_never_get_the_prompts_whose_grid_the_lesson_prints(ioi3l):
    lesson = l05.ioi_batch(32).clean
    drawn = [l05.exercise_batch(ioi3l, student=f"s{i}").clean for i in range(8)]
    assert lesson not in drawn and len({tuple(d) for d in drawn}) >= 3


@pytest.mark.parametrize("student", STUDENTS)
def test_05_the_solution_solves_each_students_instance_and_near_misses_fail(ioi3l, student):
    as_student(student)
    sol = load_solution(SOLUTIONS / "05_find_a_circuit.py")
    batch = l05.exercise_batch(ioi3l)
    receiver = l05.exercise_receiver(ioi3l, batch)
    assert batch.clean != l05.ioi_batch(32).clean  # the student's own prompts
    # 5.1 on the student's own random logits; the reversed sign fails
    assert l05.check_logit_diff(sol.logit_diff)
    assert "reversed" in l05.check_logit_diff(lambda lg, io, s: -sol.logit_diff(lg, io, s)).message
    # 5.2: the solution passes, the runner-up fails
    assert l05.check_top_head(sol.top_head, ioi3l, batch)
    grid = l05.patching_by_head(ioi3l, batch)
    runner_up = divmod(int(grid.flatten().topk(2).indices[1]), ioi3l.n_heads)
    assert not l05.check_top_head(runner_up, ioi3l, batch)
    # 5.3 into the student's receiver: the solution passes; the runner-up and the receiver itself fail
    assert l05.check_sender(sol.sender, ioi3l, receiver, batch)
    (_, _), (second, _) = path_patching(ioi3l, *batch.args(), receivers=[receiver], receiver_pos=-1).top(2)
    assert not l05.check_sender(second, ioi3l, receiver, batch)
    assert "not below" in l05.check_sender(receiver, ioi3l, receiver, batch).message



# --- whole notebooks, as a student --------------------------------------------------------------------

@pytest.mark.lessons
@pytest.mark.parametrize("lesson", ["01_attention_and_the_residual_stream", "05_find_a_circuit"])
def test_a_students_notebook_draws_their_instances_and_the_pasted_solutions_pass(lesson, facts4l, world, ioi3l,
                                                                                monkeypatch):
    """The lesson run by `ada` (KIT_STUDENT), the reference solution pasted before each check as a student
    would: no cell fails and every exercise passes, on ada's own instances (not the lesson's)."""
    import importlib.util
    import sys

    monkeypatch.delenv("KIT_PROGRESS")  # the run counts the verdicts the kernel records
    spec = importlib.util.spec_from_file_location("lesson_student_run", SOLUTIONS.parent / "student_run.py")
    student_run = importlib.util.module_from_spec(spec)
    sys.modules["lesson_student_run"] = student_run
    spec.loader.exec_module(student_run)
    run = student_run.run(SOLUTIONS.parent / f"{lesson}.ipynb", student="ada")
    assert run["errors"] == [] and run["passed"] == run["exercises"] == run["checks"], run
    if lesson.startswith("01"):
        assert l01.exercise_person(facts4l, world, student="ada") is not world.people[0]
    else:
        assert l05.exercise_batch(ioi3l, student="ada").clean != l05.ioi_batch(32).clean
