"""Every lesson gives the same text outputs twice: executing it now reproduces what its notebook stores.

For each ``lessons/NN_*.ipynb`` (whatever lessons exist), the notebook is executed top to bottom in a
fresh kernel (once per test session, network blocked: see ``tests/lesson_runs.py``) and every
executed code cell's text outputs (stdout and ``text/plain`` results, timings and memory addresses
masked; HTML, vega, images, stderr and cells marked ``NBVAL_SKIP`` / ``NBVAL_IGNORE_OUTPUT`` left
out) must equal the stored ones. This is stricter than nbval's ``--nbval-lax``, which compares only
cells marked ``NBVAL_CHECK_OUTPUT``. Marked ``lessons``: ``pytest -m lessons`` runs only these,
``-m "not lessons"`` skips them; CI (``make test``) runs them.
"""

from __future__ import annotations

import difflib

import nbformat
import pytest
from tests.lesson_runs import LESSONS, run_lesson, text_outputs

pytestmark = pytest.mark.lessons


def test_there_are_lessons_to_check():
    assert LESSONS, "no lessons/NN_*.ipynb found"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_run_again_prints_what_its_notebook_stores(path):
    stored = text_outputs(nbformat.read(path, as_version=4))
    executed, _ = run_lesson(str(path))
    now = text_outputs(executed)
    assert [i for i, _ in now] == [i for i, _ in stored]
    for (i, before), (_, after) in zip(stored, now):
        if before != after:
            diff = "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "stored", "now", lineterm=""))
            pytest.fail(f"{path.name}, cell {i}: the text output changed on a second run\n{diff}")
