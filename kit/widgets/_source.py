"""The one place that turns a widget's first arguments into what it shows.

Every view of one prompt takes either a trace (``View(model.trace(prompt))``) or a model and a
prompt (``View(model, prompt)``, which traces with the names the view needs). `resolve_source`
accepts exactly those (and, for views that can draw from a model's weights alone, a bare model)
and refuses anything else with a message naming the valid forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Source", "resolve_source"]


@dataclass(frozen=True)
class Source:
    """What a view was given: its ``trace`` (None for a bare model) and the ``model`` behind it."""

    trace: Any | None
    model: Any | None


def _is_model(obj: Any) -> bool:
    return callable(getattr(obj, "trace", None)) and not hasattr(obj, "tokens")


def _is_trace(obj: Any) -> bool:
    return hasattr(obj, "tokens")


def resolve_source(
    view: str, source: Any, prompt: Any, capture: Sequence[str], *, model_alone: str | None = None
) -> Source:
    """``Source`` of ``View(trace)`` or ``View(model, prompt)``; a model and a prompt are traced with
    ``capture``. ``model_alone``: what a bare model draws (e.g. ``"weights="``); None refuses it.

    Raises ``TypeError`` for anything else, naming the forms ``view`` accepts.
    """
    if prompt is not None:
        if not _is_model(source):
            raise TypeError(
                f"{view}(model, prompt) needs a kit model (something with .trace(), from kit.load(...)) as its "
                f"first argument; got {type(source).__name__}"
            )
        return Source(trace=source.trace(prompt, capture=list(capture)), model=source)
    if _is_trace(source):
        return Source(trace=source, model=getattr(source, "model", None))
    if _is_model(source):
        if model_alone is not None:
            return Source(trace=None, model=source)
        raise TypeError(f'{view}(model) needs a prompt too: {view}(model, "some text")')
    forms = "a trace (from model.trace(...)) or a model and a prompt" + (
        f", or a model with {model_alone}" if model_alone else ""
    )
    raise TypeError(f"{view} takes {forms}; got {type(source).__name__}")
