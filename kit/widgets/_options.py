"""Refusing unknown keyword arguments with a spelling hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["refuse_unknown"]


def refuse_unknown(owner: str, unknown: dict[str, Any], valid: Iterable[str]) -> None:
    """Raise TypeError naming each unknown keyword, the closest valid one, and all valid ones."""
    if not unknown:
        return
    valid = sorted(valid)
    lines = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        lines.append(f"{owner}() got an unexpected keyword argument {name!r}.{hint}")
    lines.append(f"Valid keyword arguments: {', '.join(valid)}.")
    raise TypeError(" ".join(lines))
