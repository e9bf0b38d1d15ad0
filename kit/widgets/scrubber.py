"""TrainingScrubber: scrub through a training run and watch heads form (a ``TrainingHistory``)."""

from __future__ import annotations

from typing import Any

import torch
import traitlets

from ..train.history import TrainingHistory
from ..train.phase import crossing_step
from ._base import STATIC, KitWidget
from ._options import refuse_unknown
from ._tokens import visible_token
from ._wire import encode_tensor

__all__ = ["TrainingScrubber"]


def _phase(history: TrainingHistory) -> dict[str, Any]:
    """Where the best induction score of the last layer first reaches 0.5, and where the loss on the
    repeated copy falls fastest between two snapshots (``None`` when there is no such step)."""
    steps = history.steps
    best = [float(s[-1].max()) for s in history.induction]
    cross = crossing_step(steps, best, 0.5)
    drops = [(history.loss_repeated[i - 1] - history.loss_repeated[i], steps[i]) for i in range(1, len(steps))]
    fastest = max(drops)[1] if drops and max(drops)[0] > 0 else None
    return {"induction_crosses_half": cross, "fastest_loss_drop": fastest}


def _check_history(history: Any, expect: tuple[int, int] | None, live: bool) -> TrainingHistory:
    if not isinstance(history, TrainingHistory):
        raise TypeError("TrainingScrubber takes a kit.train.TrainingHistory (train_induction(..., history=True)"
                        ".history, or TrainingHistory.load(path)); got " + type(history).__name__)
    if not len(history) and not live:
        raise ValueError("this history has no snapshots: train with history=True (or a recorder) first, or pass "
                         "live=True to follow a run that has not started yet")
    if len(history):
        L, H = history.n_layers, history.n_heads
        n = len(history.probe_ids)
        shapes = {tuple(x.shape) for x in history.prev_token + history.induction}
        if shapes != {(L, H)} or {tuple(p.shape) for p in history.patterns} != {(L, H, n, n)}:
            raise ValueError(f"the history's tensors do not match its model ({L} layers x {H} heads, probe of "
                             f"{n} tokens): it is damaged")
        if expect is not None and (L, H) != expect:
            raise ValueError(f"this history is from a model with {L} layers x {H} heads; the view shows "
                             f"{expect[0]} x {expect[1]}: make a new TrainingScrubber for it")
    return history


class TrainingScrubber(KitWidget):
    """A training run, step by step: losses, every head's scores, and one head's attention on a probe.

    ``TrainingScrubber(history)`` takes a :class:`kit.train.TrainingHistory` (``result.history`` of
    ``train_induction(..., history=True)``, or ``TrainingHistory.load(path)``, e.g. the one shipped
    with ``induction-2l``). With ``live=True`` (the default when the history is still being recorded)
    the view follows the run as snapshots arrive.

    The slider (or Left/Right, Home/End, PageUp/PageDown) moves through the recorded steps; the
    loss chart marks the phase change (where the best induction score of the last layer first
    reaches 0.5); the two score grids show every head's previous-token and induction score at that
    step (click a cell, or Enter on it, to choose the head); the pattern shows the chosen head's
    attention on the probe sequence at that step. Traits: ``step`` (a recorded training step),
    ``layer``, ``head`` (shared with the other views).
    """

    _esm = STATIC / "training_scrubber.js"
    _module = "training_scrubber"
    _links = ("layer", "head", "step")

    step = traitlets.Int(0, help="The training step shown (one of the recorded steps)").tag(sync=True)
    _data = traitlets.Dict().tag(sync=True)

    def __init__(self, history: TrainingHistory, *, step: int | None = None, layer: int = 0, head: int = 0,
                 live: bool | None = None, theme: str = "auto", height: int = 0, **unknown: Any) -> None:
        refuse_unknown(TrainingScrubber, unknown)
        live = (not history.finished) if live is None and isinstance(history, TrainingHistory) else bool(live)
        self._history = _check_history(history, None, live)
        self._shape = (history.n_layers, history.n_heads) if len(history) else None
        super().__init__(_data=self._encode(history), theme=theme, height=height)
        if len(history):
            self.set_trait("step", history.steps[-1] if step is None else step)
            self.set_trait("layer", layer)
            self.set_trait("head", head)
        self._unsubscribe = history.subscribe(self._on_snapshot) if live else None

    # --- data

    @staticmethod
    def _encode(history: TrainingHistory) -> dict[str, Any]:
        if not len(history):
            return {"n": 0, "meta": {"model": str(history.meta.get("model", ""))}}
        patterns = torch.stack(history.patterns).float()  # [snapshot, layer, head, query, key]
        return {
            "n": len(history),
            "steps": encode_tensor(torch.tensor(history.steps), "int32").envelope(),
            "loss_plain": encode_tensor(torch.tensor(history.loss_plain), "float16").envelope(),
            "loss_repeated": encode_tensor(torch.tensor(history.loss_repeated), "float16").envelope(),
            "prev_token": encode_tensor(history.scores("prev_token").clamp(0, 1), "uint8").envelope(),
            "induction": encode_tensor(history.scores("induction").clamp(0, 1), "uint8").envelope(),
            "patterns": encode_tensor(patterns.clamp_min(0), "uint8", layout="tril").envelope(),
            "tokens": [str(t) for t in history.probe_tokens],
            "half_len": int(history.probe_half_len),
            "phase": _phase(history),
            "meta": {"model": str(history.meta.get("model", "")), "n_layers": history.n_layers,
                     "n_heads": history.n_heads, "finished": bool(history.finished)},
        }

    def _on_snapshot(self, history: TrainingHistory) -> None:
        try:
            _check_history(history, self._shape, live=True)
        except ValueError:
            return  # keep showing what was valid
        self._shape = (history.n_layers, history.n_heads)
        at_end = self.step == (history.steps[-2] if len(history) > 1 else self.step)
        self._data = self._encode(history)
        if at_end or len(history) == 1:
            self.set_trait("step", history.steps[-1])

    def update(self, history: TrainingHistory) -> None:
        """Show another history of the same model (e.g. a longer run); the selection is kept where valid."""
        _check_history(history, self._shape, live=False)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        step = self.step if self.step in history.steps else history.steps[-1]
        self._history = history
        self._data = self._encode(history)
        self.set_trait("step", step)

    # --- public views

    @property
    def history(self) -> TrainingHistory:
        return self._history

    @property
    def snapshot(self) -> int:
        """Index of ``step`` among the recorded steps."""
        return self._history.steps.index(self.step)

    def scores(self) -> dict[str, float]:
        """The chosen head's scores at the chosen step: ``{"prev_token": ..., "induction": ...}``."""
        i, l, h = self.snapshot, self.layer, self.head
        return {"prev_token": float(self._history.prev_token[i][l, h]),
                "induction": float(self._history.induction[i][l, h])}

    # --- KitWidget hooks

    def _limits(self) -> dict[str, int]:
        h = getattr(self, "_history", None)
        return {"layer": h.n_layers, "head": h.n_heads} if h is not None and len(h) else {}

    def _link_domain(self, trait: str) -> Any:
        if trait == "step":  # linked scrubbers must have recorded the same steps
            h = getattr(self, "_history", None)
            return tuple(h.steps) if h is not None and len(h) else None
        return super()._link_domain(trait)

    @traitlets.validate("step")
    def _check_step(self, proposal: traitlets.Bunch) -> int:
        value = int(proposal["value"])
        h = getattr(self, "_history", None)
        if h is None or not len(h):
            raise traitlets.TraitError("no step recorded yet")
        if value not in h.steps:
            every = h.meta.get("every")
            spacing = f" (every {every} steps, and the last)" if every else ""
            raise traitlets.TraitError(f"step must be a recorded step, {h.steps[0]}..{h.steps[-1]}{spacing}; "
                                       f"got {value}")
        return value

    def __repr__(self) -> str:
        h = self._history
        if not len(h):
            return f"TrainingScrubber({h.meta.get('model', '?')}: waiting for the first snapshot)"
        probe = " ".join(visible_token(t) for t in h.probe_tokens[:6]) + " …"
        s = self.scores()
        return (f"TrainingScrubber({h.meta.get('model', '?')}: {len(h)} snapshots, steps {h.steps[0]}..{h.steps[-1]}; "
                f"step={self.step}, L{self.layer}H{self.head}: prev-token {s['prev_token']:.2f}, induction "
                f"{s['induction']:.2f}; probe {probe})")
