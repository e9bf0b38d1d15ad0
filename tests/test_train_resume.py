"""Interrupted training loses nothing: atomic checkpoints, ``--resume`` to the same final weights, and a
killed run (SIGKILL, mid-training) that leaves the previous model directory intact.

Every run here is the ``induction-2l`` recipe cut to a few dozen steps, on the CPU with one thread.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kit.train import InductionRecipe, train_induction
from kit.train import checkpoint as ckpt
from kit.train.checkpoint import CheckpointMismatch, Checkpointer, default_root
from kit.train.cli import main
from kit.train.induction import _probes, build_induction_model, induction_task
from kit.train.loop import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _recipe(steps: int, **changes) -> InductionRecipe:
    return InductionRecipe().with_train(**{"steps": steps, "device": "cpu", "probe_every": 5, "progress": False,
                                           **changes})


def _interrupted_at(n_calls: int, data):
    """A data function that raises KeyboardInterrupt on its ``n_calls``-th batch (as Ctrl-C would)."""
    calls = {"n": 0}

    def batch(size, generator):
        calls["n"] += 1
        if calls["n"] == n_calls:
            raise KeyboardInterrupt
        return data(size, generator)

    return batch


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resumed_run_ends_with_the_weights_and_log_of_an_uninterrupted_one(tmp_path, one_thread):
    recipe = _recipe(24)
    reference = train_induction(recipe)
    folder = tmp_path / "ckpt"
    model, task = build_induction_model(recipe), induction_task(recipe)
    with pytest.raises(KeyboardInterrupt):
        train(model, _interrupted_at(14, task.batch), recipe.train, probes=_probes(recipe), description="induction-2l",
              checkpoint=Checkpointer(folder, every=4))
    assert Checkpointer(folder).latest().name == "step-000012"  # the last 1 step before the interrupt is lost
    resumed = train_induction(recipe, checkpoint=Checkpointer(folder, every=4, resume=True))
    _same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert resumed.log.rows == reference.log.rows  # losses, learning rates and probes of every step
    assert resumed.log.meta["resumed_at_step"] == 12


def test_only_the_latest_complete_checkpoint_is_kept(tmp_path, one_thread):
    recipe = _recipe(10)
    folder = tmp_path / "ckpt"
    train_induction(recipe, checkpoint=Checkpointer(folder, every=3))
    assert sorted(p.name for p in folder.iterdir()) == ["step-000010"]  # every 3 steps, and the last step
    assert sorted(p.name for p in (folder / "step-000010").iterdir()) == ["state.json", "state.safetensors"]


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, one_thread, monkeypatch):
    recipe = _recipe(8)
    folder = tmp_path / "ckpt"
    real_save = ckpt.save_file
    writes = {"n": 0}

    def failing_second_write(tensors, filename):
        writes["n"] += 1
        if writes["n"] == 2:
            real_save(tensors, filename)  # half of it is on disk ...
            raise OSError("disk full")  # ... when the write fails
        real_save(tensors, filename)

    monkeypatch.setattr(ckpt, "save_file", failing_second_write)
    with pytest.raises(OSError, match="disk full"):
        train_induction(recipe, checkpoint=Checkpointer(folder, every=4))
    assert sorted(p.name for p in folder.iterdir()) == ["step-000004"]  # no .partial folder left either


def test_a_checkpoint_of_another_run_is_refused(tmp_path, one_thread):
    folder = tmp_path / "ckpt"
    train_induction(_recipe(4), checkpoint=Checkpointer(folder, every=4))
    with pytest.raises(CheckpointMismatch, match=r"lr.*delete"):
        train_induction(_recipe(4, lr=1e-3), checkpoint=Checkpointer(folder, every=4, resume=True))


def test_checkpoint_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="positive number of steps"):
        Checkpointer(tmp_path, every=0)


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_a_fresh_run_refuses_stale_checkpoints_and_names_the_way_out(tmp_path, one_thread, capsys):
    out = tmp_path / "model"
    args = ["induction-2l", "--out", str(out), "--steps", "4", "--no-control", "--quiet", "--device", "cpu"]
    train_induction(_recipe(2), checkpoint=Checkpointer(default_root(out) / "induction-2l", every=2))
    assert main(args + ["--checkpoint-every", "2"]) == 2
    assert "--resume" in capsys.readouterr().err and not out.exists()


def test_a_killed_run_leaves_the_old_model_and_resumes_to_the_uninterrupted_weights(tmp_path, one_thread):
    out = tmp_path / "model"
    common = ["induction-2l", "--out", str(out), "--no-control", "--quiet", "--device", "cpu", "--threads", "1"]
    out.mkdir()  # the previous model directory (its contents do not matter here)
    for name in ("config.json", "model.safetensors", "MODEL_CARD.md"):
        (out / name).write_text(f"previous {name}")
    before = _digest(out)

    steps = ["--steps", "60", "--checkpoint-every", "5", "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kit.train", *common, *steps], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = default_root(out) / "induction-2l"
    deadline = time.monotonic() + 120
    try:
        while Checkpointer(run).latest() is None:  # kill it right after its first checkpoint
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _digest(out) == before  # the killed run never touched the previous model
    killed_at = int(Checkpointer(run).latest().name.split("-")[1])
    assert 5 <= killed_at < 60

    assert main(common + steps + ["--resume"]) == 0
    assert _digest(out) != before
    assert not default_root(out).exists()  # checkpoints are removed once the model directory is written
    reference = train_induction(_recipe(60, probe_every=10))
    _same_weights(load_file(str(out / "model.safetensors")), reference.model.state_dict())
