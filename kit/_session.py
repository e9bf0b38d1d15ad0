"""Temporary hooks on the real modules for one forward pass: capture and edit activations.

A :class:`HookSession` is a context manager: it attaches forward hooks and pre-hooks for exactly
the points a trace needs, and removes every one of them on exit, also when the forward raises.
Keys are ``(name, layer)``; model-level names (``embed``, ``resid_final``, ...) use layer None.
Where each point lives is the adapter's business (``kit.arch``); this module never branches on a
family.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from . import _attention
from ._calls import input_name
from .arch import Adapter, _norms
from .interventions import EditFn


Key = tuple[str, "int | None"]  # (activation name, layer; None for model-level names)
ATTENTION_POINTS = ("pattern", "attn_scores", "q", "k", "v")


class HookSession:
    """Hooks for one forward pass of a ``[batch, pos]`` batch.

    ``capture`` is the set of ``(name, layer)`` to record (``head_out`` is recorded as ``z``);
    ``edits`` maps ``(name, layer)`` to the functions applied there, in order.
    After the pass, ``store`` maps each captured key to its detached tensor, and post-norm scales
    needed for ``head_out`` and neuron contributions under ``("_attn_post_scale", layer)`` and
    ``("_mlp_post_scale", layer)``.
    """

    def __init__(self, adapter: Adapter, capture: Iterable[Key], edits: dict[Key, list[EditFn]],
                 shape: tuple[int, int], capture_device: torch.device | None = None,
                 pattern_heads: list[int] | None = None):
        self.adapter = adapter
        self.capture = set(capture)
        self.edits = edits
        self.shape = shape  # (batch, pos): flattened [batch * pos, width] activations are viewed back
        self.capture_device = capture_device  # where captures land (None: where they are computed)
        self.pattern_heads = pattern_heads  # query heads whose patterns/scores are kept (None: all)
        self.store: dict[Key, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._stack = contextlib.ExitStack()
        self._attn_layer = {id(adapter.attn(l)): l for l in range(adapter.n_layers)}
        self._clone = adapter.family.outputs_edited_in_place

    # the one place where an activation is edited, then recorded ------------------------------
    def _record(self, key: Key, x: torch.Tensor) -> None:
        x = x.detach()
        if self.capture_device is not None and x.device != self.capture_device:
            self.store[key] = x.to(self.capture_device)  # a copy: in-place edits of x cannot reach it
            return
        self.store[key] = x.clone() if self._clone else x

    def _visit(self, name: str, layer: int | None, x: torch.Tensor) -> torch.Tensor | None:
        flat = x.ndim == 2 and x.shape[0] == self.shape[0] * self.shape[1]  # OPT's MLP: [batch * pos, width]
        if flat:
            x = x.view(*self.shape, -1)
        fns = self.edits.get((name, layer), ())
        for fn in fns:
            x = fn(x)
        if (name, layer) in self.capture:
            if self.pattern_heads is not None and name in ("pattern", "attn_scores") and \
                    x.shape[1] == self.adapter.n_heads != len(self.pattern_heads):
                self._record((name, layer), x[:, self.pattern_heads])  # all heads were computed for an edit
            else:
                self._record((name, layer), x)
        if not fns:
            return None
        return x.reshape(-1, x.shape[-1]) if flat else x

    # attention observer protocol (see kit._attention) -----------------------------------------
    def layer_of(self, module: nn.Module) -> int | None:
        return self._attn_layer.get(id(module))

    def needs_pattern(self, layer: int) -> bool:
        return any(self._needs(n, layer) for n in ("pattern", "attn_scores"))

    def observed_heads(self, layer: int) -> list[int] | None:
        """The heads whose patterns are computed at ``layer``, or None for all of them.

        Only when nothing edits this layer's scores or pattern (an edit needs every head)."""
        if self.pattern_heads is None or ("pattern", layer) in self.edits or ("attn_scores", layer) in self.edits:
            return None
        return self.pattern_heads

    def edits_scores(self, layer: int) -> bool:
        """Whether an intervention edits this layer's pre-softmax scores."""
        return ("attn_scores", layer) in self.edits

    def on_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        for name, x in (("q", q), ("k", k), ("v", v)):  # [batch, head, pos, d_head] -> [batch, pos, head, d_head]
            if (name, layer) in self.capture:
                self._record((name, layer), x.transpose(1, 2))

    def on_scores(self, layer: int, scores: torch.Tensor) -> torch.Tensor:
        out = self._visit("attn_scores", layer, scores)
        return scores if out is None else out

    def on_pattern(self, layer: int, pattern: torch.Tensor) -> torch.Tensor:
        out = self._visit("pattern", layer, pattern)
        return pattern if out is None else out

    # hook factories -----------------------------------------------------------------------------
    def _block_pre(self, layer: int):
        def hook(module, args, kwargs):
            if args:
                new = self._visit("resid_pre", layer, args[0])
                return None if new is None else ((new,) + tuple(args[1:]), kwargs)
            key = input_name(type(module))  # called by keyword, as some models' code does
            new = self._visit("resid_pre", layer, kwargs[key])
            return None if new is None else (args, {**kwargs, key: new})
        return hook

    def _output(self, name: str, layer: int | None):
        def hook(module, args, output):
            if isinstance(output, tuple):
                new = self._visit(name, layer, output[0])
                return None if new is None else (new,) + tuple(output[1:])
            return self._visit(name, layer, output)
        return hook

    def _input(self, name: str, layer: int | None, split_heads: bool = False):
        a = self.adapter

        def hook(module, args, kwargs):
            key = None if args else input_name(type(module))  # a keyword call passes the input by name
            x = args[0] if args else kwargs[key]
            if split_heads:  # [batch, pos, head * d_head] -> [batch, pos, head, d_head]
                x = x.view(*x.shape[:-1], a.n_heads, a.d_head)
            new = self._visit(name, layer, x)
            if new is None:
                return None
            if split_heads:
                new = new.reshape(*new.shape[:-2], a.n_heads * a.d_head)
            return ((new,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, key: new})
        return hook

    def _first_chunk(self, name: str, layer: int, chunks: int):
        def hook(module, args, output):  # capture only: mlp_pre (the gate of a fused [gate | up])
            x = output if chunks == 1 else output.chunk(chunks, dim=-1)[0]
            self._visit(name, layer, x)
        return hook

    def _norm(self, prefix: str, layer: int | None, norm: nn.Module):
        def hook(module, args, output):  # capture only: the norm's divisor and normalised input
            x = args[0]
            flat = x.ndim == 2
            if flat:
                x = x.view(*self.shape, -1)
            scale = _norms.norm_scale(norm, x)
            if (f"{prefix}_scale", layer) in self.capture:
                self._record((f"{prefix}_scale", layer), scale.to(x.dtype))
            if (f"{prefix}_normalized", layer) in self.capture:
                self._record((f"{prefix}_normalized", layer), _norms.normalized(norm, x, scale).to(x.dtype))
        return hook

    def _post_scale(self, key: Key, norm: nn.Module):
        def hook(module, args):
            self._record(key, _norms.norm_scale(norm, args[0]))
        return hook

    # lifecycle ------------------------------------------------------------------------------------
    def _needs(self, name: str, layer: int | None) -> bool:
        return (name, layer) in self.capture or (name, layer) in self.edits

    def _hook(self, module: nn.Module, kind: str, fn: Callable) -> None:
        if kind == "pre":
            self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        elif kind == "pre_args":
            self._handles.append(module.register_forward_pre_hook(fn))
        else:
            self._handles.append(module.register_forward_hook(fn))

    def __enter__(self) -> "HookSession":
        a = self.adapter
        try:
            for l in range(a.n_layers):
                block = a.blocks[l]
                if self._needs("resid_pre", l):
                    self._hook(block, "pre", self._block_pre(l))
                if self._needs("resid_post", l):
                    self._hook(block, "post", self._output("resid_post", l))
                if self._needs("attn_out", l):
                    self._hook(a.attn_out_at(l), "post", self._output("attn_out", l))
                if self._needs("mlp_out", l):
                    self._hook(a.mlp_out_at(l), "post", self._output("mlp_out", l))
                if self._needs("z", l):
                    self._hook(a.o_proj(l), "pre", self._input("z", l, split_heads=True))
                    if ("z", l) in self.capture and a.attn_post_norm(l) is not None:
                        norm = a.attn_post_norm(l)
                        self._hook(norm, "pre_args", self._post_scale(("_attn_post_scale", l), norm))
                if self._needs("mlp_post", l):
                    self._hook(a.down_proj(l), "pre", self._input("mlp_post", l))
                    if ("mlp_post", l) in self.capture and a.mlp_post_norm(l) is not None:
                        norm = a.mlp_post_norm(l)
                        self._hook(norm, "pre_args", self._post_scale(("_mlp_post_scale", l), norm))
                if self._needs("mlp_pre", l):
                    self._hook(a.mlp_in(l), "post", self._first_chunk("mlp_pre", l, a.family.fused_mlp_in))
                if self._needs("resid_mid", l):
                    self._hook(a.resid_mid_at(l), "pre", self._input("resid_mid", l))
                for prefix, norm in (("attn", a.attn_norm(l)), ("mlp", a.mlp_norm(l))):
                    if self._needs(f"{prefix}_scale", l) or self._needs(f"{prefix}_normalized", l):
                        self._hook(norm, "post", self._norm(prefix, l, norm))
            if self._needs("embed", None):
                self._hook(a.embed, "post", self._output("embed", None))
            if self._needs("pos_embed", None):
                self._hook(a.pos_embed, "post", self._output("pos_embed", None))
            if self._needs("resid_final", None):
                self._hook(a.final_norm, "pre", self._input("resid_final", None))
            if self._needs("final_scale", None) or self._needs("final_normalized", None):
                self._hook(a.final_norm, "post", self._norm("final", None, a.final_norm))
            if any(name in ATTENTION_POINTS for name, _ in self.capture | set(self.edits)):
                self._stack.enter_context(_attention.observing(a.hf, self))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()


def edits_by_point(compiled: Iterable[tuple[str, int, EditFn]]) -> dict[Key, list[EditFn]]:
    """Group compiled edits by ``(name, layer)``, keeping their order."""
    out: dict[Key, list[EditFn]] = defaultdict(list)
    for name, layer, fn in compiled:
        out[(name, layer)].append(fn)
    return dict(out)
