"""Make modules receive every argument by keyword, as some models' own code calls its layers
(``layer(hidden_states=h, attention_mask=...)``): the kit's hooks must treat both calls alike."""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterable, Iterator

from torch import nn


def _to_keywords(module: nn.Module, args: tuple, kwargs: dict):
    if not args:
        return None
    sig = inspect.signature(module.forward)
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()):
        raise TypeError(f"{type(module).__name__}.forward takes *args: its call cannot be made by keyword")
    bound = sig.bind(*args, **kwargs)
    out = {}
    for name, value in bound.arguments.items():
        if params[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return (), out


@contextlib.contextmanager
def called_by_keyword(modules: Iterable[nn.Module]) -> Iterator[list[nn.Module]]:
    """While open, each module's positional arguments are passed as keywords instead. Register it before
    the kit attaches its hooks (a trace attaches them when it runs), so that they see the keyword call."""
    modules = list(modules)
    handles = [m.register_forward_pre_hook(_to_keywords, with_kwargs=True) for m in modules]
    try:
        yield modules
    finally:
        for h in handles:
            h.remove()
