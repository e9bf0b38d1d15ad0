"""Training checkpoints: written atomically every N steps, resumed to the same final weights.

Layout: ``python -m kit.train RECIPE --out DIR`` keeps its checkpoints next to ``DIR``, in
``DIR.checkpoints/`` (or ``--checkpoint-dir``), one folder per training run of the build
(``induction-2l``, and ``induction-1l`` for its control), each holding the latest complete
checkpoint::

    DIR.checkpoints/induction-2l/step-000200/state.safetensors   # weights, AdamW moments, RNG states
    DIR.checkpoints/induction-2l/step-000200/state.json          # step, config, log rows so far

A checkpoint is written into a temporary ``.partial`` folder and renamed into place (atomic on one
file system); the previous one is deleted only after that, so a run killed at any moment leaves at
least one complete checkpoint. No pickle: tensors go to safetensors, the rest to JSON.
``train(..., checkpoint=Checkpointer(folder, every=N, resume=True))`` continues from the latest
one: weights, optimizer moments, the data generator's and torch's random states and the log rows
are restored, so on the CPU the resumed run ends with exactly the weights of an uninterrupted run.
When the model directory has been written, the build deletes its checkpoints.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from kit.train.save import atomic_directory

__all__ = ["CHECKPOINT_SUFFIX", "CheckpointMismatch", "Checkpointer", "Checkpoints", "default_root"]

CHECKPOINT_SUFFIX = ".checkpoints"
_STEP = re.compile(r"step-(\d+)")


class CheckpointMismatch(ValueError):
    """A checkpoint on disk belongs to a different run (another config, recipe or model)."""


def default_root(out: str | Path) -> Path:
    """Where ``--out DIR`` keeps its checkpoints: the sibling ``DIR.checkpoints``."""
    out = Path(out).absolute()
    return out.with_name(out.name + CHECKPOINT_SUFFIX)


@dataclass
class Checkpointer:
    """Checkpoints of one training run in ``folder``: saved every ``every`` steps (and at the last
    step); with ``resume``, :func:`kit.train.loop.train` starts from the latest one."""

    folder: Path
    every: int = 100
    resume: bool = False

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"checkpoint every must be a positive number of steps; got {self.every!r}")

    def _complete(self) -> Iterator[tuple[int, Path]]:
        if not self.folder.is_dir():
            return
        for p in self.folder.iterdir():
            m = _STEP.fullmatch(p.name)
            if m and p.is_dir() and (p / "state.json").is_file() and (p / "state.safetensors").is_file():
                yield int(m.group(1)), p

    def latest(self) -> Path | None:
        """The folder of the newest complete checkpoint, or None."""
        found = sorted(self._complete())
        return found[-1][1] if found else None

    def due(self, step: int, total: int) -> bool:
        """Save after ``step`` steps (1-based) of ``total``?"""
        return step % self.every == 0 or step == total

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             info: dict[str, Any]) -> Path:
        """Write the checkpoint after ``step`` steps atomically, then drop the older ones."""
        tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        for index, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
        tensors["rng/data"] = generator.get_state()
        tensors["rng/torch"] = torch.get_rng_state()
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"step-{step:06d}"
        with atomic_directory(target, overwrite=True) as tmp:
            save_file(tensors, str(tmp / "state.safetensors"))
            (tmp / "state.json").write_text(json.dumps({"step": step, **info}))
        for old_step, old in list(self._complete()):
            if old_step < step:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def load(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        """Restore the latest checkpoint into ``model``, ``optimizer`` and ``generator``; return its
        ``state.json`` (``step``, log rows, ...), or None when there is none. A checkpoint of a
        different run (another config or model) is refused with :class:`CheckpointMismatch`."""
        if self.folder.is_dir():  # what a killed save left half-written
            for stale in self.folder.glob(".step-*.partial"):
                shutil.rmtree(stale, ignore_errors=True)
        path = self.latest()
        if path is None:
            return None
        info = json.loads((path / "state.json").read_text())
        if info.get("fingerprint") != fingerprint:
            raise CheckpointMismatch(
                f"the checkpoint {str(path)!r} was made by a different run (config or model differ: "
                f"{_diff(info.get('fingerprint'), fingerprint)}); resume with the same options, or delete "
                f"{str(self.folder)!r} to start again")
        tensors = load_file(str(path / "state.safetensors"))
        model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
        generator.set_state(tensors["rng/data"])
        torch.set_rng_state(tensors["rng/torch"])
        return info


def _diff(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "no fingerprint"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "?"


@dataclass
class Checkpoints:
    """The checkpoints of one build (``python -m kit.train ... --out DIR``): a folder per training run."""

    root: Path
    every: int = 100
    resume: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root).absolute()

    def run(self, name: str) -> Checkpointer:
        """The checkpointer of the training run called ``name`` (e.g. ``"induction-1l"``)."""
        return Checkpointer(self.root / name, self.every, self.resume)

    def existing(self) -> list[Path]:
        """Complete checkpoints already on disk, one per run that has any."""
        if not self.root.is_dir():
            return []
        return [p for p in (Checkpointer(d).latest() for d in sorted(self.root.iterdir()) if d.is_dir()) if p]

    def refuse_stale(self) -> None:
        """A fresh (not ``--resume``) build must not silently mix with an earlier run's checkpoints."""
        found = self.existing()
        if found and not self.resume:
            raise FileExistsError(
                f"checkpoints of an earlier, unfinished run exist in {str(self.root)!r} ({found[0].parent.name} at "
                f"{found[0].name}); pass --resume to continue it, or delete that folder to start again")

    def clear(self) -> None:
        """Delete the checkpoints (after the model directory has been written)."""
        shutil.rmtree(self.root, ignore_errors=True)
