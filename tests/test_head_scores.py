"""The one definition of the head scores (``kit.head_scores``), checked on hand-built patterns whose
score is known exactly, and its three users (training metrics, analysis, lesson checks) checked to agree
with it on a model with a BOS token (``induction-2l``), where an index off by one changes the answer a lot."""

from __future__ import annotations

import pytest
import torch

import kit
from kit import head_scores as hs
from kit.analysis import induction_scores, prev_token_scores, repeated_tokens
from kit.lessons import induction as lesson
from kit.train import metrics


def _one_hot_pattern(n: int, key_of_query: dict[int, int]) -> torch.Tensor:
    """``pattern[query, key]`` over ``n`` positions: each query listed attends only to its key; every other
    query attends only to position 0."""
    p = torch.zeros(n, n)
    p[:, 0] = 1
    for q, k in key_of_query.items():
        p[q] = 0
        p[q, k] = 1
    return p


# --- the definitions, on patterns built by hand --------------------------------------------------------

def test_prev_token_score_counts_the_first_query_which_attends_to_the_bos():
    n = 10
    only_first = _one_hot_pattern(n, {1: 0})  # query 1 -> key 0 (the BOS), nothing else previous
    assert float(hs.prev_token_score(only_first)) == pytest.approx(1 / (n - 1))
    every = _one_hot_pattern(n, {i: i - 1 for i in range(1, n)})
    assert float(hs.prev_token_score(every)) == pytest.approx(1.0)
    all_but_first = _one_hot_pattern(n, {i: i - 1 for i in range(2, n)})  # query 1 looks at itself
    all_but_first[1] = 0
    all_but_first[1, 1] = 1
    assert float(hs.prev_token_score(all_but_first)) == pytest.approx((n - 2) / (n - 1))
    self_attention = torch.eye(n)
    assert float(hs.prev_token_score(self_attention)) == 0.0


def test_prev_token_score_keeps_leading_dimensions():
    p = torch.stack([_one_hot_pattern(6, {i: i - 1 for i in range(1, 6)}), torch.eye(6)])  # [head, query, key]
    assert hs.prev_token_score(p[None]).tolist() == [[1.0, 0.0]]


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("T", [2, 3, 7])
def test_induction_score_is_one_exactly_for_the_token_after_the_first_occurrence(T, offset):
    n = offset + 2 * T
    second = range(offset + T, offset + 2 * T)
    exact = _one_hot_pattern(n, {i: i - T + 1 for i in second})
    assert float(hs.induction_score(exact, T, offset)) == pytest.approx(1.0)
    same_token = _one_hot_pattern(n, {i: i - T for i in second})  # key one too early: the token itself
    assert float(hs.induction_score(same_token, T, offset)) == pytest.approx(0.0)
    # one query too early: the last token of the first copy is no induction query
    shifted = _one_hot_pattern(n, {i: i - T + 1 for i in range(offset + T - 1, offset + 2 * T - 1)})
    assert float(hs.induction_score(shifted, T, offset)) == pytest.approx((T - 1) / T)


def test_induction_score_with_the_wrong_offset_is_wrong():
    T = 4
    exact = _one_hot_pattern(1 + 2 * T, {i: i - T + 1 for i in range(1 + T, 1 + 2 * T)})  # <bos> x x
    assert float(hs.induction_score(exact, T, offset=1)) == pytest.approx(1.0)
    assert float(hs.induction_score(exact, T, offset=0)) == pytest.approx((T - 1) / T)


def test_induction_score_refuses_lengths_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        hs.induction_score(torch.zeros(9, 9), 5, offset=0)
    with pytest.raises(ValueError, match="do not fit"):
        hs.induction_score(torch.zeros(9, 9), 4, offset=2)
    with pytest.raises(ValueError, match="2 <= seq_len"):
        hs.induction_score(torch.zeros(9, 9), 1)


def test_copy_losses_average_tokens_two_to_T_of_each_copy():
    T, offset = 3, 1
    loss = torch.zeros(1, offset + 2 * T)  # <bos> a b c a b c
    loss[0, 1], loss[0, 4] = 100.0, 50.0  # the first token of each copy: left out of both
    loss[0, 2:4] = torch.tensor([2.0, 4.0])
    loss[0, 5:7] = torch.tensor([1.0, 0.0])
    assert hs.copy_losses(loss, T, offset) == {"first": 3.0, "second": 0.5}
    assert hs.copy_losses(loss[:, 1:], T, 0) == {"first": 3.0, "second": 0.5}


def test_repeated_tokens_put_the_bos_first_and_repeat_exactly():
    ids, offset = hs.repeated_tokens(torch.arange(3, 64), batch=5, seq_len=7, seed=2, bos=0)
    assert offset == 1 and ids.shape == (5, 15)
    assert (ids[:, 0] == 0).all() and (ids[:, 1:] >= 3).all()
    assert torch.equal(ids[:, 1:8], ids[:, 8:])
    plain, offset = hs.repeated_tokens(torch.arange(3, 64), batch=5, seq_len=7, seed=2)
    assert offset == 0 and torch.equal(plain, ids[:, 1:])


def test_default_len_fills_the_context_up_to_fifty():
    assert hs.default_len(128, True, copies=2) == 50
    assert hs.default_len(48, True, copies=2) == 23
    assert hs.default_len(48, False, copies=2) == 24
    assert hs.default_len(48, True, copies=1) == 47


# --- the users, on a model with a BOS token ----------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return kit.load("induction-2l", device="cpu")


def _pattern_by_hand(model, ids):
    return model.trace(ids, capture=["pattern"]).stack("pattern")  # [layer, batch, head, query, key]


def test_analysis_induction_score_reads_the_stripe_after_the_bos(model):
    T = 4  # short: one query off changes the score by a quarter
    ids = repeated_tokens(model, seq_len=T, batch=32, seed=5)
    assert (ids[:, 0] == model.tokenizer.bos_token_id).all() and ids.shape == (32, 1 + 2 * T)
    p = _pattern_by_hand(model, ids)
    by_hand = torch.stack([p[..., i, i - T + 1] for i in range(1 + T, 1 + 2 * T)], -1).mean((1, 3))  # [layer, head]
    wrong = torch.stack([p[..., i, i - T + 1] for i in range(T, 2 * T)], -1).mean((1, 3))  # BOS offset dropped
    got = induction_scores(model, seq_len=T, batch=32, seed=5)
    torch.testing.assert_close(got, by_hand, rtol=0, atol=1e-6)
    assert float((got - wrong).abs().max()) > 0.1  # the test has teeth: the offset matters by far more


def test_analysis_prev_token_score_includes_the_bos_query(model):
    ids = torch.cat([torch.zeros(32, 1, dtype=torch.long), hs.random_tokens(torch.arange(3, 64), 32, 20, 1)], 1)
    p = _pattern_by_hand(model, ids)
    by_hand = torch.stack([p[..., i, i - 1] for i in range(1, 21)], -1).mean((1, 3))
    torch.testing.assert_close(prev_token_scores(model, seq_len=20, seed=1), by_hand, rtol=0, atol=1e-6)
    without_bos_query = torch.stack([p[..., i, i - 1] for i in range(2, 21)], -1).mean((1, 3))
    assert float((by_hand - without_bos_query).abs().max()) > 0.01


@pytest.mark.parametrize("bos", [True, False])
def test_training_metrics_analysis_and_lesson_agree(model, bos):
    T = 9
    a = induction_scores(model, seq_len=T, batch=16, seed=3, bos=bos)
    b = metrics.induction_scores(model.hf, n_seqs=16, half_len=T, seed=3, bos=bos)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(prev_token_scores(model, batch=16, seed=3, bos=bos),
                               metrics.prev_token_scores(model.hf, n_seqs=16, seed=3, bos=bos), rtol=0, atol=1e-5)
    if bos:  # the lesson's sequences start with <|bos|>
        ids = lesson.repeated_ids(model, n_seqs=16, half_len=T, seed=3)
        layer1 = lesson.induction_score_of(model.trace(ids, capture=["pattern"])["pattern", 1], T)
        torch.testing.assert_close(layer1, a[1], rtol=0, atol=1e-5)


def test_defaults_reproduce_the_card(model):
    import json

    from tests.zoo import ZOO

    fig = json.loads((ZOO / "induction-2l" / "figures.json").read_text())["measured"]
    prev, ind = prev_token_scores(model), induction_scores(model)
    assert float(prev[0].max()) == pytest.approx(fig["prev_token_score"], abs=1e-5)
    assert float(ind[1].max()) == pytest.approx(fig["induction_score"], abs=1e-5)
    assert int(ind[1].argmax()) == fig["induction_head"] and int(prev[0].argmax()) == fig["prev_token_head"]
