"""DiffMeans, label purity, random sparse directions, and SNMF on tiny models of every family."""

from __future__ import annotations

import pytest
import torch

from kit.analysis.features import (
    chance_purity, compare_purity, decode_direction, diff_means, direction_logits, label_purity, mlp_activations,
    random_sparse_like,
)
from kit.analysis.snmf import snmf


pytestmark = pytest.mark.usefixtures("one_thread")


PROMPTS = ["The capital of Veloria is Mistport.", "The cat sat on the mat.", "Induction heads copy what came after.",
           "A B C D E F G", "Once upon a time there was a model."]


def test_diff_means_mask_and_labels():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(7, 50, generator=g)
    mask = torch.arange(50) % 3 == 0
    dm = diff_means(acts, mask)
    torch.testing.assert_close(dm, acts[:, mask].mean(1) - acts[:, ~mask].mean(1))
    labels = torch.arange(50) % 3
    labels[:5] = -1  # unlabelled tokens count among the others
    rows = diff_means(acts, labels)
    assert rows.shape == (3, 7)
    for c in range(3):
        torch.testing.assert_close(rows[c], diff_means(acts, labels == c), rtol=1e-5, atol=1e-6)


def test_diff_means_points_at_a_planted_concept():
    g = torch.Generator().manual_seed(1)
    concept = torch.zeros(32)
    concept[[3, 9, 20]] = torch.tensor([2.0, -1.0, 1.5])
    mask = torch.rand(400, generator=g) < 0.3
    acts = torch.randn(32, 400, generator=g) * 0.5 + concept[:, None] * mask.float()[None, :]
    dm = diff_means(acts, mask)
    assert torch.nn.functional.cosine_similarity(dm, concept, dim=0) > 0.9


@pytest.mark.parametrize("bad", [torch.zeros(49, dtype=torch.bool), torch.ones(50, dtype=torch.bool), torch.zeros(7)])
def test_diff_means_bad_input(bad):
    with pytest.raises(ValueError):
        diff_means(torch.randn(7, 50), bad)


def test_label_purity():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, -1, -1])
    scores = torch.tensor([
        [9, 8, 7, 0, 0, 0, 0, 0, 0, 0],  # top 3: all label 0
        [0, 0, 9, 8, 7, 0, 0, 0, 0, 0],  # top 3: 0, 1, 1
        [0, 0, 0, 0, 0, 0, 0, 0, 9, 8],  # top 2 unlabelled, then ...
    ], dtype=torch.float)
    res = label_purity(scores, labels, top=3)
    assert res.purity[0] == 1.0 and res.label[0] == 0
    assert res.purity[1] == pytest.approx(2 / 3) and res.label[1] == 1
    assert res.purity[2] <= 1 / 3  # unlabelled tokens never count as a match
    with pytest.raises(ValueError, match="one entry per token"):
        label_purity(scores, labels[:5])


def test_chance_purity_is_the_floor_of_random_units():
    labels = torch.arange(1000) % 4  # four balanced labels
    chance = chance_purity(labels, top=20)
    assert 0.25 < chance < 0.5
    sorted_units = torch.stack([(labels == c).float() + 0.01 * torch.rand(1000) for c in range(4)])
    assert label_purity(sorted_units, labels, top=20).purity.min() == 1.0


def test_random_sparse_like():
    v = torch.zeros(100)
    v[[1, 5, 7]] = torch.tensor([1.0, -2.0, 0.5])
    r = random_sparse_like(v, seed=3)
    assert (r != 0).sum() == 3 and r.norm() == pytest.approx(v.norm())
    assert torch.equal(r, random_sparse_like(v, seed=3))
    assert not torch.equal(r, random_sparse_like(v, seed=4))
    with pytest.raises(ValueError):
        random_sparse_like(torch.zeros(5))


def test_mlp_activations_match_the_trace(tiny_model):
    layer = tiny_model.n_layers - 1
    col = mlp_activations(tiny_model, PROMPTS, layer, batch_size=2)
    tr = tiny_model.trace(PROMPTS, capture=["mlp_post"])
    n_real = int(tr.mask.sum())
    assert col.acts.shape == (tiny_model.d_mlp, n_real) and col.n_tokens == n_real
    torch.testing.assert_close(col.acts.T, tr["mlp_post", layer][tr.mask].float())
    assert col.tokens == [t for toks in tr.tokens for t in toks]
    i = int(col.n_tokens - 1)
    assert "[" + col.tokens[i] + "]" in col.context(i)
    assert col.prompt.max() == len(PROMPTS) - 1


def test_snmf_on_a_tiny_model_and_decoding(tiny_model):
    layer = 0
    col = mlp_activations(tiny_model, PROMPTS * 3, layer)
    res = snmf(col.acts, k=4, density=0.1, n_iter=40)
    assert res.Z.shape == (tiny_model.d_mlp, 4) and res.Y.shape == (4, col.n_tokens) and (res.Y >= 0).all()
    assert res.loss < 1.0
    dirs = res.directions(tiny_model.adapter.W_out(layer))
    assert dirs.shape == (4, tiny_model.d_model)
    words = decode_direction(tiny_model, layer, res.Z[:, 0], top=5)
    assert len(words) == 5 and all(isinstance(w, str) for w in words)
    # decoding is linear in the direction up to the final norm's centring: a scaled z decodes the same
    assert decode_direction(tiny_model, layer, 3.0 * res.Z[:, 0], top=5) == words
    logits = direction_logits(tiny_model, dirs[0])
    assert logits.shape == (tiny_model.vocab_size,)


def polysemantic(n_labels=6, n_tokens=2400, seed=0):
    """Each token belongs to one concept (its label) and fires that concept's feature; every neuron
    serves two concepts (polysemantic) with a signed weight; plus noise neurons and noise."""
    g = torch.Generator().manual_seed(seed)
    pairs = [(a, b) for a in range(n_labels) for b in range(a + 1, n_labels)]  # one neuron per pair of concepts
    d = len(pairs) + 20
    Z = torch.zeros(d, n_labels)
    for i, (a, b) in enumerate(pairs):
        Z[i, a], Z[i, b] = torch.randn(2, generator=g).sign() * (0.5 + torch.rand(2, generator=g))
    labels = torch.randint(n_labels, (n_tokens,), generator=g)
    Y = torch.zeros(n_labels, n_tokens)
    Y[labels, torch.arange(n_tokens)] = 0.5 + torch.rand(n_tokens, generator=g)
    return Z @ Y + 0.05 * torch.randn(d, n_tokens, generator=g), labels


def test_compare_purity_features_beat_polysemantic_neurons():
    pytest.importorskip("sklearn")
    acts, labels = polysemantic()
    cmp = compare_purity(acts, labels, k=6, density=5 / acts.shape[0])
    assert set(cmp.purity) == {"SNMF features", "single neurons", "NMF components (clipped acts)"}
    assert cmp.purity["single neurons"].shape == (acts.shape[0],)
    snmf_p, neuron_p = cmp.mean("SNMF features"), cmp.mean("single neurons")
    assert snmf_p >= 0.95, cmp
    assert snmf_p > neuron_p + 0.2, cmp
    assert 1 / 6 <= cmp.chance < 0.4
    assert cmp.table().count("\n") == 5
    # the same pipeline with shuffled labels finds nothing pure: the metric is not a constant
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    assert label_purity(cmp.snmf.Y, shuffled, 20).purity.mean() < 0.5
