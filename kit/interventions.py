"""Interventions: edits applied to activations during ``model.trace(..., interventions=[...])``.

Each intervention names where it acts (an activation name and layer) and which positions, heads or
neurons it touches; the tracer applies it inside the real forward pass, before that activation is
recorded, so the captured values are the ones the model actually used downstream.

Positions (``pos``, ``query``, ``key``) accept ``None`` (every position), an ``int`` (negative
counts back from each prompt's own last real token, so ``-1`` is the last token of every prompt in a
padded batch), a list of ints, a ``slice``, or a bool tensor ``[pos]`` / ``[batch, pos]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Union, runtime_checkable

import torch

from .names import EDITABLE, NAMES, check_index, check_name

Positions = Union[None, int, Sequence[int], slice, torch.Tensor]
Indices = Union[int, Sequence[int]]

__all__ = ["Ablate", "Patch", "Clamp", "Steer", "Knockout", "Edit", "Intervention", "Activations"]


@runtime_checkable
class Activations(Protocol):
    """Anything that holds activations by ``(name, layer)``, with a mask of real tokens.

    A :class:`kit.Trace` is one; interventions read a patch source or a mean-ablation reference
    through this protocol only, so they never depend on the tracer.
    """

    mask: torch.Tensor  # [batch, pos] bool, True on real tokens

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor: ...


@dataclass(frozen=True)
class Ablate:
    """Silence attention heads by replacing their output ``z`` with zero or with its mean.

    ``how="mean"`` uses the head's mean over the real tokens of ``reference`` (a Trace that
    captured ``z`` or ``head_out`` at this layer), or of the traced batch itself when no reference
    is given. That batch mean is a statistic of the whole batch, later tokens included, so it is
    the one intervention under which a position's output depends on later tokens; pass a
    ``reference`` (a fixed set of prompts) for a strictly causal ablation.
    """

    layer: int
    head: Indices
    how: Literal["zero", "mean"] = "zero"
    pos: Positions = None
    reference: Activations | None = None


@dataclass(frozen=True)
class Patch:
    """Overwrite an activation with the same activation from another trace (or a tensor).

    ``source`` is a Trace (any :class:`Activations`) that captured ``name`` at ``layer`` (with as many positions as the traced
    prompts), or a tensor of that activation's shape; a batch of 1 is broadcast. ``head`` limits
    the patch to some heads (for ``z``, ``head_out`` and ``pattern``).
    """

    name: str
    layer: int
    source: Activations | torch.Tensor
    pos: Positions = None
    head: Indices | None = None


@dataclass(frozen=True)
class Clamp:
    """Set MLP neurons (``mlp_post[..., neuron]``) to ``value`` at the chosen positions."""

    layer: int
    neuron: Indices
    value: float | torch.Tensor = 0.0
    pos: Positions = None


@dataclass(frozen=True)
class Steer:
    """Add ``scale * vector`` (``vector[d_model]``) to the residual stream.

    ``name="resid_pre"`` adds it where the stream enters each chosen layer, ``"resid_post"`` where
    it leaves.
    """

    vector: torch.Tensor
    layer: Indices
    pos: Positions = None
    scale: float = 1.0
    name: Literal["resid_pre", "resid_post"] = "resid_pre"


@dataclass(frozen=True)
class Knockout:
    """Block attention from ``query`` positions to ``key`` positions in the chosen layers (and heads).

    The blocked scores get the same large negative bias as the causal mask before the softmax, so
    each query redistributes its attention over the keys it may still see. A query whose every
    visible key is blocked (e.g. ``Knockout(layer, query=None, key=0)`` at position 0) attends to
    **nothing**: its pattern row is all zeros and that head's output there is zero. Knocked-out
    keys never unblock the causal mask, so no position ever sees a later one.
    """

    layer: Indices
    query: Positions
    key: Positions
    head: Indices | None = None


@dataclass(frozen=True)
class Edit:
    """Apply any function ``fn(activation) -> activation`` at one point (for advanced use).

    ``name`` is an activation name (not ``head_out``: edit ``z`` instead) or ``"attn_scores"``
    (pre-softmax scores ``[batch, head, query, key]``, causal mask included).
    """

    name: str
    layer: int
    fn: Callable[[torch.Tensor], torch.Tensor]


Intervention = Union[Ablate, Patch, Clamp, Steer, Knockout, Edit]

EditFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Context:
    """What compiling an intervention needs to know about the traced batch and the model."""

    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    d_head: int
    lengths: list[int]  # real tokens per prompt
    seq_len: int
    device: torch.device

    @property
    def batch(self) -> int:
        return len(self.lengths)

    def real(self) -> torch.Tensor:
        """``real[batch, pos]``: True on real (non-padding) tokens."""
        ar = torch.arange(self.seq_len, device=self.device)
        return ar[None, :] < torch.tensor(self.lengths, device=self.device)[:, None]


def positions(pos: Positions, ctx: Context, what: str = "pos") -> torch.Tensor:
    """Resolve a positions argument into a bool mask ``[batch, pos]``."""
    B, T = ctx.batch, ctx.seq_len
    if pos is None:
        return torch.ones(B, T, dtype=torch.bool, device=ctx.device)
    if isinstance(pos, torch.Tensor) and pos.dtype == torch.bool:
        if pos.shape not in ((T,), (B, T)):
            raise ValueError(f"{what} as a bool tensor must have shape [{T}] or [{B}, {T}], got {list(pos.shape)}")
        return pos.to(ctx.device).expand(B, T).clone()
    out = torch.zeros(B, T, dtype=torch.bool, device=ctx.device)
    for b, n in enumerate(ctx.lengths):
        if isinstance(pos, slice):
            idx = list(range(n))[pos]
        else:
            items = pos.tolist() if isinstance(pos, torch.Tensor) else pos
            items = [items] if isinstance(items, int) else list(items)
            idx = [check_index(p, n, what) for p in items]
        out[b, idx] = True
    return out


def _indices(value: Indices | None, size: int, what: str) -> list[int] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, int) or (isinstance(value, torch.Tensor) and value.ndim == 0) else list(value)
    if not items:
        raise ValueError(f"{what} list is empty")
    return [check_index(i, size, what) for i in items]


def _layers(value: Indices, ctx: Context) -> list[int]:
    return _indices(value, ctx.n_layers, "layer")  # type: ignore[return-value]


def _select(name: str, where: torch.Tensor, heads: list[int] | None, ctx: Context,
            last: list[int] | None = None) -> torch.Tensor:
    """Bool mask broadcastable to activation ``name`` from positions, heads and last-axis indices."""
    if name in ("pattern", "attn_scores"):  # [batch, head, query, key]
        sel = where[:, None, :, None]
        if heads is not None:
            h = torch.zeros(ctx.n_heads, dtype=torch.bool, device=ctx.device)
            h[heads] = True
            sel = sel & h[None, :, None, None]
        return sel
    if name == "z":  # [batch, pos, head, d_head]
        sel = where[:, :, None, None]
        if heads is not None:
            h = torch.zeros(ctx.n_heads, dtype=torch.bool, device=ctx.device)
            h[heads] = True
            sel = sel & h[None, None, :, None]
        return sel
    sel = where[:, :, None]  # [batch, pos, width]
    if last is not None:
        width = ctx.d_mlp if name == "mlp_post" else ctx.d_model
        m = torch.zeros(width, dtype=torch.bool, device=ctx.device)
        m[last] = True
        sel = sel & m[None, None, :]
    return sel


def _expected_shape(name: str, ctx: Context) -> tuple[int, ...]:
    B, T = ctx.batch, ctx.seq_len
    return {
        "pattern": (B, ctx.n_heads, T, T),
        "z": (B, T, ctx.n_heads, ctx.d_head),
        "mlp_post": (B, T, ctx.d_mlp),
    }.get(name, (B, T, ctx.d_model))


def _source_tensor(p: Patch, name: str, ctx: Context) -> torch.Tensor:
    if isinstance(p.source, torch.Tensor):
        src = p.source
    elif callable(getattr(p.source, "__getitem__", None)) and not isinstance(p.source, (str, bytes, list, tuple, dict)):
        src = p.source[name, p.layer]
    else:
        src = None
    if not isinstance(src, torch.Tensor):
        raise ValueError(f"Patch source must be a Trace (anything indexable by (name, layer)) or a tensor, "
                         f"got {type(p.source).__name__}")
    want = _expected_shape(name, ctx)
    if src.shape[1:] != torch.Size(want[1:]) or src.shape[0] not in (1, want[0]):
        raise ValueError(
            f"Patch source for {name!r} at layer {p.layer} has shape {list(src.shape)}, but the traced "
            f"batch needs {list(want)} (batch 1 broadcasts); patch between prompts of equal token length"
        )
    return src.to(ctx.device)


def compile_intervention(iv: Intervention, ctx: Context) -> list[tuple[str, int, EditFn]]:
    """Validate one intervention against the model and batch; return ``(name, layer, fn)`` edits.

    Raises ``ValueError`` naming what is valid before any hook is attached.
    """
    if isinstance(iv, Ablate):
        layer = check_index(iv.layer, ctx.n_layers, "layer")
        heads = _indices(iv.head, ctx.n_heads, "head")
        if iv.how not in ("zero", "mean"):
            raise ValueError(f"Ablate how={iv.how!r}; valid: 'zero', 'mean'")
        sel = _select("z", positions(iv.pos, ctx), heads, ctx)
        if iv.how == "zero":
            return [("z", layer, lambda x, sel=sel: x.masked_fill(sel, 0.0))]
        if iv.reference is not None:
            ref, ref_mask = iv.reference["z", layer], iv.reference.mask
        else:
            ref, ref_mask = None, ctx.real()

        def mean_ablate(x: torch.Tensor, ref=ref, ref_mask=ref_mask, sel=sel) -> torch.Tensor:
            src = x if ref is None else ref.to(x.device)
            m = ref_mask.to(x.device)[:, :, None, None].to(src.dtype)
            mean = (src * m).sum((0, 1)) / m.sum((0, 1)).clamp_min(1)  # [head, d_head]
            return torch.where(sel, mean[None, None], x)

        return [("z", layer, mean_ablate)]

    if isinstance(iv, Patch):
        name = check_name(iv.name, NAMES)
        layer = check_index(iv.layer, ctx.n_layers, "layer")
        point = "z" if name == "head_out" else name
        heads = _indices(iv.head, ctx.n_heads, "head")
        if heads is not None and point not in ("z", "pattern"):
            raise ValueError(f"Patch head= applies to 'z', 'head_out' and 'pattern', not {name!r}")
        src = _source_tensor(iv, point, ctx)
        sel = _select(point, positions(iv.pos, ctx), heads, ctx)
        return [(point, layer, lambda x, src=src, sel=sel: torch.where(sel, src.to(x.dtype), x))]

    if isinstance(iv, Clamp):
        layer = check_index(iv.layer, ctx.n_layers, "layer")
        neurons = _indices(iv.neuron, ctx.d_mlp, "neuron")
        sel = _select("mlp_post", positions(iv.pos, ctx), None, ctx, last=neurons)
        value = torch.as_tensor(iv.value, dtype=torch.float32, device=ctx.device)
        if value.ndim > 1 or (value.ndim == 1 and value.numel() not in (1, len(neurons))):
            raise ValueError(f"Clamp value must be a number or one value per neuron ({len(neurons)}), got shape {list(value.shape)}")
        full = torch.zeros(ctx.d_mlp, device=ctx.device)
        full[neurons] = value
        return [("mlp_post", layer, lambda x, sel=sel, full=full: torch.where(sel, full.to(x.dtype), x))]

    if isinstance(iv, Steer):
        if iv.name not in ("resid_pre", "resid_post"):
            raise ValueError(f"Steer name={iv.name!r}; valid: 'resid_pre', 'resid_post'")
        vec = torch.as_tensor(iv.vector)
        if vec.shape != (ctx.d_model,):
            raise ValueError(f"Steer vector must have shape [d_model] = [{ctx.d_model}], got {list(vec.shape)}")
        if not torch.isfinite(vec).all():
            raise ValueError("Steer vector contains NaN or infinite values")
        delta = (iv.scale * vec.float()).to(ctx.device)
        w = positions(iv.pos, ctx)[:, :, None]
        fn = lambda x, w=w, d=delta: x + w.to(x.dtype) * d.to(x.dtype)  # noqa: E731
        return [(iv.name, layer, fn) for layer in _layers(iv.layer, ctx)]

    if isinstance(iv, Knockout):
        q = positions(iv.query, ctx, "query")
        k = positions(iv.key, ctx, "key")
        sel = q[:, None, :, None] & k[:, None, None, :]
        heads = _indices(iv.head, ctx.n_heads, "head")
        if heads is not None:
            h = torch.zeros(ctx.n_heads, dtype=torch.bool, device=ctx.device)
            h[heads] = True
            sel = sel & h[None, :, None, None]

        def knock(x: torch.Tensor, sel=sel) -> torch.Tensor:
            return x.masked_fill(sel, torch.finfo(x.dtype).min)

        return [("attn_scores", layer, knock) for layer in _layers(iv.layer, ctx)]

    if isinstance(iv, Edit):
        name = check_name(iv.name, EDITABLE, "edit point")
        if not callable(iv.fn):
            raise ValueError("Edit fn must be callable: fn(activation) -> activation")
        return [(name, check_index(iv.layer, ctx.n_layers, "layer"), iv.fn)]

    raise ValueError(
        f"unknown intervention {iv!r}; use kit.Ablate, kit.Patch, kit.Clamp, kit.Steer, kit.Knockout or kit.Edit"
    )
