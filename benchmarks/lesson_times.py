"""Wall time of each lesson under nbval, as CI runs it, against the 2-minute budget per lesson.

Each notebook runs in a fresh ``pytest --nbval-lax`` process (kernel start, every cell, output
comparison), so the time is what a learner's "Run all" plus kernel start costs on this machine.

    python benchmarks/lesson_times.py              # every lesson, median of 3 runs each
    python benchmarks/lesson_times.py --quick      # the first lesson once (CI smoke run)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 120.0


def run_once(notebook: Path) -> float:
    """Seconds for one nbval run of `notebook`; raises if any cell fails."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", str(notebook)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{notebook.name} failed under nbval:\n{done.stdout[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first lesson, once")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("lessons", nargs="*", help="notebook name prefixes (default: all)")
    args = ap.parse_args()
    notebooks = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        notebooks = [n for n in notebooks if any(n.name.startswith(p) for p in args.lessons)]
    if args.quick:
        notebooks, args.reps = notebooks[:1], 1
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, reps={args.reps}, budget {BUDGET_S:.0f} s")
    print(f"{'lesson':<42} {'median (s)':>10} {'of budget':>10}")
    worst = 0.0
    for nb in notebooks:
        median = statistics.median(run_once(nb) for _ in range(args.reps))
        worst = max(worst, median / BUDGET_S)
        print(f"{nb.name:<42} {median:>10.1f} {median / BUDGET_S:>10.2f}")
    print(f"slowest lesson uses {worst:.2f} of its {BUDGET_S:.0f} s budget")


if __name__ == "__main__":
    main()
