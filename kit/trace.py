"""``Trace``: what one forward pass captured, and ``run_trace``, the tracer behind ``model.trace``.

The tracer is handed token ids and an architecture adapter (the model tokenizes); a Trace holds
what it needs (token ids, a decoder for token texts, the adapter) and never calls back into the
model that made it. ``tr.model`` is kept as a plain attribute for convenience (the owner that
asked for the trace), but nothing in this module reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from ._session import HookSession, edits_by_point
from .arch import Adapter
from .interventions import Context, Intervention, compile_intervention
from .names import NAMES, check_index, check_name

__all__ = ["Trace", "run_trace", "capture_bytes"]

Decoder = Callable[[Sequence[int]], list[str]]  # token ids -> one text per token


class Trace:
    """Activations captured in one forward pass of a batch of prompts.

    Index it as ``tr[name, layer]`` (see :mod:`kit.names` for names and shapes), e.g.
    ``tr["pattern", 1]`` is ``[batch, head, query, key]``. ``tr.logits`` is ``[batch, pos, vocab]``,
    ``tr.tokens`` the token texts per prompt, ``tr.mask`` ``[batch, pos]`` True on real tokens
    (padding is on the right, so real tokens sit at the same positions as in a one-prompt trace).
    """

    def __init__(self, input_ids: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor,
                 store: dict[tuple[str, int], torch.Tensor], names: Sequence[str], layers: Sequence[int], *,
                 adapter: Adapter, decode: Decoder, interventions: Sequence[Intervention] = (), model: Any = None):
        self.adapter = adapter
        self.model = model  # the owner (a kit.Model), for the caller's convenience only
        self._decode = decode
        self.input_ids = input_ids  # [batch, pos]
        self.mask = mask  # [batch, pos] bool
        self.logits = logits  # [batch, pos, vocab]
        self._store = store
        self.names = tuple(names)  # what was captured
        self.layers = tuple(layers)
        self.interventions = tuple(interventions)
        self._tokens: list[list[str]] | None = None

    @property
    def tokens(self) -> list[list[str]]:
        """Token texts of each prompt's real tokens: ``tokens[batch][pos]``."""
        if self._tokens is None:
            self._tokens = [self._decode(ids[m].tolist()) for ids, m in zip(self.input_ids, self.mask)]
        return self._tokens

    @property
    def lengths(self) -> list[int]:
        """Number of real tokens per prompt."""
        return self.mask.sum(1).tolist()

    @property
    def batch(self) -> int:
        return self.input_ids.shape[0]

    @property
    def n_pos(self) -> int:
        return self.input_ids.shape[1]

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"index a trace as tr[name, layer], e.g. tr['resid_post', 0]; got {key!r}")
        name, layer = key
        check_name(name, NAMES)
        if name not in self.names:
            raise ValueError(
                f"{name!r} was not captured in this trace; captured: {', '.join(self.names) or 'nothing but logits'}. "
                f"Trace again with capture=[..., {name!r}] (or capture=None for everything)."
            )
        layer = check_index(layer, self.adapter.n_layers, "layer")
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not captured; captured layers: {list(self.layers)}")
        if name == "head_out":
            z = self._store[("z", layer)]  # [batch, pos, head, d_head]
            W_O = self.adapter.W_O(layer).detach()  # [head, d_head, d_model]
            return torch.einsum("bphd,hdm->bphm", z, W_O.to(z.dtype))
        return self._store[(name, layer)]

    def stack(self, name: str) -> torch.Tensor:
        """All captured layers of one activation stacked: ``[layer, ...]``."""
        return torch.stack([self[name, l] for l in self.layers])

    def __contains__(self, key: tuple[str, int]) -> bool:
        name, layer = key
        return name in self.names and layer in self.layers

    def __repr__(self) -> str:
        prompts = ", ".join(repr("".join(t))[:40] for t in self.tokens[:3]) + (", ..." if self.batch > 3 else "")
        return (f"Trace(batch={self.batch}, pos={self.n_pos}, captured={list(self.names)}, "
                f"layers={len(self.layers)}/{self.adapter.n_layers}, interventions={len(self.interventions)}, "
                f"prompts=[{prompts}])")


def _capture_names(capture: Iterable[str] | str | None) -> tuple[str, ...]:
    if capture is None:
        return NAMES
    if isinstance(capture, str):
        capture = [capture]
    names = []
    for name in capture:
        if name == "logits":  # always captured; accepted for readability
            continue
        check_name(name, NAMES + ("logits",))
        if name not in names:
            names.append(name)
    if "head_out" in names and "z" not in names:  # head_out is computed from z, so z is kept too
        names.append("z")
    return tuple(n for n in NAMES if n in names)


DEFAULT_MAX_BYTES = 4 * 2**30


def capture_bytes(model: Any, batch: int, n_pos: int, names: Sequence[str], n_layers: int) -> int:
    """Bytes that capturing ``names`` at ``n_layers`` layers will hold (float32, before computing).

    ``model``: anything with the dimensions ``n_heads, d_head, d_model, d_mlp`` (an Adapter or a Model).
    """
    per_layer = {
        "pattern": model.n_heads * n_pos * n_pos,
        "z": n_pos * model.n_heads * model.d_head,
        "mlp_post": n_pos * model.d_mlp,
        "head_out": 0,  # computed on access from z
    }
    elems = sum(per_layer.get(n, n_pos * model.d_model) for n in names)
    return 4 * batch * n_layers * elems


def _check_budget(model: Any, batch: int, n_pos: int, names: Sequence[str], layers: Sequence[int],
                  max_bytes: int | None) -> None:
    budget = max_bytes if max_bytes is not None else int(os.environ.get("KIT_MAX_TRACE_BYTES", DEFAULT_MAX_BYTES))
    need = capture_bytes(model, batch, n_pos, names, len(layers))
    if need > budget:
        biggest = "pattern" if "pattern" in names else (names[0] if names else "")
        raise MemoryError(
            f"this trace would capture {need / 2**30:.2f} GiB ({batch} prompt(s) x {n_pos} tokens, "
            f"{len(layers)} layers of {', '.join(names)}), over the budget of {budget / 2**30:.2f} GiB. "
            f"Capture less: fewer names (e.g. capture=[n for n in kit.names.NAMES if n != {biggest!r}]), "
            f"fewer layers (layers=[...]), fewer or shorter prompts; or raise the budget with max_bytes=... "
            f"or the KIT_MAX_TRACE_BYTES environment variable."
        )


def run_trace(adapter: Adapter, input_ids: torch.Tensor, mask: torch.Tensor, *, decode: Decoder,
              capture=None, layers=None, interventions: Intervention | Sequence[Intervention] = (),
              grad: bool = False, max_bytes: int | None = None, owner: Any = None) -> Trace:
    """Validate, hook, run one forward pass of ``input_ids[batch, pos]`` and return its :class:`Trace`.

    ``mask[batch, pos]`` is True on real tokens (padding on the right); ``decode`` turns ids into
    token texts. Every check happens before any hook is attached (and before any activation is
    allocated); hooks are removed on exit, also on error.
    """
    names = _capture_names(capture)
    if layers is None:
        layer_list = list(range(adapter.n_layers))
    else:
        items = [layers] if isinstance(layers, int) else list(layers)
        layer_list = sorted({check_index(l, adapter.n_layers, "layer") for l in items})
    if not isinstance(interventions, (list, tuple)):
        interventions = [interventions]
    _check_budget(adapter, input_ids.shape[0], input_ids.shape[1], names, layer_list, max_bytes)
    a = adapter
    ctx = Context(a.n_layers, a.n_heads, a.d_model, a.d_mlp, a.d_head, mask.sum(1).tolist(),
                  input_ids.shape[1], input_ids.device)
    compiled = [e for iv in interventions for e in compile_intervention(iv, ctx)]
    points = {"head_out": "z"}
    capture_keys = {(points.get(n, n), l) for n in names for l in layer_list}
    session = HookSession(a, capture_keys, edits_by_point(compiled))
    with torch.set_grad_enabled(grad), session:
        out = a.hf(input_ids=input_ids, attention_mask=mask.long(), use_cache=False)
    logits = out.logits if grad else out.logits.detach()
    return Trace(input_ids, mask, logits, session.store, names, layer_list, adapter=a, decode=decode,
                 interventions=interventions, model=owner)
