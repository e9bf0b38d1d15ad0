"""Plain reference implementations that the analysis tests compare the kit against: each one spelled out
with ``kit.Patch`` / ``kit.Edit`` and one forward pass per step, slow but obviously the definition."""

from __future__ import annotations

from typing import Callable

import torch

import kit

Metric = Callable[[torch.Tensor], float]  # logits[batch, pos, vocab] -> a number


def path_patching_loop(m, clean, corrupted, metric: Metric, receivers, receiver_input: str = "all",
                       receiver_pos=None, freeze_mlps: bool = False, senders=None) -> torch.Tensor:
    """Path patching by hand: per sender, one Run A per receiver (the sender's ``z`` from ``corrupted``,
    every other head, and with ``freeze_mlps`` every MLP, frozen at ``clean``), then one Run B patching the
    receivers' input from Run A. Returns ``effect[layer, head]``, NaN where no sender was scored."""
    clean_tr = m.trace(clean, capture=["z", "pattern", "mlp_out"])
    corr_tr = m.trace(corrupted, capture=["z"])
    H, L = m.n_heads, m.n_layers
    top = L if receivers == "logits" else min(l for l, _ in receivers)
    senders = senders or [(l, h) for l in range(top) for h in range(H)]
    out = torch.full((L, H), float("nan"))
    for ls, hs in senders:
        def run_a(keep, ls=ls, hs=hs):
            ivs = [kit.Patch("z", ls, corr_tr, head=hs)]
            for l in range(L):
                heads = [h for h in range(H) if (l, h) != (ls, hs) and (l, h) != keep]
                ivs.append(kit.Patch("z", l, clean_tr, head=heads))
                if freeze_mlps:
                    ivs.append(kit.Patch("mlp_out", l, clean_tr))
            return ivs
        if receivers == "logits":
            out[ls, hs] = metric(m.trace(clean, capture=[], interventions=run_a(None)).logits)
            continue
        patches = []
        for lr, hr in receivers:
            extra = [kit.Patch("pattern", lr, clean_tr, head=hr)] if receiver_input == "values" else []
            name = "pattern" if receiver_input == "pattern" else "z"
            a = m.trace(clean, capture=[name], interventions=run_a((lr, hr)) + extra)
            patches.append(kit.Patch(name, lr, a, head=hr, pos=receiver_pos))
        out[ls, hs] = metric(m.trace(clean, capture=[], interventions=patches).logits)
    return out


ATTRIBUTION_POINT = {"heads": "z", "resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out"}


def central_difference(m, clean, corrupted, kind: str, metric: Metric, eps: float = 1e-3) -> torch.Tensor:
    """The definition attribution patching approximates, per cell: the derivative of ``metric`` at
    ``corrupted`` along (clean − corrupted) restricted to that cell, by central differences (two forward
    passes per cell). Returns ``[layer, head]`` for ``kind="heads"``, else ``[layer, position]``."""
    point = ATTRIBUTION_POINT[kind]
    clean_tr, corr_tr = m.trace(clean, capture=[point]), m.trace(corrupted, capture=[point])
    width = m.n_heads if kind == "heads" else clean.shape[-1]
    out = torch.zeros(m.n_layers, width)
    for l in range(m.n_layers):
        diff = (clean_tr[point, l] - corr_tr[point, l]).double()
        for i in range(width):
            mask = torch.zeros_like(diff)
            if kind == "heads":
                mask[:, :, i] = 1
            else:
                mask[:, i] = 1

            def shift(s, l=l, diff=diff, mask=mask):
                return kit.Edit(point, l, lambda x: x + (s * eps * diff * mask).to(x.dtype))
            up = metric(m.trace(corrupted, capture=[], interventions=[shift(1.0)]).logits)
            down = metric(m.trace(corrupted, capture=[], interventions=[shift(-1.0)]).logits)
            out[l, i] = (up - down) / (2 * eps)
    return out
