"""Checks for the public entry points: each raises a clear error that names what is valid.

Used at the top of analysis functions and widget constructors, before anything is traced or any
hook attached, so a refused call changes nothing. ``TypeError`` for the wrong kind of object,
``ValueError`` for a value out of range, of the wrong shape, or holding NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .names import check_index

__all__ = [
    "check_model", "check_trace", "check_layer", "check_int", "check_number", "check_tensor", "check_labels",
    "check_same_length", "check_finite_trace",
]


def _is_model(x: Any) -> bool:
    return callable(getattr(x, "trace", None)) and hasattr(x, "adapter") and hasattr(x, "n_layers")


def _is_trace(x: Any) -> bool:
    return hasattr(x, "tokens") and hasattr(x, "names") and hasattr(x, "model") and hasattr(x, "logits")


def check_model(x: Any, where: str) -> Any:
    """``x`` if it is a kit model, else ``TypeError`` saying what to pass instead."""
    if _is_model(x):
        return x
    extra = " (this is a Trace: pass tr.model)" if _is_trace(x) else ""
    if isinstance(x, str):
        extra = f" (a name: load it first, model = kit.load({x!r}))"
    raise TypeError(f"{where} takes a kit model from kit.load(...); got {type(x).__name__}{extra}")


def check_trace(x: Any, where: str) -> Any:
    """``x`` if it is a Trace, else ``TypeError`` saying how to make one."""
    if _is_trace(x):
        return x
    extra = " (this is a model: trace a prompt first, tr = model.trace(prompt))" if _is_model(x) else ""
    raise TypeError(f"{where} takes a Trace from model.trace(...); got {type(x).__name__}{extra}")


def check_layer(model: Any, layer: Any, what: str = "layer") -> int:
    """A layer index of ``model`` (negative counts from the end), else ``ValueError`` naming the range."""
    return check_index(layer, model.n_layers, what)


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer in ``low..high`` (inclusive; ``None``: unbounded), else ``TypeError`` / ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            as_int = None
        if as_int is None or as_int != value:
            raise TypeError(f"{name} must be an integer{_range(low, high)}; got {value!r}")
        value = as_int
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_range(low, high)}; got {value}")
    return value


def check_number(value: Any, name: str, low: float | None = None, high: float | None = None,
                 open_low: bool = False) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``open_low``), else a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            isinstance(value, torch.Tensor) and value.numel() == 1):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number; got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}")
    too_low = low is not None and (value <= low if open_low else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else (f"> {low:g}" if open_low else f">= {low:g}")
        hi = "" if high is None else f"<= {high:g}"
        raise ValueError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}; got {value:g}")
    return value


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in {low}..{high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_tensor(x: Any, name: str, shape: Sequence[int | None] | None = None, desc: str = "",
                 finite: bool = True) -> torch.Tensor:
    """``x`` as a real-valued tensor with ``shape`` (``None`` entries match any size) and no NaN/inf.

    ``desc`` names the axes for the message, e.g. ``"[d_mlp, n_tokens]"``. Integer tensors are
    accepted (they are real numbers); bool, complex and non-numeric input is a ``TypeError``.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor {desc}".rstrip() + f"; got {type(x).__name__}") from None
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers (a float tensor {desc})".replace(" )", ")")
                        + f"; got dtype {x.dtype}")
    if shape is not None:
        ok = x.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, x.shape))
        if not ok:
            want = desc or "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            hint = ""
            if x.ndim == 2 and len(shape) == 2 and all(s is None or s == n for s, n in zip(shape, x.shape[::-1])):
                hint = " (it looks transposed: try .T)"
            raise ValueError(f"{name} must have shape {want}; got {list(x.shape)}{hint}")
    if finite and x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s); every entry must be a finite number")
    return x


def check_labels(labels: Any, name: str = "labels") -> torch.Tensor:
    """Per-token labels ``[n_tokens]``: integers (``-1`` = none) or a bool mask; floats are refused."""
    t = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must be integer class ids (-1 for none) or a bool mask; got dtype {t.dtype}")
    if t.dtype != torch.bool and t.numel() and int(t.min()) < -1:
        raise ValueError(f"{name} must be class ids 0, 1, ... (or -1 for none); got {int(t.min())}")
    return t


def check_same_length(where: str, **seqs: Sequence[Any]) -> int:
    """The common, non-zero length of several sequences, else ``ValueError`` listing the lengths."""
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        given = ", ".join(f"{n} {name}" for name, n in lengths.items())
        raise ValueError(f"{where} needs the same, non-zero number of {', '.join(lengths)}; got {given}")
    return next(iter(lengths.values()))


def check_finite_trace(tr: Any, names: Sequence[str], where: str) -> None:
    """``ValueError`` naming the first captured activation (of ``names``) that holds NaN or inf."""
    for name in names:
        if name not in tr.names:
            continue
        for layer in tr.layers:
            x = tr[name, layer]
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise ValueError(
                    f"{where}: the trace's {name!r} at layer {layer} holds NaN or infinite values; the model "
                    f"overflowed or its weights are broken (trace it in float32: kit.load(..., dtype=torch.float32))")
