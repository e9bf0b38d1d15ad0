"""Binder's environment, built the way repo2docker builds it, from the files in binder/ only.

A fresh virtual environment gets ``pip install -r binder/requirements.txt`` run from the repository
root, then ``binder/postBuild`` (hub models skipped: no network here), then lesson 01 is executed
through ``binder/start`` as a launch would, within Binder's memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
BINDER_MEMORY_BYTES = 1.5e9  # public Binder gives 1-2 GB

# Runs `cmd` and prints the peak resident memory of its largest process (the kernel, here).
PEAK_RSS = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def run(argv: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_binder_files_pin_a_cpu_torch_and_launch_offline():
    requirements = (BINDER / "requirements.txt").read_text()
    torch_line = next(line for line in requirements.splitlines() if line.startswith("torch"))
    assert torch_line.endswith("+cpu") and "download.pytorch.org/whl/cpu" in requirements
    assert "HF_HUB_OFFLINE=1" in (BINDER / "start").read_text()
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')
    for script in ("postBuild", "start"):
        assert os.access(BINDER / script, os.X_OK), f"binder/{script} must be executable"


@pytest.mark.skipif(sys.platform != "linux", reason="Binder images are Linux")
def test_binder_environment_builds_and_runs_lesson_01(tmp_path: Path):
    lesson = sorted((ROOT / "lessons").glob("01_*.ipynb"))
    assert lesson, "lesson 01 is missing"
    env_dir = tmp_path / "binder-env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(env_dir), PIP_RETRIES="0",
               PIP_TIMEOUT="15", KIT_BINDER_HUB_MODELS="", HOME=str(tmp_path))
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", str(BINDER / "requirements.txt")], env)
    torch_version = run([str(bin_dir / "python"), "-c", "import torch; print(torch.__version__)"], env).stdout
    assert torch_version.strip().endswith("+cpu")
    installed = run([str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"], env).stdout.lower()
    assert "nvidia" not in installed, "a CUDA build of torch was pulled in"
    postbuild = run([str(BINDER / "postBuild")], env)
    assert "teaching models" in postbuild.stdout
    out = tmp_path / "executed.ipynb"
    launched = run(
        [str(BINDER / "start"), str(bin_dir / "python"), "-c", PEAK_RSS, str(bin_dir / "jupyter"), "nbconvert",
         "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600", str(lesson[0]), "--output", str(out)],
        env,
    )
    assert out.exists()
    peak = int(launched.stdout.split("peak_rss_kb")[-1].split()[0]) * 1024
    assert peak < BINDER_MEMORY_BYTES, f"lesson 01 peaked at {peak / 1e9:.2f} GB, above Binder's memory"
