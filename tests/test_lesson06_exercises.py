"""Lesson 06's exercises: the reference solution passes every check, for the default instance and for several
students' variants; the common wrong answers fail with a message that names the mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kit
import kit.lessons as lessons
from kit.analysis import mlp_io, train_sae, train_toy_models, train_transcoder
from kit.lessons import dictionaries as L
from kit.lessons import mlp as words
from kit.train import load_world
from tests.lesson_solutions import load_solution

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "06_superposition_and_dictionaries.py"
STUDENTS = ["ada", "bob", "cy", "dee"]


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("KIT_PROGRESS", "0")
    lessons.stop()


@pytest.fixture(scope="module")
def sol():
    return load_solution(SOLUTION)


@pytest.fixture(scope="module")
def setup():
    """The lesson's data and dictionaries (same settings as the notebook)."""
    torch.set_num_threads(1)
    model = kit.load("facts-4l", device="cpu")
    world = load_world()
    prompts = words.world_sentences(world, per_relation=60)
    held = words.world_sentences(world, per_relation=20, split="held_out")
    io = mlp_io(model, [p.sentence for p in prompts], 0)
    held_io = mlp_io(model, [p.sentence for p in held], 0)
    sae = train_sae(io.hidden, 256, steps=300, seed=0)
    tc = train_transcoder(io.inputs, io.outputs, 256, steps=300, seed=0)
    return {"model": model, "world": world, "prompts": prompts, "io": io, "held_io": held_io, "sae": sae, "tc": tc}


@pytest.fixture(scope="module")
def toy():
    return train_toy_models(20, 5, sparsities=(0.0, 0.7, 0.9, 0.97), seed=0)


def stub(*args):
    raise NotImplementedError


# --- 6.1 ---------------------------------------------------------------------------------------------

def test_dimensionality_solution_passes(sol, toy):
    assert L.check_dimensionality(sol.dimensionality, toy)


def test_dimensionality_open_exercise_is_to_do():
    assert L.check_dimensionality(stub).status == "unanswered"
    assert L.check_dimensionality(...).status == "unanswered"


def _n(W):
    return W.norm(dim=0)


def _ov(W):
    return (W / W.norm(dim=0)).T @ W


@pytest.mark.parametrize("wrong,says", [
    (lambda W: _n(W) ** 2 / ((_ov(W) ** 2).sum(1) - _n(W) ** 2), "include the feature itself"),
    (lambda W: _n(W) ** 2 / ((W.T @ W) ** 2).sum(1), "Normalise"),
    (lambda W: _n(W) / (_ov(W) ** 2).sum(1), "squared norm"),
    (lambda W: _n(W) ** 2 / _ov(W).abs().sum(1), "Square the overlaps"),
    (lambda W: W.norm(dim=1) ** 2 / (((W.T / W.norm(dim=1)).T @ W.T) ** 2).sum(1), "per hidden dimension"),
    (lambda W: W.shape[0] / (W ** 2).sum() * torch.ones(W.shape[1]), "dimensions per feature"),
    (lambda W: 1 / 0, "ZeroDivisionError"),
])
def test_dimensionality_wrong_answers_fail_with_a_reason(toy, wrong, says):
    verdict = L.check_dimensionality(wrong, toy)
    assert verdict.status == "failed" and says in verdict.message


@pytest.mark.parametrize("student", STUDENTS)
def test_dimensionality_on_each_students_own_toy_models(sol, student):
    seed = lessons.variant_seed(L.EX_DIM, 0, student=student)
    assert seed != 0
    toy = train_toy_models(20, 5, sparsities=(0.0, 0.9), seed=seed, steps=300)
    assert L.check_dimensionality(sol.dimensionality, toy)
    assert not L.check_dimensionality(lambda W: _n(W) ** 2 / ((W.T @ W) ** 2).sum(1), toy)


# --- 6.2 ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cases(setup):
    h, sae, tc = setup["held_io"], setup["sae"], setup["tc"]
    return [("the SAE", h.hidden, sae(h.hidden), sae.encode(h.hidden)),
            ("the transcoder", h.outputs, tc(h.inputs), tc.encode(h.inputs))]


def test_stats_solution_passes_and_agrees_with_the_library(sol, setup, cases):
    assert L.check_reconstruction_stats(sol.stats, cases)
    h, sae = setup["held_io"], setup["sae"]
    ev, l0 = sol.stats(*cases[0][1:])
    lib = sae.stats(h.hidden)
    assert ev == pytest.approx(lib["explained_variance"], abs=1e-4) and l0 == pytest.approx(lib["l0"], abs=1e-4)


def _ok_ev(t, p):
    return float(1 - ((t - p) ** 2).sum() / ((t - t.mean(1, keepdim=True)) ** 2).sum())


def _ok_l0(y):
    return float((y > 0).sum(0).float().mean())


@pytest.mark.parametrize("wrong,says", [
    (lambda t, p, y: (float(1 - ((t - p) ** 2).sum() / (t ** 2).sum()), _ok_l0(y)), "raw sum of squares"),
    (lambda t, p, y: (float(1 - ((t - p) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()), _ok_l0(y)), "wrong axis"),
    (lambda t, p, y: (1 - _ok_ev(t, p), _ok_l0(y)), "unexplained"),
    (lambda t, p, y: (_ok_ev(t, p), float((y > 0).float().mean())), "share of active"),
    (lambda t, p, y: (_ok_ev(t, p), float((y > 0).sum(1).float().mean())), "tokens per latent"),
    (lambda t, p, y: (_ok_ev(t, p), float((y >= 0).sum(0).float().mean())), "not >= 0"),
    (lambda t, p, y: (_ok_ev(t, p), float(y.sum(0).mean())), "L1 norm"),
    (lambda t, p, y: _ok_ev(t, p), "two numbers"),
])
def test_stats_wrong_answers_fail_with_a_reason(cases, wrong, says):
    verdict = L.check_reconstruction_stats(wrong, cases)
    assert verdict.status == "failed" and says in verdict.message, verdict.message


def test_stats_open_exercise_is_to_do(cases):
    assert L.check_reconstruction_stats(stub, cases).status == "unanswered"


# --- 6.3 ---------------------------------------------------------------------------------------------

def well_posed(setup):
    def ok(r):
        m = words.concept_mask(setup["model"], setup["io"].col, setup["prompts"], r)
        return float(L.precision_at(setup["sae"].Y, m).max()) >= 0.8
    return ok


def relations(setup):
    return [r for r in setup["world"].relations if r != "currency"]


@pytest.mark.parametrize("student", [None] + STUDENTS)
def test_relation_feature_solution_passes_for_each_student(sol, setup, student):
    rel = lessons.variant(L.EX_FEATURE, relations(setup), student=student, where=well_posed(setup))
    mask = words.concept_mask(setup["model"], setup["io"].col, setup["prompts"], rel)
    sae = setup["sae"]
    answer = sol.relation_feature(sae, mask)
    assert L.check_relation_feature(answer, sae, mask, rel, acts=setup["io"].hidden)
    # the wrong answers: the feature most active on the mask on average, the most active overall, a neuron
    Y, m = sae.Y, mask
    prec = L.precision_at(Y, m)
    for wrong, says in ((int(Y[:, m].mean(1).argmax()), "largest mean activation"), (int(Y.sum(1).argmax()), "overall"),
                        (int(prec.argmin()), "feature reaches")):
        if float(prec[wrong]) < float(prec.max()):
            verdict = L.check_relation_feature(wrong, sae, mask, rel, acts=setup["io"].hidden)
            assert verdict.status == "failed" and says in verdict.message, (wrong, verdict.message)


def test_students_draw_different_relations(setup):
    drawn = {lessons.variant(L.EX_FEATURE, relations(setup), student=s, where=well_posed(setup))
             for s in STUDENTS + ["eve", "fay"]}
    assert len(drawn) >= 2
    assert lessons.variant(L.EX_FEATURE, relations(setup), where=well_posed(setup)) == "capital"


def test_relation_feature_bad_answers(setup):
    mask = words.concept_mask(setup["model"], setup["io"].col, setup["prompts"], "capital")
    sae = setup["sae"]
    assert L.check_relation_feature(..., sae, mask, "capital").status == "unanswered"
    assert "does not exist" in L.check_relation_feature(9999, sae, mask, "capital").message
    assert "an int" in L.check_relation_feature("77", sae, mask, "capital").message


# --- 6.4 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("student", [None] + STUDENTS)
def test_clamp_solution_passes_for_each_student(sol, setup, student):
    sae, x = setup["sae"], setup["held_io"].hidden
    alive = [j for j in range(sae.k) if int((sae.Y[j] > 0).sum()) >= 20]
    feature = lessons.variant(L.EX_CLAMP, [77] + alive, student=student)
    value = lessons.variant(L.EX_CLAMP + " value", [0.0, 2.0, 5.0], student=student)
    assert L.check_clamp(sol.clamp, sae, x, feature, value)


@pytest.mark.parametrize("wrong,says", [
    (lambda x, d, i, v: x + v * d.Z[:, i][:, None], "on top of"),
    (lambda x, d, i, v: d.reconstruct(x) + d.Z[:, i][:, None] * (v - d.encode(x)[i])[None], "error term"),
    (lambda x, d, i, v: x + d.W_enc[i][:, None] * (v - d.encode(x)[i])[None], "encoder's row"),
    (lambda x, d, i, v: x + d.Z[:, i][:, None] * (v - (d.W_enc[i] @ (x - d.b_dec[:, None]) + d.b_enc[i]))[None],
     "pre-activation"),
    (lambda x, d, i, v: x - d.Z[:, i][:, None] * (v - d.encode(x)[i])[None], "sign"),
    (lambda x, d, i, v: x + d.Z[:, i][:, None] * (v - torch.relu(d.W_enc[i] @ x + d.b_enc[i]))[None], "b_dec"),
    (lambda x, d, i, v: x.T, "shape"),
])
def test_clamp_wrong_answers_fail_with_a_reason(setup, wrong, says):
    sae, x = setup["sae"], setup["held_io"].hidden
    verdict = L.check_clamp(wrong, sae, x, 77, 5.0)
    assert verdict.status == "failed" and says in verdict.message, verdict.message


def test_clamp_open_exercise_is_to_do(setup):
    assert L.check_clamp(stub, setup["sae"], setup["held_io"].hidden, 77, 0.0).status == "unanswered"


def test_the_clamp_the_widget_applies_is_the_checked_one(setup):
    """NeuronProbe's SAE clamp and the exercise's truth are the same edit."""
    from kit.widgets._features import DictionaryFeatures

    model, sae = setup["model"], setup["sae"]
    prompt = "The currency of Veloria is the"
    (edit,) = DictionaryFeatures(sae).clamp_edits(model, prompt, 0, 77, 3.0)
    x = model.trace(prompt, capture=["mlp_post"])["mlp_post", 0]  # [1, pos, d_mlp]
    assert torch.allclose(edit.fn(x)[0].T, L.clamp_feature(x[0].T, sae, 77, 3.0), atol=1e-5)
