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


def test_the_7b_shape_rows_run_in_quick_mode_on_the_cpu():
    """benchmarks/gpu.py's Llama-7B-shape rows (plain SDPA, logits only, all but patterns, all), shrunk."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick", "--device", "cpu", "--only", "7b"],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for n_tok in (64, 256):
        for row in ("plain SDPA", "logits only", "everything but patterns", "everything"):
            assert f"7B shape {n_tok} tokens, {row}: " in done.stdout
