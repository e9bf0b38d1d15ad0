"""Patterns only where asked: layers and heads a view does not need are not computed at all."""

from __future__ import annotations

import pytest
import torch

import kit
from kit import _attention
from tests.test_families import model_of

PROMPTS = ["The cat sat on the mat.", "Hi there"]


@pytest.mark.parametrize("variant", ["gpt2", "llama", "gemma2", "falcon"])
def test_patterns_of_chosen_heads_equal_those_of_a_full_trace(variant):
    model = model_of(variant)
    full = model.trace(PROMPTS, capture=["pattern", "attn_scores", "resid_post"])
    some = model.trace(PROMPTS, capture=["pattern", "attn_scores", "resid_post"], heads=[3, 1])
    assert some.pattern_heads == (1, 3) and full.pattern_heads is None
    for l in range(model.n_layers):
        assert some["pattern", l].shape == (2, 2, full.n_pos, full.n_pos)
        torch.testing.assert_close(some["pattern", l], full["pattern", l][:, [1, 3]], atol=1e-6, rtol=0)
        real = full.mask[:, None, :, None] & full.mask[:, None, None, :]
        torch.testing.assert_close(some["attn_scores", l][real.expand(-1, 2, -1, -1)],
                                   full["attn_scores", l][:, [1, 3]][real.expand(-1, 2, -1, -1)], atol=1e-5, rtol=0)
        torch.testing.assert_close(some["resid_post", l], full["resid_post", l], atol=2e-5, rtol=0)
    with torch.no_grad():
        plain = model.hf(input_ids=some.input_ids, attention_mask=some.mask.long()).logits
    torch.testing.assert_close(some.logits[some.mask], plain[some.mask], atol=2e-5, rtol=0)


def test_an_edit_of_the_scores_still_sees_every_head_and_keeps_the_chosen_ones():
    model = model_of("llama")
    ko = [kit.Knockout(0, query=-1, key=[0, 1])]
    full = model.trace(PROMPTS[0], capture=["pattern"], interventions=ko)
    some = model.trace(PROMPTS[0], capture=["pattern"], interventions=ko, heads=[2])
    torch.testing.assert_close(some["pattern", 0], full["pattern", 0][:, [2]], atol=0, rtol=0)
    torch.testing.assert_close(some.logits, full.logits, atol=2e-5, rtol=0)
    assert some["pattern", 0][0, 0, -1, :2].abs().max() == 0


def test_layers_and_heads_not_asked_for_are_not_computed(monkeypatch):
    model = model_of("llama")  # SDPA model: layers without patterns keep its kernel
    calls = {"eager": 0, "heads": []}
    real_math, real_heads = _attention._math, _attention._observe_heads

    def count_math(*args, **kwargs):
        calls["eager"] += 1
        return real_math(*args, **kwargs)

    def count_heads(*args, **kwargs):
        calls["heads"].append(args[-1])
        return real_heads(*args, **kwargs)

    monkeypatch.setattr(_attention, "_math", count_math)
    monkeypatch.setattr(_attention, "_observe_heads", count_heads)
    tr = model.trace(PROMPTS, capture=["pattern"], layers=[1], heads=[0])
    assert calls == {"eager": 0, "heads": [[0]]}  # one layer, one head; no eager attention anywhere
    assert tr["pattern", 1].shape[1] == 1
    calls["heads"].clear()
    model.trace(PROMPTS, capture=["pattern"], layers=[1])
    assert calls["eager"] == 1 and calls["heads"] == []  # all heads of layer 1 only


def test_bad_heads_are_refused():
    model = model_of("gpt2")
    with pytest.raises(ValueError, match="capture one of them"):
        model.trace("Hi", capture=["resid_post"], heads=[0])
    with pytest.raises(ValueError, match="valid heads are 0..3"):
        model.trace("Hi", capture=["pattern"], heads=[4])
    assert model.trace("Hi", capture=["pattern"], heads=[0, 1, 2, 3]).pattern_heads is None  # all heads


def test_a_view_of_every_head_refuses_a_trace_of_some_heads():
    from kit.widgets import AttentionViewer

    tr = model_of("gpt2").trace("Hi there", capture=["pattern"], heads=[1])
    with pytest.raises(ValueError, match=r"heads \[1\] only"):
        AttentionViewer(tr)


@pytest.mark.parametrize("variant", ["gpt2", "llama"])
@pytest.mark.parametrize("edited", ["pattern", "attn_scores"])
def test_an_edit_of_the_pattern_sees_every_head_even_when_few_are_captured(variant, edited):
    """``heads=`` narrows what is computed for the capture only: an edit of that layer's pattern or scores
    still gets (and changes) every head, so the logits and the captured heads equal a full trace's."""
    model = model_of(variant)
    shapes = []

    def edit(x):
        shapes.append(x.shape[1])
        if edited == "pattern":
            return x.flip(-1).tril()
        return x + torch.linspace(0, 8, x.shape[-1])  # favour later keys (masked ones stay masked)

    ivs = [kit.Edit(edited, 1, edit)]
    full = model.trace(PROMPTS, capture=["pattern", "attn_scores"], interventions=ivs)
    some = model.trace(PROMPTS, capture=["pattern", "attn_scores"], interventions=ivs, heads=[1])
    assert shapes == [model.n_heads, model.n_heads]
    torch.testing.assert_close(some["pattern", 1], full["pattern", 1][:, [1]], atol=1e-6, rtol=0)
    real = (full.mask[:, None, :, None] & full.mask[:, None, None, :]).expand(-1, 1, -1, -1)  # finite scores
    assert some["attn_scores", 1].shape == full["attn_scores", 1][:, [1]].shape  # the captured heads only
    torch.testing.assert_close(some["attn_scores", 1][real], full["attn_scores", 1][:, [1]][real], atol=1e-5, rtol=0)
    torch.testing.assert_close(some.logits, full.logits, atol=1e-5, rtol=0)
    plain = model.trace(PROMPTS, capture=["pattern"])
    assert (full["pattern", 1] - plain["pattern", 1]).abs().max() > 0.3  # the edit does change the pattern
