"""Causal tracing: the kit's batched grid against a naive loop of one forward pass per cell.

Both compute the same ``[layer, pos]`` grid of restored p(answer) (residual stream, 10 noise samples)
for a 12-token prompt on ``facts-4l``; the naive loop runs one forward pass (of the noise samples)
per cell, as the original ROME code does. Medians of repeated runs in one process (the two methods
alternate, so load on the machine hits both alike); prints the ratio and the largest difference of
the grids. A second line times all three kinds (residual, MLP, attention) traced together with
``causal_traces`` against three naive loops.

    python benchmarks/causal_tracing.py            # full run
    python benchmarks/causal_tracing.py --quick    # one repetition, for CI
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import kit
from kit.analysis import causal_trace, causal_traces, subject_positions
from kit.analysis.causal_tracing import default_window

POINT = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}


def naive_grid(model: kit.Model, prompt: str, subject: str, answer: int, kind: str = "resid", samples: int = 10,
               seed: int = 0):
    """One forward pass per (layer, position): the loop that the batched version replaces."""
    ids = model.to_tokens(prompt)
    subj = subject_positions(model, prompt, subject)
    clean = model.trace(ids, capture=[POINT[kind]])
    g = torch.Generator().manual_seed(seed)
    std = float(model.adapter.embed.weight.detach().std())
    eps = (torch.randn(samples, len(subj), model.d_model, generator=g) * 3.0 * std).to(model.device)
    L, window = model.n_layers, default_window(kind, model.n_layers)

    def noise(x):
        x = x.clone()
        x[:, subj] += eps
        return x

    grid = torch.empty(L, len(ids))
    for layer in range(L):
        lo = layer - window // 2
        span = [x for x in range(lo, lo + window) if 0 <= x < L]
        for pos in range(len(ids)):
            ivs = [kit.Edit("resid_pre", 0, noise)] + [kit.Patch(POINT[kind], x, clean, pos=pos) for x in span]
            out = model.trace(ids.expand(samples, -1), capture=[], interventions=ivs)
            grid[layer, pos] = out.logits[:, -1].softmax(-1)[:, answer].mean()
    return grid


def seconds(fn) -> float:
    """Wall time of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--model", default="facts-4l")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared 2-core machine, "
                    "two threads stall on each other in the naive loop's many small passes, which inflates the ratio)")
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    model = kit.load(args.model, device="cpu")
    from kit.train import load_world

    # a factual prompt of the shipped world with 12 tokens (its <|bos|> included)
    prompt, subject = next((p.text, p.subject) for p in load_world().prompts("all")
                           if len(model.to_tokens(p.text)) == 12)
    n_tok = len(model.to_tokens(prompt))
    fast = causal_trace(model, prompt, subject, samples=10)
    slow = naive_grid(model, prompt, subject, fast.answer)
    err = float((fast.scores - slow).abs().max())
    all_fast = causal_traces(model, prompt, subject, samples=10)
    err_all = max(float((all_fast[k].scores - naive_grid(model, prompt, subject, fast.answer, k)).abs().max())
                  for k in all_fast)
    t_fast, t_slow, t_all_fast, t_all_slow = [], [], [], []
    for _ in range(reps):  # alternate, so that load on the machine hits both alike
        t_fast.append(seconds(lambda: causal_trace(model, prompt, subject, samples=10)))
        t_slow.append(seconds(lambda: naive_grid(model, prompt, subject, fast.answer)))
        t_all_fast.append(seconds(lambda: causal_traces(model, prompt, subject, samples=10)))
        t_all_slow.append(seconds(lambda: [naive_grid(model, prompt, subject, fast.answer, k) for k in all_fast]))
    f, s = statistics.median(t_fast), statistics.median(t_slow)
    fa, sa = statistics.median(t_all_fast), statistics.median(t_all_slow)
    print(f"model {args.model}, prompt {prompt!r} ({n_tok} tokens), grid {model.n_layers}x{n_tok}, 10 noise samples, "
          f"threads={torch.get_num_threads()}, reps={reps} (medians), load average before {load:.2f}")
    print(f"residual grid:  batched causal_trace {f * 1e3:8.1f} ms | naive loop (1 forward per cell) {s * 1e3:8.1f} ms"
          f" | speed-up {s / f:.1f}x (target >= 5x) | max |difference| {err:.2e}")
    print(f"all three kinds: causal_traces     {fa * 1e3:8.1f} ms | three naive loops               {sa * 1e3:8.1f} ms"
          f" | speed-up {sa / fa:.1f}x | max |difference| {err_all:.2e}")

if __name__ == "__main__":
    main()
