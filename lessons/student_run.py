"""Run each lesson as a student would, with its exercises solved, and measure it: time and kernel memory.

For each built lesson ``lessons/NN_*.ipynb`` this executes a copy in a fresh kernel, top to bottom
(the optional hub cells stay skipped, as offline), with the reference solution
(``lessons/solutions/NN_*.py``) pasted in just before each check: the solution's statements that
define a name the check cell uses. The student is ``student-run`` (``KIT_STUDENT``), so every verdict
is recorded in a temporary progress folder, and the class report of that folder says how many checks
passed. It prints one line per lesson: wall time, the kernel's peak resident memory (``ru_maxrss``),
checks passed, and the load average before and after (the machine may be shared: say so).

    python lessons/student_run.py                 # every lesson
    python lessons/student_run.py 02 03 --json runs.json
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
MEMORY_CELL = ("import json as _json, resource as _resource\n"
               "print('KIT-PEAK-RSS', _json.dumps(_resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss))")


def _defined(node: ast.stmt) -> set[str]:
    """The names a top-level statement binds or changes (``x = ...``, ``x[k] = ...``, ``x.append(...)``,
    a ``for`` loop's assignments, ``def``, ``class``, ``import``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, (ast.Subscript, ast.Attribute)) and isinstance(n.ctx, ast.Store):
            base = n
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                out.add(base.id)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
            out.add(n.func.value.id)  # x.append(...), x.update(...)
    return out


def solution_cell(solution: str, check_source: str) -> str | None:
    """A cell that runs the statements of ``solution`` defining a name ``check_source`` uses (with the
    imports they need); None when there are none."""
    names = lambda tree: {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used = names(ast.parse(check_source))
    body = ast.parse(solution).body
    keep: list[ast.stmt] = []
    while True:  # the statements that define what is used, and what those use in turn
        more = [n for n in body if n not in keep and _defined(n) & used]
        if not more:
            break
        keep = [n for n in body if n in keep or n in more]  # in the solution's order
        for n in more:
            used |= names(n)
    if not keep:
        return None
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.get_source_segment(solution, n) for n in dict.fromkeys([*imports, *keep]))


def student_notebook(nb: nbformat.NotebookNode, solution: str | None) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the solution pasted before each check call and a memory probe at the end."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        if solution and cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            code = solution_cell(solution, cell.source)
            if code:  # inside the cell, just before the statement that calls the check (an exercise
                # cell often defines the stub and checks it in one cell)
                lines = cell.source.splitlines()
                at = next(n.lineno - 1 for n in ast.parse(cell.source).body
                          if CHECK_CALL.search(ast.get_source_segment(cell.source, n) or ""))
                cell.source = "\n".join(lines[:at] + ["# --- the reference solution ---", code,
                                                       "# --- the check ---"] + lines[at:])
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell(MEMORY_CELL))
    out.cells = cells
    return out


def run(path: Path, student: str = "student-run") -> dict:
    """Execute lesson ``path`` as a student: ``{lesson, wall_s, peak_rss_mib, words (of text to read),
    exercises (distinct checks the notebook calls: a check run again on more cases is one exercise),
    passed, checks, problems, errors, load_before, load_after}``
    (a cell that raises is reported in ``errors``; the run goes on)."""
    from kit.lessons.progress import collect

    sol = HERE / "solutions" / path.with_suffix(".py").name
    nb = student_notebook(nbformat.read(path, as_version=4), sol.read_text() if sol.exists() else None)
    progress_dir = Path(tempfile.mkdtemp(prefix="kit-student-run-"))
    env = {"KIT_STUDENT": student, "KIT_PROGRESS_DIR": str(progress_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    load_before = os.getloadavg()
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=1200, kernel_name="python3", skip_cells_with_tag="skip-execution",
                       allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wall = time.perf_counter() - start
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    rss_kib = json.loads(probe.split("KIT-PEAK-RSS", 1)[1])
    report = collect(progress_dir)
    table = report.table()
    passed = int(table[0]["passed"]) if table else 0
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    exercises = len({name for c in nb.cells if c.cell_type == "code" for name in CHECK_CALL.findall(c.source)})
    return {"lesson": path.stem, "wall_s": round(wall, 1), "peak_rss_mib": round(rss_kib / 1024), "words": words,
            "exercises": exercises,
            "passed": passed, "checks": len(report.exercises), "problems": report.problems, "errors": errors,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


READING_WPM = 150  # words a minute, for technical text with code
EXERCISE_MIN = (5, 10)  # minutes per exercise, for a student who has read the section


def markdown(results: list[dict]) -> str:
    """Two markdown tables: the measurements, and class-time estimates built from them."""
    rows = ["| lesson | compute time | kernel peak RSS | exercises passed | load average (1 min) before -> after |",
            "| --- | --- | --- | --- | --- |"]
    for r in results:
        rows.append(f"| `{r['lesson']}` | {r['wall_s']:.0f} s | {r['peak_rss_mib']} MiB | "
                    f"{r['passed']}/{r.get('exercises', r['checks'])} "
                    f"| {r['load_before'][0]} -> {r['load_after'][0]} |")
    est = ["| lesson | compute (measured) | reading (words / 150 wpm) | exercises | suggested class slot |",
           "| --- | --- | --- | --- | --- |"]
    for r in results:
        read = r["words"] / READING_WPM
        n = r.get("exercises", r["checks"])  # exercises in the notebook (checks recorded, in older runs)
        lo = r["wall_s"] / 60 + read + n * EXERCISE_MIN[0]
        hi = r["wall_s"] / 60 + read + n * EXERCISE_MIN[1]
        slot = 15 * -(-hi // 15)  # round up to a quarter hour
        est.append(f"| `{r['lesson']}` | {r['wall_s'] / 60:.1f} min | {r['words']} words, {read:.0f} min | "
                   f"{n} x {EXERCISE_MIN[0]}-{EXERCISE_MIN[1]} min | {lo:.0f}-{hi:.0f} min: "
                   f"a {slot:.0f}-minute slot |")
    return "\n".join(rows) + "\n\n" + "\n".join(est) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="prefixes of the lessons to run (default: all)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the tables of docs/instructors.md")
    args = parser.parse_args(argv)
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if any(p.stem.startswith(x) for x in args.lessons)]
    results = []
    for path in paths:
        r = run(path)
        results.append(r)
        print(f"{r['lesson']}: {r['wall_s']:.0f} s, kernel peak RSS {r['peak_rss_mib']} MiB, "
              f"{r['passed']}/{r['checks']} exercises passed, {r['words']} words of text, load average {r['load_before'][0]} -> "
              f"{r['load_after'][0]}", flush=True)
        for err in r["errors"]:
            print(f"  error in {err}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown:
        print(markdown(results))


if __name__ == "__main__":
    main(sys.argv[1:])
