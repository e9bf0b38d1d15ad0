"""Synthetic data for ``induction-2l``: a random background language with repeated segments.

Each sequence is ``<|bos|>`` followed by text of a fixed random *background
language* (``BackgroundLanguage``: the next token depends on the current token
and on the one before it, so in-weights learning pays and a previous-token head
pays by itself) in which a segment of uniformly random tokens appears several
times in a row at a random offset (so in-context learning pays: inside a later
copy, the next token is the one that followed the current token last time).
Offsets and lengths are drawn per sequence, so no fixed position solves the
task: a 1-layer model cannot copy, a 2-layer model forms a previous-token head
and an induction head.

Token ids: ``0 <|bos|>``, ``1 <|eos|>``, ``2 <|pad|>``, then the ordinary
tokens, short syllables ``"ba", "be", ...``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from kit.train.batch import Batch
from kit.train.tokenizers import SPECIAL_TOKENS

__all__ = ["SPECIAL_TOKENS", "BackgroundLanguage", "RepeatedSegmentTask", "syllables"]

BOS_ID, EOS_ID, PAD_ID = 0, 1, 2  # the order of SPECIAL_TOKENS


def syllables(n: int) -> list[str]:
    """``n`` distinct consonant-vowel syllables (``"ba", "be", ...``) used as token strings."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    out = [c + v for c in consonants for v in vowels]
    if n > len(out):
        raise ValueError(f"at most {len(out)} syllable tokens, asked for {n}")
    return out[:n]


class BackgroundLanguage:
    """A random language whose next token depends on the current token and on the one before it.

    ``t[i+1]`` is drawn from the mixture ``(1 - skip) * bigram[t[i]] + skip *
    skip_bigram[t[i-1]]``: two random transition tables ``[n_tokens, n_tokens]``
    whose rows come from a symmetric Dirichlet with ``concentration`` (small:
    peaked rows). The bigram part rewards in-weights learning (embedding to
    unembedding); the skip-bigram part rewards a previous-token head, which an
    induction head later reuses. ``skip=0`` is a plain bigram language. Token
    ``i`` of the language has id ``first_id + i``.
    """

    def __init__(self, n_tokens: int, skip: float = 0.5, concentration: float = 0.2, seed: int = 0, first_id: int = 3):
        if not 0.0 <= skip <= 1.0:
            raise ValueError(f"skip must lie in [0, 1], got {skip}")
        g = torch.Generator().manual_seed(seed)
        alpha = torch.full((2, n_tokens, n_tokens), concentration, dtype=torch.float64)
        gamma = torch._standard_gamma(alpha, generator=g)
        tables = (gamma / gamma.sum(-1, keepdim=True)).float()
        self.bigram, self.skip_bigram = tables[0], tables[1]  # [previous, next] each
        self._cdf = tables.cumsum(-1)  # [table, previous, next]
        self.n_tokens, self.skip, self.first_id = n_tokens, skip, first_id
        self.concentration, self.seed = concentration, seed

    def next_distribution(self, prev2: torch.Tensor, prev1: torch.Tensor) -> torch.Tensor:
        """``probs[batch, next]`` after the token ids ``prev2[batch]``, ``prev1[batch]`` (in that order)."""
        return (1 - self.skip) * self.bigram[prev1 - self.first_id] + self.skip * self.skip_bigram[prev2 - self.first_id]

    def sample_next(self, prev2: torch.Tensor, prev1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Next token ids ``[batch]`` from the mixture, with uniforms ``u[batch, 1]``: ``u < skip`` picks the
        skip-bigram row of ``prev2`` (and ``u / skip`` samples it by its inverse CDF), otherwise the bigram row
        of ``prev1`` (with ``(u - skip) / (1 - skip)``)."""
        use_skip = u[:, 0] < self.skip  # [batch]
        row = torch.where(use_skip, prev2, prev1) - self.first_id
        cdf = self._cdf[use_skip.long(), row]  # [batch, next]
        u = torch.where(use_skip[:, None], u / max(self.skip, 1e-12), (u - self.skip) / max(1 - self.skip, 1e-12))
        return torch.searchsorted(cdf, u).squeeze(1).clamp_max(self.n_tokens - 1) + self.first_id

    def entropy(self, n: int = 4096, seed: int = 0) -> float:
        """Mean entropy (nats) of the next token over ``n`` uniformly random contexts."""
        g = torch.Generator().manual_seed(seed)
        prev = torch.randint(0, self.n_tokens, (2, n), generator=g) + self.first_id
        p = self.next_distribution(prev[0], prev[1]).clamp_min(1e-12)
        return float(-(p * p.log()).sum(-1).mean())

    def __repr__(self) -> str:
        return (f"BackgroundLanguage(n_tokens={self.n_tokens}, skip={self.skip}, concentration={self.concentration}, "
                f"seed={self.seed}, entropy={self.entropy():.2f} nats)")


@dataclass
class RepeatedSegmentTask:
    """Background text in which segments of random tokens repeat, at random offsets and lengths.

    Per sequence, positions are laid out left to right: a stretch of background text (``gap`` tokens,
    uniform in ``gap``; before the first segment, in ``first_gap`` when given), then a segment of ``m``
    uniformly random ordinary tokens (``m`` in ``segment_len``, at most half of what is left: uniform, or
    with ``segment_dist="log"`` log-uniform, so that each doubling of length is as likely and short
    repeats are common) written ``k`` times in a row (``k`` uniform in ``copies``, fewer if they do not
    fit), and again while room is left: so one sequence holds one long repeat or several short ones.
    With probability ``1 - bos_prob`` the sequence has no ``<|bos|>`` and
    position 0 is an ordinary token. Every token outside a segment continues the background language.

    ``batch(n, generator)`` returns a ``Batch`` with ``input_ids[batch, pos]`` of length ``seq_len``
    and loss groups ``"repeated"`` (tokens 2..m of every later copy: predictable by induction, not by
    the language) and ``"background"`` (targets outside every segment's copies).
    """

    language: BackgroundLanguage
    seq_len: int = 128
    segment_len: tuple[int, int] = (4, 64)
    copies: tuple[int, int] = (2, 4)
    gap: tuple[int, int] = (0, 24)
    bos_prob: float = 0.75
    segment_from_language: bool = False
    short_prob: float = 0.0  # the share of batches whose sequences have only short_len tokens
    short_len: int = 48
    segment_dist: str = "uniform"  # "uniform" or "log" (log-uniform: short segments as common as long ones per octave)
    first_gap: tuple[int, int] | None = None  # background before the first segment (default: ``gap``)
    early_prob: float = 0.0  # the share of sequences whose first segment starts at once (``early_gap``)
    early_gap: tuple[int, int] = (0, 0)  # background before the first segment of those sequences

    def __post_init__(self):
        if self.segment_dist not in ("uniform", "log"):
            raise ValueError(f"segment_dist={self.segment_dist!r}; valid: 'uniform', 'log'")
        if not 0.0 <= self.early_prob <= 1.0:
            raise ValueError(f"early_prob must lie in [0, 1], got {self.early_prob}")

    def _layout(self, first: int, rng: random.Random, source: np.ndarray, role: np.ndarray) -> None:
        """Fill one row of ``source`` and ``role`` from position ``first`` on: ``role`` 0 background, 1 first
        copy, 2 later copy (``source``: the position it copies), 3 first token of a later copy."""
        L, (lo, hi) = len(role), self.segment_len
        p = first
        gap = self.first_gap or self.gap
        if self.early_prob and rng.random() < self.early_prob:
            gap = self.early_gap
        while True:
            p += rng.randint(*gap)
            gap = self.gap
            room = L - p
            if room < 2 * lo:
                return
            top = min(hi, room // 2)
            if self.segment_dist == "log":
                m = min(top, int(lo * ((top + 1) / lo) ** rng.random()))
            else:
                m = rng.randint(lo, top)
            k = min(rng.randint(*self.copies), room // m)
            role[p: p + m] = 1
            role[p + m: p + k * m] = 2
            role[p + m: p + k * m: m] = 3
            source[p + m: p + k * m] = np.arange(p, p + (k - 1) * m)
            p += k * m

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences drawn with ``generator`` (CPU tensors)."""
        g, lang = generator, self.language
        rng = random.Random(int(torch.randint(2**62, (1,), generator=g)))  # the layout: plain Python draws
        L = self.short_len if self.short_prob and rng.random() < self.short_prob else self.seq_len
        has_bos = torch.rand(n, generator=g) < self.bos_prob  # [batch]
        source, role = np.zeros((n, L), dtype=np.int64), np.zeros((n, L), dtype=np.int64)
        for b, bos in enumerate(has_bos.tolist()):
            self._layout(1 if bos else 0, rng, source[b], role[b])
        source, role = torch.from_numpy(source), torch.from_numpy(role)  # [batch, pos]
        uniform = torch.randint(0, lang.n_tokens, (n, L), generator=g) + lang.first_id  # [batch, pos]
        u = torch.rand(L, n, 1, generator=g)  # [pos, batch, 1]
        ids = uniform.clone()
        ids[:, 0] = torch.where(has_bos, BOS_ID, uniform[:, 0])
        rows = torch.arange(n)
        copied = role >= 2
        fresh = role == 1
        for p in range(1, L):
            prev1 = ids[:, p - 1]
            prev2 = ids[:, p - 2] if p >= 2 else prev1
            prev2 = torch.where(prev2 == BOS_ID, prev1, prev2)
            prev1 = torch.where(prev1 == BOS_ID, uniform[:, p], prev1)  # after <|bos|>: any token
            sampled = lang.sample_next(prev2, prev1, u[p])
            if not self.segment_from_language:
                sampled = torch.where(fresh[:, p], uniform[:, p], sampled)
            ids[:, p] = torch.where(copied[:, p], ids[rows, source[:, p]], sampled)

        targets = (torch.arange(L)[None] >= 1).expand(n, L)  # [batch, pos]
        return Batch(
            input_ids=ids,
            loss_mask=targets.clone(),
            groups={"repeated": role == 2, "background": targets & (role == 0)},
        )
