"""``TrainLog``: the metrics of a training run, one row per step, and their chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TrainLog"]


@dataclass
class TrainLog:
    """Per-step metrics of one run.

    ``rows[i]`` is a dict with at least ``"step"`` (1-based), ``"loss"`` and
    ``"lr"``; probe metrics appear only on the steps where they were measured.
    ``wall_time_s`` is the training time (data generation included, probes
    excluded when ``probe_time_s`` is set separately).
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    probe_time_s: float = 0.0
    meta: dict[str, object] = field(default_factory=dict)

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))

    @property
    def metrics(self) -> list[str]:
        """Every metric name that appears in some row, in first-seen order."""
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        names.pop("step", None)
        return list(names)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of metric ``name`` over the steps where it was logged."""
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; logged: {self.metrics}")
        pairs = [(int(r["step"]), float(r[name])) for r in self.rows if name in r]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def first_step_where(self, name: str, above: float | None = None, below: float | None = None) -> int | None:
        """The first step at which ``name`` is ``>= above`` (or ``<= below``); ``None`` if never."""
        for step, value in zip(*self.series(name)):
            if (above is not None and value >= above) or (below is not None and value <= below):
                return step
        return None

    def to_json(self, path: str | Path | None = None) -> str:
        """The log as JSON text (non-finite numbers as ``null``); written to ``path`` when given."""
        clean = [{k: (v if math.isfinite(v) else None) for k, v in r.items()} for r in self.rows]
        text = json.dumps(
            {"wall_time_s": self.wall_time_s, "probe_time_s": self.probe_time_s, "meta": self.meta, "rows": clean},
            indent=None,
            separators=(",", ":"),
        )
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> TrainLog:
        """Read a log written by ``to_json`` (JSON text or a file path)."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        data = json.loads(text)
        rows = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in data["rows"]]
        return cls(rows=rows, wall_time_s=data["wall_time_s"], probe_time_s=data.get("probe_time_s", 0.0), meta=data.get("meta", {}))

    def chart(self, losses: Sequence[str] | None = None, scores: Sequence[str] | None = None, max_points: int = 600):
        """An altair chart: losses (top panel) and [0, 1] scores (bottom panel) against step.

        ``losses`` defaults to every metric whose name starts with ``"loss"``,
        ``scores`` to every other metric except ``"lr"``. Each series is thinned
        to at most ``max_points`` points (altair's default row limit is 5,000).
        """
        import altair as alt

        from .._altair import offline_charts

        offline_charts()

        names = self.metrics
        losses = list(losses) if losses is not None else [n for n in names if n.startswith("loss")]
        scores = list(scores) if scores is not None else [n for n in names if n not in losses and n != "lr"]

        def long_rows(metrics: Sequence[str]) -> list[dict]:
            out = []
            for name in metrics:
                steps, values = self.series(name)
                stride = max(1, math.ceil(len(steps) / max_points))
                out += [{"step": s, "metric": name, "value": v} for s, v in list(zip(steps, values))[::stride] if math.isfinite(v)]
            return out

        def panel(metrics: Sequence[str], title: str):
            return (
                alt.Chart(alt.Data(values=long_rows(metrics)))
                .mark_line()
                .encode(x=alt.X("step:Q", title="step"), y=alt.Y("value:Q", title=title), color=alt.Color("metric:N", title=None))
                .properties(width=480, height=180)
            )

        panels = [panel(losses, "loss (nats)")] if losses else []
        if scores:
            panels.append(panel(scores, "score"))
        return alt.vconcat(*panels).resolve_scale(color="independent")

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else {}
        return f"TrainLog(steps={len(self.rows)}, wall_time_s={self.wall_time_s:.1f}, last={ {k: round(v, 4) for k, v in last.items()} })"
