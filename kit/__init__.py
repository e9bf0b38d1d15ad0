"""Transformer Mechanisms Kit: look inside a transformer.

>>> import kit
>>> model = kit.load("facts-4l")              # a shipped teaching model, a local HF dir, or a hub id
>>> tr = model.trace("The capital of Fusuvaria is")
>>> tr["pattern", 1].shape                     # [batch, head, query, key]
torch.Size([1, 4, 8, 8])

The core (this package's modules: loading, the tracer, interventions) is what the packages build on:
``kit.analysis`` (measurements), ``kit.train`` (the teaching models), ``kit.lessons`` (exercise
checks) and ``kit.widgets`` (views). Command-line reports that tie them together live in the
repository's ``scripts/``, outside the installed package.
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
