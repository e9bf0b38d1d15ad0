"""Train ``ioi-3l``, measure it, and write its model directory (weights, tokenizer, card, log).

``build_ioi`` is what ``python -m kit.train ioi-3l --out DIR`` runs; the directory is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from kit.train.build import _mean_last, _refuse_existing, _training_figures, out_name
from kit.train.checkpoint import Checkpoints
from kit.train.ioi import EVAL_SETTINGS, IOIRecipe, measure_ioi, train_ioi
from kit.train.ioi_card import render_ioi_card
from kit.train.ioi_data import HELD_OUT_TEMPLATES, TEMPLATES
from kit.train.log import TrainLog
from kit.train.save import save_model_dir

__all__ = ["build_ioi"]


def _files(figures: dict, log: TrainLog) -> dict[str, str]:
    text = json.dumps(figures, indent=1, sort_keys=True) + "\n"
    return {"figures.json": text, "MODEL_CARD.md": render_ioi_card(json.loads(text)),
            "training_log.json": log.to_json()}


def build_ioi(out: str | Path, recipe: IOIRecipe, command: str, overwrite: bool = False, progress: bool = True,
              checkpoints: Checkpoints | None = None) -> Path:
    """Train ``recipe``, measure it, write ``out``; ``checkpoints`` as in ``kit.train.build.build_induction``."""
    _refuse_existing(out, overwrite)
    if checkpoints is not None:
        checkpoints.refuse_stale()
    result = train_ioi(recipe, progress=progress, checkpoint=checkpoints.run("ioi-3l") if checkpoints else None)
    log = result.log
    steps, acc = log.series("acc_train")
    figures = {
        "model": out_name(out),
        "recipe_kind": "ioi",
        "command": command,
        "recipe": recipe.to_dict(),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "names": recipe.names(),
        "templates": list(TEMPLATES),
        "held_out_templates": list(HELD_OUT_TEMPLATES),
        "training": {**_training_figures(log), "loss_last50": round(_mean_last(log, "loss"), 4),
                     "first_step_acc_train_0.9": next((s for s, a in zip(steps, acc) if a >= 0.9), None)},
        "measure_settings": EVAL_SETTINGS,
        "measured": measure_ioi(result.model, result.tokenizer, recipe),
    }
    path = save_model_dir(out, result.model, result.tokenizer, _files(figures, log), overwrite=overwrite)
    if checkpoints is not None:
        checkpoints.clear()
    return path
