"""Duck-typed stand-ins for kit's Trace and Model (DESIGN.md section 2), for widget tests.

A FakeTrace holds random causal attention: tr.tokens (list[list[str]]), tr.mask [batch, pos]
(True on real tokens, padding on the right), tr["pattern", l] -> [batch, head, query, key].
"""

from __future__ import annotations

import torch

HOSTILE_TOKENS = [
    "<script>alert(1)</script>",
    ' "quoted" ',
    "'single'",
    "&amp;",
    "<img src=x onerror=alert(2)>",
    "\u202eevil\u202c",
    "\u200fRTL",
    "\U0001f642",
    "a\tb\nc",
    "",
]


def random_patterns(batch: int, heads: int, n: int, generator: torch.Generator, sharpness: float = 3.0) -> torch.Tensor:
    """[batch, head, query, key] causal softmax of random logits."""
    logits = torch.randn(batch, heads, n, n, generator=generator) * sharpness
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    return logits.masked_fill(~causal, float("-inf")).softmax(-1)


class FakeTrace:
    """Random causal attention for `tokens` (one list per prompt), padded on the right."""

    def __init__(self, tokens: list[list[str]], n_layers: int = 2, n_heads: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.tokens = [list(t) for t in tokens]
        n = max(len(t) for t in tokens)
        self.mask = torch.zeros(len(tokens), n, dtype=torch.bool)
        for b, t in enumerate(tokens):
            self.mask[b, : len(t)] = True
        self._patterns = []
        for _ in range(n_layers):
            p = random_patterns(len(tokens), n_heads, n, g)
            p = p * self.mask[:, None, :, None] * self.mask[:, None, None, :]  # padding rows/keys: 0
            self._patterns.append(p)

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor:
        name, layer = key
        if name != "pattern":
            raise ValueError(f"{name!r} was not captured; captured: ['pattern']")
        if not 0 <= layer < len(self._patterns):
            raise ValueError(f"layer must be in 0..{len(self._patterns) - 1}, got {layer}")
        return self._patterns[layer]


class FakeModel:
    """Something with .trace(prompt, capture=...) and n_layers/n_heads, splitting on spaces."""

    def __init__(self, n_layers: int = 2, n_heads: int = 3):
        self.n_layers, self.n_heads = n_layers, n_heads
        self.calls: list[tuple[object, object]] = []

    def trace(self, prompt: str | list[str], capture: list[str] | None = None) -> FakeTrace:
        self.calls.append((prompt, capture))
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        tokens = [[w if i == 0 else " " + w for i, w in enumerate(p.split())] for p in prompts]
        return FakeTrace(tokens, self.n_layers, self.n_heads)
