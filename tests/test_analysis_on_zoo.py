"""kit.analysis head scores on the shipped induction-2l find the heads its model card names."""

import re

import pytest
import torch

import kit
from kit.analysis import copying_scores, induction_scores, prev_token_scores
from kit.models import ZOO_DIR


@pytest.fixture(scope="module")
def model():
    return kit.load("induction-2l", device="cpu")


def card_head(figure: str) -> tuple[int, int]:
    """(layer, head) that the model card names for `figure`, e.g. 'best previous-token score'."""
    card = (ZOO_DIR / "induction-2l" / "MODEL_CARD.md").read_text()
    line = next(l for l in card.splitlines() if l.startswith(f"| {figure}"))
    layer, head = re.search(r"head L(\d+)H(\d+)", line).groups()
    return int(layer), int(head)


def test_analysis_works_on_a_word_level_vocabulary_without_unknown_token(model):
    scores = prev_token_scores(model)
    assert scores.shape == (model.n_layers, model.n_heads) and torch.isfinite(scores).all()


def test_cards_previous_token_head_scores_highest(model):
    scores = prev_token_scores(model, batch=32)
    layer, head = card_head("best previous-token score")
    assert divmod(int(scores.argmax()), model.n_heads) == (layer, head)
    assert scores[layer, head] > 0.8


def test_cards_induction_head_is_among_the_top_induction_heads(model):
    scores = induction_scores(model, seq_len=16, batch=32)
    layer, head = card_head("best induction score")
    top = scores.flatten().topk(3).indices.tolist()
    assert all(i // model.n_heads == 1 for i in top), "the top induction heads sit in layer 1"
    assert layer * model.n_heads + head in top
    assert scores[layer, head] > 0.4 and scores[layer, head] >= scores.max() - 0.05  # ARENA's threshold; near the best


def test_induction_heads_copy(model):
    """The induction heads' OV circuits copy: positive eigenvalue mass."""
    copying = copying_scores(model)
    induction = induction_scores(model, seq_len=16, batch=32)
    top = divmod(int(induction.argmax()), model.n_heads)
    assert copying[top] > 0.5
