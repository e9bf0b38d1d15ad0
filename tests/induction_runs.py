"""The live training runs of lesson 02 (a 2-layer model and its 1-layer control, the lesson's settings),
trained once per test process and shared by the tests that check them."""

from __future__ import annotations

import functools
from dataclasses import replace

import torch

from kit.train import InductionRecipe, TrainResult, train_induction

LIVE_STEPS = 1200  # lesson 02 trains the shipped recipe in full: the live run remakes the shipped model
LIVE = InductionRecipe().with_train(steps=LIVE_STEPS, device="cpu")


@functools.lru_cache(maxsize=1)
def live_runs() -> tuple[TrainResult, TrainResult]:
    """``(two_layers, one_layer)``, each with its history, on one thread (as the lesson runs them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        two = train_induction(LIVE, progress=False, history=True)
        one = train_induction(replace(LIVE, n_layers=1), progress=False)
    finally:
        torch.set_num_threads(before)
    return two, one
