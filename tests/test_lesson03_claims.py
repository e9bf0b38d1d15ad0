"""The claims lesson 03 makes about facts-4l, computed as the lesson computes them.

Thresholds are loose enough to survive a retrain of facts-4l on the same world design; each test
names the lesson's sentence it backs.
"""

from __future__ import annotations

import re

import pytest
import torch

from kit.analysis import attention_knockout, causal_trace, recall_summary, subject_positions
from kit.lessons import factual as lesson
from kit.models import ZOO_DIR
from tests.test_lesson03_exercises import lesson03_setup

pytestmark = pytest.mark.skipif(not (ZOO_DIR / "facts-4l" / "config.json").is_file(), reason="facts-4l is not shipped")


@pytest.fixture(scope="module")
def s():
    return lesson03_setup()


@pytest.fixture(scope="module")
def summary(s):
    f = s.facts
    return recall_summary(s.model, [x.text for x in f], [x.subject for x in f], [x.answer for x in f])


def test_the_lesson_has_enough_facts_the_model_knows(s, summary):
    assert len(s.facts) == 24
    assert summary.answer_prob > 0.8


def test_a_head_carries_the_subject_to_the_last_position(summary):
    # "A few heads look from the last token at the subject and carry it over (their attention and direct effect)"
    (layer, head, weight), = summary.top_subject_heads(1)
    assert weight >= 0.8
    assert float(summary.head_effect[layer, head]) > 0


def test_a_deeper_mlp_names_the_answer_far_more_often_than_chance(s):
    # step 3: "One MLP's output, read alone through the unembedding, names the right answer far more often than chance"
    readout = lesson.mlp_answer_readout(s.model, s.world, sorted({f.relation for f in s.facts}))
    mean_acc = torch.stack(list(readout.values())).mean(0)
    chance = sum(1 / len(s.world.answers(r)) for r in readout) / len(readout)
    best = int(mean_acc.argmax())
    assert float(mean_acc[best]) >= 5 * chance
    assert best >= s.model.n_layers // 2  # a deeper MLP


def test_final_block_sign_printed_by_the_lesson_matches_the_model_card(summary):
    card = (ZOO_DIR / "facts-4l" / "MODEL_CARD.md").read_text()
    stated = re.search(r"direct effect on the correct answer's logit is (positive|negative)", card)
    assert stated, "the model card states no sign for the final block's direct effect"
    assert ("negative" if summary.final_block_effect < 0 else "positive") == stated.group(1)


def test_the_residual_trace_peaks_trivially_at_the_last_token_of_the_last_layer(s):
    # exercise 3's premise: restoring the final residual state at the last token restores everything
    ct = s.traces["resid"]
    assert ct.peak() == (s.model.n_layers - 1, len(ct.tokens) - 1)
    assert float(ct.scores.max()) == pytest.approx(ct.clean, abs=1e-4)


@pytest.fixture(scope="module")
def by_role(s):
    return {kind: lesson.trace_by_role([causal_trace(s.model, f.text, f.subject, answer=f.answer, kind=kind,
                                                     samples=5, seed=0) for f in s.facts])
            for kind in ("resid", "mlp")}


def test_information_leaves_the_subject_early_and_reaches_the_last_token_late(by_role):
    # "the residual grid shows the information leaving the subject and arriving at the last position in later layers"
    resid = by_role["resid"].nan_to_num(float("-inf"))
    assert resid[0, :3].max() > resid[0, 5]
    assert resid[-1, 5] > resid[-1, :3].max()


def test_mlp_causal_effect_is_larger_inside_the_subject_than_at_the_last_token(by_role):
    mlp = by_role["mlp"].nan_to_num(float("-inf")).max(0).values
    assert mlp[:3].max() > mlp[5]


def test_mlp_causal_effect_peaks_at_the_subjects_last_token_in_the_first_layer(by_role):
    # "In facts-4l the MLP effect peaks at the subject's last token ... here in the first layer"
    mlp = by_role["mlp"].nan_to_num(float("-inf"))
    best = mlp.max(0).values  # [role]
    assert int(best.argmax()) == lesson.ROLES.index("last subject token")
    assert best[2] > 1.5 * max(best[0], best[1], best[5])
    assert int(mlp[:, 2].argmax()) == 0


def test_knocking_out_attention_to_the_subject_at_least_halves_p_answer(s):
    keys = [subject_positions(s.model, f.text, f.subject) for f in s.facts]
    ko = attention_knockout(s.model, [f.text for f in s.facts], key=keys, answer=[f.answer for f in s.facts])
    assert float(ko["after"].mean()) <= float(ko["before"].mean()) / 2


def test_mlp_response_to_an_ablated_head_is_zero_before_its_layer(s, summary):
    # step 2: "An MLP before the head's layer cannot respond (it runs earlier)"
    heads = [(l, h) for l, h, _ in summary.top_subject_heads(2)]
    response = lesson.mlp_response_to_heads(s.model, s.facts, heads)
    for (layer, _), row in zip(heads, response):
        assert row[:layer].abs().max() < 1e-5 if layer else True
        assert row[layer:].abs().max() > 0
