"""Causal tracing's fan-out, on a parallel-block model too (mutation testing, issue 16).

The module's speed comes from starting a cell's rows as late as possible: a restored residual or MLP
output (or an attention output in a parallel block, GPT-NeoX / Pythia) changes only the block's output,
so those rows start after the block; an attention output in a sequential block feeds that block's MLP,
so its rows start at the block's input. A mutant that starts rows too early gives the right grid slowly;
one that starts them too late, or that takes the delta path in a sequential block, gives a wrong grid.
``teeth["gpt2"]`` is sequential; ``neox`` below is the sharpened parallel-block GPT-NeoX (the plain tiny
one's grid spreads by ~1e-5, the loop tolerance, so it could not tell a dropped restore).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig

import kit
import kit.analysis as A
from kit.analysis.causal_tracing import _Cell, _FanOut
from tests import tiny
from tests.fixtures_teeth import PROMPT, SUBJECT, save_tokenizer, sharpen
from tests.keyword_calls import called_by_keyword
from tests.test_causal_tracing import loop_grid

ATOL = 1e-5  # batched grid vs one forward pass per cell (measured at most 1.1e-7 on neox)
EFFECT = 0.02  # the largest |score - corrupted| of each neox grid is above this (measured 0.036 mlp, 0.16 resid/attn)


@pytest.fixture(scope="module")
def neox(tmp_path_factory):
    """Sharpened 3-layer GPT-NeoX with parallel attention and MLP (``tests/fixtures_teeth.sharpen``)."""
    out = tmp_path_factory.mktemp("neox_teeth")
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                        max_position_embeddings=64, rotary_pct=0.5, use_parallel_residual=True,
                        vocab_size=tiny.VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    hf = AutoModelForCausalLM.from_config(cfg)
    sharpen(hf, 0)
    hf.save_pretrained(out, safe_serialization=True)
    save_tokenizer(out, bos=False)
    m = kit.load(out, device="cpu")
    assert m.adapter.parallel
    return m


def test_on_a_parallel_block_model_every_cell_equals_the_loop(neox):
    traces = A.causal_traces(neox, PROMPT, SUBJECT, samples=3, window=2, batch_size=13)
    for k, ct in traces.items():
        ref = loop_grid(neox, PROMPT, SUBJECT, k, samples=3, window=2, answer=ct.answer)
        assert float((ct.scores - ct.corrupted).abs().max()) > EFFECT, k
        torch.testing.assert_close(ct.scores, ref, atol=ATOL, rtol=0, msg=k)


def _start(kind: str, layer: int, parallel: bool) -> int:
    """The block whose input a window-1 cell's rows enter first (the module docstring's rule)."""
    return layer if kind == "attn" and not parallel else layer + 1


@pytest.mark.parametrize("which", ["gpt2", "neox"])
@pytest.mark.parametrize("kind", ["resid", "mlp", "attn"])
def test_a_cells_rows_start_at_the_first_block_its_restore_can_change(teeth, neox, which, kind):
    m = neox if which == "neox" else teeth["gpt2"]
    S, L = 2, m.n_layers
    rows: dict[int, int] = {}  # block -> rows its attention ran on

    def count(layer):
        def hook(module, args, out):
            rows[layer] = (out[0] if isinstance(out, tuple) else out).shape[0]
        return hook

    hooks = [m.adapter.attn(l).register_forward_hook(count(l)) for l in range(L)]
    try:
        ct = A.causal_traces(m, PROMPT, SUBJECT, kinds=(kind,), samples=S, window=1, batch_size=10_000)[kind]
    finally:
        for h in hooks:
            h.remove()
    T, first = len(ct.tokens), ct.subject[0]
    cells = [(l, p) for l in range(L - 1) for p in range(first, T)] + ([(L - 1, T - 1)] if kind != "resid" else [])
    want = {b: 1 + S + S * sum(_start(kind, l, m.adapter.parallel) <= b for l, _ in cells) for b in range(L)}
    assert rows == want
    if kind == "attn":
        assert want[0] == 1 + S + S * (0 if m.adapter.parallel else T - first)  # the rule is not vacuous


@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_with_eager_attention_the_per_row_mask_follows_the_fanned_out_rows(teeth, which):
    """Eager attention (Gemma 2's default, and any model without an SDPA kernel) passes each block a
    4-d mask ``[batch, 1, query, key]`` of the input batch; the fan-out must index it by input row.
    One noise sample (2 input rows) is the edge case."""
    m = teeth[which]
    m.hf.set_attn_implementation("eager")
    try:
        seen = []
        h = m.adapter.blocks[1].register_forward_pre_hook(
            lambda mod, args, kw: seen.append(kw.get("attention_mask", args[2] if len(args) > 2 else None)),
            with_kwargs=True)
        try:
            traces = A.causal_traces(m, PROMPT, SUBJECT, kinds=("resid", "attn"), samples=1, window=2, batch_size=7)
        finally:
            h.remove()
        assert any(x is not None and x.ndim == 4 and x.shape[0] == 2 for x in seen)  # the case under test
        for k, ct in traces.items():
            ref = loop_grid(m, PROMPT, SUBJECT, k, samples=1, window=2, answer=ct.answer)
            torch.testing.assert_close(ct.scores, ref, atol=ATOL, rtol=0, msg=k)
            assert float((ct.scores - ct.corrupted).abs().max()) > EFFECT
    finally:
        m.hf.set_attn_implementation("sdpa")


def test_cells_out_of_fan_out_order_are_refused(teeth):
    m = teeth["gpt2"]
    late, early = _Cell("mlp", 1, 2, (1,), 2, True), _Cell("attn", 0, 2, (0,), 0)
    args = (2, torch.tensor([1]), torch.zeros(2, 1, m.d_model))
    with pytest.raises(ValueError, match="^cells must come sorted by their fan-out point$"):
        _FanOut(m, [late, early], *args)
    assert _FanOut(m, [early, late], *args).fan == {0: 1, 2: 1}


@pytest.mark.parametrize("which", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_blocks_and_last_sublayers_called_by_keyword_trace_alike(teeth, which, attn):
    """Models whose code calls ``block(hidden_states=h, attention_mask=...)`` and passes the last block's
    output projection and MLP their input by keyword: the noise, the fan-out (with eager attention's 4-d
    mask as a keyword too) and the last-position shortcut must act on the keyword call as on a positional one."""
    m = teeth[which]
    a = m.adapter
    m.hf.set_attn_implementation(attn)
    try:
        want = A.causal_traces(m, PROMPT, SUBJECT, samples=2, window=2, batch_size=9)
        modules = [*a.blocks, a.o_proj(m.n_layers - 1), a.mlp(m.n_layers - 1)]
        seen, widths = [], []
        last = [a.o_proj(m.n_layers - 1), a.mlp(m.n_layers - 1)]
        with called_by_keyword(modules):
            spies = [mod.register_forward_pre_hook(lambda mod, args, kw: seen.append(args), with_kwargs=True)
                     for mod in last]
            spies += [mod.register_forward_hook(lambda mod, args, out: widths.append(out.shape[1])) for mod in last]
            try:
                got = A.causal_traces(m, PROMPT, SUBJECT, samples=2, window=2, batch_size=9)
            finally:
                for h in spies:
                    h.remove()
        assert seen and all(args == () for args in seen)  # the calls were keyword calls
        assert widths and set(widths) == {1}  # ... and the last block still finished the last position only
        for k, ct in got.items():
            assert float((ct.scores - ct.corrupted).abs().max()) > EFFECT, k
            torch.testing.assert_close(ct.scores, want[k].scores, atol=ATOL, rtol=0, msg=k)
            torch.testing.assert_close(ct.corrupted, want[k].corrupted, atol=ATOL, rtol=0, msg=k)
            assert ct.answer == want[k].answer
        ref = loop_grid(m, PROMPT, SUBJECT, "mlp", samples=2, window=2, answer=got["mlp"].answer)
        torch.testing.assert_close(got["mlp"].scores, ref, atol=ATOL, rtol=0)
    finally:
        m.hf.set_attn_implementation("sdpa")
