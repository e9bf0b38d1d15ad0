"""Causal tracing: the public surface mutation testing found unguarded (issue 16).

Defaults (the window at real depths, the number of noise samples, silence), an answer that is not the
model's own prediction, the grid's ``peak`` and ``repr``, and that the cells whose value is known are
really skipped (the shortcuts are the module's speed; without them each would cost ``samples`` rows).
All on the sharpened ``teeth`` models (grids spread over O(0.1); ``tests/fixtures_teeth.py``).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import kit
import kit.analysis as A
from kit.analysis.causal_tracing import CausalTrace, _rows_per_pass, default_window
from tests.fixtures_teeth import PROMPT, SUBJECT


@pytest.mark.parametrize("n_layers, window", [(1, 1), (3, 1), (6, 1), (12, 2), (24, 5), (32, 7), (36, 8), (48, 10)])
def test_the_default_window_at_the_depths_of_real_models(n_layers, window):
    # GPT-2 small / medium / large / XL have 12 / 24 / 36 / 48 layers, Llama-2-7B 32: round(10 * n / 48)
    assert default_window("mlp", n_layers) == window
    assert default_window("attn", n_layers) == window
    assert default_window("resid", n_layers) == 1


def test_causal_trace_has_the_defaults_of_causal_traces_ten_samples(teeth):
    m = teeth["gpt2"]
    for kind in ("resid", "mlp"):
        one = A.causal_trace(m, PROMPT, SUBJECT, kind=kind)
        ten = A.causal_traces(m, PROMPT, SUBJECT, kinds=(kind,), samples=10)[kind]
        torch.testing.assert_close(one.scores, ten.scores, atol=0, rtol=0)
        assert one.corrupted == ten.corrupted
        assert A.causal_traces(m, PROMPT, SUBJECT, kinds=(kind,))[kind].corrupted == ten.corrupted
    eleven = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=11)
    assert abs(eleven.corrupted - one.corrupted) > 1e-3  # the number of samples shows (a near miss: 11)


def test_an_answer_that_is_not_the_prediction_is_the_answer_traced(teeth):
    m = teeth["gpt2"]
    top = A.causal_trace(m, PROMPT, SUBJECT, samples=2)
    clean = m.trace(PROMPT, capture=[]).logits[0, -1].softmax(-1)
    other = int(clean.argsort()[-2])  # the runner-up
    assert other != top.answer
    ct = A.causal_trace(m, PROMPT, SUBJECT, answer=other, samples=2)
    assert ct.answer == other
    assert ct.clean == pytest.approx(float(clean[other]), abs=1e-6)
    assert float((ct.scores - top.scores).abs().max()) > 1e-2  # another token's probabilities
    text = m.tokenizer.decode([other])
    if m.tokenizer(text, add_special_tokens=False)["input_ids"][:1] == [other]:
        assert A.causal_trace(m, PROMPT, SUBJECT, answer=text, samples=2).answer == other


def test_no_progress_bar_unless_asked(teeth, capsys):
    m = teeth["gpt2"]
    A.causal_trace(m, PROMPT, SUBJECT, samples=2)
    A.causal_traces(m, PROMPT, SUBJECT, samples=2)
    assert capsys.readouterr().err == ""
    A.causal_trace(m, PROMPT, SUBJECT, samples=2, progress=True)
    assert "causal trace" in capsys.readouterr().err


def test_peak_is_the_layer_and_position_of_the_largest_score():
    scores = torch.zeros(4, 7)
    scores[2, 5] = 0.9
    scores[3, 1] = 0.8
    ct = CausalTrace(scores, clean=0.95, corrupted=0.1, kind="mlp", window=2, subject=[1], tokens=list("abcdefg"),
                     answer=3)
    assert ct.peak() == (2, 5)
    scores[0, 6] = 1.0
    assert ct.peak() == (0, 6)
    assert repr(ct) == "CausalTrace(kind='mlp', window=2, grid=[4, 7], clean=0.95, corrupted=0.1, peak=(0, 6))"


def _rows_run(m, kinds, samples, **kw):
    """Rows of the (single) forward pass of a trace: 1 clean + samples noised + samples per cell run."""
    rows = []
    head = m.hf.get_output_embeddings()
    h = head.register_forward_pre_hook(lambda mod, args: rows.append(args[0].shape[0]))
    try:
        traces = A.causal_traces(m, PROMPT, SUBJECT, kinds=kinds, samples=samples, batch_size=10_000, **kw)
    finally:
        h.remove()
    return rows, traces


@pytest.mark.parametrize("kind", ["resid", "mlp", "attn"])
def test_cells_whose_value_is_known_are_not_run(teeth, kind):
    m = teeth["gpt2"]
    S, L = 2, m.n_layers
    rows, traces = _rows_run(m, (kind,), S, window=1)
    ct = traces[kind]
    T, first = len(ct.tokens), ct.subject[0]
    assert first > 0
    # run: layers 0..L-2 at every position from the subject on; in the last layer only the last position,
    # and for the residual not even that (restoring the whole last state gives the clean logits)
    n_run = (L - 1) * (T - first) + (kind != "resid")
    assert rows == [1 + S + S * n_run]
    if kind == "resid":
        assert ct.scores[-1, -1].item() == ct.clean
    assert (ct.scores[:, :first] == ct.corrupted).all() and (ct.scores[-1, first:-1] == ct.corrupted).all()


def test_with_a_window_the_last_layer_is_restored_only_at_the_last_position(teeth):
    m = teeth["gpt2"]  # 3 layers, window 3 centred: layer 0 -> [0, 1], 1 -> [0, 1, 2], 2 -> [1, 2]
    S = 2
    rows, traces = _rows_run(m, ("resid", "mlp"), S, window=3)
    T, first = len(traces["mlp"].tokens), traces["mlp"].subject[0]
    # resid: the last state is restored whole (clean, not run) at the last position of layers 1 and 2
    n_resid = 3 * (T - first) - 2
    n_mlp = 3 * (T - first)  # every span holds a layer below the last
    assert rows == [1 + S + S * (n_resid + n_mlp)]
    assert traces["resid"].scores[1, -1].item() == traces["resid"].clean
    assert traces["resid"].scores[2, -1].item() == traces["resid"].clean


def _dims(device: str, d_model=768, d_mlp=3072, n_heads=12):
    return SimpleNamespace(d_model=d_model, d_mlp=d_mlp, n_heads=n_heads, device=torch.device(device))


def test_the_default_pass_holds_about_512_mib_of_activations():
    # GPT-2 small at 10 tokens: 4 bytes x 10 x (8 x 768 + 4 x 3072 + 12 x 10) = 742,080 bytes a row
    assert _rows_per_pass(_dims("cpu"), 10, None) == 512 * 2**20 // 742_080 == 723
    assert _rows_per_pass(_dims("cuda"), 10, None) == 8 * 512 * 2**20 // 742_080 == 5787  # x8 on CUDA
    # the attention pattern grows with the square of the length: 4 x 1000 x (18432 + 12 x 1000) bytes a row
    assert _rows_per_pass(_dims("cpu"), 1000, None) == 512 * 2**20 // 121_728_000 == 4
    assert _rows_per_pass(_dims("cpu", 4096, 16384, 32), 4096, None) == 1  # never fewer than one row
    assert _rows_per_pass(_dims("cpu"), 10, 7) == 7  # a batch_size given is the cap


def test_a_batch_size_of_one_runs_one_cell_per_pass(teeth):
    m = teeth["gpt2"]
    passes = []
    h = m.hf.get_output_embeddings().register_forward_pre_hook(lambda mod, args: passes.append(args[0].shape[0]))
    try:
        one = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=2, batch_size=1)
    finally:
        h.remove()
    whole = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=2)
    torch.testing.assert_close(one.scores, whole.scores, atol=1e-6, rtol=0)
    assert passes == [1 + 2 + 2] * len(passes) and len(passes) > 10  # clean + 2 noised + one cell's 2 rows


def test_without_noise_nothing_is_corrupted_and_every_cell_is_the_clean_probability(teeth):
    m = teeth["gpt2"]
    for k, ct in A.causal_traces(m, PROMPT, SUBJECT, samples=2, noise=0.0).items():
        assert ct.corrupted == pytest.approx(ct.clean, abs=1e-6)
        torch.testing.assert_close(ct.scores, torch.full_like(ct.scores, ct.clean), atol=1e-5, rtol=0, msg=k)
    half = A.causal_trace(m, PROMPT, SUBJECT, samples=2, noise=0.5)
    full = A.causal_trace(m, PROMPT, SUBJECT, samples=2)
    assert abs(half.corrupted - full.corrupted) > 1e-2 and half.clean - half.corrupted > 0.1  # measured 0.042, 0.50


def test_subject_positions_given_as_indices_and_their_bounds(teeth):
    m = teeth["gpt2"]
    by_text = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=2)
    by_pos = A.causal_trace(m, PROMPT, [*reversed(by_text.subject), by_text.subject[0]], kind="mlp", samples=2)
    assert by_pos.subject == by_text.subject  # sorted, each once
    assert torch.equal(by_pos.scores, by_text.scores)
    T = len(by_text.tokens)
    assert A.causal_trace(m, PROMPT, [T - 1], samples=1).subject == [T - 1]
    assert A.causal_trace(m, PROMPT, [0], samples=1).subject == [0]
    for bad in ([T], [-1], []):
        with pytest.raises(ValueError, match=rf"^subject positions \[.*\] must lie in 0\.\.{T - 1}$"):
            A.causal_trace(m, PROMPT, bad, samples=1)


def test_the_window_may_span_every_layer_and_no_more(teeth):
    m = teeth["gpt2"]
    L = m.n_layers
    ct = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=1, window=L)
    assert ct.window == L
    with pytest.raises(ValueError, match=rf"^window must be an integer in 1\.\.{L}; got {L + 1}$"):
        A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=1, window=L + 1)


def test_kinds_given_as_one_string_or_repeated(teeth):
    m = teeth["gpt2"]
    one = A.causal_traces(m, PROMPT, SUBJECT, kinds="attn", samples=2)
    assert list(one) == ["attn"]
    rows, twice = _rows_run(m, ("attn", "attn", "mlp"), 2)
    assert list(twice) == ["attn", "mlp"] and torch.equal(twice["attn"].scores, one["attn"].scores)
    assert [ct.kind for ct in twice.values()] == ["attn", "mlp"]
    once, _ = _rows_run(m, ("attn", "mlp"), 2)
    assert rows == once  # a repeated kind is traced once


@pytest.mark.parametrize("kinds, match", [
    (("resid", "heads"), r"^kind='heads'; valid kinds: 'resid', 'mlp', 'attn'$"),
    ((), r"^kind=\[\]; valid kinds: 'resid', 'mlp', 'attn'$"),
])
def test_unknown_kinds_are_refused_by_name(teeth, kinds, match):
    with pytest.raises(ValueError, match=match):
        A.causal_traces(teeth["gpt2"], PROMPT, SUBJECT, kinds=kinds)
    with pytest.raises(ValueError, match=r"^kind='heads'; valid kinds: 'resid', 'mlp', 'attn'$"):
        A.causal_trace(teeth["gpt2"], PROMPT, SUBJECT, kind="heads")


def test_the_last_block_and_the_unembedding_finish_only_the_last_position(teeth):
    m = teeth["llama"]
    seen = {}
    last = m.n_layers - 1
    hooks = [mod.register_forward_hook(lambda mod, args, out, name=name: seen.setdefault(name, out.shape) and None)
             for name, mod in (("o_proj", m.adapter.o_proj(last)), ("mlp", m.adapter.mlp(last)),
                               ("mlp0", m.adapter.mlp(0)), ("logits", m.hf.get_output_embeddings()))]
    try:
        ct = A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=2)
    finally:
        for h in hooks:
            h.remove()
    assert seen["o_proj"][1] == 1 and seen["mlp"][1] == 1 and seen["logits"][1] == 1
    assert seen["mlp0"][1] == len(ct.tokens)  # the other blocks see every position


def test_a_trace_given_for_the_model_is_refused_by_name(teeth):
    tr = teeth["gpt2"].trace(PROMPT, capture=[])
    for fn in (A.causal_trace, A.causal_traces):
        with pytest.raises(TypeError, match=r"^causal_trace takes a kit model from kit\.load\(\.\.\.\); got Trace"):
            fn(tr, PROMPT, SUBJECT)


@pytest.mark.parametrize("kw, match", [
    (dict(noise=-0.5), r"^noise must be >= 0; got -0\.5$"),
    (dict(batch_size=0), r"^batch_size must be an integer >= 1; got 0$"),
    (dict(samples=0), r"^samples must be an integer >= 1; got 0$"),
])
def test_out_of_range_arguments_are_refused_with_their_bounds(teeth, kw, match):
    with pytest.raises(ValueError, match=match):
        A.causal_traces(teeth["gpt2"], PROMPT, SUBJECT, **kw)


@pytest.mark.parametrize("batch_size, cells", [(9, 3), (10, 3), (8, 2)])
def test_batch_size_caps_the_rows_of_each_pass(teeth, batch_size, cells):
    """1 clean + S noised rows + S rows per cell: with S = 2, 9 rows hold 3 cells (and so do 10), 8 rows 2."""
    m = teeth["gpt2"]
    passes = []
    h = m.hf.get_output_embeddings().register_forward_pre_hook(lambda mod, args: passes.append(args[0].shape[0]))
    try:
        A.causal_trace(m, PROMPT, SUBJECT, kind="mlp", samples=2, batch_size=batch_size)
    finally:
        h.remove()
    assert len(passes) > 3 and max(passes) <= batch_size
    assert passes[:-1] == [1 + 2 + 2 * cells] * (len(passes) - 1)


def test_the_default_answer_is_the_clean_prediction_even_where_the_noise_changes_it(teeth):
    """Without ``answer``, the traced token is the clean prompt's top prediction, not a noised copy's. On the
    BOS model the first noise sample turns the prediction to another token (checked here), so reading the
    answer from any row but the clean one would show."""
    m = teeth["bos"]
    ids = m.to_tokens(PROMPT)
    subj = A.subject_positions(m, PROMPT, SUBJECT)
    std = float(m.adapter.embed.weight.detach().float().std())
    eps = torch.randn(3, len(subj), m.d_model, generator=torch.Generator().manual_seed(0)) * 3.0 * std  # seed 0

    def noise(x):
        x = x.clone()
        x[:, subj] += eps
        return x

    clean = int(m.trace(ids, capture=[]).logits[0, -1].argmax())
    noised = m.trace(ids.expand(3, -1), capture=[], interventions=[kit.Edit("resid_pre", 0, noise)]).logits[:, -1]
    assert int(noised[0].argmax()) != clean  # the case under test
    for kinds in (("resid",), ("resid", "mlp", "attn")):
        for ct in A.causal_traces(m, PROMPT, SUBJECT, kinds=kinds, samples=3).values():
            assert ct.answer == clean
    assert A.causal_trace(m, PROMPT, SUBJECT, samples=3).answer == clean
