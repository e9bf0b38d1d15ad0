"""Model directories are written atomically: an interrupted run leaves no half-written directory."""

from __future__ import annotations

import pytest

from kit.train.facts_build import write_atomically


def test_interrupted_write_leaves_no_directory(tmp_path):
    out = tmp_path / "model"

    def fill(d):
        (d / "config.json").write_text("{}")
        raise KeyboardInterrupt  # Ctrl-C half-way

    with pytest.raises(KeyboardInterrupt):
        write_atomically(out, fill)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rewrite_keeps_the_previous_model(tmp_path):
    out = tmp_path / "model"
    write_atomically(out, lambda d: (d / "config.json").write_text("old"))

    def fill(d):
        (d / "config.json").write_text("new")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write_atomically(out, fill)
    assert (out / "config.json").read_text() == "old"
    write_atomically(out, lambda d: (d / "config.json").write_text("new"))
    assert (out / "config.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
