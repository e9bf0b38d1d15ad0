"""Path patching and attribution patching: every option against a loop, refusals word for word (group analysis2).

On the sharpened models of ``tests/fixtures_teeth.py`` (GPT-2 with an unembedding bias, Llama with grouped-query
attention; 3 layers, 4 heads) a path moves the logit difference by O(1), so "equals the loop" (atol 1e-4) and
"changes the result" (> 0.01, asserted beside each) cannot pass by accident.
"""

from __future__ import annotations

import re

import pytest
import torch

import kit.analysis as A
from kit.analysis.attribution_patching import AttributionPatching
from kit.analysis.path_patching import PathPatchingResult
from tests.references import central_difference, path_patching_loop

P, T = 3, 8
ANSWER, CONTRAST = [7, 8, 9], [20, 21, 22]


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(5, 290, (P, T), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1] = torch.randint(5, 290, (P,), generator=g)
    corrupted[:, 4] = torch.randint(5, 290, (P,), generator=g)
    return clean, corrupted


def _metric(logits, a=ANSWER, c=CONTRAST) -> float:
    rows = torch.arange(logits.shape[0])
    return float((logits[rows, -1, a] - logits[rows, -1, c]).float().mean())


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("receivers,receiver_input,pos", [
    ("logits", "all", None),
    ([(1, 2)], "all", 5),
    ([(2, 0), (1, 3)], "values", None),
], ids=["logits", "head-at-pos-5", "two-layers-values"])
def test_path_patching_with_frozen_mlps_equals_the_loop(teeth, kind, receivers, receiver_input, pos):
    m = teeth[kind]
    clean, corrupted = _pair()
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=receivers, receiver_input=receiver_input,
                          receiver_pos=pos, freeze_mlps=True, batch_size=5)
    ref = path_patching_loop(m, clean, corrupted, _metric, receivers, receiver_input, pos, freeze_mlps=True)
    torch.testing.assert_close(got.scores, ref, atol=1e-4, rtol=0, equal_nan=True)
    free = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=receivers, receiver_input=receiver_input,
                           receiver_pos=pos, freeze_mlps=False)
    assert float((free.scores - got.scores).abs().nan_to_num(0).max()) > 0.01  # the MLP paths matter here


@pytest.mark.parametrize("receiver_input", ["all", "pattern", "values"])
def test_path_patching_at_a_middle_position_equals_the_loop(teeth, receiver_input):
    m = teeth["llama"]
    clean, corrupted = _pair()
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(1, 3)], receiver_input=receiver_input,
                          receiver_pos=-3)  # position 5: after the corrupted 1 and 4, before the last
    ref = path_patching_loop(m, clean, corrupted, _metric, [(1, 3)], receiver_input, receiver_pos=T - 3)
    torch.testing.assert_close(got.scores, ref, atol=1e-4, rtol=0, equal_nan=True)
    assert float((ref - got.clean).abs().nan_to_num(0).max()) > 0.01
    every = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(1, 3)], receiver_input=receiver_input)
    assert float((every.scores - got.scores).abs().nan_to_num(0).max()) > 0.01  # one position is not all


def test_only_the_given_senders_are_scored_and_the_rest_is_nan(teeth):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    senders = [(1, 2), (0, 3)]
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(2, 1)], senders=senders)
    full = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(2, 1)])
    assert got.senders == senders and got.receivers == [(2, 1)] and got.receiver_input == "all"
    assert len(full.senders) == 8 and full.senders[0] == (0, 0) and full.senders[-1] == (1, 3)
    for l in range(m.n_layers):
        for h in range(m.n_heads):
            if (l, h) in senders:
                assert float(got.scores[l, h]) == pytest.approx(float(full.scores[l, h]), abs=1e-5)
            else:
                assert got.scores[l, h].isnan()
    assert full.scores[:2].isfinite().all() and full.scores[2].isnan().all()


def test_the_direct_path_to_the_logits_scores_every_head(teeth):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST)  # receivers="logits" by default
    assert got.receivers == "logits" and len(got.senders) == 12 and got.scores.isfinite().all()
    torch.testing.assert_close(got.scores, path_patching_loop(m, clean, corrupted, _metric, "logits"), atol=1e-4, rtol=0)


def test_clean_and_corrupted_are_the_metrics_of_the_unpatched_prompts(teeth):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(1, 0)])
    assert got.clean == pytest.approx(_metric(m.trace(clean, capture=[]).logits), abs=1e-5)
    assert got.corrupted == pytest.approx(_metric(m.trace(corrupted, capture=[]).logits), abs=1e-5)
    assert abs(got.clean - got.corrupted) > 0.1
    one = A.path_patching(m, clean, corrupted, 7, 20, receivers=[(1, 0)])  # one answer for every prompt
    assert one.clean == pytest.approx(_metric(m.trace(clean, capture=[]).logits, [7] * P, [20] * P), abs=1e-5)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_the_batch_size_does_not_change_the_scores(teeth, batch_size):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    ref = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(2, 2)], receiver_input="pattern")
    got = A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(2, 2)], receiver_input="pattern",
                          batch_size=batch_size)
    torch.testing.assert_close(got.scores, ref.scores, atol=1e-5, rtol=0, equal_nan=True)


def test_a_progress_bar_only_when_asked(teeth, capsys):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(1, 0)])
    assert "path patching" not in capsys.readouterr().err
    A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(1, 0)], progress=True)
    assert re.search(r"(^|\r)path patching: ", capsys.readouterr().err)  # the bar's own label


C2 = torch.randint(5, 290, (2, T), generator=torch.Generator().manual_seed(5))
REFUSALS = [
    ("receiver_input", dict(receivers=[(1, 0)], receiver_input="queries"),
     "receiver_input='queries'; valid: 'all', 'pattern', 'values'"),
    ("receivers-text", dict(receivers="heads"), "receivers='heads'; give (layer, head) pairs or 'logits'"),
    ("logits-pattern", dict(receivers="logits", receiver_input="pattern"),
     "receiver_input applies to receiver heads; with receivers='logits' leave it 'all'"),
    ("logits-values", dict(receiver_input="values"),
     "receiver_input applies to receiver heads; with receivers='logits' leave it 'all'"),
    ("receivers-in-layer-0", dict(receivers=[(0, 1)]),
     "no head lies below the lowest receiver's layer; give senders=[...] explicitly"),
    ("sender-above", dict(receivers=[(2, 0), (1, 1)], senders=[(0, 0), (1, 2)]),
     "senders [(1, 2)] do not lie below every receiver (lowest receiver layer 1)"),
    ("sender-in-last-layer-to-logits", dict(senders=[(2, 0)], receivers=[(2, 1)]),
     "senders [(2, 0)] do not lie below every receiver (lowest receiver layer 2)"),
    ("receiver-not-a-pair", dict(receivers=[3]), "each receiver is a (layer, head) pair, got 3"),
    ("sender-not-a-pair", dict(receivers=[(2, 0)], senders=[(0, 1, 2)]), "each sender is a (layer, head) pair, got (0, 1, 2)"),
    ("no-senders", dict(receivers=[(2, 0)], senders=[]), "no senders given"),
    ("receiver-head", dict(receivers=[(2, 4)]), "head 4 is out of range: valid heads are 0..3"),
    ("receiver_pos", dict(receivers=[(2, 0)], receiver_pos=8), "receiver_pos 8 is out of range: valid receiver_poss are 0..7"),
    ("batch_size", dict(batch_size=0), "batch_size must be an integer >= 1; got 0"),
]


@pytest.mark.parametrize("kwargs,msg", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_path_patching_refuses_with_a_message_naming_what_is_valid(teeth, kwargs, msg):
    clean, corrupted = _pair()
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        A.path_patching(teeth["gpt2"], clean, corrupted, ANSWER, CONTRAST, **kwargs)


def test_senders_in_the_last_layer_are_allowed_towards_the_logits(teeth):
    clean, corrupted = _pair()
    got = A.path_patching(teeth["gpt2"], clean, corrupted, ANSWER, CONTRAST, senders=[(2, 0)])
    assert got.scores[2, 0].isfinite() and int(got.scores.isfinite().sum()) == 1


@pytest.mark.parametrize("fn", ["path", "attribution"])
def test_prompts_that_do_not_pair_are_refused_with_both_shapes(teeth, fn):
    m = teeth["gpt2"]
    call = {"path": lambda c, x: A.path_patching(m, c, x, 7, 20),
            "attribution": lambda c, x: A.attribution_patching(m, c, x, 7, 20)}[fn]
    head = "clean and corrupted prompts must be as many and all of one token length; got shapes "
    with pytest.raises(ValueError, match="^" + re.escape(head + "[2, 8] and [1, 8]") + "$"):
        call(C2, C2[:1])
    with pytest.raises(ValueError, match="^" + re.escape(head + "[2, 8] and [2, 7]") + "$"):
        call(C2, C2[:, 1:])
    padded = ["The cat sat on the mat.", "The cat"]
    with pytest.raises(ValueError, match="^" + re.escape(head + "[2, 12] and [2, 12] (padded)") + "$"):
        call(padded, ["The mat sat on the cat.", "The mat sat on the cat."])
    with pytest.raises(ValueError, match=re.escape("[2, 12] (padded)") + "$"):
        call(["The mat sat on the cat.", "The mat sat on the cat."], padded)


def test_the_path_patching_result_reads_effects_and_the_strongest_paths():
    scores = torch.tensor([[1.0, 0.0, 3.0], [float("nan"), 2.0, float("nan")]])
    r = PathPatchingResult(scores, 2.0, 0.0, [(2, 1)], "all", [(0, 0), (0, 1), (1, 1), (0, 2)])
    torch.testing.assert_close(r.effect, torch.tensor([[-0.5, -1.0, 0.5], [float("nan"), 0.0, float("nan")]]),
                               equal_nan=True, atol=0, rtol=0)
    assert r.top(2) == [((0, 1), -1.0), ((0, 0), -0.5)]
    assert r.top() == [((0, 1), -1.0), ((0, 0), -0.5), ((1, 1), 0.0)]
    assert repr(r) == ("PathPatchingResult(receivers=[(2, 1)], input='all', clean=2.000, corrupted=0.000, "
                       "strongest paths: L0H1 -1.00, L0H0 -0.50, L1H1 +0.00)")
    flipped = PathPatchingResult(scores, 0.0, 2.0, "logits", "all", [(0, 0), (0, 1)])  # clean below corrupted
    torch.testing.assert_close(flipped.effect[0], torch.tensor([-0.5, 0.0, -1.5]), atol=0, rtol=0)
    assert flipped.top(1) == [((0, 0), -0.5)]


# --- attribution patching -------------------------------------------------------------------------------

def _prob(logits, a=ANSWER) -> float:
    p = logits[:, -1].float().softmax(-1)
    return float(p[torch.arange(p.shape[0]), a].mean())


@pytest.mark.parametrize("kind", ["attn", "heads", "resid", "mlp"])
@pytest.mark.parametrize("metric", ["logit_diff", "prob"])
def test_attribution_patching_equals_central_differences_for_every_kind_and_metric(teeth, kind, metric):
    m = teeth["llama"]
    clean, corrupted = _pair(1)
    contrast = CONTRAST if metric == "logit_diff" else None
    answer = ANSWER if metric == "logit_diff" else m.trace(clean, capture=[]).logits[:, -1].argmax(-1).tolist()
    fn = (lambda lg: _metric(lg, answer, contrast)) if metric == "logit_diff" else (lambda lg: _prob(lg, answer))
    est = A.attribution_patching(m, clean, corrupted, answer, contrast, kind=kind)
    ref = central_difference(m, clean, corrupted, kind, fn)
    change = est.scores - est.corrupted
    scale = float(ref.abs().max())  # measured 1.9 to 13.7 (logit difference), 0.19 to 0.43 (probability)
    assert scale > (1.0 if metric == "logit_diff" else 0.1)
    # measured |change - ref| <= 0.07 % of the scale (central differences' own error): tolerance 0.5 %
    torch.testing.assert_close(change, ref, atol=0.005 * scale, rtol=0)
    assert est.kind == kind and est.metric == metric and est.scores.shape == ref.shape
    assert est.corrupted == pytest.approx(fn(m.trace(corrupted, capture=[]).logits), abs=1e-5)
    assert est.clean == pytest.approx(fn(m.trace(clean, capture=[]).logits), abs=1e-5)


def test_attribution_patching_defaults_to_heads_and_takes_one_answer_for_all(teeth):
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    default = A.attribution_patching(m, clean, corrupted, 7, 20)
    listed = A.attribution_patching(m, clean, corrupted, [7] * P, [20] * P, kind="heads")
    assert default.kind == "heads" and default.metric == "logit_diff" and default.scores.shape == (3, 4)
    assert torch.equal(default.scores, listed.scores)


def test_an_unknown_kind_is_refused_with_the_valid_ones(teeth):
    clean, corrupted = _pair()
    with pytest.raises(ValueError, match="^" + re.escape("kind='neurons'; valid kinds: resid, attn, mlp, heads") + "$"):
        A.attribution_patching(teeth["gpt2"], clean, corrupted, 7, kind="neurons")


def test_normalized_and_repr_of_an_attribution_patching():
    r = AttributionPatching(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), 3.0, 1.0, "attn", "prob")
    torch.testing.assert_close(r.normalized, torch.tensor([[0.0, 1.0], [0.5, -0.5]]), atol=0, rtol=0)
    assert repr(r) == "AttributionPatching(kind='attn', metric='prob', shape=[2, 2], clean=3.000, corrupted=1.000)"


def test_agreement_is_the_error_and_the_pearson_correlation():
    est = AttributionPatching(torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 6.0]]), 0.0, 0.0, "heads", "logit_diff")
    actual = torch.tensor([[1.5, 2.0, 2.0], [4.0, 3.0, 6.25]])
    agree = A.agreement(est, type("Real", (), {"scores": actual})())
    torch.testing.assert_close(agree.error, est.scores - actual, atol=0, rtol=0)
    assert torch.equal(agree.estimate, est.scores) and torch.equal(agree.actual, actual)
    want = float(torch.corrcoef(torch.stack([est.scores.flatten(), actual.flatten()]))[0, 1])
    assert agree.correlation == pytest.approx(want, abs=1e-6)
    assert 0.3 < want < 0.9  # neither 0 nor 1: a wrong formula would show
    assert agree.worst(2) == [((1, 1), -3.0), ((0, 2), 1.0)]
    assert agree.worst() == [((1, 1), -3.0), ((0, 2), 1.0), ((0, 0), -0.5)]
    assert repr(agree) == (f"Agreement(correlation={want:.3f}, max |error|=3.000, "
                           "worst=[('1,1', -3.0), ('0,2', 1.0), ('0,0', -0.5)])")


def test_agreement_of_a_constant_grid_is_zero_not_nan():
    est = AttributionPatching(torch.ones(2, 3), 0.0, 0.0, "heads", "logit_diff")
    agree = A.agreement(est, type("Real", (), {"scores": torch.arange(6.0).view(2, 3)})())
    assert agree.correlation == 0.0


def test_agreement_refuses_grids_of_other_shapes_naming_both():
    est = AttributionPatching(torch.ones(3, 4), 0.0, 0.0, "heads", "logit_diff")
    msg = "shapes differ: estimate [3, 4] vs patching [3, 8]; compare results of the same kind and prompts"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        A.agreement(est, type("Real", (), {"scores": torch.ones(3, 8)})())


@pytest.mark.parametrize("name,call", [
    ("path_patching", lambda m: A.path_patching(m, "a b", "a c", 7, 20)),
    ("attribution_patching", lambda m: A.attribution_patching(m, "a b", "a c", 7, 20)),
], ids=["path_patching", "attribution_patching"])
def test_a_model_name_instead_of_a_model_is_refused_naming_the_function(name, call):
    msg = f"{name} takes a kit model from kit.load(...); got str (a name: load it first, model = kit.load('gpt2'))"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        call("gpt2")


@pytest.mark.parametrize("batch_size,per", [(1, 1), (3, 1), (6, 2), (7, 2), (24, 8)], ids=lambda v: str(v))
def test_each_forward_pass_holds_batch_size_rows_or_one_senders_prompts(teeth, monkeypatch, batch_size, per):
    """``batch_size`` bounds the rows of a forward pass (senders x prompts), but a pass holds at least one
    sender's prompts; the 8 senders below layer 2 take ceil(8 / per) chunks of two passes (Run A, Run B), plus
    the clean, the corrupted-z and the corrupted-logits passes."""
    m = teeth["gpt2"]
    clean, corrupted = _pair()
    rows: list[int] = []
    original = m.trace

    def spy(prompts, *args, **kwargs):
        rows.append(prompts.shape[0])
        return original(prompts, *args, **kwargs)
    monkeypatch.setattr(m, "trace", spy)
    A.path_patching(m, clean, corrupted, ANSWER, CONTRAST, receivers=[(2, 1)], batch_size=batch_size)
    chunks = -(-8 // per)
    assert len(rows) == 3 + 2 * chunks
    assert max(rows) == per * P and sorted(rows)[:3] == [P, P, P]


def test_agreement_rounds_errors_to_three_digits_and_is_scale_free():
    est = AttributionPatching(torch.tensor([[0.012345, 0.02], [0.03, 0.04]]), 0.0, 0.0, "heads", "logit_diff")
    actual = torch.tensor([[0.0, 0.021], [0.028, 0.045]])
    agree = A.agreement(est, type("Real", (), {"scores": actual})())
    assert "('0,0', 0.012)" in repr(agree)  # 3 digits
    big = A.agreement(AttributionPatching(est.scores * 1000, 0.0, 0.0, "heads", "logit_diff"),
                      type("Real", (), {"scores": actual * 1000})())
    assert agree.correlation == pytest.approx(big.correlation, abs=1e-5)  # norms far below 1 are not clamped
    assert 0.3 < big.correlation < 0.99
