"""How the lessons and their checks write and read the names of heads and components.

One spelling everywhere: a head is ``"L1H3"`` (layer 1, head 3), an MLP ``"MLP2"``, the embeddings
``"embed"``. Checks also accept a head as a pair ``(1, 3)`` (tuple, list or tensor of two ints) and
any case or spacing of the text forms (``"l1h3"``, ``"L1 H3"``).
"""

from __future__ import annotations

import numbers
import re
from typing import Any

import torch

__all__ = ["head_name", "parse_head", "parse_component", "head_help"]


def head_name(layer: int, head: int) -> str:
    """The lessons' spelling of a head: ``head_name(1, 3) == "L1H3"``."""
    return f"L{int(layer)}H{int(head)}"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)  # numpy ints too


def parse_head(value: Any, n_layers: int, n_heads: int) -> tuple[int, int] | None:
    """``(layer, head)`` from ``"L1H3"`` (any case and spacing) or a pair of ints; ``None`` when it names
    no head of a model with ``n_layers`` layers and ``n_heads`` heads."""
    if isinstance(value, str):
        m = re.fullmatch(r"L(\d+)\.?H(\d+)", value.strip().upper().replace(" ", ""))
        if m is None:
            return None
        value = (int(m.group(1)), int(m.group(2)))
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist() if value.numel() == 2 and not value.is_floating_point() else None
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        layer, head = (int(v) for v in value)
        if 0 <= layer < n_layers and 0 <= head < n_heads:
            return layer, head
    return None


def parse_component(name: Any, n_layers: int, n_heads: int) -> str | None:
    """``"L3H0"``, ``"MLP2"`` or ``"embed"`` in canonical spelling (a head may also be a pair of ints),
    or ``None`` if ``name`` names none of them."""
    head = parse_head(name, n_layers, n_heads)
    if head is not None:
        return head_name(*head)
    if not isinstance(name, str):
        return None
    text = name.strip().replace(" ", "").replace(".", "")
    if text.lower() in ("embed", "embedding", "embeddings"):
        return "embed"
    m = re.fullmatch(r"mlp(\d+)", text.lower())
    if m and int(m.group(1)) < n_layers:
        return f"MLP{int(m.group(1))}"
    return None


def head_help(n_layers: int, n_heads: int) -> str:
    """How to write a head, for a failed check's message."""
    return (f"write a head as 'L<layer>H<head>' (e.g. 'L1H2') or as (layer, head), with layer in "
            f"0..{n_layers - 1} and head in 0..{n_heads - 1}")
