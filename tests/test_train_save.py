"""Atomic writes: an interrupted run leaves no half-written model directory."""

from __future__ import annotations

import pytest

from kit.train import build, cli, save
from kit.train.save import PARTIAL_SUFFIX, atomic_directory


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_interrupted_block_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("{}")
        assert tmp.name.endswith(PARTIAL_SUFFIX) and tmp.parent == tmp_path
        raise KeyboardInterrupt
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_completed_block_appears_at_once(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not target.exists()  # nothing visible until the block ends
    assert (target / "a.txt").read_text() == "a"
    assert _leftovers(tmp_path) == []


def test_existing_directory_is_refused_or_replaced_only_when_complete(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError), atomic_directory(target):
        pass
    with pytest.raises(KeyboardInterrupt), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []


def test_cli_interrupted_while_writing_leaves_no_directory(tmp_path, monkeypatch):
    """Ctrl-C after the weights were written but before the tokenizer: exit 130, no directory."""
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(sorted(p.name for p in args[1].iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(save, "save_tokenizer", interrupt)
    target = tmp_path / "induction"
    code = cli.main(["induction-2l", "--out", str(target), "--steps", "3", "--no-control", "--quiet", "--device", "cpu"])
    assert code == 130
    assert calls and "model.safetensors" in calls[0]  # the interruption came mid-write
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_cli_interrupted_while_training_leaves_no_directory(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "train_induction", interrupt)
    target = tmp_path / "induction"
    assert cli.main(["induction-2l", "--out", str(target), "--quiet"]) == 130
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_cli_refuses_an_existing_directory_before_training(tmp_path, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained although the output directory exists")

    monkeypatch.setattr(build, "train_induction", must_not_train)
    (tmp_path / "induction").mkdir()
    assert cli.main(["induction-2l", "--out", str(tmp_path / "induction"), "--quiet"]) == 2
