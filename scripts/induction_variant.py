"""Train one variant of the ``induction-2l`` recipe on one CPU thread and print its figures as JSON.

    python scripts/induction_variant.py '{"segment_dist": "log", "first_gap": [0, 8]}' [SAVE_DIR]

The argument changes fields of ``kit.train.InductionRecipe`` (``"train": {...}`` changes its ``TrainConfig``).
Printed: CPU time of the training, the phase change, the best previous-token score of layer 0 and induction
score of layer 1 (the card's settings), and the induction curve at selected repeat lengths T with and without
``<|bos|>`` as ``[bos, T, best layer-1 induction score, loss ratio second / first copy]`` (tokens 2..T of each
copy, 32 sequences, seed 0: the settings of the card's curve). docs/induction_short_repeats.md lists the
variants measured with it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from kit.train import metrics
from kit.train.induction import (InductionRecipe, induction_curve, measure_induction, phase_change,
                                 train_induction)

LENGTHS = (4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64)


def main(changes: dict) -> dict:
    torch.set_num_threads(1)
    train = changes.pop("train", {})
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    recipe = replace(InductionRecipe(), **changes).with_train(device="cpu", progress=False, **train)
    start = time.process_time()
    result = train_induction(recipe)
    cpu = time.process_time() - start
    fig = measure_induction(result.model)
    rows = induction_curve(result.model)  # every T of the card's curve
    curve = [[r["bos"], r["half_len"], round(r["induction_score"], 3), round(r["loss_ratio"], 3)]
             for r in rows if r["half_len"] in LENGTHS or r["half_len"] == max(LENGTHS) - r["bos"]]
    summary = {}
    for bos in (True, False):
        mine = [r for r in rows if r["bos"] == bos]
        failing = [r["half_len"] for r in mine if r["loss_ratio"] > 0.2]
        summary["bos" if bos else "no_bos"] = {
            "ratio_T4": round(mine[0]["loss_ratio"], 3), "max_ratio": round(max(r["loss_ratio"] for r in mine), 3),
            "holds_from": (max(failing) + 1) if failing else 4, "failing": failing,
            "min_induction": round(min(r["induction_score"] for r in mine), 3)}
    prev = metrics.prev_token_scores(result.model, n_seqs=32, seed=0)[0]
    if len(sys.argv) > 2:
        result.model.save_pretrained(sys.argv[2])
    return {"changes": changes, "cpu_time_s": round(cpu, 1), "phase_change": phase_change(result.log),
            "prev_token_score": round(fig["prev_token_score"], 3), "induction_score": round(fig["induction_score"], 3),
            "layer0_prev_scores": [round(float(x), 3) for x in prev], "summary": summary, "curve": curve}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
