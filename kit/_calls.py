"""How a hooked module was handed its input: positionally, or by keyword under its own parameter name."""

from __future__ import annotations

import functools
import inspect


@functools.lru_cache(maxsize=None)
def input_name(cls: type) -> str:
    """The keyword a module of class ``cls`` takes its input by (``hidden_states`` for a block, ``input``
    for ``nn.Linear``, ``x`` for GPT-2's ``Conv1D``): the first parameter of ``forward`` after ``self``."""
    params = list(inspect.signature(cls.forward).parameters)
    return params[1] if len(params) > 1 else params[0]
