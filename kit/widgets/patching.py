"""PatchingHeatmap: activation patching and causal tracing results as a layer x position grid."""

from __future__ import annotations

from typing import Any

import torch
import traitlets

from .._validate import check_tensor
from ._base import STATIC, KitWidget
from ._options import refuse_unknown
from ._tokens import visible_token
from ._wire import encode_tensor

__all__ = ["PatchingHeatmap"]

_VALUES = ("auto", "normalized", "effect", "raw")
_LABELS = {
    "normalized": "share of the clean-corrupted gap restored",
    "effect": "change of the metric",
    "raw": "metric",
}


def _grid_of(result: Any, value: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """(values[layer, col], description) of a PatchingResult, CausalTrace or tensor."""
    if isinstance(result, torch.Tensor) or hasattr(result, "__array__") and not hasattr(result, "scores"):
        grid = check_tensor(result, "the grid", finite=False).detach().to("cpu", torch.float32)
        if value not in ("auto", "raw"):
            raise ValueError(f"value={value!r} needs a PatchingResult or CausalTrace; a plain tensor is shown as is")
        return grid, {
            "value": "raw",
            "label": "value",
            "clean": None,
            "corrupted": None,
            "metric": "value",
            "kind": "grid",
            "axis": "pos",
        }
    scores = getattr(result, "scores", None)
    if scores is None or not hasattr(result, "clean") or not hasattr(result, "corrupted"):
        raise TypeError(
            "PatchingHeatmap takes a kit.analysis.PatchingResult (activation_patching), a CausalTrace "
            f"(causal_trace), a tensor [layer, pos], or a dict of those; got {type(result).__name__}"
        )
    causal = hasattr(result, "subject")
    if value == "auto":
        value = "effect" if causal else "normalized"
    scores = torch.as_tensor(scores, dtype=torch.float32).detach().cpu()
    clean, corrupted = float(result.clean), float(result.corrupted)
    if value == "normalized":
        gap = clean - corrupted
        grid = (scores - corrupted) / (gap if abs(gap) > 1e-12 else 1e-12)
    elif value == "effect":
        grid = scores - corrupted
    else:
        grid = scores
    metric = (
        "p(answer)"
        if causal
        else {"prob": "p(answer)", "logit_diff": "logit difference"}.get(
            getattr(result, "metric", ""), str(getattr(result, "metric", "metric"))
        )
    )
    kind = str(getattr(result, "kind", ""))
    return grid, {
        "value": value,
        "label": _LABELS[value],
        "clean": clean,
        "corrupted": corrupted,
        "metric": metric,
        "kind": kind,
        "axis": "head" if kind == "heads" else "pos",
        "causal": causal,
    }


class PatchingHeatmap(KitWidget):
    """Activation patching or causal tracing as a layer x position heatmap.

    ``PatchingHeatmap(result)`` takes a :class:`kit.analysis.PatchingResult`, a
    :class:`kit.analysis.CausalTrace`, a tensor ``[layer, pos]`` (with ``tokens=``), or a dict of
    them (``{"resid": ..., "mlp": ..., "attn": ...}``), shown one at a time with a switch.

    What a cell shows (``value=``): ``"normalized"`` (default for patching): the share of the gap
    between the corrupted and the clean metric that patching this cell restores, 0 = no effect,
    1 = fully clean; ``"effect"`` (default for causal tracing): metric with the cell restored minus
    the corrupted metric; ``"raw"``: the metric itself. Colours diverge around zero (blue
    positive, red negative) on a symmetric scale up to ``vmax`` (default: the largest
    ``|value|``). Columns are labelled with the clean tokens, with the corrupted token below
    where it differs (causal tracing marks the noised subject tokens with ``*``); a
    ``kind="heads"`` result has heads as columns instead.

    Clicking a cell (or Enter on it) selects that ``layer`` and ``token`` (position), or ``layer``
    and ``head`` for a heads grid: link them to other views or observe them in Python.
    """

    _esm = STATIC / "patching_heatmap.js"
    _module = "patching_heatmap"
    _links = ("layer", "head", "token")

    view = traitlets.Unicode("", help="Name of the grid shown (a key of the dict given)").tag(sync=True)
    _grids = traitlets.Dict().tag(sync=True)  # {name: {values: envelope [layer, col] float16, ...description}}
    _labels = traitlets.Dict().tag(sync=True)  # {tokens, corrupted, subject}

    def __init__(
        self,
        result: Any,
        *,
        value: str = "auto",
        tokens: list[str] | None = None,
        corrupted_tokens: list[str] | None = None,
        vmax: float | None = None,
        title: str = "",
        layer: int = 0,
        head: int = 0,
        token: int = -1,
        view: str = "",
        theme: str = "auto",
        height: int = 0,
        **unknown: Any,
    ) -> None:
        refuse_unknown(PatchingHeatmap, unknown)
        if value not in _VALUES:
            raise ValueError(f"value={value!r}; valid values: {', '.join(_VALUES)}")
        results = dict(result) if isinstance(result, dict) else {"": result}
        if not results:
            raise ValueError("PatchingHeatmap needs at least one result")
        self._values: dict[str, torch.Tensor] = {}
        self._results = results
        grids: dict[str, Any] = {}
        shape = None
        first = next(iter(results.values()))
        for name, res in results.items():
            grid, desc = _grid_of(res, value)
            if grid.ndim != 2 or 0 in grid.shape:
                raise ValueError(
                    f"a patching grid must be 2-d [layer, pos] and not empty; got shape {tuple(grid.shape)}"
                )
            if not bool(torch.isfinite(grid).all()):
                raise ValueError("the patching grid holds NaN or infinite values")
            if shape is not None and grid.shape != shape:
                raise ValueError(f"every grid must have the same shape; got {tuple(shape)} and {tuple(grid.shape)}")
            shape = grid.shape
            self._values[str(name)] = grid
            top = float(grid.abs().max())
            grids[str(name)] = {
                "values": encode_tensor(grid, "float16").envelope(),
                "vmax": float(vmax) if vmax is not None else (top if top > 0 else 1.0),
                **desc,
            }
        axis = grids[next(iter(grids))]["axis"]
        if any(g["axis"] != axis for g in grids.values()):
            raise ValueError("do not mix a heads grid with position grids in one PatchingHeatmap")
        self._axis = axis
        labels = self._labels_for(first, shape[1], axis, tokens, corrupted_tokens)
        self._title = title or self._default_title(first)
        names = list(grids)
        if view and view not in names:
            raise ValueError(f"view={view!r}; this heatmap holds {names}")
        super().__init__(
            _grids=grids,
            _labels={**labels, "title": self._title, "axis": axis},
            view=view or names[0],
            layer=layer,
            head=head,
            token=token,
            theme=theme,
            height=height,
        )

    @staticmethod
    def _default_title(result: Any) -> str:
        if hasattr(result, "subject"):
            return "Causal tracing"
        if hasattr(result, "scores"):
            return "Activation patching"
        return "Patching"

    @staticmethod
    def _labels_for(result: Any, n_cols: int, axis: str, tokens, corrupted) -> dict[str, Any]:
        subject: list[int] = []
        if tokens is None:
            tokens = getattr(result, "clean_tokens", None) or getattr(result, "tokens", None)
        if corrupted is None:
            corrupted = getattr(result, "corrupted_tokens", None) or None
        if hasattr(result, "subject"):
            subject = [int(p) for p in result.subject]
        if axis == "head":
            return {
                "tokens": [f"H{i}" for i in range(n_cols)],
                "corrupted": None,
                "subject": [],
                "prompt": list(tokens or []),
            }
        if tokens is None:
            tokens = [str(i) for i in range(n_cols)]
        tokens = [str(t) for t in tokens]
        if len(tokens) != n_cols:
            raise ValueError(f"{len(tokens)} tokens given for a grid of {n_cols} positions")
        if corrupted is not None:
            corrupted = [str(t) for t in corrupted]
            if len(corrupted) != n_cols:
                raise ValueError(f"{len(corrupted)} corrupted tokens given for a grid of {n_cols} positions")
        return {"tokens": tokens, "corrupted": corrupted, "subject": subject}

    # --- public views of the data

    @property
    def values(self) -> torch.Tensor:
        """The values shown for the current ``view``: ``[layer, pos]`` (or ``[layer, head]``)."""
        return self._values[self.view]

    @property
    def names(self) -> list[str]:
        """Names of the grids (keys of the dict given; ``[""]`` for one result)."""
        return list(self._values)

    @property
    def tokens(self) -> list[str]:
        return list(self._labels["tokens"])

    def selected_value(self) -> float | None:
        """The value of the selected cell (``layer`` and ``token``, or ``head`` for a heads grid)."""
        col = self.head if self._axis == "head" else self.token
        if col < 0:
            return None
        return float(self.values[self.layer, col])

    # --- KitWidget hooks

    def _limits(self) -> dict[str, int]:
        values = getattr(self, "_values", None)
        if not values:
            return {}
        n_layers, n_cols = next(iter(values.values())).shape
        return {"layer": n_layers, ("head" if self._axis == "head" else "token"): n_cols}

    @traitlets.validate("view")
    def _check_view(self, proposal: traitlets.Bunch) -> str:
        names = list(getattr(self, "_values", {}) or [])
        if names and proposal["value"] not in names:
            raise traitlets.TraitError(f"view must be one of {names}; got {proposal['value']!r}")
        return proposal["value"]

    def __repr__(self) -> str:
        L, C = self.values.shape
        desc = self._grids[self.view]
        axis = "head" if desc["axis"] == "head" else "position"
        shown = " ".join(visible_token(t) for t in self._labels["tokens"][:8]) + (" …" if C > 8 else "")
        views = f", views: {', '.join(self.names)}" if len(self.names) > 1 else ""
        return (
            f"PatchingHeatmap({self._title}: {L} layers x {C} {axis}s, {desc['label']}; {shown}{views}; "
            f"layer={self.layer}, token={self.token})"
        )
