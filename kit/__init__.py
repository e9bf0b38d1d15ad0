"""Transformer Mechanisms Kit: look inside a transformer.

>>> import kit
>>> model = kit.load("induction-2l")          # a shipped teaching model, a local HF dir, or a hub id
>>> tr = model.trace("The capital of Veloria is")
>>> tr["pattern", 1].shape                     # [batch, head, query, key]
"""

from __future__ import annotations

from . import names
from .interventions import Ablate, Clamp, Edit, Knockout, Patch, Steer
from .models import Model, load, models, pick_device
from .trace import Trace

from . import analysis  # noqa: E402  (after the core it builds on)

__version__ = "0.1.0"

__all__ = [
    "load", "models", "pick_device", "Model", "Trace", "names", "analysis",
    "Ablate", "Patch", "Clamp", "Steer", "Knockout", "Edit",
]
