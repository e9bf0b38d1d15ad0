"""Steering in MLP space: positions, the matched-KL search, concept scores and the table (mutation group analysis3).

On the sharpened GPT-2 of ``tests/fixtures_teeth.py`` (d_mlp 64) every value is compared with an independent
computation: the steered ``mlp_post`` with the clean one plus ``alpha * u`` at exactly the chosen positions (and
bit for bit elsewhere), KL divergences and concept log-probabilities from the logits of each prompt traced alone.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

import kit
import kit.analysis.steering as S
from kit.analysis.steering import SteeringResult

PROMPTS = ["The cat sat on the mat.", "Hi there", "Attention heads move information."]  # 12, 5, 15 tokens
LAYER = 1


def _direction(m, seed=0) -> torch.Tensor:
    return torch.randn(m.d_mlp, generator=torch.Generator().manual_seed(seed))


def _last_logprobs_alone(m, prompts, interventions_for=None) -> torch.Tensor:
    """``[prompt, vocab]``: log-softmax at each prompt's last token, each prompt traced alone (no padding)."""
    rows = []
    for i, p in enumerate(prompts):
        ivs = interventions_for(i, p) if interventions_for else []
        rows.append(m.trace(p, capture=[], interventions=ivs).logits[0, -1].float().log_softmax(-1))
    return torch.stack(rows)


def _add_at(m, p, alpha, u, positions) -> list:
    """Add ``alpha * u`` to ``mlp_post`` of LAYER at ``positions`` of prompt ``p`` traced alone."""
    n = len(m.to_tokens(p))
    where = torch.zeros(1, n, 1)
    for q in positions(n):
        where[0, q] = 1.0
    return [kit.Edit("mlp_post", LAYER, lambda x: x + alpha * where * u)]


def test_lengths_of_the_prompts(teeth):
    assert [len(teeth["gpt2"].to_tokens(p)) for p in PROMPTS] == [12, 5, 15]


@pytest.mark.parametrize("pos,chosen", [
    (None, lambda n: range(n)),
    (-1, lambda n: [n - 1]),
    (0, lambda n: [0]),
    (-2, lambda n: [n - 2]),
    ([0, -1], lambda n: sorted({0, n - 1})),
], ids=["every-token", "last", "first", "second-last", "first-and-last"])
def test_steer_adds_alpha_times_the_unit_direction_at_the_chosen_positions_only(teeth, pos, chosen):
    m = teeth["gpt2"]
    d = _direction(m)
    u = d / d.norm()
    clean = m.trace(PROMPTS, capture=["mlp_post"], layers=[LAYER])
    got = S.steer(m, PROMPTS, LAYER, 3.0 * d, -2.5, pos=pos, capture=["mlp_post"])  # the norm of d does not matter
    for b, n in enumerate(clean.lengths):
        want = clean["mlp_post", LAYER][b].clone()
        for q in chosen(n):
            want[q] = want[q] - 2.5 * u
        torch.testing.assert_close(got["mlp_post", LAYER][b, :n], want[:n], atol=1e-5, rtol=0)
        rest = [q for q in range(n) if q not in set(chosen(n))]
        assert torch.equal(got["mlp_post", LAYER][b, rest], clean["mlp_post", LAYER][b, rest])  # left alone
        assert torch.equal(got["mlp_post", LAYER][b, n:], clean["mlp_post", LAYER][b, n:])  # padding too
    steered = got.logits[torch.arange(3), torch.tensor(clean.lengths) - 1].float().log_softmax(-1)
    alone = _last_logprobs_alone(m, PROMPTS, lambda i, p: _add_at(m, p, -2.5, u, chosen))
    torch.testing.assert_close(steered, alone, atol=1e-4, rtol=0)
    assert float((alone - _last_logprobs_alone(m, PROMPTS)).abs().max()) > 0.05  # the steering moved them


def test_steer_with_a_bool_mask_steers_only_its_real_tokens(teeth):
    m = teeth["gpt2"]
    d = _direction(m)
    mask = torch.zeros(3, 15, dtype=torch.bool)
    mask[0, 3] = mask[1, 1] = mask[2, 6] = mask[2, 14] = True
    mask[1, 5] = mask[0, 12] = True  # padding positions of the 5- and 12-token prompts: never steered
    clean = m.trace(PROMPTS, capture=["mlp_post"], layers=[LAYER])
    got = S.steer(m, PROMPTS, LAYER, d, 4.0, pos=mask, capture=["mlp_post"])
    delta = (got["mlp_post", LAYER] - clean["mlp_post", LAYER]).norm(dim=-1)  # [batch, pos]
    want = mask.clone()
    want[1, 5] = want[0, 12] = False
    torch.testing.assert_close(delta, want.float() * 4.0, atol=1e-4, rtol=0)
    one = S.steer(m, PROMPTS[:1], LAYER, d, 4.0, pos=torch.tensor([False] * 3 + [True] + [False] * 8),
                  capture=["mlp_post"])  # a [pos] mask is broadcast over the batch
    torch.testing.assert_close(one["mlp_post", LAYER][0], got["mlp_post", LAYER][0, :12], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos,msg", [
    (12, "position 12 is out of range for prompt 0 with 12 tokens"),
    (-13, "position -13 is out of range for prompt 0 with 12 tokens"),
    (5, "position 5 is out of range for prompt 1 with 5 tokens"),
    ([0, -6], "position -6 is out of range for prompt 1 with 5 tokens"),
], ids=["12", "minus-13", "5-in-the-short-prompt", "list"])
def test_positions_out_of_any_prompt_are_refused_naming_the_prompt(teeth, pos, msg):
    m = teeth["gpt2"]
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        S.steer(m, PROMPTS, LAYER, _direction(m), 1.0, pos=pos)
    S.steer(m, PROMPTS[:1], LAYER, _direction(m), 1.0, pos=-12)  # -n is the first token: allowed


@pytest.mark.parametrize("direction,exc,msg", [
    (torch.zeros(64), ValueError, "direction must be finite and nonzero"),
    (torch.full((64,), 1e30), ValueError, "direction must be finite and nonzero"),  # its norm overflows
    (torch.full((64,), float("inf")), ValueError,
     "direction holds 64 NaN or infinite value(s); every entry must be a finite number"),
    (torch.ones(32), ValueError, "direction must have shape an MLP-space vector [d_mlp=64]; got [32]"),
], ids=["zero", "norm-overflows", "inf", "width"])
def test_a_direction_that_has_no_unit_vector_is_refused(teeth, direction, exc, msg):
    m = teeth["gpt2"]
    for call in (lambda: S.steer(m, PROMPTS, LAYER, direction, 1.0),
                 lambda: S.steer_at_matched_kl(m, PROMPTS, LAYER, direction, 0.1),
                 lambda: S.compare_steering(m, PROMPTS, LAYER, {"a": _direction(m), "b": direction}, 0.1, concept=[5])):
        with pytest.raises(exc, match=re.escape(msg)):
            call()


def test_compare_steering_checks_every_direction_before_running_any(teeth, monkeypatch):
    m = teeth["gpt2"]
    calls = []
    monkeypatch.setattr(S, "steer_at_matched_kl", lambda *a, **k: calls.append(k.get("name")))
    with pytest.raises(ValueError, match="direction must be finite and nonzero"):
        S.compare_steering(m, PROMPTS, LAYER, {"a": _direction(m), "b": torch.zeros(64)}, 0.1, concept=[5])
    assert calls == []
    with pytest.raises(ValueError, match="^" + re.escape('give at least one direction, e.g. directions={"SNMF feature": z, "DiffMeans": dm}') + "$"):
        S.compare_steering(m, PROMPTS, LAYER, {}, 0.1, concept=[5])


@pytest.mark.parametrize("target", [0.0, -0.1, float("nan"), float("inf")], ids=["zero", "negative", "nan", "inf"])
def test_a_target_kl_that_is_not_positive_and_finite_is_refused(teeth, target):
    m = teeth["gpt2"]
    msg = f"target_kl must be a positive finite number, got {target!r}"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        S.steer_at_matched_kl(m, PROMPTS, LAYER, _direction(m), target)


def test_the_search_starts_at_the_mean_norm_of_mlp_post_over_real_tokens(teeth):
    m = teeth["gpt2"]
    d = _direction(m)
    acts = [m.trace(p, capture=["mlp_post"], layers=[LAYER])["mlp_post", LAYER][0] for p in PROMPTS]
    start = float(torch.cat(acts).norm(dim=-1).mean())  # over the 21 real tokens, no padding
    res = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.5, max_evals=1, concept=[5, 6])
    assert res.alpha == pytest.approx(start, rel=1e-5) and res.evaluations == 1
    u = d / d.norm()
    base = _last_logprobs_alone(m, PROMPTS)
    steered = _last_logprobs_alone(m, PROMPTS, lambda i, p: _add_at(m, p, start, u, lambda n: range(n)))
    kl = float((base.exp() * (base - steered)).sum(-1).mean())
    assert res.kl == pytest.approx(kl, abs=1e-4) and kl > 0.05
    torch.testing.assert_close(res.base_logprobs, base, atol=1e-4, rtol=0)
    torch.testing.assert_close(res.logprobs, steered, atol=1e-4, rtol=0)
    assert res.concept == (5, 6)
    assert res.base_concept_logprob == pytest.approx(float(base[:, [5, 6]].logsumexp(-1).mean()), abs=1e-4)
    assert res.concept_logprob == pytest.approx(float(steered[:, [5, 6]].logsumexp(-1).mean()), abs=1e-4)
    assert res.gain == pytest.approx(res.concept_logprob - res.base_concept_logprob)
    assert abs(res.gain) > 0.01
    assert res.matched == (abs(kl - 0.5) <= 0.05 * 0.5)


def _record_alphas(monkeypatch) -> list[float]:
    """Record every alpha the search tries (it calls ``steer`` once per forward pass)."""
    tried: list[float] = []
    original = S.steer

    def spy(model, prompts, layer, direction, alpha, pos=None, capture=()):
        tried.append(alpha)
        return original(model, prompts, layer, direction, alpha, pos, capture)
    monkeypatch.setattr(S, "steer", spy)
    return tried


@pytest.mark.parametrize("target", [0.02, 0.3, 3.0], ids=["below-the-start", "near", "above-the-start"])
def test_the_search_doubles_below_the_target_then_bisects_the_bracket(teeth, monkeypatch, target):
    m = teeth["gpt2"]
    d = _direction(m)
    tried = _record_alphas(monkeypatch)
    res = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, target, rtol=0.01)
    monkeypatch.undo()
    kls = [S.steer_at_matched_kl(m, PROMPTS, LAYER, d, target, max_evals=1).kl]
    kls += [float((res.base_logprobs.exp() * (res.base_logprobs - _last_logprobs_alone(
        m, PROMPTS, lambda i, p, a=a: _add_at(m, p, a, d / d.norm(), lambda n: range(n))))).sum(-1).mean())
        for a in tried[1:]]
    lo, hi = 0.0, math.inf  # the rule, step by step: lo gives a KL below the target, hi above
    for a, kl, nxt in zip(tried, kls, tried[1:]):
        if kl < target:
            lo = a
            assert nxt == pytest.approx(2 * a if hi == math.inf else (lo + hi) / 2, rel=1e-9)
        else:
            hi = a
            assert nxt == pytest.approx((lo + hi) / 2, rel=1e-9)
    assert res.matched and abs(res.kl - target) <= 0.01 * target and res.evaluations == len(tried) >= 3
    assert res.alpha == tried[-1]  # the run that matched
    assert (kls[0] < target) == (target == 3.0)  # each case starts on the side its name says


def test_the_search_matches_within_rtol_and_returns_the_closest_run(teeth):
    m = teeth["gpt2"]
    d = _direction(m)
    res = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.3, rtol=0.01, concept=[" cat"], name="feature")
    assert res.matched and abs(res.kl - 0.3) <= 0.01 * 0.3 and res.target_kl == 0.3 and res.name == "feature"
    loose = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.3, rtol=0.5)
    assert loose.matched and loose.evaluations < res.evaluations
    u = d / d.norm()
    steered = _last_logprobs_alone(m, PROMPTS, lambda i, p: _add_at(m, p, res.alpha, u, lambda n: range(n)))
    torch.testing.assert_close(res.logprobs, steered, atol=1e-4, rtol=0)
    assert math.isnan(S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.3, rtol=0.5).concept_logprob)  # no concept


def test_an_unreachable_target_stops_once_alpha_passes_1e8(teeth):
    m = teeth["gpt2"]
    d = _direction(m)
    res = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 1e6, max_evals=100)
    start = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 1e6, max_evals=1).alpha
    n = math.ceil(math.log2(1e8 / start))  # runs at start * 2**0 .. 2**(n-1); 2**n passes 1e8
    assert start * 2 ** (n - 1) <= 1e8 < start * 2 ** n
    assert res.evaluations == n and not res.matched
    assert res.alpha == pytest.approx(start * 2 ** (n - 1), rel=1e-6)  # the largest KL is the closest


def test_steering_only_the_last_position_in_the_search(teeth):
    m = teeth["gpt2"]
    d = _direction(m)
    every = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.5, max_evals=1)
    last = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.5, max_evals=1, pos=-1)
    u = d / d.norm()
    want = _last_logprobs_alone(m, PROMPTS, lambda i, p: _add_at(m, p, last.alpha, u, lambda n: [n - 1]))
    torch.testing.assert_close(last.logprobs, want, atol=1e-4, rtol=0)
    assert abs(every.kl - last.kl) > 0.01


def test_compare_steering_runs_each_direction_with_the_same_settings(teeth):
    m = teeth["gpt2"]
    dirs = {"one": _direction(m, 0), "two": _direction(m, 1)}
    got = S.compare_steering(m, PROMPTS, LAYER, dirs, 0.2, concept=[" cat", 9], pos=-1, rtol=0.2)
    assert list(got) == ["one", "two"]
    for name, d in dirs.items():
        ref = S.steer_at_matched_kl(m, PROMPTS, LAYER, d, 0.2, concept=[" cat", 9], pos=-1, rtol=0.2, name=name)
        assert got[name].name == name and got[name].alpha == ref.alpha and got[name].kl == ref.kl
        assert got[name].concept == ref.concept and got[name].matched


def test_concept_ids_take_ids_and_the_first_token_of_each_word_with_and_without_a_space(teeth):
    m = teeth["gpt2"]
    first = lambda text: m.tokenizer(text, add_special_tokens=False)["input_ids"][0]  # noqa: E731
    want = []
    for text in (" cat", "cat", " attention", "attention"):
        if first(text) not in want:
            want.append(first(text))
    assert first(" cat") != first("cat")
    assert S.concept_ids(m, [" cat ", "attention"]) == tuple(want)
    assert S.concept_ids(m, [7, "cat", 7]) == (7, first(" cat"), first("cat"), 7)  # ids pass through as given
    assert S.concept_ids(m, ["cat", "cat"]) == (first(" cat"), first("cat"))  # a word's tokens only once
    assert S.concept_ids(m, [0, 299]) == (0, 299)


@pytest.mark.parametrize("words,msg", [
    ([300], "token id 300 is out of range: valid ids are 0..299"),
    ([-1], "token id -1 is out of range: valid ids are 0..299"),
    ([], "the concept has no tokens"),
], ids=["300", "minus-1", "none"])
def test_concept_ids_refuse_what_names_no_token(teeth, words, msg):
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        S.concept_ids(teeth["gpt2"], words)


def _result(name="", matched=True, **kw) -> SteeringResult:
    base = dict(alpha=12.3456, kl=0.10234, target_kl=0.1, matched=matched, logprobs=torch.zeros(1, 3),
                base_logprobs=torch.zeros(1, 3), concept=(5,), concept_logprob=-1.25, base_concept_logprob=-3.5,
                evaluations=7, name=name)
    base.update(kw)
    return SteeringResult(**base)


def test_the_steering_result_repr_and_gain():
    assert _result().gain == pytest.approx(2.25)
    assert repr(_result()) == ("SteeringResult(alpha=12.3, kl=0.1023 (target 0.1), concept log-prob -3.500 -> -1.250 "
                               "(gain +2.250), 7 forward passes)")
    assert repr(_result("feature", matched=False)) == (
        "SteeringResult('feature', alpha=12.3, kl=0.1023 (target 0.1, NOT matched), concept log-prob -3.500 -> "
        "-1.250 (gain +2.250), 7 forward passes)")


def test_the_steering_table_has_a_row_per_direction():
    table = S.steering_table({"feature": _result("feature"),
                              "random": _result("random", matched=False, alpha=0.5, kl=0.3, concept_logprob=-4.0)})
    assert table.splitlines() == [
        "| direction | α | KL | concept log-prob (clean) | concept log-prob (steered) | gain |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        "| feature | 12.3 | 0.102 | -3.500 | -1.250 | +2.250 |",
        "| random | 0.5 | 0.300 (unmatched) | -3.500 | -4.000 | -0.500 |",
    ]
    msg = ("steering_table takes {name: SteeringResult} (from compare_steering or steer_at_matched_kl); "
           "'b' is a float")
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        S.steering_table({"a": _result(), "b": 1.0})


@pytest.mark.parametrize("name,call", [
    ("concept_ids", lambda m: S.concept_ids(m, [" cat"])),
    ("steer", lambda m: S.steer(m, PROMPTS, 0, torch.ones(64), 1.0)),
    ("steer_at_matched_kl", lambda m: S.steer_at_matched_kl(m, PROMPTS, 0, torch.ones(64), 0.1)),
    ("compare_steering", lambda m: S.compare_steering(m, PROMPTS, 0, {"a": torch.ones(64)}, 0.1, concept=[5])),
], ids=["concept_ids", "steer", "steer_at_matched_kl", "compare_steering"])
def test_a_model_name_instead_of_a_model_is_refused_naming_the_function(name, call):
    """``compare_steering`` raised AttributeError ('str' object has no attribute 'd_mlp') before."""
    msg = f"{name} takes a kit model from kit.load(...); got str (a name: load it first, model = kit.load('gpt2'))"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        call("gpt2")
