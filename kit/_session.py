"""Temporary hooks on the real modules for one forward pass: capture and edit activations.

A :class:`HookSession` is a context manager: it attaches forward hooks and pre-hooks for exactly
the points a trace needs, and removes every one of them on exit, also when the forward raises.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from . import _attention
from .arch import Adapter
from .interventions import EditFn

Key = tuple[str, int]  # (activation name, layer)


class HookSession:
    """Hooks for one forward pass.

    ``capture`` is the set of ``(name, layer)`` to record (``head_out`` is recorded as ``z``);
    ``edits`` maps ``(name, layer)`` to the functions applied there, in order.
    After the pass, ``store`` maps each captured key to its detached tensor.
    """

    def __init__(self, adapter: Adapter, capture: Iterable[Key], edits: dict[Key, list[EditFn]]):
        self.adapter = adapter
        self.capture = set(capture)
        self.edits = edits
        self.store: dict[Key, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._stack = contextlib.ExitStack()
        self._attn_layer = {id(adapter.attn(l)): l for l in range(adapter.n_layers)}

    # the one place where an activation is edited, then recorded ------------------------------
    def _visit(self, name: str, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        fns = self.edits.get((name, layer), ())
        for fn in fns:
            x = fn(x)
        if (name, layer) in self.capture:
            self.store[(name, layer)] = x.detach()
        return x if fns else None

    # attention observer protocol (see kit._attention) -----------------------------------------
    def edits_scores(self, module: nn.Module) -> bool:
        """Whether an intervention edits this attention module's pre-softmax scores."""
        layer = self._attn_layer.get(id(module))
        return layer is not None and ("attn_scores", layer) in self.edits

    def on_scores(self, module: nn.Module, scores: torch.Tensor) -> torch.Tensor:
        layer = self._attn_layer.get(id(module))
        if layer is None:
            return scores
        out = self._visit("attn_scores", layer, scores)
        return scores if out is None else out

    def on_pattern(self, module: nn.Module, pattern: torch.Tensor) -> torch.Tensor:
        layer = self._attn_layer.get(id(module))
        if layer is None:
            return pattern
        out = self._visit("pattern", layer, pattern)
        return pattern if out is None else out

    # hook factories -----------------------------------------------------------------------------
    def _block_pre(self, layer: int):
        def hook(module, args, kwargs):
            if args:
                new = self._visit("resid_pre", layer, args[0])
                return None if new is None else ((new,) + tuple(args[1:]), kwargs)
            new = self._visit("resid_pre", layer, kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})
        return hook

    def _output(self, name: str, layer: int):
        def hook(module, args, output):
            if isinstance(output, tuple):
                new = self._visit(name, layer, output[0])
                return None if new is None else (new,) + tuple(output[1:])
            return self._visit(name, layer, output)
        return hook

    def _input(self, name: str, layer: int, split_heads: bool = False):
        a = self.adapter

        def hook(module, args):
            x = args[0]
            if split_heads:  # [batch, pos, head * d_head] -> [batch, pos, head, d_head]
                x = x.view(*x.shape[:-1], a.n_heads, a.d_head)
            new = self._visit(name, layer, x)
            if new is None:
                return None
            if split_heads:
                new = new.reshape(*new.shape[:-2], a.n_heads * a.d_head)
            return (new,) + tuple(args[1:])
        return hook

    # lifecycle ------------------------------------------------------------------------------------
    def _needs(self, name: str, layer: int) -> bool:
        return (name, layer) in self.capture or (name, layer) in self.edits

    def __enter__(self) -> "HookSession":
        a = self.adapter
        try:
            for l in range(a.n_layers):
                block = a.blocks[l]
                if self._needs("resid_pre", l):
                    self._handles.append(block.register_forward_pre_hook(self._block_pre(l), with_kwargs=True))
                if self._needs("resid_post", l):
                    self._handles.append(block.register_forward_hook(self._output("resid_post", l)))
                if self._needs("attn_out", l):
                    self._handles.append(a.attn(l).register_forward_hook(self._output("attn_out", l)))
                if self._needs("mlp_out", l):
                    self._handles.append(a.mlp(l).register_forward_hook(self._output("mlp_out", l)))
                if self._needs("z", l):
                    self._handles.append(a.o_proj(l).register_forward_pre_hook(self._input("z", l, split_heads=True)))
                if self._needs("mlp_post", l):
                    self._handles.append(a.down_proj(l).register_forward_pre_hook(self._input("mlp_post", l)))
            if any(name in ("pattern", "attn_scores") for name, _ in self.capture | set(self.edits)):
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
