"""Causal tracing: the kit's batched grid against a naive loop of one forward pass per cell.

Both compute the same ``[layer, pos]`` grid of restored p(answer) (residual stream, 10 noise samples)
for a 12-token prompt on ``facts-4l``; the naive loop runs one forward pass (of the noise samples)
per cell, as the original ROME code does. Medians of repeated runs in one process; prints the ratio.

    python benchmarks/causal_tracing.py            # full run
    python benchmarks/causal_tracing.py --quick    # one repetition, for CI
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import kit
from kit.analysis import causal_trace, subject_positions


def naive_grid(model: kit.Model, prompt: str, subject: str, answer: int, samples: int = 10, seed: int = 0):
    """One forward pass per (layer, position): the loop that the batched version replaces."""
    ids = model.to_tokens(prompt)
    subj = subject_positions(model, prompt, subject)
    clean = model.trace(ids, capture=["resid_post"])
    g = torch.Generator().manual_seed(seed)
    std = float(model.adapter.embed.weight.detach().std())
    eps = (torch.randn(samples, len(subj), model.d_model, generator=g) * 3.0 * std).to(model.device)

    def noise(x):
        x = x.clone()
        x[:, subj] += eps
        return x

    grid = torch.empty(model.n_layers, len(ids))
    for layer in range(model.n_layers):
        for pos in range(len(ids)):
            ivs = [kit.Edit("resid_pre", 0, noise), kit.Patch("resid_post", layer, clean, pos=pos)]
            out = model.trace(ids.expand(samples, -1), capture=[], interventions=ivs)
            grid[layer, pos] = out.logits[:, -1].softmax(-1)[:, answer].mean()
    return grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--model", default="facts-4l")
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = kit.load(args.model, device="cpu")
    from kit.train import load_world

    # a factual prompt of the shipped world with 12 tokens (its <|bos|> included)
    prompt, subject = next((p.text, p.subject) for p in load_world().prompts("all")
                           if len(model.to_tokens(p.text)) == 12)
    n_tok = len(model.to_tokens(prompt))
    fast = causal_trace(model, prompt, subject, samples=10)
    slow = naive_grid(model, prompt, subject, fast.answer)
    err = float((fast.scores - slow).abs().max())
    t_fast, t_slow = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        causal_trace(model, prompt, subject, samples=10)
        t_fast.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive_grid(model, prompt, subject, fast.answer)
        t_slow.append(time.perf_counter() - t0)
    f, s = statistics.median(t_fast), statistics.median(t_slow)
    print(f"model {args.model}, prompt {prompt!r} ({n_tok} tokens), grid {model.n_layers}x{n_tok}, 10 noise samples, "
          f"threads={torch.get_num_threads()}, reps={reps}")
    print(f"batched causal_trace: {f * 1e3:8.1f} ms")
    print(f"naive loop (1 forward per cell): {s * 1e3:8.1f} ms")
    print(f"speed-up: {s / f:.1f}x (target >= 5x); max |difference| of the grids: {err:.2e}")


if __name__ == "__main__":
    main()
