"""``TrainingHistory``: a compact record of how the heads of a model formed during training.

Every ``every`` steps (and before the first step, and after the last) the recorder measures, on a fixed
probe (random tokens of ``probe_half_len`` repeated twice after ``<|bos|>``, seeded):

- ``loss_plain[snapshot]`` and ``loss_repeated[snapshot]``: the mean next-token loss on tokens
  ``2..T`` of the first copy (nothing predicts them) and of the second copy (induction can);
- ``prev_token[snapshot, layer, head]`` and ``induction[snapshot, layer, head]``: every head's scores
  (``kit.head_scores``; ``n_seqs`` sequences);
- ``patterns[snapshot, layer, head, query, key]``: the attention of every head on the first probe
  sequence (float16);
- ``weights[step]``: the full state dict, at the few steps listed in ``weight_steps`` only.

Saved as one safetensors file (``save`` / ``load``; no pickle). ``subscribe(fn)`` calls ``fn(history)``
after each new snapshot, so a view can follow a run in progress.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kit.train import metrics

__all__ = ["HistoryRecorder", "TrainingHistory"]

FORMAT = "kit.training_history/1"


@dataclass
class TrainingHistory:
    """Snapshots of a training run (shapes in the module docstring); ``meta`` names the model."""

    steps: list[int] = field(default_factory=list)
    loss_plain: list[float] = field(default_factory=list)
    loss_repeated: list[float] = field(default_factory=list)
    prev_token: list[torch.Tensor] = field(default_factory=list)  # each [layer, head]
    induction: list[torch.Tensor] = field(default_factory=list)  # each [layer, head]
    patterns: list[torch.Tensor] = field(default_factory=list)  # each [layer, head, query, key] float16
    probe_ids: list[int] = field(default_factory=list)
    probe_tokens: list[str] = field(default_factory=list)
    probe_half_len: int = 0
    meta: dict = field(default_factory=dict)
    weights: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    finished: bool = False
    _listeners: list[Callable[[TrainingHistory], None]] = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def n_layers(self) -> int:
        return int(self.meta.get("n_layers", 0))

    @property
    def n_heads(self) -> int:
        return int(self.meta.get("n_heads", 0))

    def scores(self, kind: str) -> torch.Tensor:
        """``scores[snapshot, layer, head]`` of ``kind`` ``"prev_token"`` or ``"induction"``."""
        if kind not in ("prev_token", "induction"):
            raise ValueError(f"kind={kind!r}; valid kinds: 'prev_token', 'induction'")
        rows = getattr(self, kind)
        return torch.stack(rows) if rows else torch.zeros(0, self.n_layers, self.n_heads)

    def subscribe(self, fn: Callable[[TrainingHistory], None]) -> Callable[[], None]:
        """Call ``fn(self)`` after every new snapshot (and when the run finishes); returns an unsubscribe."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _notify(self) -> None:
        for fn in list(self._listeners):
            fn(self)

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (tensors plus JSON metadata); returns its path."""
        if not self.steps:
            raise ValueError("an empty history has nothing to save")
        tensors = {
            "steps": torch.tensor(self.steps, dtype=torch.int32),
            "loss_plain": torch.tensor(self.loss_plain, dtype=torch.float32),
            "loss_repeated": torch.tensor(self.loss_repeated, dtype=torch.float32),
            "prev_token": self.scores("prev_token").float().contiguous(),
            "induction": self.scores("induction").float().contiguous(),
            "patterns": torch.stack(self.patterns).half().contiguous(),
            "probe_ids": torch.tensor(self.probe_ids, dtype=torch.int32),
        }
        for step, state in self.weights.items():
            tensors.update({f"weights.{step}.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
        info = {"format": FORMAT, "meta": json.dumps(self.meta), "probe_tokens": json.dumps(self.probe_tokens),
                "probe_half_len": str(self.probe_half_len), "finished": json.dumps(self.finished)}
        path = Path(path)
        save_file(tensors, str(path), metadata=info)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingHistory:
        """Read a file written by :meth:`save`, or the history shipped with a teaching model of the zoo
        (``TrainingHistory.load("induction-2l")``)."""
        from safetensors import safe_open

        from kit.models import ZOO_DIR, models

        if isinstance(path, str) and path in models():
            shipped = ZOO_DIR / path / "training_history.safetensors"
            if not shipped.is_file():
                raise FileNotFoundError(f"{path!r} ships no training history; "
                                        f"{[m for m in models() if (ZOO_DIR / m / shipped.name).is_file()]} do")
            path = shipped

        with safe_open(str(path), framework="pt") as f:
            info = f.metadata() or {}
        if info.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a training history ({FORMAT}); its format is "
                             f"{info.get('format')!r}")
        t = load_file(str(path))
        weights: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in t.items():
            if key.startswith("weights."):
                _, step, name = key.split(".", 2)
                weights.setdefault(int(step), {})[name] = value
        return cls(
            steps=t["steps"].tolist(), loss_plain=t["loss_plain"].tolist(), loss_repeated=t["loss_repeated"].tolist(),
            prev_token=list(t["prev_token"]), induction=list(t["induction"]), patterns=list(t["patterns"]),
            probe_ids=t["probe_ids"].tolist(), probe_tokens=json.loads(info["probe_tokens"]),
            probe_half_len=int(info["probe_half_len"]), meta=json.loads(info["meta"]),
            weights=dict(sorted(weights.items())), finished=json.loads(info.get("finished", "true")),
        )

    def __repr__(self) -> str:
        span = f"steps {self.steps[0]}..{self.steps[-1]}" if self.steps else "no snapshots yet"
        return (f"TrainingHistory({self.meta.get('model', '?')}: {len(self)} snapshots, {span}, "
                f"{self.n_layers} layers x {self.n_heads} heads, probe of {len(self.probe_ids)} tokens, "
                f"weights at steps {sorted(self.weights)})")


class HistoryRecorder:
    """Fills a :class:`TrainingHistory` during ``kit.train.train`` (pass it as ``history=``)."""

    def __init__(self, model_name: str, tokenizer, every: int = 10, probe_half_len: int = 16, n_seqs: int = 8,
                 seed: int = 1, weight_steps: Sequence[int] = ()):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every, self.n_seqs, self.seed = every, n_seqs, seed
        self.weight_steps = {int(s) for s in weight_steps}
        self.tokenizer = tokenizer
        self.history = TrainingHistory(probe_half_len=probe_half_len, meta={"model": model_name, "every": every})

    def due(self, step: int, total: int) -> bool:
        """Record after ``step`` steps (0: before training)?"""
        return step == 0 or step % self.every == 0 or step == total or step in self.weight_steps

    @torch.no_grad()
    def record(self, step: int, model: torch.nn.Module, total: int) -> None:
        """Measure ``model`` (in eval mode) after ``step`` steps and append a snapshot."""
        h, T = self.history, self.history.probe_half_len
        if not h.meta.get("n_layers"):
            cfg = model.config
            h.meta.update(n_layers=int(cfg.n_layer), n_heads=int(cfg.n_head), n_ctx=int(cfg.n_positions),
                          vocab_size=int(cfg.vocab_size), total_steps=int(total))
            ids, _ = metrics.repeated_tokens(model, 1, T, seed=self.seed)
            h.probe_ids = ids[0].tolist()
            h.probe_tokens = self.tokenizer.convert_ids_to_tokens(h.probe_ids)
        ids = torch.tensor([h.probe_ids])
        losses = metrics.repeated_sequence_losses(model, n_seqs=self.n_seqs, half_len=T, seed=self.seed)
        h.steps.append(int(step))
        h.loss_plain.append(losses["first"])
        h.loss_repeated.append(losses["second"])
        h.prev_token.append(metrics.prev_token_scores(model, n_seqs=self.n_seqs, seed=self.seed))
        h.induction.append(metrics.induction_scores(model, n_seqs=self.n_seqs, half_len=T, seed=self.seed))
        h.patterns.append(metrics.attention_patterns(model, ids)[:, 0].half())  # [layer, head, query, key]
        if step in self.weight_steps:
            h.weights[int(step)] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        h.finished = step == total
        h._notify()
