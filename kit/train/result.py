"""``TrainResult``: what a recipe hands back (model, tokenizer, log)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerFast

from kit.train.history import TrainingHistory
from kit.train.log import TrainLog

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """A trained model (on the CPU, eval mode), its tokenizer, its training log and, when one was
    recorded, its :class:`~kit.train.history.TrainingHistory`."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    log: TrainLog
    history: TrainingHistory | None = None

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"TrainResult(model={type(self.model).__name__}({n:,} parameters), log={self.log!r})"
