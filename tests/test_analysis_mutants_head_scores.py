"""Head scores against their definitions on sharpened models, one with a BOS token (issue 16).

On ``teeth["bos"]`` (``tests/fixtures_teeth.py``) every prompt starts with ``<|bos|>`` and attention is
sharp, so a score read one position off (the BOS offset dropped, the wrong diagonal) differs from the
definition by far more than float error; the tests say by how much.
"""

from __future__ import annotations

import pytest
import torch

import kit.analysis as A
from kit import head_scores as hs


def _patterns(m, ids):
    return m.trace(ids, capture=["pattern"]).stack("pattern").float()  # [layer, batch, head, query, key]


def _ordinary(m):
    special = set(m.tokenizer.all_special_ids)
    return [i for i in range(m.vocab_size) if i not in special]


@pytest.mark.parametrize("bos", [True, False])
def test_prev_token_scores_are_the_mean_attention_to_the_previous_position(teeth, bos):
    m = teeth["bos"]
    T, B, seed = 9, 6, 4
    ids = hs.random_tokens(_ordinary(m), B, T, seed)
    if bos:
        ids = torch.cat([torch.full((B, 1), m.tokenizer.bos_token_id), ids], 1)
    p = _patterns(m, ids)
    n = ids.shape[1]
    by_hand = torch.stack([p[..., i, i - 1] for i in range(1, n)], -1).mean((1, 3))  # [layer, head]
    got = A.prev_token_scores(m, seq_len=T, batch=B, seed=seed, bos=bos)
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)
    diag = torch.stack([p[..., i, i] for i in range(1, n)], -1).mean((1, 3))  # a diagonal off by one
    assert float((got - diag).abs().max()) > 0.1
    assert got.device.type == "cpu" and got.shape == (m.n_layers, m.n_heads)


@pytest.mark.parametrize("bos", [True, False])
def test_induction_scores_read_the_token_after_the_first_occurrence(teeth, bos):
    m = teeth["bos"]
    T, B, seed = 6, 5, 2
    ids = A.repeated_tokens(m, seq_len=T, batch=B, seed=seed, bos=bos)
    off = int(bos)
    assert ids.shape == (B, off + 2 * T) and torch.equal(ids[:, off:off + T], ids[:, off + T:])
    assert bos == bool((ids[:, 0] == m.tokenizer.bos_token_id).all())
    p = _patterns(m, ids)
    by_hand = torch.stack([p[..., i, i - T + 1] for i in range(off + T, off + 2 * T)], -1).mean((1, 3))
    got = A.induction_scores(m, seq_len=T, batch=B, seed=seed, bos=bos)
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)
    shifted = torch.stack([p[..., i, i - T] for i in range(off + T, off + 2 * T)], -1).mean((1, 3))
    assert float((got - shifted).abs().max()) > 0.05  # the token itself, not the one after it


def test_random_sequences_use_ordinary_tokens_and_the_seed(teeth):
    m = teeth["bos"]
    ids = A.repeated_tokens(m, seq_len=40, batch=20, seed=1)
    special = set(m.tokenizer.all_special_ids)
    body = ids[:, 1:]
    assert not any(int(t) in special for t in body.flatten())
    assert len(set(body.flatten().tolist())) > 100  # drawn from the whole ordinary vocabulary
    assert torch.equal(ids, A.repeated_tokens(m, seq_len=40, batch=20, seed=1))
    assert not torch.equal(ids, A.repeated_tokens(m, seq_len=40, batch=20, seed=2))


def test_the_default_length_and_batch_are_the_shared_defaults(teeth):
    m = teeth["bos"]  # n_ctx 128 with a BOS: 50 tokens per copy fit
    ids = A.repeated_tokens(m)
    assert ids.shape == (hs.DEFAULT_BATCH, 1 + 2 * hs.default_len(m.n_ctx, True, 2)) == (hs.DEFAULT_BATCH, 101)
    assert torch.equal(A.prev_token_scores(m), A.prev_token_scores(m, seq_len=hs.default_len(m.n_ctx, True, 1),
                                                                  batch=hs.DEFAULT_BATCH, seed=0))
    assert torch.equal(A.induction_scores(m), A.induction_scores(m, seq_len=50, batch=hs.DEFAULT_BATCH, seed=0))
    deep = teeth["deep"]  # n_ctx 32, no BOS: 16 tokens per copy
    assert A.repeated_tokens(deep).shape == (hs.DEFAULT_BATCH, 32)


@pytest.mark.parametrize("fn, copies", [(A.repeated_tokens, 2), (A.induction_scores, 2), (A.prev_token_scores, 1)])
def test_the_longest_sequence_that_fits_the_context_and_no_longer(teeth, fn, copies):
    for kind, has_bos in (("bos", True), ("deep", False)):
        m = teeth[kind]
        most = (m.n_ctx - has_bos) // copies  # 63 / 127 with a BOS in 128; 16 / 32 without in 32
        fn(m, seq_len=most, batch=1)
        with pytest.raises(ValueError, match=rf"^seq_len must be an integer in 2\.\.{most}; got {most + 1}$"):
            fn(m, seq_len=most + 1, batch=1)
        with pytest.raises(ValueError, match=r"^seq_len must be an integer in 2\.\."):
            fn(m, seq_len=1, batch=1)
        with pytest.raises(ValueError, match=r"^batch must be an integer in 1\.\.; got 0$|^batch must be"):
            fn(m, seq_len=2, batch=0)
    m = teeth["bos"]
    most = m.n_ctx // copies  # without its BOS the model has one more position
    fn(m, seq_len=most, batch=1, bos=False)


@torch.no_grad()
def test_copying_scores_equal_the_eigenvalues_of_the_full_circuit_for_every_head(teeth):
    m = teeth["gpt2"]
    a = m.adapter
    W_E, W_U = a.embed.weight.double(), a.W_U.double()
    got = A.copying_scores(m)
    assert got.shape == (m.n_layers, m.n_heads) and got.dtype == torch.float32
    for l in range(m.n_layers):
        W_V, W_O = a.W_QKV(l)[2].double(), a.W_O(l).double()
        for h in range(m.n_heads):
            eig = torch.linalg.eigvals(W_E @ W_V[h] @ W_O[h] @ W_U)  # [vocab]
            assert got[l, h].item() == pytest.approx(float(eig.real.sum() / eig.abs().sum()), abs=1e-4)
    assert float(got.max() - got.min()) > 0.3  # the heads differ (sharpened weights)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["q", "k", "v"])
def test_composition_scores_equal_the_full_matrix_definition(teeth, kind):
    m = teeth["llama"]
    a, L, H = m.adapter, m.n_layers, m.n_heads
    got = A.composition_scores(m, kind)
    assert got.shape == (L, H, L, H)
    for l1 in range(L):
        Q1, K1, V1 = (x.double() for x in a.W_QKV(l1))
        O1 = a.W_O(l1).double()
        for l2 in range(L):
            if l2 <= l1:
                assert (got[l1, :, l2] == 0).all()
                continue
            Q2, K2, V2 = (x.double() for x in a.W_QKV(l2))
            O2 = a.W_O(l2).double()
            for h1 in range(H):
                W_A = V1[h1] @ O1[h1]  # [d_model, d_model]
                for h2 in range(H):
                    W_B = {"q": Q2[h2] @ K2[h2].T, "k": (Q2[h2] @ K2[h2].T).T, "v": V2[h2] @ O2[h2]}[kind]
                    want = (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())
                    assert got[l1, h1, l2, h2].item() == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    assert float(got[0, :, 1:].max() - got[0, :, 1:].min()) > 0.05
    with pytest.raises(ValueError, match=r"^kind='o'; valid kinds: 'q', 'k', 'v'$"):
        A.composition_scores(m, "o")
