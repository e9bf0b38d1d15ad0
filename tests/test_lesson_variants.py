"""Exercise variants (kit.lessons.variant): the default instance without a student, a stable draw per student."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import kit.lessons as lessons

ROOT = Path(__file__).resolve().parents[1]
CHOICES = ["fact A", "fact B", "fact C", "fact D"]


pytestmark = pytest.mark.usefixtures("no_student")  # tests/conftest.py


def test_without_a_student_every_exercise_keeps_its_default_instance():
    assert lessons.current_student() is None
    assert lessons.variant("3.1 find the subject", CHOICES) == "fact A"
    assert lessons.variant_seed("2.1 previous-token score", default=3) == 3


def test_a_student_draws_the_same_instance_every_time_and_in_another_process():
    lessons.start("ada", record=False)
    mine = [lessons.variant(f"{i}.1 ex", CHOICES) for i in range(8)]
    assert mine == [lessons.variant(f"{i}.1 ex", CHOICES) for i in range(8)]
    code = ("import kit.lessons as l; l.start('ada', record=False); "
            "print([l.variant(f'{i}.1 ex', ['fact A', 'fact B', 'fact C', 'fact D']) for i in range(8)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123", "KIT_PROGRESS": "0"})
    assert out.stdout.strip() == repr(mine), out.stderr  # not Python's salted hash: same in every kernel


def test_the_environment_student_draws_like_start(monkeypatch):
    lessons.start("ada", record=False)
    expected = [lessons.variant(f"{i}.2 ex", CHOICES) for i in range(10)]
    lessons.stop()
    monkeypatch.setenv("KIT_STUDENT", "ada")
    assert [lessons.variant(f"{i}.2 ex", CHOICES) for i in range(10)] == expected


def test_a_class_spreads_over_every_instance():
    counts = Counter(lessons.variant("2.3 name the heads", CHOICES, student=f"s{i:02d}") for i in range(200))
    assert set(counts) == set(CHOICES)
    assert min(counts.values()) > 200 / len(CHOICES) / 2  # roughly uniform: none starved


def test_one_student_gets_different_instances_of_different_exercises():
    drawn = {lessons.variant_index(f"1.{i} ex", 1000, student="ada") for i in range(20)}
    assert len(drawn) > 15  # the exercise name enters the draw


def test_students_get_different_seeds_never_the_default():
    seeds = {lessons.variant_seed("2.1 previous-token score", 3, student=f"s{i}") for i in range(100)}
    assert len(seeds) == 100 and 3 not in seeds
    assert all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("choices", [set(CHOICES), "abcd", [], {"a": 1}, 5])
def test_choices_must_be_an_ordered_non_empty_sequence(choices):
    with pytest.raises(ValueError, match="choices"):
        lessons.variant("1.1 ex", choices)


def test_bad_counts_and_names_are_refused():
    with pytest.raises(ValueError, match="positive int"):
        lessons.variant_index("1.1 ex", 0)
    with pytest.raises(ValueError, match="exercise's name"):
        lessons.variant_index("", 3)


def test_where_keeps_only_well_posed_instances_and_calls_it_lazily():
    calls = []

    def even(x):
        calls.append(x)
        return x % 2 == 0

    numbers = list(range(10))
    assert lessons.variant("1.1 ex", numbers, where=even) == 0 and calls == [0]  # no student: the first
    assert lessons.variant("1.1 ex", [1, 3, 4, 6], where=even) == 4  # no student: the first that passes
    drawn = {lessons.variant("1.1 ex", numbers, student=f"s{i}", where=even) for i in range(60)}
    assert drawn == {0, 2, 4, 6, 8}  # every well-posed instance is reachable, no other
    calls.clear()
    got = lessons.variant("1.1 ex", numbers, student="ada", where=even)
    assert calls[-1] == got and all(c % 2 for c in calls[:-1])  # stops at the first that passes
    assert got == lessons.variant("1.1 ex", numbers, student="ada", where=even)  # stable
    with pytest.raises(ValueError, match="none of the 3 choices"):
        lessons.variant("1.1 ex", [1, 3, 5], where=even)
