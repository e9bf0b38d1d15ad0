"""AttentionViewer on real kit models (tiny random ones of each family, from tests/conftest.py).

Skips where that fixture does not exist (a checkout without the tracer).
"""

import pytest
import torch

from kit.widgets import AttentionViewer


@pytest.fixture
def models(request):
    try:
        return request.getfixturevalue("tiny_models")
    except pytest.FixtureLookupError:
        pytest.skip("the tiny_models fixture (tests/conftest.py, with kit.load) is not available")


def test_model_and_prompt_for_every_family(models):
    for family, model in models.items():
        v = AttentionViewer(model, "When Mary and John went to the store")
        assert (v.n_layers, v.n_heads) == (model.n_layers, model.n_heads), family
        tr = model.trace("When Mary and John went to the store", capture=["pattern"])
        assert v.tokens == tr.tokens[0], family
        assert torch.allclose(v.pattern(model.n_layers - 1, 0), tr["pattern", model.n_layers - 1][0, 0].float()), family
        assert v.blob("head/0/0").meta["layout"] == "tril", family  # causal models pack the lower triangle


def test_a_padded_batch_shows_only_the_real_tokens(models):
    model = next(iter(models.values()))
    tr = model.trace(["a much longer prompt than the other one", "short"], capture=["pattern"])
    v = AttentionViewer(tr, batch_index=1)
    n = int(tr.mask[1].sum())
    assert len(v.tokens) == n and v.pattern(0, 0).shape == (n, n)
    rows = v.pattern(0, 0).sum(-1)
    assert torch.allclose(rows, torch.ones(n), atol=1e-4)  # every real query's attention sums to 1
