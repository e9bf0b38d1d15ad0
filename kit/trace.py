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
from .names import (
    ALL, LAYER_NAMES, MODEL_NAMES, NAMES, check_index, check_name, from_transformerlens, is_transformerlens,
)

__all__ = ["Trace", "run_trace", "capture_bytes", "available_names"]

Decoder = Callable[[Sequence[int]], list[str]]  # token ids -> one text per token


class Trace:
    """Activations captured in one forward pass of a batch of prompts.

    Index it as ``tr[name, layer]`` (see :mod:`kit.names` for names and shapes), e.g.
    ``tr["pattern", 1]`` is ``[batch, head, query, key]``; model-level names as ``tr["embed"]``;
    TransformerLens hook names as they are, e.g. ``tr["blocks.1.attn.hook_pattern"]``.
    ``tr.logits`` is ``[batch, pos, vocab]``,
    ``tr.tokens`` the token texts per prompt, ``tr.mask`` ``[batch, pos]`` True on real tokens
    (padding is on the right, so real tokens sit at the same positions as in a one-prompt trace).
    """

    def __init__(self, input_ids: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor,
                 store: dict[tuple[str, int], torch.Tensor], names: Sequence[str], layers: Sequence[int], *,
                 adapter: Adapter, decode: Decoder, interventions: Sequence[Intervention] = (), model: Any = None,
                 pattern_heads: Sequence[int] | None = None):
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
        # heads whose pattern / attn_scores were computed: tr["pattern", l][:, i] is head pattern_heads[i]
        self.pattern_heads = None if pattern_heads is None else tuple(pattern_heads)
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

    def _resolve(self, key) -> tuple[str, int | None]:
        """``(kit name, layer or None)`` of an index: ``(name, layer)``, a model-level name, or a TL hook name."""
        if isinstance(key, str):
            if is_transformerlens(key):
                return from_transformerlens(key, rotary=self.adapter.rotary)
            check_name(key, ALL)
            if key in MODEL_NAMES:
                return key, None
            raise ValueError(f"{key!r} is per layer: index it as tr[name, layer], e.g. tr[{key!r}, 0]")
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"index a trace as tr[name, layer], e.g. tr['resid_post', 0]; got {key!r}")
        name, layer = key
        if isinstance(name, str) and is_transformerlens(name):
            name, _ = from_transformerlens(name.replace("{l}", "0"), rotary=self.adapter.rotary)
        check_name(name, ALL)
        if name in MODEL_NAMES:
            if layer is None:
                return name, None
            raise ValueError(f"{name!r} has no layer: index it as tr[{name!r}]")
        return name, check_index(layer, self.adapter.n_layers, "layer")

    def __getitem__(self, key) -> torch.Tensor:
        name, layer = self._resolve(key)
        if name not in self.names:
            raise ValueError(
                f"{name!r} was not captured in this trace; captured: {', '.join(self.names) or 'nothing but logits'}. "
                f"Trace again with capture=[..., {name!r}] (capture=None: the defaults; kit.names.ALL: everything)."
            )
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer {layer} was not captured; captured layers: {list(self.layers)}")
        if name == "head_out":
            return self.adapter.head_out(self._store[("z", layer)], layer, self._store.get(("_attn_post_scale", layer)))
        x = self._store[(name, layer)]
        if name == "pos_embed":  # learned positions are shared by the batch
            x = x.expand(self.batch, -1, -1)
        return x

    def post_norm_factor(self, kind: str, layer: int) -> torch.Tensor | None:
        """``factor[batch, pos, d_model]`` of the norm applied after attention or the MLP, or None.

        In Gemma 2/3 and OLMo 2 a block normalises what attention (``kind="attn"``) or the MLP
        (``kind="mlp"``) writes before adding it to the stream; with its scale frozen at this
        trace, that norm multiplies each part by ``factor = gain / scale``. So a neuron adds
        ``mlp_post[..., n] * W_out[n] * factor`` to ``mlp_out``. None where the block has no such norm.
        """
        check_name(kind, ("attn", "mlp"), "kind")
        layer = check_index(layer, self.adapter.n_layers, "layer")
        norm = self.adapter.attn_post_norm(layer) if kind == "attn" else self.adapter.mlp_post_norm(layer)
        if norm is None:
            return None
        scale = self._store.get((f"_{kind}_post_scale", layer))
        if scale is None:
            raise ValueError(f"post_norm_factor({kind!r}, {layer}) needs a trace that captured "
                             f"{'z' if kind == 'attn' else 'mlp_post'} at layer {layer}")
        gain = self.adapter.norm_gain(norm)
        gain = torch.ones(self.adapter.d_model, device=scale.device) if gain is None else gain.to(scale.device)
        return gain / scale

    def stack(self, name: str) -> torch.Tensor:
        """All captured layers of one activation stacked: ``[layer, ...]``."""
        return torch.stack([self[name, l] for l in self.layers])

    def __contains__(self, key) -> bool:
        try:
            name, layer = self._resolve(key)
        except ValueError:
            return False
        return name in self.names and (layer is None or layer in self.layers)

    def __repr__(self) -> str:
        prompts = ", ".join(repr("".join(t))[:40] for t in self.tokens[:3]) + (", ..." if self.batch > 3 else "")
        return (f"Trace(batch={self.batch}, pos={self.n_pos}, captured={list(self.names)}, "
                f"layers={len(self.layers)}/{self.adapter.n_layers}, interventions={len(self.interventions)}, "
                f"prompts=[{prompts}])")


def _absent(adapter: Adapter) -> dict[str, str]:
    """Names this family's blocks do not have, each with the reason."""
    fam, out = adapter.family, {}
    if fam.resid_mid_at is None:
        out["resid_mid"] = "its blocks are parallel: attention and MLP both read resid_pre"
    if fam.attn_norm is None:
        out["attn_normalized"] = out["attn_scale"] = "its attention reads the raw residual stream (no norm before it)"
    if fam.mlp_norm is None:
        out["mlp_normalized"] = out["mlp_scale"] = "its MLP reads the raw residual stream (no norm before it)"
    if fam.pos_embed is None:
        out["pos_embed"] = "it has no learned position embedding (positions are rotary)"
    return out


def _pattern_heads(heads, adapter: Adapter, names: Sequence[str]) -> list[int] | None:
    """Sorted query heads whose patterns to compute, or None for all."""
    if heads is None:
        return None
    if not any(n in names for n in ("pattern", "attn_scores")):
        raise ValueError("heads= chooses the heads whose 'pattern' / 'attn_scores' are computed; capture one of them")
    items = [heads] if isinstance(heads, int) else list(heads)
    if not items:
        raise ValueError("heads= is empty; give at least one head, or None for all")
    chosen = sorted({check_index(h, adapter.n_heads, "head") for h in items})
    return None if len(chosen) == adapter.n_heads else chosen


def available_names(adapter: Adapter) -> tuple[str, ...]:
    """Every name (:data:`kit.names.ALL`) that a model of this adapter's family can capture."""
    absent = _absent(adapter)
    return tuple(n for n in ALL if n not in absent)


def _capture_names(capture: Iterable[str] | str | None, adapter: Adapter) -> tuple[str, ...]:
    """The kit names to capture (TransformerLens hook names accepted), checked against the family."""
    if capture is None:
        return NAMES
    if isinstance(capture, str):
        capture = [capture]
    names = []
    for name in capture:
        if name == "logits":  # always captured; accepted for readability
            continue
        if is_transformerlens(name):
            name, _ = from_transformerlens(name.replace("{l}", "0"), rotary=adapter.rotary)
        check_name(name, ALL + ("logits",))
        if name not in names:
            names.append(name)
    if "head_out" in names and "z" not in names:  # head_out is computed from z, so z is kept too
        names.append("z")
    for name in names:
        why = _absent(adapter).get(name)
        if why:
            raise ValueError(f"{name!r} does not exist in a {adapter.family.name} model: {why}")
    return tuple(n for n in ALL if n in names)


DEFAULT_MAX_BYTES = 4 * 2**30


def capture_bytes(model: Any, batch: int, n_pos: int, names: Sequence[str], n_layers: int, itemsize: int = 4) -> int:
    """Bytes that capturing ``names`` at ``n_layers`` layers will hold (``itemsize`` bytes per value).

    ``model``: anything with the dimensions ``n_heads, d_head, d_model, d_mlp`` (an Adapter or a Model).
    """
    kv = getattr(model, "n_kv_heads", model.n_heads)
    per_layer = {
        "pattern": model.n_heads * n_pos * n_pos,
        "attn_scores": model.n_heads * n_pos * n_pos,
        "z": n_pos * model.n_heads * model.d_head,
        "q": n_pos * model.n_heads * model.d_head,
        "k": n_pos * kv * model.d_head,
        "v": n_pos * kv * model.d_head,
        "mlp_post": n_pos * model.d_mlp,
        "mlp_pre": n_pos * model.d_mlp,
        "attn_scale": n_pos, "mlp_scale": n_pos, "final_scale": n_pos,
        "head_out": 0,  # computed on access from z
    }
    elems = sum(per_layer.get(n, n_pos * model.d_model) for n in names if n not in MODEL_NAMES)
    elems_model = sum(per_layer.get(n, n_pos * model.d_model) for n in names if n in MODEL_NAMES)
    return itemsize * batch * (n_layers * elems + elems_model)


def free_memory(device: torch.device) -> int | None:
    """Free bytes on an accelerator (CUDA), or None where the kit does not check (CPU, MPS)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def _check_device_memory(adapter: Adapter, batch: int, n_pos: int, names: Sequence[str], layers: Sequence[int],
                         capture_device: torch.device, compute_device: torch.device, itemsize: int) -> None:
    """Refuse, before allocating, a trace whose captures and working memory exceed free GPU memory."""
    need_capture = capture_bytes(adapter, batch, n_pos, names, len(layers), itemsize)
    # working memory of the widest step: one layer's float32 scores and pattern when patterns are computed
    eager = any(n in names for n in ("pattern", "attn_scores"))
    work = batch * adapter.n_heads * n_pos * n_pos * (4 + 4 + itemsize) if eager else 0
    work += batch * n_pos * (4 * adapter.d_model + 2 * adapter.d_mlp) * 4
    needs: dict[torch.device, int] = {}
    needs[capture_device] = needs.get(capture_device, 0) + need_capture
    needs[compute_device] = needs.get(compute_device, 0) + work
    for device, total in needs.items():
        free = free_memory(device)
        if free is not None and total > free:
            raise MemoryError(
                f"this trace needs about {total / 2**30:.2f} GiB on {device} ({need_capture / 2**30:.2f} GiB of "
                f"captures for {batch} prompt(s) x {n_pos} tokens, {len(layers)} layers of {', '.join(names)}, plus "
                f"working memory), but only {free / 2**30:.2f} GiB is free there. Ways out: capture fewer names "
                f"or layers (capture=[...], layers=[...]), leave out 'pattern' (the largest, [batch, head, pos, pos] "
                f"per layer), keep captures on the CPU (kit.load(..., capture_device='cpu')), or trace fewer or "
                f"shorter prompts."
            )


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
              grad: bool = False, max_bytes: int | None = None, owner: Any = None,
              capture_device: torch.device | None = None, heads: int | Sequence[int] | None = None) -> Trace:
    """Validate, hook, run one forward pass of ``input_ids[batch, pos]`` and return its :class:`Trace`.

    ``mask[batch, pos]`` is True on real tokens (padding on the right); ``decode`` turns ids into
    token texts. Every check happens before any hook is attached (and before any activation is
    allocated); hooks are removed on exit, also on error. ``capture_device``: where captures and
    logits land (default: where they are computed; a sharded model's captures are gathered there).
    """
    names = _capture_names(capture, adapter)
    pattern_heads = _pattern_heads(heads, adapter, names)
    if layers is None:
        layer_list = list(range(adapter.n_layers))
    else:
        items = [layers] if isinstance(layers, int) else list(layers)
        layer_list = sorted({check_index(l, adapter.n_layers, "layer") for l in items})
    if not isinstance(interventions, (list, tuple)):
        interventions = [interventions]
    _check_budget(adapter, input_ids.shape[0], input_ids.shape[1], names, layer_list, max_bytes)
    compute_device = input_ids.device
    itemsize = adapter.unembed.weight.element_size()
    _check_device_memory(adapter, input_ids.shape[0], input_ids.shape[1], names, layer_list,
                         capture_device or compute_device, compute_device, itemsize)
    a = adapter
    ctx = Context(a.n_layers, a.n_heads, a.d_model, a.d_mlp, a.d_head, mask.sum(1).tolist(),
                  input_ids.shape[1], input_ids.device)
    compiled = [e for iv in interventions for e in compile_intervention(iv, ctx)]
    points = {"head_out": "z"}
    capture_keys = {(points.get(n, n), l) for n in names if n in LAYER_NAMES for l in layer_list}
    capture_keys |= {(n, None) for n in names if n in MODEL_NAMES}
    session = HookSession(a, capture_keys, edits_by_point(compiled), tuple(input_ids.shape), capture_device,
                          pattern_heads)
    with torch.set_grad_enabled(grad), session:
        out = a.hf(input_ids=input_ids, attention_mask=mask.long(), use_cache=False)
    logits = out.logits if grad else out.logits.detach()
    if capture_device is not None:
        logits, input_ids, mask = logits.to(capture_device), input_ids.to(capture_device), mask.to(capture_device)
    return Trace(input_ids, mask, logits, session.store, names, layer_list, adapter=a, decode=decode,
                 interventions=interventions, model=owner, pattern_heads=pattern_heads)
