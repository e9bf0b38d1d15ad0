"""The claims lesson 03 makes about facts-4l, computed as the lesson computes them.

Thresholds are loose enough to survive a retrain of facts-4l on the same world design; each test
names the lesson's sentence it backs.
"""

from __future__ import annotations

import re

import pytest
import torch

from kit.analysis import (
    attention_knockout, causal_trace, contrast_attribution, direct_logit_attribution, final_block_measures,
    recall_summary, subject_positions,
)
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


@pytest.fixture(scope="module")
def others(s):
    return lesson.competitors(s.model, s.world, s.facts)


@pytest.fixture(scope="module")
def diff(s, others):
    return contrast_attribution(s.model.trace([f.text for f in s.facts]), [f.answer for f in s.facts], others)


def test_competitors_are_the_other_answers_of_the_relation(s, others):
    for f, comp in zip(s.facts, others):
        assert lesson.first_token(s.model, f.answer) not in comp
        assert len(comp) == len(s.world.answers(f.relation)) - 1


def test_the_top_subject_head_is_l1h3_and_adds_to_the_logit_difference(summary, diff):
    # "L1H3: attention to the subject 1.00, direct effect on the logit difference +2.42"
    (layer, head, weight), = summary.top_subject_heads(1)
    assert (layer, head) == (1, 3) and weight >= 0.9
    head_diff = diff.heads.mean(0)
    assert float(head_diff[1, 3]) > 2.0 and float(head_diff[1, 3]) == float(head_diff.max())


def test_raw_mlp_effects_mislead_the_contrast_reorders_them(s, diff):
    # issue figures: raw MLP effects [3.64, 3.47, 1.40, 0.35], against the other answers [0.31, 1.41, 1.22, 1.28]
    raw = direct_logit_attribution(s.model.trace([f.text for f in s.facts]), [f.answer for f in s.facts],
                                   neurons=False).mlps.mean(0)
    con = diff.mlps.mean(0)
    assert int(raw.argmax()) == 0 and float(raw[0]) > 3.0
    assert int(con.argmin()) == 0 and float(con[0]) < 0.5 and float(con[1:].min()) > 1.0


def test_l1h3_extracts_the_answer_and_the_subjects_other_attributes(s):
    # "its own output already ranks the answer first for most facts ... promotes that country's language and
    # currency as well (continent less so)"
    r = lesson.head_readout(s.model, s.world, s.facts, 1, 3)
    ranks = torch.tensor(r["answer"])
    assert int(ranks.median()) == 0 and float((ranks == 0).float().mean()) >= 0.7
    for attr in ("language", "currency"):
        assert float((torch.tensor(r[attr]) == 0).float().mean()) >= 0.9
    assert float((torch.tensor(r["capital"]) == 0).float().mean()) >= 0.6
    assert float((torch.tensor(r["continent"]) == 0).float().mean()) < 0.6
    # a head that does not look at the subject names no answer: the readout has teeth
    other = torch.tensor(lesson.head_readout(s.model, s.world, s.facts, 0, 0)["answer"])
    assert float((other == 0).float().mean()) < 0.3


def test_mlp0_enriches_the_subjects_last_token(s):
    # "the subject's last token names the answer far more often after the first MLP than before it"
    e = lesson.subject_enrichment(s.model, s.world, s.facts)
    assert e["after block 0"] >= 0.85 and e["before MLP0"] <= 0.5


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


def test_mlps_respond_to_subject_heads_beyond_the_floor_but_weakly(s, summary):
    # step 2: "Some responses are beyond the floor ... no MLP adds or removes more than about a tenth"
    heads = [(l, h) for l, h, _ in summary.top_subject_heads(4)]
    k, floor = lesson.mlp_amplification(s.model, s.facts, heads, seeds=8)
    for i, (layer, _) in enumerate(heads):
        assert torch.isnan(k[i, :layer]).all() and torch.isnan(floor[i, :layer]).all()  # MLPs before the head
        assert not torch.isnan(k[i, layer:]).any() and (floor[i, layer:] > 0).all()
    assert float(k.nan_to_num(0).abs().max()) < 0.15
    i = heads.index((1, 3))
    assert float(k[i, 1]) > 2 * float(floor[i, 1]) and float(k[i, 2]) > 2 * float(floor[i, 2])  # L1H3: amplified
    assert float(floor.nan_to_num(0).max()) < 0.05


def test_the_final_block_promotes_the_answer_by_all_four_measures(s, others):
    final = final_block_measures(s.model, [f.text for f in s.facts], [f.answer for f in s.facts], others)
    assert final.raw_logit > 0.5 and final.logit_diff > 1.0 and final.delta_logprob > 0.01
    assert final.lens_after > final.lens_before
    assert not any(sup for _, _, sup in final.rows())


def test_final_block_measures_see_a_suppressing_final_block(s, others):
    # the measures have teeth: negate the final MLP's output and the final block suppresses the answer
    from kit.interventions import Edit

    texts, answers = [f.text for f in s.facts], [f.answer for f in s.facts]
    L = s.model.n_layers

    class Negated:  # the model with the final block's MLP output flipped, for the measure's own trace calls
        def __init__(self, model):
            self._m = model

        def trace(self, prompts, **kw):
            kw["interventions"] = list(kw.get("interventions", [])) + [Edit("mlp_out", L - 1, lambda x: -3 * x)]
            return self._m.trace(prompts, **kw)

        def __getattr__(self, a):
            return getattr(self._m, a)

    final = final_block_measures(Negated(s.model), texts, answers, others)
    assert final.raw_logit < 0 and final.logit_diff < 0


def test_knocking_out_layer_1_alone_costs_most(s):
    # "Blocking one layer at a time, layer 1 costs most: that is where L1H3 reads the enriched subject"
    keys = [subject_positions(s.model, f.text, f.subject) for f in s.facts]
    texts, answers = [f.text for f in s.facts], [f.answer for f in s.facts]
    after = [float(attention_knockout(s.model, texts, key=keys, answer=answers, layers=[l])["after"].mean())
             for l in range(s.model.n_layers)]
    assert min(range(len(after)), key=after.__getitem__) == 1 and after[1] < 0.6


def test_the_rome_like_peak_caveat_is_stated_with_the_experiments_figures():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = (root / "lessons" / "src" / "03_factual_recall.py").read_text()
    card = (ZOO_DIR / "facts-4l" / "MODEL_CARD.md").read_text()
    doc = (root / "docs" / "factual_recall_experiments.md").read_text()
    assert "7 of the 46" in doc and "in 7" in src and "1 of 8 training seeds" in src
    for fig in (".343/.183/.116", ".107/.308/.188", ".402/.154/.178"):
        assert fig in doc
    assert "0.343" in src and "0.422" in src
    assert "1 of 8" in card and "7 of 46" in card
