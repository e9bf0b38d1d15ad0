"""Synthetic data sets and the seeded training loop that made the teaching models of ``kit/zoo``.

>>> from kit.train import InductionRecipe, train_induction
>>> result = train_induction(InductionRecipe().with_train(steps=400))   # seconds on a CPU
>>> result.log.chart()                                                  # loss and head scores per step

Command line: ``python -m kit.train induction-2l --out DIR`` (or ``facts-4l``,
or the 1-layer control ``induction-1l``) writes a Hugging Face model directory
that ``AutoModelForCausalLM.from_pretrained(DIR)`` and ``kit.load(DIR)`` read.

Modules: ``recipe`` (the ``Recipe`` base of the three recipes, ``gpt2_model``),
``loop`` (``train``, ``TrainConfig``), ``log`` (``TrainLog``),
``metrics`` (head scores, shapes ``scores[layer, head]``), ``phase`` (phase-change
steps), ``induction_data`` / ``induction`` (``induction-2l``), ``names`` /
``world`` / ``facts`` (``facts-4l``), ``ioi_data`` / ``ioi`` (``ioi-3l``), ``tokenizers``,
``save`` (atomic writes), ``checkpoint`` (atomic checkpoints, ``--resume``), ``build`` (train, measure
and write a model directory: one path for every recipe), ``card`` / ``ioi_card`` / ``card_common``
(model cards), ``cli``,
``history`` (``TrainingHistory``: snapshots of every head's scores and patterns during a run).
The head scores themselves are defined once, in ``kit.head_scores``.
"""

from kit.train.facts import FactsRecipe, answer_accuracy, measure_facts, train_facts
from kit.train.history import HistoryRecorder, TrainingHistory
from kit.train.induction import (
    InductionRecipe,
    measure_induction,
    phase_change,
    train_induction,
)
from kit.train.log import TrainLog
from kit.train.loop import TrainConfig, train
from kit.train.metrics import (
    induction_scores,
    prev_token_scores,
    repeated_sequence_losses,
)
from kit.train.result import TrainResult
from kit.train.save import atomic_directory, save_model_dir
from kit.train.world import World, build_world, load_world

__all__ = [
    "FactsRecipe",
    "HistoryRecorder",
    "InductionRecipe",
    "TrainConfig",
    "TrainLog",
    "TrainResult",
    "TrainingHistory",
    "World",
    "answer_accuracy",
    "atomic_directory",
    "build_world",
    "induction_scores",
    "load_world",
    "measure_facts",
    "measure_induction",
    "phase_change",
    "prev_token_scores",
    "repeated_sequence_losses",
    "save_model_dir",
    "train",
    "train_facts",
    "train_induction",
]
