"""Exercise variants: each student draws their own instance of an exercise (another fact, head, sequence).

A lesson and its check both ask for the variant by the exercise's name, so they agree::

    fact = kit.lessons.variant("3.1 find the subject", facts)   # the notebook shows this one
    ...                                                         # and the check draws the same

With no student set (:mod:`kit.lessons.student`) every exercise keeps its default instance
(``choices[0]``, ``default`` for :func:`variant_seed`): the notebooks nbval runs stay deterministic.
With a student, the draw is a hash of the student id and the exercise name (SHA-256, not Python's
per-process ``hash``), so it is the same in every kernel, on every machine, and differs between
exercises; it is not a secret (whoever knows the id can recompute it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from .student import current_student

__all__ = ["variant", "variant_index", "variant_seed"]

T = TypeVar("T")


def _draw(student: str, exercise: str) -> int:
    digest = hashlib.sha256(f"kit-variant/1\0{student}\0{exercise}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def variant_index(exercise: str, n: int, student: str | None = None) -> int:
    """Index in ``range(n)`` of ``student``'s (default: the current student's) instance of ``exercise``;
    0 when there is no student."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int (the number of instances), got {n!r}")
    if not isinstance(exercise, str) or not exercise.strip():
        raise ValueError(f"exercise must be the exercise's name, e.g. '2.3 name the heads'; got {exercise!r}")
    student = student if student is not None else current_student()
    return 0 if student is None else _draw(student, exercise) % n


def variant(exercise: str, choices: Sequence[T], student: str | None = None) -> T:
    """The current student's instance of ``exercise`` among ``choices`` (``choices[0]`` with no student).

    ``choices`` must be a non-empty sequence in a fixed order (a list or tuple, not a set: the order
    decides who gets what).
    """
    if isinstance(choices, (set, frozenset, dict)) or not isinstance(choices, Sequence) or isinstance(choices, str):
        raise ValueError(f"choices must be a list or tuple in a fixed order, got {type(choices).__name__}")
    if len(choices) == 0:
        raise ValueError(f"exercise {exercise!r}: no choices to draw from")
    return choices[variant_index(exercise, len(choices), student)]


def variant_seed(exercise: str, default: int, student: str | None = None) -> int:
    """A random seed for ``exercise``'s data: ``default`` with no student, else one drawn per student
    (in ``0 .. 2**31 - 1``, never equal to ``default``, so every student's sequence differs from the
    notebook's stored one)."""
    student = student if student is not None else current_student()
    if student is None:
        return default
    seed = _draw(student, exercise + "\0seed") % (2**31 - 1)
    return seed if seed != default else seed + 1
