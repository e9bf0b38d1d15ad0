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
