"""lessons/student_run.py pastes the reference solution where a student would, and only what a check needs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lesson_student_run", ROOT / "lessons" / "student_run.py")
student_run = importlib.util.module_from_spec(_spec)
sys.modules["lesson_student_run"] = student_run
_spec.loader.exec_module(student_run)

SOLUTION = '''import torch

def helper(x):
    return x + 1

def answer_fn(x):
    return helper(x) * 2

answer_1 = answer_fn(1)
unrelated = 5
'''


def test_the_solution_cell_holds_what_the_check_uses_and_its_dependencies():
    code = student_run.solution_cell(SOLUTION, "check_one(answer_1, model)")
    assert "def helper" in code and "def answer_fn" in code and "answer_1 = answer_fn(1)" in code
    assert "import torch" in code and "unrelated" not in code
    assert code.index("def helper") < code.index("def answer_fn") < code.index("answer_1 =")  # solution order
    assert student_run.solution_cell(SOLUTION, "check_two(other, model)") is None


def test_the_solution_goes_inside_the_exercise_cell_before_the_check_call():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# x"),
                nbformat.v4.new_code_cell("def answer_fn(x):\n    raise NotImplementedError\n\n"
                                          "answer_1 = ...\ncheck_one(\n    answer_1, model)")]
    out = student_run.student_notebook(nb, SOLUTION)
    src = out.cells[1].source
    assert src.index("raise NotImplementedError") < src.index("answer_1 = answer_fn(1)") < src.index("check_one(")
    assert src.index("answer_1 = ...") < src.index("answer_1 = answer_fn(1)")  # the stub is overwritten
    assert "resource" in out.cells[-1].source and len(out.cells) == 3  # the memory probe comes last
    assert nb.cells[1].source.count("answer_fn(1)") == 0  # the original notebook is left alone


def test_every_lesson_check_gets_its_solution():
    for path in sorted((ROOT / "lessons").glob("0[1-9]_*.ipynb")):
        sol = ROOT / "lessons" / "solutions" / path.with_suffix(".py").name
        if not sol.exists():
            continue
        out = student_run.student_notebook(nbformat.read(path, as_version=4), sol.read_text())
        checks = [c for c in out.cells if c.cell_type == "code" and student_run.CHECK_CALL.search(c.source)]
        assert checks, path.name
        for cell in checks:
            assert "the reference solution" in cell.source, (path.name, cell.source[-200:])


def test_the_class_time_table_adds_compute_reading_and_exercises():
    run = {"lesson": "02_x", "wall_s": 120.0, "peak_rss_mib": 500, "words": 1500, "passed": 4, "checks": 4,
           "load_before": [1.0, 1, 1], "load_after": [2.0, 1, 1]}
    text = student_run.markdown([run])
    assert "| `02_x` | 120 s | 500 MiB | 4/4 | 1.0 -> 2.0 |" in text
    # 2 min compute + 10 min reading + 4 x 5..10 min = 32..52 min, rounded up to a 60-minute slot
    assert "| `02_x` | 2.0 min | 1500 words, 10 min | 4 x 5-10 min | 32-52 min: a 60-minute slot |" in text
