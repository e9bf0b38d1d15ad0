"""Head scores and repeated-sequence losses, checked on stub models whose attention we choose."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from kit.train import metrics
from kit.train.phase import crossing_step, steepest_drop_step


class StubModel(torch.nn.Module):
    """A fake causal LM: head (0, 1) attends to the previous token, every head of layer 1 runs exact
    induction (attend to the token after the latest earlier occurrence of the current token, else to
    position 0) and the logits predict that token; every other head attends uniformly."""

    def __init__(self, vocab: int = 1000, n_heads: int = 2):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab, bos_token_id=0, eos_token_id=None, pad_token_id=None,
                                      n_positions=256, _attn_implementation="sdpa")
        self.n_heads = n_heads
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.implementations: list[str] = []

    def set_attn_implementation(self, name: str) -> None:
        self.implementations.append(name)
        self.config._attn_implementation = name

    def _induction_targets(self, ids: torch.Tensor) -> torch.Tensor:  # [batch, pos] key attended, -1 if none
        B, T = ids.shape
        out = torch.full((B, T), -1, dtype=torch.long)
        for b in range(B):
            last: dict[int, int] = {}
            for i in range(T):
                tok = int(ids[b, i])
                if tok in last:
                    out[b, i] = last[tok] + 1
                last[tok] = i
        return out

    def forward(self, input_ids, output_attentions=False, **_):
        B, T = input_ids.shape
        causal = torch.ones(T, T).tril()
        uniform = (causal / causal.sum(-1, keepdim=True)).expand(B, T, T)  # [batch, query, key]
        prev = torch.zeros(T, T)
        prev[0, 0] = 1
        prev[torch.arange(1, T), torch.arange(T - 1)] = 1
        target = self._induction_targets(input_ids)
        ind = torch.zeros(B, T, T)
        ind[torch.arange(B)[:, None], torch.arange(T)[None], target.clamp_min(0)] = 1
        ind[target < 0] = 0
        ind[..., 0] += (target < 0).float()
        layer0 = torch.stack([uniform, prev.expand(B, T, T)] + [uniform] * (self.n_heads - 2), 1)
        layer1 = torch.stack([ind] * self.n_heads, 1)
        logits = torch.zeros(B, T, self.config.vocab_size)
        known = target >= 0
        predicted = torch.gather(input_ids, 1, target.clamp_min(0))
        logits[known] = 50 * torch.nn.functional.one_hot(predicted[known], self.config.vocab_size).float()
        attn = (layer0, layer1) if self.config._attn_implementation == "eager" else ()
        return SimpleNamespace(logits=logits, attentions=attn if output_attentions else None)


def test_prev_token_score_is_one_for_a_previous_token_head_and_known_for_uniform_heads():
    model = StubModel()
    scores = metrics.prev_token_scores(model, n_seqs=4, length=20)  # [layer, head]
    assert scores.shape == (2, 2)
    assert scores[0, 1] == pytest.approx(1.0)
    uniform = sum(1 / (i + 1) for i in range(1, 21)) / 20  # 21 positions with <|bos|>
    assert scores[0, 0] == pytest.approx(uniform, rel=1e-5)


def test_induction_score_is_one_for_exact_induction_and_small_otherwise():
    model = StubModel()
    scores = metrics.induction_scores(model, n_seqs=8, half_len=12)
    assert scores[1].min() > 0.95
    assert scores[0].max() < 0.2


def test_eager_attention_is_switched_on_and_restored():
    model = StubModel()
    metrics.prev_token_scores(model, n_seqs=2, length=8)
    assert model.implementations == ["eager", "sdpa"]
    assert model.config._attn_implementation == "sdpa"


def test_repeated_sequence_losses_index_each_copy():
    vocab, T = 100_000, 10  # a large vocabulary: no token repeats by chance inside a copy
    model = StubModel(vocab=vocab)
    for bos in (True, False):
        losses = metrics.repeated_sequence_losses(model, n_seqs=8, half_len=T, bos=bos)
        # tokens 2..T of each copy: uniform logits on the first, exact induction on the second (its first
        # token, which nothing predicts, is left out of both: an off-by-one would add ln(vocab) / (T - 1))
        assert losses["first"] == pytest.approx(math.log(vocab), rel=1e-3)
        assert losses["second"] < 1e-3


def test_sequences_that_do_not_fit_the_context_are_refused():
    model = StubModel()
    model.config.n_positions = 16
    with pytest.raises(ValueError, match="context"):
        metrics.induction_scores(model, half_len=8)


def test_a_prefix_puts_other_random_tokens_before_the_same_copies():
    model = StubModel(vocab=100_000)
    for bos in (True, False):
        plain, start = metrics.repeated_tokens(model, 4, 6, seed=3, bos=bos)
        ids, offset = metrics.repeated_tokens(model, 4, 6, seed=3, bos=bos, prefix=5)
        assert offset == start + 5 and ids.shape == (4, plain.shape[1] + 5)
        assert torch.equal(ids[:, :start], plain[:, :start])  # <|bos|> (or nothing) first
        assert torch.equal(ids[:, offset:], plain[:, start:])  # the very same copies, moved by the prefix
        before = ids[:, start:offset]
        assert torch.equal(before, metrics.random_tokens(model, 4, 5, seed=4))  # drawn from seed + 1
        assert not torch.equal(before, ids[:, offset:offset + 5])
    assert torch.equal(metrics.repeated_tokens(model, 4, 6, seed=3, prefix=0)[0], metrics.repeated_tokens(model, 4, 6, seed=3)[0])
    with pytest.raises(ValueError, match=r"^prefix must be >= 0 random tokens before the first copy, got -1$"):
        metrics.repeated_tokens(model, 4, 6, prefix=-1)


def test_scores_and_losses_after_a_prefix_measure_the_copies():
    vocab, T, P = 100_000, 10, 7
    model = StubModel(vocab=vocab)
    for bos in (True, False):
        scores = metrics.induction_scores(model, n_seqs=8, half_len=T, bos=bos, prefix=P)
        assert scores[1].min() > 0.95 and scores[0].max() < 0.2
        losses = metrics.repeated_sequence_losses(model, n_seqs=8, half_len=T, bos=bos, prefix=P)
        # an offset that forgot the prefix would score the prefix and the first copy: uniform losses, and
        # attention to keys that are not the induction targets
        assert losses["first"] == pytest.approx(math.log(vocab), rel=1e-3)
        assert losses["second"] < 1e-3


def test_a_prefix_counts_toward_the_context():
    model = StubModel()
    model.config.n_positions = 30
    metrics.induction_scores(model, n_seqs=2, half_len=8, prefix=13)  # 1 + 13 + 16 = 30 fits
    with pytest.raises(ValueError, match=r"^two copies of 8 tokens after 14 random tokens needs 31 positions, "
                                         r"but the model's context is 30$"):
        metrics.repeated_sequence_losses(model, n_seqs=2, half_len=8, prefix=14)
    assert metrics.induction_scores(model, n_seqs=2, bos=False, prefix=10).shape == (2, 2)  # default T: (30 - 10) // 2


def test_random_tokens_avoid_special_tokens():
    model = StubModel(vocab=5)
    tokens = metrics.random_tokens(model, 50, 10, seed=0)
    assert tokens.min() >= 1 and tokens.max() <= 4


def test_phase_helpers():
    assert crossing_step([1, 2, 3, 4], [0.1, 0.4, 0.6, 0.9], 0.5) == 3
    assert crossing_step([1, 2], [0.1, 0.2], 0.5) is None
    values = [4.0] * 100 + [1.0] * 100
    assert steepest_drop_step(list(range(1, 201)), values, window=10) == 101
