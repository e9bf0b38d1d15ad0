"""The result of an exercise check: a verdict a learner can read, never a bare ``AssertionError``.

A check never raises on a wrong or missing answer (the notebook keeps running, so nbval can execute a
lesson whose exercises are still open); it returns a :class:`CheckResult` that prints as one line
and renders as a coloured box in Jupyter. Tests use its truth value. Making a verdict records it for
the current student, when one is set (:mod:`kit.lessons.progress`); the last verdict a check makes
for an exercise is the one that stands.
"""

from __future__ import annotations

import html
import traceback
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["CheckResult", "passed", "failed", "unanswered", "is_unanswered", "call_learner"]


@dataclass(frozen=True)
class CheckResult:
    """Verdict of one exercise check: ``status`` is ``"passed"``, ``"failed"`` or ``"unanswered"``."""

    exercise: str
    status: str
    message: str

    def __post_init__(self) -> None:
        if self.status not in ("passed", "failed", "unanswered"):
            raise ValueError(f"status {self.status!r} is not one of 'passed', 'failed', 'unanswered'")
        for field, value in (("exercise", self.exercise), ("message", self.message)):
            if not isinstance(value, str) or not value.strip():  # progress files key verdicts by exercise
                raise ValueError(f"a verdict's {field} must be a non-empty string, got {value!r}")
        from . import progress  # every verdict is recorded here, once (off unless a student is set)

        progress.record(self)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = {"passed": "✔ correct", "failed": "✘ not yet", "unanswered": "… to do"}[self.status]
        return f"{mark} [{self.exercise}]: {self.message}"

    def _repr_html_(self) -> str:
        colour = {"passed": "#1a7f37", "failed": "#cf222e", "unanswered": "#9a6700"}[self.status]
        return (
            f'<div class="kit-check" style="border-left:4px solid {colour};padding:4px 8px;margin:4px 0">'
            f"<b style='color:{colour}'>{html.escape(repr(self).split(':', 1)[0])}</b>: "
            f"{html.escape(self.message)}</div>"
        )


def passed(exercise: str, message: str) -> CheckResult:
    return CheckResult(exercise, "passed", message)


def failed(exercise: str, message: str) -> CheckResult:
    return CheckResult(exercise, "failed", message)


def unanswered(exercise: str, hint: str) -> CheckResult:
    return CheckResult(exercise, "unanswered", f"replace the `...` with your answer. Hint: {hint}")


def is_unanswered(answer: Any) -> bool:
    """True for the placeholders a lesson leaves in an exercise cell (``...`` or ``None``)."""
    return answer is Ellipsis or answer is None


def call_learner(exercise: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, CheckResult | None]:
    """Call a learner's function; an exception becomes a failed check that names it (and where)."""
    if not callable(fn):
        return None, failed(exercise, f"expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, unanswered(exercise, "the function still raises NotImplementedError")
    except Exception as err:  # a learner's bug: report it as a verdict, not a traceback wall
        frame = traceback.extract_tb(err.__traceback__)[-1]
        return None, failed(
            exercise, f"your function raised {type(err).__name__}: {err} (line {frame.lineno}: {frame.line})"
        )
