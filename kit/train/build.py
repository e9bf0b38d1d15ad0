"""Train a recipe, measure the result, and write its model directory (weights, tokenizer, card, log).

``build_induction``, ``build_facts`` and ``build_ioi`` are what ``python -m kit.train`` runs (all through
one path, ``_build``);
``measure_dir`` re-measures a written directory (the figures of its card).
Every directory is written atomically (``kit.train.save``): interrupted, it
leaves nothing behind.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from kit.train.card import render_card
from kit.train.checkpoint import Checkpointer, Checkpoints
from kit.train.facts import FactsRecipe, measure_facts, train_facts
from kit.train.induction import (
    InductionRecipe,
    induction_curve,
    measure_induction,
    offset_curve,
    phase_change,
    train_induction,
)
from kit.train.ioi import EVAL_SETTINGS, IOIRecipe, measure_ioi, train_ioi
from kit.train.ioi_data import HELD_OUT_TEMPLATES, TEMPLATES
from kit.train.log import TrainLog
from kit.train.result import TrainResult
from kit.train.save import save_model_dir
from kit.train.world import HELD_OUT_PER_RELATION, World, load_world

__all__ = [
    "HISTORY_FILE", "INDUCTION_MEASURE", "LAST_STEPS", "build_facts", "build_induction", "build_ioi", "measure_dir",
    "train_control",
]

INDUCTION_MEASURE = {"n_seqs": 32, "half_len": None, "seed": 0}  # the defaults of kit.analysis
HISTORY_FILE = "training_history.safetensors"
LAST_STEPS = 50  # "final" training losses: mean over the last 50 steps


def _mean_last(log: TrainLog, name: str, n: int = LAST_STEPS) -> float:
    return statistics.fmean(log.series(name)[1][-n:])


def _training_figures(log: TrainLog) -> dict:
    return {
        "wall_time_s": round(log.wall_time_s, 2),
        "cpu_time_s": round(log.meta["cpu_time_s"], 2),
        "threads": log.meta["threads"],
        "device": log.meta["device"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _files(figures: dict, log: TrainLog, extra: dict | None = None) -> dict[str, str]:
    text = json.dumps(figures, indent=1, sort_keys=True) + "\n"
    return {
        "figures.json": text,
        "MODEL_CARD.md": render_card(json.loads(text)),  # the card of exactly what the file says
        "training_log.json": log.to_json(),
        **(extra or {}),
    }


def _refuse_existing(out: str | Path, overwrite: bool) -> None:
    """Fail before training, not after it, when ``out`` exists and may not be replaced."""
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")


def train_control(recipe: InductionRecipe, progress: bool = False, checkpoints: Checkpoints | None = None) -> float:
    """Train the 1-layer control by ``recipe``; its mean training loss on repeated tokens over the last steps."""
    result = train_induction(replace(recipe, n_layers=1), progress=progress,
                             checkpoint=checkpoints.run("induction-1l") if checkpoints else None)
    return _mean_last(result.log, "loss_repeated")


def _build(out: str | Path, overwrite: bool, checkpoints: Checkpoints | None, run: str,
           train_and_measure: Callable[[Checkpointer | None], tuple[TrainResult, dict, dict]]) -> Path:
    """The one build path: refuse an existing ``out`` (unless ``overwrite``) or stale checkpoints before
    training; ``train_and_measure(checkpoint)`` trains (checkpointed as ``run``) and returns the result, its
    figures and extra files; write ``out`` atomically (figures, card, log, extras); then drop the checkpoints."""
    _refuse_existing(out, overwrite)
    if checkpoints is not None:
        checkpoints.refuse_stale()
    result, figures, extra = train_and_measure(checkpoints.run(run) if checkpoints else None)
    path = save_model_dir(out, result.model, result.tokenizer, _files(figures, result.log, extra), overwrite=overwrite)
    if checkpoints is not None:
        checkpoints.clear()
    return path


def _head(out: str | Path, kind: str, command: str, recipe, result: TrainResult) -> dict:
    """The figures every model directory records first: name, kind, command, recipe, parameter count."""
    return {"model": out_name(out), "recipe_kind": kind, "command": command, "recipe": recipe.to_dict(),
            "n_parameters": sum(p.numel() for p in result.model.parameters())}


def build_induction(
    out: str | Path, recipe: InductionRecipe, command: str, overwrite: bool = False, progress: bool = True,
    control: bool = True, checkpoints: Checkpoints | None = None,
) -> Path:
    """Train ``recipe``, measure it (and, with ``control``, a 1-layer control), write ``out``.

    ``checkpoints``: save (and with ``resume``, continue from) checkpoints of each training run;
    they are deleted once ``out`` has been written."""
    def run(checkpoint):
        result = train_induction(recipe, progress=progress, history=True, checkpoint=checkpoint)
        log = result.log
        figures = {
            **_head(out, "induction", command, recipe, result),
            "training": {
                **_training_figures(log),
                "phase_change": phase_change(log),
                "loss_repeated_last50": round(_mean_last(log, "loss_repeated"), 4),
            },
            "measure_settings": INDUCTION_MEASURE,
            "measured": measure_induction(result.model, **INDUCTION_MEASURE),
            "curve": induction_curve(result.model),
            "offset_curve": offset_curve(result.model),
        }
        if control and recipe.n_layers > 1:
            figures["control"] = {"n_layers": 1,
                                  "loss_repeated": round(train_control(recipe, progress, checkpoints), 4)}
        return result, figures, {HISTORY_FILE: lambda d: result.history.save(d / HISTORY_FILE)}
    return _build(out, overwrite, checkpoints, f"induction-{recipe.n_layers}l", run)


def _world_figures(world: World, tokenizer) -> dict:
    subjects = sorted({f.subject for f in world.facts})
    lengths = [len(tokenizer(" " + s, add_special_tokens=False)["input_ids"]) for s in subjects]
    rel = next(iter(world.relations.values()))
    example = world.prompts("train", relation="capital")[0]
    return {
        "example": {"prompt": example.text, "answer": example.answer},
        "countries": len(world.countries),
        "people": len(world.people),
        "entities": world.n_entities,
        "facts": len(world.facts),
        "relations": len(world.relations),
        "templates_per_relation": len(rel.templates),
        "held_out_per_relation": len(rel.held_out),
        "train_sentences": len(world.prompts("train")),
        "held_out_prompts": len(world.prompts("held_out")),
        "subject_tokens_mean": round(statistics.fmean(lengths), 4),
        "subject_multi_token_fraction": round(sum(n > 1 for n in lengths) / len(lengths), 4),
    }


def build_facts(out: str | Path, recipe: FactsRecipe, command: str, overwrite: bool = False,
                progress: bool = True, checkpoints: Checkpoints | None = None) -> Path:
    """Train ``recipe``, measure it, write ``out`` (with ``world.json``); ``checkpoints`` as in
    :func:`build_induction`."""
    def run(checkpoint):
        result, world = train_facts(recipe, progress=progress, checkpoint=checkpoint)
        figures = {
            **_head(out, "facts", command, recipe, result),
            "training": {**_training_figures(result.log),
                         "loss_answer_last50": round(_mean_last(result.log, "loss_answer"), 4)},
            "world": _world_figures(world, result.tokenizer),
            "measured": measure_facts(result.model, result.tokenizer, world),
        }
        assert figures["world"]["held_out_per_relation"] == HELD_OUT_PER_RELATION
        return result, figures, {"world.json": world.to_json()}
    return _build(out, overwrite, checkpoints, "facts-4l", run)


def build_ioi(out: str | Path, recipe: IOIRecipe, command: str, overwrite: bool = False, progress: bool = True,
              checkpoints: Checkpoints | None = None) -> Path:
    """Train ``recipe``, measure it, write ``out``; ``checkpoints`` as in :func:`build_induction`."""
    def run(checkpoint):
        result = train_ioi(recipe, progress=progress, checkpoint=checkpoint)
        log = result.log
        steps, acc = log.series("acc_train")
        figures = {
            **_head(out, "ioi", command, recipe, result),
            "names": recipe.names(),
            "templates": list(TEMPLATES),
            "held_out_templates": list(HELD_OUT_TEMPLATES),
            "training": {**_training_figures(log), "loss_last50": round(_mean_last(log, "loss"), 4),
                         "first_step_acc_train_0.9": next((s for s, a in zip(steps, acc) if a >= 0.9), None)},
            "measure_settings": EVAL_SETTINGS,
            "measured": measure_ioi(result.model, result.tokenizer, recipe),
        }
        return result, figures, {}
    return _build(out, overwrite, checkpoints, "ioi-3l", run)


def out_name(out: str | Path) -> str:
    return Path(out).absolute().name


def measure_dir(path: str | Path) -> dict:
    """Re-measure the weights in ``path`` (a directory written by this module): the ``measured`` figures."""
    path = Path(path)
    figures = json.loads((path / "figures.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    if figures["recipe_kind"] == "induction":
        return {**measure_induction(model, **figures["measure_settings"]), "curve": induction_curve(model),
                "offset_curve": offset_curve(model)}
    tokenizer = AutoTokenizer.from_pretrained(path)
    if figures["recipe_kind"] == "ioi":
        return measure_ioi(model, tokenizer, IOIRecipe())
    return measure_facts(model, tokenizer, load_world(path / "world.json"))
