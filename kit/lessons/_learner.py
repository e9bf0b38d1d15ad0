"""Calling a learner's function from a check, with the exercise's own hint when it is still a stub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._check import CheckResult, call_learner

__all__ = ["todo", "run_learner"]


def todo(exercise: str, hint: str) -> CheckResult:
    """The "to do" verdict of a function exercise whose body still raises ``NotImplementedError``."""
    return CheckResult(exercise, "unanswered", f"write the function's body (it still raises NotImplementedError). "
                                               f"Hint: {hint}")


def run_learner(exercise: str, hint: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, CheckResult | None]:
    """``call_learner`` whose "to do" verdict carries ``hint``; ``(value, None)`` when the call worked."""
    value, verdict = call_learner(exercise, fn, *args)
    if verdict is not None and verdict.status == "unanswered":
        return None, todo(exercise, hint)
    return value, verdict
