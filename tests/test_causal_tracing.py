"""Causal tracing: the fanned-out, shortcut grid equals a loop of one forward pass per cell."""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A

PROMPT, SUBJECT = "The cat sat on the mat.", " cat"
POINT = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}


def loop_grid(m, prompt, subject, kind, samples, window, answer, seed=0, positions=None):
    """The reference: for each cell, one forward pass of the noised copies with the clean state(s) patched in
    (``positions``: only those columns; the others stay NaN)."""
    ids = m.to_tokens(prompt)
    subj = A.subject_positions(m, prompt, subject)
    std = float(m.adapter.embed.weight.detach().float().std())
    eps = torch.randn(samples, len(subj), m.d_model, generator=torch.Generator().manual_seed(seed)) * 3.0 * std
    clean = m.trace(ids, capture=[POINT[kind]])

    def noise(x):
        x = x.clone()
        x[:, subj] += eps
        return x

    L, T = m.n_layers, len(ids)
    grid = torch.full((L, T), float("nan"))
    for layer in range(L):
        lo = layer - window // 2
        span = [x for x in range(lo, lo + window) if 0 <= x < L]
        for pos in range(T) if positions is None else positions:
            ivs = [kit.Edit("resid_pre", 0, noise)] + [kit.Patch(POINT[kind], x, clean, pos=pos) for x in span]
            out = m.trace(ids.expand(samples, -1), capture=[], interventions=ivs)
            grid[layer, pos] = out.logits[:, -1].softmax(-1)[:, answer].mean()
    return grid


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "gpt_neox_seq", "llama"])
def test_every_cell_equals_a_forward_pass_per_cell(tiny_models, family):
    m = tiny_models[family]
    traces = A.causal_traces(m, PROMPT, SUBJECT, samples=3, window=2, batch_size=13)  # 3 cells per pass
    for kind, ct in traces.items():
        ref = loop_grid(m, PROMPT, SUBJECT, kind, samples=3, window=2, answer=ct.answer)
        assert ct.scores.shape == ref.shape
        torch.testing.assert_close(ct.scores, ref, atol=1e-5, rtol=0)


def test_default_windows_match_the_loop_too(tiny_models):
    m = tiny_models["gpt2"]
    for kind in ("resid", "mlp"):
        ct = A.causal_trace(m, PROMPT, SUBJECT, kind=kind, samples=2)
        ref = loop_grid(m, PROMPT, SUBJECT, kind, samples=2, window=ct.window, answer=ct.answer)
        torch.testing.assert_close(ct.scores, ref, atol=1e-5, rtol=0)


def test_cells_that_restore_nothing_score_the_corrupted_baseline_exactly(tiny_models):
    m = tiny_models["gpt2"]
    subj = A.subject_positions(m, PROMPT, SUBJECT)
    assert subj[0] > 0, "the test needs a token before the subject"
    for kind in ("resid", "mlp", "attn"):
        ct = A.causal_trace(m, PROMPT, SUBJECT, kind=kind, samples=3, window=1)
        assert (ct.scores[:, : subj[0]] == ct.corrupted).all()  # before the subject: clean state == corrupted state
        assert (ct.scores[-1, :-1] == ct.corrupted).all()  # the last layer feeds only its own position
        # and a real forward pass agrees within float tolerance
        ref = loop_grid(m, PROMPT, SUBJECT, kind, samples=3, window=1, answer=ct.answer, positions=range(subj[0]))
        torch.testing.assert_close(ref[:, : subj[0]], torch.full_like(ref[:, : subj[0]], ct.corrupted), atol=1e-6,
                                   rtol=0)
    ct = A.causal_trace(m, PROMPT, SUBJECT, kind="resid", samples=3)
    assert ct.scores[-1, -1].item() == ct.clean  # the whole last residual state restores the clean logits
    assert ct.clean == pytest.approx(float(m.trace(PROMPT, capture=[]).logits[0, -1].softmax(-1)[ct.answer]), abs=1e-6)


def test_kinds_traced_together_equal_kinds_traced_alone(tiny_models):
    m = tiny_models["llama"]
    together = A.causal_traces(m, PROMPT, SUBJECT, samples=2)
    for kind in A.causal_tracing.KINDS:
        alone = A.causal_trace(m, PROMPT, SUBJECT, kind=kind, samples=2, batch_size=7)
        torch.testing.assert_close(together[kind].scores, alone.scores, atol=1e-6, rtol=0)
        assert (together[kind].clean, together[kind].window) == pytest.approx((alone.clean, alone.window), abs=1e-6)


def test_bad_arguments_name_what_is_valid(tiny_models):
    m = tiny_models["gpt2"]
    with pytest.raises(ValueError, match="valid kinds"):
        A.causal_traces(m, PROMPT, SUBJECT, kinds=("resid", "heads"))
    with pytest.raises(ValueError, match="batch_size"):
        A.causal_trace(m, PROMPT, SUBJECT, batch_size=0)
    with pytest.raises(ValueError, match="window"):
        A.causal_trace(m, PROMPT, SUBJECT, window=0)
    with pytest.raises(ValueError, match="subject positions"):
        A.causal_trace(m, PROMPT, [99])
