"""Refusing unknown keyword arguments with a spelling hint."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["refuse_unknown"]


def keywords_of(func: Callable[..., Any]) -> list[str]:
    """The named parameters of `func` a caller may pass by keyword (not ``self``, ``*args``, ``**kw``)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(func).parameters.items() if p.kind in kinds and n != "self"]


def refuse_unknown(owner: type | str, unknown: dict[str, Any], valid: Iterable[str] | None = None) -> None:
    """Raise TypeError naming each unknown keyword, the closest valid one, and all valid ones.

    ``owner``: the class (its ``__init__`` signature gives the valid keywords) or a name with ``valid``.
    """
    if not unknown:
        return
    if isinstance(owner, type):
        valid = keywords_of(owner.__init__) if valid is None else valid
        owner = owner.__name__
    valid = sorted(valid or [])
    lines = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        lines.append(f"{owner}() got an unexpected keyword argument {name!r}.{hint}")
    lines.append(f"Valid keyword arguments: {', '.join(valid)}.")
    raise TypeError(" ".join(lines))
