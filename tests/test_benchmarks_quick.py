"""CI runs every benchmark once in its quick mode, so the scripts keep working between full runs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="the payload benchmark renders in Debian's chromium")
def test_every_benchmark_runs_in_quick_mode():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--no-peers"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for heading in ["trace overhead", "attention payload", "causal tracing", "SNMF", "lesson wall times"]:
        assert f"== {heading}" in done.stdout
    assert "ratio" in done.stdout and "of budget" in done.stdout
