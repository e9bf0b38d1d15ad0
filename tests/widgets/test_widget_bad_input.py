"""Bad input to every widget: a clear error naming what is valid, and nothing half-changed.

Two tables on the tiny GPT-2 of ``tests/tiny.py`` (3 layers, 4 heads, d_mlp 64, n_ctx 64, vocab 300):

- constructor arguments: each row must raise the given error with a matching message and leave
  no hook on the model;
- trait assignments on a working widget: each row must raise ``traitlets.TraitError`` (or the given
  error) naming the valid values, and afterwards every synced trait holds what it held before.

Also: ``to_html(path)`` never leaves a partial file behind.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
import traitlets
from scrubber_fakes import fake_history

from kit.analysis import activation_patching
from kit.train.history import TrainingHistory
from kit.widgets import (
    AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens, TrainingScrubber,
)

CLEAN = "The cat sat on the mat."  # 12 tokens
NAN = float("nan")


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


@pytest.fixture(scope="module")
def ctx(tiny_models):
    m = tiny_models["gpt2"]
    tr = m.trace(CLEAN)
    poisoned = m.trace(CLEAN)
    for name in ("pattern", "resid_post"):
        poisoned._store[(name, 1)] = poisoned._store[(name, 1)].clone()
        poisoned._store[(name, 1)][0, 2, 1] = NAN
    other = tiny_models["llama"]  # 3 layers, 4 heads too, but another prompt length below
    return SimpleNamespace(
        m=m, tr=tr, tr_logits=m.trace(CLEAN, capture=[]), poisoned=poisoned, long=" word" * 80,
        grid=torch.rand(3, 12), nan_grid=torch.full((3, 12), NAN), other=other,
        patching=activation_patching(m, CLEAN, CLEAN, 5, kind="resid"),
    )


CONSTRUCTORS = [
    # AttentionViewer
    ("AttentionViewer", "empty prompt", lambda c: AttentionViewer(c.m, ""), ValueError, "empty"),
    ("AttentionViewer", "whitespace prompt", lambda c: AttentionViewer(c.m, " \n\t"), ValueError, "whitespace"),
    ("AttentionViewer", "prompt over the context", lambda c: AttentionViewer(c.m, c.long), ValueError, "n_ctx=64"),
    ("AttentionViewer", "model name instead of a model", lambda c: AttentionViewer("gpt2", CLEAN), TypeError, "kit model"),
    ("AttentionViewer", "batch_index out of range", lambda c: AttentionViewer(c.tr, batch_index=1), ValueError, r"0\.\.0"),
    ("AttentionViewer", "layer out of range", lambda c: AttentionViewer(c.tr, layer=3), traitlets.TraitError, r"layer must be in 0\.\.2"),
    ("AttentionViewer", "head out of range", lambda c: AttentionViewer(c.tr, head=4), traitlets.TraitError, r"head must be in 0\.\.3"),
    ("AttentionViewer", "token out of range", lambda c: AttentionViewer(c.tr, token=12), traitlets.TraitError, r"0\.\.11 or -1"),
    ("AttentionViewer", "unknown theme", lambda c: AttentionViewer(c.tr, theme="neon"), traitlets.TraitError, "'auto', 'light', 'dark'|auto.*light.*dark"),
    ("AttentionViewer", "misspelt keyword", lambda c: AttentionViewer(c.tr, haed=1), TypeError, "Did you mean 'head'"),
    ("AttentionViewer", "scores of the wrong shape", lambda c: AttentionViewer(c.tr, scores={"induction": torch.ones(2, 4)}), ValueError, r"\(3, 4\)"),
    ("AttentionViewer", "NaN in the scores", lambda c: AttentionViewer(c.tr, scores={"induction": torch.full((3, 4), NAN)}), ValueError, "NaN"),
    ("AttentionViewer", "NaN in the attention", lambda c: AttentionViewer(c.poisoned), ValueError, r"layer 1.*NaN"),
    ("AttentionViewer", "a trace without patterns", lambda c: AttentionViewer(c.tr_logits), ValueError, "capture"),
    # ResidualLens
    ("ResidualLens", "empty prompt", lambda c: ResidualLens(c.m, ""), ValueError, "empty"),
    ("ResidualLens", "prompt over the context", lambda c: ResidualLens(c.m, c.long), ValueError, "n_ctx=64"),
    ("ResidualLens", "target id out of range", lambda c: ResidualLens(c.tr, target=300), ValueError, r"0\.\.299"),
    ("ResidualLens", "empty target", lambda c: ResidualLens(c.tr, target=""), ValueError, "no tokens"),
    ("ResidualLens", "k 0", lambda c: ResidualLens(c.tr, k=0), ValueError, r"1\.\.20"),
    ("ResidualLens", "rank colour without a target", lambda c: ResidualLens(c.tr, color="rank"), traitlets.TraitError, "needs a target"),
    ("ResidualLens", "a trace without resid_post", lambda c: ResidualLens(c.tr_logits), ValueError, "resid_post"),
    ("ResidualLens", "NaN in the residual stream", lambda c: ResidualLens(c.poisoned), ValueError, r"resid_post.*layer 1.*NaN"),
    ("ResidualLens", "layer out of range", lambda c: ResidualLens(c.tr, layer=-1), traitlets.TraitError, r"0\.\.2"),
    # PatchingHeatmap
    ("PatchingHeatmap", "NaN in the grid", lambda c: PatchingHeatmap(c.nan_grid), ValueError, "NaN"),
    ("PatchingHeatmap", "a 1-d grid", lambda c: PatchingHeatmap(torch.ones(3)), ValueError, r"\[layer, pos\]"),
    ("PatchingHeatmap", "tokens of the wrong length", lambda c: PatchingHeatmap(c.grid, tokens=["a"]), ValueError, "1 tokens given for a grid of 12"),
    ("PatchingHeatmap", "unknown value", lambda c: PatchingHeatmap(c.patching, value="share"), ValueError, "valid values: auto"),
    ("PatchingHeatmap", "unknown view", lambda c: PatchingHeatmap({"a": c.grid}, view="b"), ValueError, r"holds \['a'\]"),
    ("PatchingHeatmap", "not a result", lambda c: PatchingHeatmap("abc"), TypeError, "PatchingResult"),
    ("PatchingHeatmap", "no results", lambda c: PatchingHeatmap({}), ValueError, "at least one"),
    ("PatchingHeatmap", "complex grid", lambda c: PatchingHeatmap(torch.ones(3, 4, dtype=torch.complex64)), TypeError, "real numbers"),
    ("PatchingHeatmap", "token out of range", lambda c: PatchingHeatmap(c.patching, token=12), traitlets.TraitError, r"0\.\.11"),
    # NeuronProbe
    ("NeuronProbe", "no texts", lambda c: NeuronProbe(c.m, []), ValueError, "at least one text"),
    ("NeuronProbe", "an empty text", lambda c: NeuronProbe(c.m, [CLEAN, ""]), ValueError, "empty"),
    ("NeuronProbe", "text over the context", lambda c: NeuronProbe(c.m, [c.long]), ValueError, "n_ctx=64"),
    ("NeuronProbe", "a trace instead of a model", lambda c: NeuronProbe(c.tr, [CLEAN]), TypeError, "kit model"),
    ("NeuronProbe", "layer out of range", lambda c: NeuronProbe(c.m, [CLEAN], layer=3), traitlets.TraitError, r"0\.\.2"),
    ("NeuronProbe", "neuron out of range", lambda c: NeuronProbe(c.m, [CLEAN], neuron=64), traitlets.TraitError, r"0\.\.63"),
    ("NeuronProbe", "features of the wrong shape", lambda c: NeuronProbe(c.m, [CLEAN], features=torch.ones(5, 2)), ValueError, r"d_mlp=64"),
    ("NeuronProbe", "NaN in the features", lambda c: NeuronProbe(c.m, [CLEAN], features=torch.full((64, 2), NAN)), ValueError, "NaN"),
    ("NeuronProbe", "features for a missing layer", lambda c: NeuronProbe(c.m, [CLEAN], features={7: torch.ones(64, 2)}), ValueError, r"valid layers are 0\.\.2"),
    ("NeuronProbe", "NaN clamp", lambda c: NeuronProbe(c.m, [CLEAN], clamp=NAN), traitlets.TraitError, "finite"),
    # CircuitDiagram
    ("CircuitDiagram", "empty prompt", lambda c: CircuitDiagram(c.m, "  "), ValueError, "whitespace"),
    ("CircuitDiagram", "answer id out of range", lambda c: CircuitDiagram(c.tr, answer=300), ValueError, r"0\.\.299"),
    ("CircuitDiagram", "position out of range", lambda c: CircuitDiagram(c.tr, pos=12), ValueError, r"position 12 is out of range.*12 tokens"),
    ("CircuitDiagram", "position out of range with given weights", lambda c: CircuitDiagram(c.tr, weights={"heads": torch.ones(3, 4)}, pos=40), ValueError, r"position 40 is out of range.*12 tokens"),
    ("CircuitDiagram", "threshold above 1", lambda c: CircuitDiagram(c.tr, threshold=2.0), traitlets.TraitError, r"0\.\.1"),
    ("CircuitDiagram", "node out of range", lambda c: CircuitDiagram(c.tr, node="L3.H0"), traitlets.TraitError, "L<layer>"),
    ("CircuitDiagram", "weights of the wrong shape", lambda c: CircuitDiagram(c.m, weights={"heads": torch.ones(2, 2)}), ValueError, r"\[3, 4\]"),
    ("CircuitDiagram", "NaN weights", lambda c: CircuitDiagram(c.m, weights={"heads": torch.full((3, 4), NAN)}), ValueError, "NaN"),
    ("CircuitDiagram", "a trace missing captures", lambda c: CircuitDiagram(c.tr_logits), ValueError, "capture="),
    # TrainingScrubber (more in test_training_scrubber.py)
    ("TrainingScrubber", "not a history", lambda c: TrainingScrubber({"steps": [0]}), TypeError, "TrainingHistory"),
    ("TrainingScrubber", "an empty history", lambda c: TrainingScrubber(TrainingHistory(finished=True)), ValueError, "no snapshots"),
    ("TrainingScrubber", "a step not recorded", lambda c: TrainingScrubber(fake_history(), step=15), traitlets.TraitError, "recorded step"),
    # Dashboard
    ("Dashboard", "no views", lambda c: Dashboard(), ValueError, "at least one view"),
    ("Dashboard", "not a widget", lambda c: Dashboard("lens"), TypeError, "kit widgets"),
    ("Dashboard", "unknown link", lambda c: Dashboard(AttentionViewer(c.tr), link=["colour"]), ValueError, "link takes some of"),
    ("Dashboard", "a view twice", lambda c: (lambda v: Dashboard(v, v))(AttentionViewer(c.tr)), ValueError, "appears twice"),
    ("Dashboard", "views that disagree", lambda c: Dashboard(AttentionViewer(c.tr), AttentionViewer(c.other, "The cat")), ValueError, "disagree on its range"),
    ("Dashboard", "columns 0", lambda c: Dashboard(AttentionViewer(c.tr), columns=0), ValueError, "positive integer"),
]


@pytest.mark.parametrize("widget,what,call,exc,match", CONSTRUCTORS, ids=[f"{r[0]}: {r[1]}" for r in CONSTRUCTORS])
def test_bad_constructor_arguments_are_refused_clearly(ctx, widget, what, call, exc, match):
    hooks = _hooks(ctx.m)
    with pytest.raises(exc, match=match):
        call(ctx)
    assert _hooks(ctx.m) == hooks
    assert ctx.m.hf.config._attn_implementation == "sdpa"


def test_every_widget_has_constructor_rows():
    import kit.widgets as W

    widgets = {n for n in W.__all__ if isinstance(getattr(W, n), type)}
    assert widgets - {r[0] for r in CONSTRUCTORS} == set()


WIDGETS = {
    "AttentionViewer": lambda c: AttentionViewer(c.tr),
    "ResidualLens": lambda c: ResidualLens(c.tr, target=" mat"),
    "PatchingHeatmap": lambda c: PatchingHeatmap({"resid": c.patching, "grid": c.grid}),
    "NeuronProbe": lambda c: NeuronProbe(c.m, [CLEAN, "The dog"], layer=1, features={0: torch.rand(64, 3)}),
    "CircuitDiagram": lambda c: CircuitDiagram(c.tr),
}

ASSIGNMENTS = [
    ("AttentionViewer", "layer", 3, r"0\.\.2"),
    ("AttentionViewer", "head", -1, r"0\.\.3"),
    ("AttentionViewer", "token", 12, r"0\.\.11 or -1"),
    ("AttentionViewer", "token", -2, r"0\.\.11 or -1"),
    ("AttentionViewer", "layer", "two", "int"),
    ("AttentionViewer", "theme", "neon", "auto"),
    ("AttentionViewer", "height", 1.5, "int"),
    ("ResidualLens", "color", "blue", "prob"),
    ("ResidualLens", "token", 99, r"0\.\.11"),
    ("ResidualLens", "target", 300, r"0\.\.299"),
    ("ResidualLens", "target", "", "no tokens"),
    ("PatchingHeatmap", "view", "mlp", r"\['resid', 'grid'\]"),
    ("PatchingHeatmap", "layer", 3, r"0\.\.2"),
    ("NeuronProbe", "neuron", 64, r"0\.\.63"),
    ("NeuronProbe", "layer", 5, r"0\.\.2"),
    ("NeuronProbe", "text", 2, r"0\.\.1"),
    ("NeuronProbe", "mode", "feature", "features were given for layers \\[0\\]"),
    ("NeuronProbe", "clamp", NAN, "finite"),
    ("NeuronProbe", "clamp", float("inf"), "finite"),
    ("CircuitDiagram", "threshold", 1.5, r"0\.\.1"),
    ("CircuitDiagram", "node", "L9.MLP", "L<layer>"),
    ("CircuitDiagram", "head", 4, r"0\.\.3"),
]


def _state(widget) -> dict:
    extra = {"target": widget.target} if isinstance(widget, ResidualLens) else {}
    return {**widget.get_state(), **extra}


@pytest.mark.parametrize("widget,trait,value,match", ASSIGNMENTS, ids=[f"{w}.{t}={v!r}" for w, t, v, _ in ASSIGNMENTS])
def test_an_invalid_assignment_is_refused_and_changes_nothing(ctx, widget, trait, value, match):
    w = WIDGETS[widget](ctx)
    before = _state(w)
    with pytest.raises((traitlets.TraitError, ValueError, TypeError), match=match):
        setattr(w, trait, value)
    after = _state(w)
    assert after.keys() == before.keys()
    changed = [k for k in before if before[k] != after[k]]
    assert changed == []


def test_to_html_into_a_missing_directory_leaves_no_file(ctx, tmp_path):
    target = tmp_path / "missing" / "page.html"
    with pytest.raises(FileNotFoundError):
        AttentionViewer(ctx.tr).to_html(target)
    assert not target.parent.exists()


def test_a_failed_export_leaves_the_old_file_and_no_partial_one(ctx, tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("the previous page")
    viewer = AttentionViewer(ctx.tr)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        viewer.to_html(target)
    assert target.read_text() == "the previous page"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_a_widget_with_unexportable_data_writes_nothing(ctx, tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    lens = ResidualLens(ctx.tr)
    monkeypatch.setattr(lens, "_blob_keys", lambda: ["dla/999"])  # a key the widget refuses
    with pytest.raises(KeyError):
        lens.to_html(target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
