"""The floors the teeth tests rely on: the sharpened models' signals, measured (see tests/fixtures_teeth.py)."""

from __future__ import annotations

import kit
import kit.analysis as A
from tests.fixtures_teeth import BOS, LONG, PROMPT, SUBJECT


def test_attention_is_sharp_and_every_head_moves_the_logits(teeth):
    for kind in ("gpt2", "llama", "bos"):
        m = teeth[kind]
        tr = m.trace(PROMPT)
        top = tr.stack("pattern")[:, 0].max(-1).values[..., 1:]  # [layer, head, query]: the largest weight per row
        assert float(top.mean()) > 0.6, kind  # measured 0.82 to 0.84 (uniform would be ~0.2)
        for layer in range(m.n_layers):
            for head in range(m.n_heads):
                moved = m.trace(PROMPT, capture=[], interventions=[kit.Ablate(layer, head)]).logits - tr.logits
                assert float(moved.abs().max()) > 1.0, (kind, layer, head)  # measured 1.9 to 20


def test_causal_tracing_grids_spread_far_above_float_error(teeth):
    ct = A.causal_traces(teeth["gpt2"], PROMPT, SUBJECT, samples=3)
    assert ct["resid"].clean - ct["resid"].corrupted > 0.2  # measured 0.63 vs 0.25
    for kind, t in ct.items():
        assert float(t.scores.max() - t.scores.min()) > 0.1, kind  # measured 0.21 to 0.51


def test_the_special_fixtures_are_what_they_claim(teeth):
    b_U = teeth["gpt2"].adapter.b_U
    assert b_U is not None and float(b_U.detach().std()) > 0.5  # an unembedding bias of std 1
    assert teeth["llama"].adapter.b_U is None
    bos = teeth["bos"]
    ids = bos.to_tokens(PROMPT)
    assert bos.to_str_tokens(ids)[0] == BOS and ids[0] == bos.tokenizer.bos_token_id
    assert teeth["gpt2"].to_str_tokens(PROMPT)[0] != BOS
    assert 64 < len(teeth["gpt2"].to_tokens(LONG)) <= teeth["gpt2"].n_ctx
    assert teeth["deep"].n_layers == 12
