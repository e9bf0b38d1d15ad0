"""Hooks of one trace: an edit acts whatever is captured; every hook goes away, even when attaching fails.

Runs on the sharpened models of ``tests/fixtures_teeth.py``: there an intervention moves the logits
by O(1) (floors measured in ``tests/test_fixtures_teeth.py``), so "changed" and "unchanged" are far apart.
"""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A
from kit.names import NAMES
from tests.fixtures_teeth import PROMPT
from tests.keyword_calls import called_by_keyword

# Every capture the public API accepts, one name at a time, plus nothing and everything.
CAPTURES = [[], *[[n] for n in NAMES], None]
MOVED = 1.0  # an intervention below must move some logit by more than this (measured: 3.1 to 22.6)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def _attn_impls(model) -> list[str]:
    return [m.config._attn_implementation for m in model.hf.modules() if getattr(m, "config", None) is not None]


def _interventions(m):
    vec = torch.linspace(-2, 2, m.d_model)
    p = m.trace(PROMPT, capture=["pattern"])["pattern", 0][0, 1, -1, :-1]  # head 0.1, last query
    top = int(p.argmax())  # the key it attends most (not itself): knocking it out must matter
    return {
        "ablate": kit.Ablate(1, 2),
        "clamp": kit.Clamp(0, [1, 4], 3.0),
        "steer": kit.Steer(vec, 1, scale=-1.5),
        "knockout": kit.Knockout([0, 1, 2], query=-1, key=slice(0, -1)),
        "knockout_head": kit.Knockout(0, query=-1, key=top, head=1),
        "edit_scores": kit.Edit("attn_scores", 1, lambda s: s * 0.25),
        "edit_pattern": kit.Edit("pattern", 1, lambda p: p.flip(-1).tril()),
    }


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("which", ["ablate", "clamp", "steer", "knockout", "knockout_head", "edit_scores",
                                   "edit_pattern"])
def test_an_intervention_changes_the_logits_whatever_is_captured(teeth, kind, which):
    m = teeth[kind]
    iv = _interventions(m)[which]
    base = m.trace(PROMPT, capture=[]).logits
    reference = m.trace(PROMPT, capture=None, interventions=[iv]).logits
    assert (reference - base).abs().max() > MOVED
    for capture in CAPTURES:
        got = m.trace(PROMPT, capture=capture, interventions=[iv]).logits
        # measured: the kit's eager attention against SDPA differs by < 2e-5 on these logits (O(10))
        torch.testing.assert_close(got, reference, atol=1e-4, rtol=0, msg=f"capture={capture}")


def test_attention_knockout_after_differs_from_before_and_equals_a_knockout_trace(teeth):
    m = teeth["gpt2"]
    res = A.attention_knockout(m, PROMPT, key=[0, 1, 2, 3])
    assert float((res["before"] - res["after"]).abs().max()) > 0.1  # measured: 0.56
    tr = m.trace(PROMPT, capture=["pattern"], interventions=[kit.Knockout([0, 1, 2], -1, [0, 1, 2, 3])])
    expected = tr.logits[0, -1].softmax(-1)[res["answer"][0]]
    assert float(res["after"][0]) == pytest.approx(float(expected), abs=1e-5)
    assert float(res["before"][0]) == pytest.approx(float(m.trace(PROMPT, capture=[]).logits[0, -1].softmax(-1).max()),
                                                    abs=1e-6)


@pytest.mark.parametrize("fail_at", [1, 3, 6])
def test_hooks_are_removed_when_attaching_fails_midway(teeth, monkeypatch, fail_at):
    m = teeth["gpt2"]
    before, impls = _hooks(m), _attn_impls(m)
    calls = {"n": 0}
    real_post, real_pre = torch.nn.Module.register_forward_hook, torch.nn.Module.register_forward_pre_hook

    def counted(real):
        def register(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise RuntimeError("attaching failed")
            return real(self, *args, **kwargs)
        return register

    monkeypatch.setattr(torch.nn.Module, "register_forward_hook", counted(real_post))
    monkeypatch.setattr(torch.nn.Module, "register_forward_pre_hook", counted(real_pre))
    with pytest.raises(RuntimeError, match="attaching failed"):
        m.trace(PROMPT, interventions=[kit.Knockout(0, -1, 0), kit.Ablate(1, 0), kit.Clamp(2, 0)])
    assert calls["n"] == fail_at  # the failure came while attaching, before the forward pass
    monkeypatch.undo()
    assert _hooks(m) == before
    assert _attn_impls(m) == impls
    clean = m.trace(PROMPT, capture=[]).logits  # and the model is whole: a fresh trace is unedited
    torch.testing.assert_close(clean, m.hf(m.to_tokens(PROMPT)[None]).logits.detach(), atol=1e-5, rtol=0)


def test_hooks_are_removed_when_the_forward_fails(teeth):
    m = teeth["llama"]
    before, impls = _hooks(m), _attn_impls(m)

    def boom(x):
        raise RuntimeError("boom")

    for point in ("attn_scores", "pattern", "mlp_post", "resid_pre"):
        with pytest.raises(RuntimeError, match="boom"):
            m.trace(PROMPT, interventions=[kit.Ablate(0, 0), kit.Edit(point, 1, boom)])
        assert _hooks(m) == before and _attn_impls(m) == impls


def test_a_trace_after_an_intervention_is_unedited(teeth):
    m = teeth["gpt2"]
    base = m.trace(PROMPT)
    for iv in _interventions(m).values():
        m.trace(PROMPT, interventions=[iv])
        again = m.trace(PROMPT)
        torch.testing.assert_close(again.logits, base.logits, atol=0, rtol=0)
        torch.testing.assert_close(again["pattern", 1], base["pattern", 1], atol=0, rtol=0)


@pytest.mark.parametrize("capture", [[], ["z"], None])
def test_a_query_with_every_key_knocked_out_sees_nothing_whatever_is_captured(teeth, capture):
    m = teeth["gpt2"]
    ids = m.to_tokens(PROMPT)[None]
    later = ids.clone()
    later[0, 1:] = later[0, 1:].flip(-1)  # other tokens after position 0
    ko = [kit.Knockout(1, query=0, key=0)]  # query 0 can only see key 0: nothing is left
    tr, tr_later = m.trace(ids, capture=capture, interventions=ko), m.trace(later, capture=capture, interventions=ko)
    torch.testing.assert_close(tr_later.logits[0, 0], tr.logits[0, 0], atol=1e-5, rtol=0)  # no future leaks in
    silenced = m.trace(ids, capture=[], interventions=[kit.Ablate(1, list(range(m.n_heads)), pos=0)])
    torch.testing.assert_close(tr.logits[0, 0], silenced.logits[0, 0], atol=1e-5, rtol=0)  # = no head output there
    assert float((tr.logits[0, 0] - m.trace(ids, capture=[]).logits[0, 0]).abs().max()) > 1.0


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_blocks_called_with_keyword_hidden_states_are_captured_and_edited_alike(teeth, kind):
    """Some models' code calls its blocks as ``block(hidden_states=h, ...)``: the residual stream is then
    a keyword, and the capture and edits of ``resid_pre`` must act on it just as on a positional call."""
    m = teeth[kind]
    ivs = [kit.Edit("resid_pre", 0, lambda x: x * 0.5), kit.Edit("resid_pre", 1, lambda x: x.flip(1))]
    base = m.trace(PROMPT, capture=[]).logits
    for interventions in ([], ivs):
        want = m.trace(PROMPT, capture=["resid_pre"], interventions=interventions)
        with called_by_keyword(m.adapter.blocks):
            got = m.trace(PROMPT, capture=["resid_pre"], interventions=interventions)
            edit_only = m.trace(PROMPT, capture=[], interventions=interventions).logits
        for l in range(m.n_layers):
            torch.testing.assert_close(got["resid_pre", l], want["resid_pre", l], atol=1e-5, rtol=0)
        torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(edit_only, want.logits, atol=1e-4, rtol=0)
        assert ((got.logits - base).abs().max() > MOVED) == bool(interventions)
    assert _hooks(m) == 0


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_projections_called_by_keyword_are_captured_and_edited_alike(teeth, kind):
    """The attention output projection (``z``) and the MLP's down projection (``mlp_post``) read their
    input from a keyword call too (``Linear`` takes ``input=``, GPT-2's ``Conv1D`` ``x=``)."""
    m = teeth[kind]
    a = m.adapter
    ivs = [kit.Ablate(1, 2), kit.Clamp(0, [1, 4], 3.0)]  # edits of z and mlp_post
    base = m.trace(PROMPT, capture=[]).logits
    modules = [mod for l in range(m.n_layers) for mod in (a.o_proj(l), a.down_proj(l))]
    for interventions in ([], ivs):
        want = m.trace(PROMPT, capture=["z", "mlp_post"], interventions=interventions)
        with called_by_keyword(modules):
            got = m.trace(PROMPT, capture=["z", "mlp_post"], interventions=interventions)
        for name in ("z", "mlp_post"):
            for l in range(m.n_layers):
                torch.testing.assert_close(got[name, l], want[name, l], atol=1e-5, rtol=0)
        torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
        assert ((got.logits - base).abs().max() > MOVED) == bool(interventions)
    assert _hooks(m) == 0


def test_captures_and_logits_land_on_the_capture_device():
    """``capture_device`` moves every capture (and the logits) off the compute device as it is recorded;
    the ``meta`` device stands in for a second device on a CPU-only host."""
    from tests import families as F
    from tests.test_families import _tokenizer

    m = kit.Model(F.build("gpt2"), _tokenizer(), name="gpt2", capture_device="meta")
    tr = m.trace("Hi there", capture=["resid_pre", "pattern", "z", "mlp_post", "attn_scale"])
    assert tr.logits.device.type == "meta"
    assert {t.device.type for t in tr._store.values()} == {"meta"}
    here = kit.Model(F.build("gpt2"), _tokenizer(), name="gpt2", capture_device="cpu").trace("Hi there")
    assert {t.device.type for t in here._store.values()} == {"cpu"} and here.logits.isfinite().all()
