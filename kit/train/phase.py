"""Locating the phase change in a training log.

Two events, both as a training step: when a probed score first crosses a
threshold (``crossing_step``), and when a (noisy, per-batch) loss falls fastest
(``steepest_drop_step``: the most negative difference between the means of the
``window`` steps after and the ``window`` steps before).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["crossing_step", "steepest_drop_step"]


def crossing_step(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first step whose value is ``>= threshold``; ``None`` if it never is."""
    return next((int(s) for s, v in zip(steps, values) if v >= threshold), None)


def steepest_drop_step(steps: Sequence[int], values: Sequence[float], window: int = 25) -> int:
    """The step ``t`` maximising ``mean(values[t-window:t]) - mean(values[t:t+window])``.

    ``steps`` must be consecutive (one value per step), as the loop logs losses.
    """
    v = torch.tensor(list(values), dtype=torch.float64)
    if len(v) < 2 * window + 1:
        raise ValueError(f"need at least {2 * window + 1} values for window={window}, got {len(v)}")
    c = torch.cat([torch.zeros(1, dtype=torch.float64), v.cumsum(0)])  # c[i] = sum(v[:i])
    t = torch.arange(window, len(v) - window + 1)
    before = (c[t] - c[t - window]) / window
    after = (c[t + window] - c[t]) / window
    return int(steps[int(t[(before - after).argmax()])])
