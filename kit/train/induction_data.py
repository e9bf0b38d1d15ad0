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

from dataclasses import dataclass

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
        self.n_tokens, self.skip, self.first_id = n_tokens, skip, first_id
        self.concentration, self.seed = concentration, seed

    def next_distribution(self, prev2: torch.Tensor, prev1: torch.Tensor) -> torch.Tensor:
        """``probs[batch, next]`` after the token ids ``prev2[batch]``, ``prev1[batch]`` (in that order)."""
        return (1 - self.skip) * self.bigram[prev1 - self.first_id] + self.skip * self.skip_bigram[prev2 - self.first_id]

    def sample_next(self, prev2: torch.Tensor, prev1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Next token ids ``[batch]`` by inverse-CDF sampling with uniforms ``u[batch, 1]``."""
        cdf = self.next_distribution(prev2, prev1).cumsum(-1)  # [batch, next]
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
    """Background text in which one segment of random tokens repeats, at a random offset.

    Per sequence: a segment of ``m`` tokens (``m`` uniform in ``segment_len``)
    drawn uniformly from the ordinary tokens (or from the background language
    when ``segment_from_language``) appears ``k`` times (``k`` uniform in
    ``copies``, fewer if they do not fit), consecutive copies separated by ``g``
    background tokens (``g`` uniform in ``gap``), starting at a uniformly random
    position; every other token continues the background language.

    ``batch(n, generator)`` returns a ``Batch`` with ``input_ids[batch, pos]``
    of length ``seq_len`` (``<|bos|>`` included) and loss groups ``"repeated"``
    (tokens 2..m of every later copy: predictable by induction, not by the language)
    and ``"background"`` (targets outside the segment's copies).
    """

    language: BackgroundLanguage
    seq_len: int = 64
    segment_len: tuple[int, int] = (4, 24)
    copies: tuple[int, int] = (2, 4)
    gap: tuple[int, int] = (0, 0)
    segment_from_language: bool = False

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences drawn with ``generator`` (CPU tensors)."""
        L, g, lang = self.seq_len, generator, self.language
        body = L - 1  # positions 1..L-1 follow <|bos|>
        m = torch.randint(self.segment_len[0], self.segment_len[1] + 1, (n,), generator=g)  # [batch]
        gap = torch.randint(self.gap[0], self.gap[1] + 1, (n,), generator=g)
        k = torch.randint(self.copies[0], self.copies[1] + 1, (n,), generator=g)
        k = torch.minimum(k, (body + gap) // (m + gap)).clamp_min(2)
        m = torch.minimum(m, (body - (k - 1) * gap) // k)
        span = k * m + (k - 1) * gap
        start = 1 + (torch.rand(n, generator=g) * (body - span + 1).float()).long().clamp_max(body - span)

        pos = torch.arange(L)[None]  # [1, pos]
        rel = pos - start[:, None]  # [batch, pos] position relative to the first copy
        period = (m + gap)[:, None]
        in_segment = (rel >= 0) & (rel < span[:, None]) & (rel % period < m[:, None])  # any copy
        in_later_copy = in_segment & (rel >= period)  # [batch, pos]
        in_first_copy = in_segment & ~in_later_copy
        source = (pos - period).clamp_min(0)  # [batch, pos] where a later copy's token comes from

        ids = torch.empty(n, L, dtype=torch.long)
        ids[:, 0] = BOS_ID
        rows = torch.arange(n)
        uniform = torch.randint(0, lang.n_tokens, (n, L), generator=g) + lang.first_id  # [batch, pos]
        ids[:, 1] = uniform[:, 1]
        u = torch.rand(L, n, 1, generator=g)  # [pos, batch, 1]
        for p in range(2, L):
            sampled = lang.sample_next(ids[:, max(p - 2, 1)], ids[:, p - 1], u[p])
            if not self.segment_from_language:
                sampled = torch.where(in_first_copy[:, p], uniform[:, p], sampled)
            ids[:, p] = torch.where(in_later_copy[:, p], ids[rows, source[:, p]], sampled)

        targets = pos.expand(n, L) >= 1  # [batch, pos]
        repeated = in_later_copy & (rel % period > 0)  # not the first token of a copy
        return Batch(
            input_ids=ids,
            loss_mask=targets.clone(),
            groups={"repeated": repeated, "background": targets & ~in_segment},
        )
