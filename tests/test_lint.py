"""The tree passes ruff, with the configuration in pyproject.toml ([tool.ruff]), as part of `make test`.

On a failure the message is ruff's own report (file, line, rule, what is wrong); ``ruff check --fix``
repairs the fixable ones. ruff comes with the test extra (``pip install -e ".[test]"``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["kit", "tests", "lessons", "benchmarks", "scripts"]


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    try:
        import ruff as _  # noqa: F401  (only to say how to install it)
    except ImportError:
        pytest.fail('ruff is not installed: pip install -e ".[test]" (or pip install ruff)', pytrace=False)
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_tree_passes_ruff():
    out = ruff("check", "--no-cache", "--output-format", "concise", *PATHS)
    if out.returncode != 0:
        pytest.fail(f"ruff check {' '.join(PATHS)}:\n{out.stdout}{out.stderr}", pytrace=False)


def test_configuration_catches_real_bugs(tmp_path):
    # the project's rules, on a file with an unused import, an undefined name and a mutable default
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(x=[]):\n    return undefined_name + x\n")
    out = ruff("check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), "--output-format", "concise", str(bad))
    assert out.returncode == 1
    for rule in ("F401", "F821", "B006"):
        assert rule in out.stdout, out.stdout
    good = tmp_path / "good.py"
    good.write_text("def f(layers):\n    return [l + 1 for l in layers]\n")  # `l` for a layer is allowed
    assert ruff("check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(good)).returncode == 0
