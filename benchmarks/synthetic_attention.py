"""Synthetic attention with the structure real GPT-2 heads show, for widget benchmarks and demos.

No model weights can be downloaded here, so this builds a duck-typed trace (DESIGN.md
section 2: ``tr.tokens``, ``tr.mask``, ``tr["pattern", l]`` as [batch, head, query, key]) whose
heads mix the patterns interpretability papers report: attention sinks on the first token,
previous-token heads, induction heads on a repeated sequence, local heads, diffuse heads.
"""

from __future__ import annotations

import torch

WORDS = (
    "the of and to in a is that for it as was with be by on not he I this are or his from at which "
    "but have an they you were her she there one all we their can has been if more when will would "
    "who so no time out up about into than them only other new some could these two may first then do"
).split()


def repeated_tokens(n: int, generator: torch.Generator) -> list[str]:
    """A random word sequence that repeats once halfway (induction heads light up on the repeat)."""
    half = (n + 1) // 2
    first = [WORDS[i] for i in torch.randint(len(WORDS), (half,), generator=generator).tolist()]
    seq = ["<|endoftext|>"] + [" " + w for w in (first + first)]
    return seq[:n]


def _structure(kind: str, tokens: list[str]) -> torch.Tensor:
    """[query, key] logit bonus for one head type."""
    n = len(tokens)
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    bonus = torch.zeros(n, n)
    if kind == "sink":
        bonus[:, 0] = 6.0
    elif kind == "prev":
        bonus[(q - 1 == k) | ((q == 0) & (k == 0))] = 9.0
    elif kind == "induction":
        last_seen: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if t in last_seen and last_seen[t] + 1 < i:
                bonus[i, last_seen[t] + 1] = 9.0
            last_seen[t] = i
        bonus[:, 0] += 3.0
    elif kind == "local":
        bonus = -0.6 * (q - k).clamp(min=0).float()
    return bonus


def synthetic_trace(n_layers: int = 12, n_heads: int = 12, n_tokens: int = 512, seed: int = 0) -> "SyntheticTrace":
    """A one-prompt trace of GPT-2-like attention."""
    return SyntheticTrace(n_layers, n_heads, n_tokens, seed)


class SyntheticTrace:
    """Duck-typed kit Trace holding only attention patterns."""

    KINDS = ("sink", "prev", "local", "diffuse", "induction")

    def __init__(self, n_layers: int, n_heads: int, n_tokens: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        tokens = repeated_tokens(n_tokens, g)
        self.tokens = [tokens]
        self.mask = torch.ones(1, n_tokens, dtype=torch.bool)
        self.n_layers = n_layers
        causal = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril()
        structures = {kind: _structure(kind, tokens) for kind in self.KINDS}
        self.kinds: list[list[str]] = []
        self._patterns = []
        for layer in range(n_layers):
            kinds = []
            layer_patterns = []
            for _ in range(n_heads):
                options = self.KINDS if layer > 0 else self.KINDS[:4]  # no induction in layer 0
                kind = options[int(torch.randint(len(options), (1,), generator=g))]
                noise = torch.randn(n_tokens, n_tokens, generator=g) * (2.0 if kind == "diffuse" else 0.8)
                logits = (structures[kind] + noise).masked_fill(~causal, float("-inf"))
                layer_patterns.append(logits.softmax(-1))
                kinds.append(kind)
            self.kinds.append(kinds)
            self._patterns.append(torch.stack(layer_patterns)[None])  # [batch, head, query, key]

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor:
        name, layer = key
        if name != "pattern" or not 0 <= layer < self.n_layers:
            raise ValueError(f"only ('pattern', 0..{self.n_layers - 1}) is captured; got {key!r}")
        return self._patterns[layer]

    def kind_scores(self) -> dict[str, torch.Tensor]:
        """Head scores in the shape kit.analysis gives them ([layer, head]), from the true kinds."""
        score = lambda name: torch.tensor([[1.0 if k == name else 0.05 for k in row] for row in self.kinds])  # noqa: E731
        return {"induction": score("induction") * 0.9, "prev_token": score("prev") * 0.95}
