"""Bad input to every public analysis function: a clear error naming what is valid, and no state changed.

One table row per (function, bad input). Each row runs on the tiny GPT-2 of ``tests/tiny.py``
(3 layers, 4 heads, d_model 32, d_mlp 64, n_ctx 64, vocab 300) and must raise the given error with
a message matching the pattern; afterwards the model has no hook left on any module, still uses
its SDPA attention, stays in eval mode, and its weights are unchanged.
``test_every_public_function_has_a_row`` fails when a function is added to ``kit.analysis`` without one.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

import kit
import kit.analysis as A

CLEAN = "The cat sat on the mat."  # 12 tokens with the tiny tokenizer
NAN = float("nan")


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def _weights_sum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.hf.parameters()))


@pytest.fixture(scope="module")
def ctx(tiny_models):
    m = tiny_models["gpt2"]
    g = torch.Generator().manual_seed(0)
    acts = torch.rand(64, 40, generator=g)  # [d_mlp, n_tokens]
    nan_acts = acts.clone()
    nan_acts[3, 7] = NAN
    poisoned = m.trace(CLEAN)
    poisoned._store[("resid_post", 1)] = poisoned._store[("resid_post", 1)].clone()
    poisoned._store[("resid_post", 1)][0, 2, 0] = NAN
    return SimpleNamespace(
        m=m, tr=m.trace(CLEAN), tr_logits=m.trace(CLEAN, capture=[]), poisoned=poisoned, acts=acts,
        nan_acts=nan_acts, labels=torch.arange(40) % 3, z=torch.ones(64), long=" word" * 80,
    )


def _steer_result(c):
    return A.steer_at_matched_kl(c.m, [CLEAN], 0, torch.ones(64), 0.05, concept=[" cat"], max_evals=2)


ROWS = [
    # head scores
    ("prev_token_scores", "a trace instead of a model", lambda c: A.prev_token_scores(c.tr), TypeError, r"kit model.*pass tr\.model"),
    ("prev_token_scores", "a model name", lambda c: A.prev_token_scores("gpt2"), TypeError, r"kit\.load\('gpt2'\)"),
    ("prev_token_scores", "seq_len 0", lambda c: A.prev_token_scores(c.m, seq_len=0), ValueError, r"seq_len must be an integer in 2\.\.64"),
    ("prev_token_scores", "seq_len over n_ctx", lambda c: A.prev_token_scores(c.m, seq_len=65), ValueError, r"2\.\.64"),
    ("prev_token_scores", "batch 0", lambda c: A.prev_token_scores(c.m, batch=0), ValueError, r"batch must be an integer >= 1"),
    ("induction_scores", "repeated sequence over n_ctx", lambda c: A.induction_scores(c.m, seq_len=40), ValueError, r"seq_len must be an integer in 2\.\.32"),
    ("induction_scores", "a float seq_len", lambda c: A.induction_scores(c.m, seq_len=2.5), TypeError, "seq_len must be an integer"),
    ("repeated_tokens", "seq_len 1", lambda c: A.repeated_tokens(c.m, seq_len=1), ValueError, r"2\.\.32"),
    ("copying_scores", "a trace instead of a model", lambda c: A.copying_scores(c.tr), TypeError, "kit model"),
    ("composition_scores", "unknown kind", lambda c: A.composition_scores(c.m, kind="x"), ValueError, "valid kinds: 'q', 'k', 'v'"),
    # logit lens and attribution
    ("logit_lens", "a model instead of a trace", lambda c: A.logit_lens(c.m), TypeError, r"Trace.*model\.trace\(prompt\)"),
    ("logit_lens", "k 0", lambda c: A.logit_lens(c.tr, k=0), ValueError, r"1\.\.300"),
    ("logit_lens", "target id out of range", lambda c: A.logit_lens(c.tr, target=300), ValueError, r"valid ids are 0\.\.299"),
    ("logit_lens", "empty target text", lambda c: A.logit_lens(c.tr, target=""), ValueError, "produced no tokens"),
    ("logit_lens", "no resid_post captured", lambda c: A.logit_lens(c.tr_logits), ValueError, "captured 'resid_post'"),
    ("logit_lens", "NaN in the residual stream", lambda c: A.logit_lens(c.poisoned), ValueError, r"resid_post.*layer 1.*NaN"),
    ("direct_logit_attribution", "token id out of range", lambda c: A.direct_logit_attribution(c.tr, 999), ValueError, r"0\.\.299"),
    ("direct_logit_attribution", "position out of range", lambda c: A.direct_logit_attribution(c.tr, 5, pos=12), ValueError, "position 12 is out of range.*12 tokens"),
    ("direct_logit_attribution", "targets for the wrong batch", lambda c: A.direct_logit_attribution(c.tr, [5, 6]), ValueError, "2 targets given for 1 prompts"),
    ("direct_logit_attribution", "missing captures", lambda c: A.direct_logit_attribution(c.tr_logits, 5), ValueError, "missing"),
    ("direct_logit_attribution", "NaN in the residual stream", lambda c: A.direct_logit_attribution(c.poisoned, 5), ValueError, "NaN"),
    ("direct_logit_attribution", "a model instead of a trace", lambda c: A.direct_logit_attribution(c.m, 5), TypeError, "Trace"),
    # patching, causal tracing, knockout
    ("activation_patching", "empty clean prompt", lambda c: A.activation_patching(c.m, "", CLEAN, 5), ValueError, "empty"),
    ("activation_patching", "whitespace-only corrupted prompt", lambda c: A.activation_patching(c.m, CLEAN, "  \t", 5), ValueError, "whitespace"),
    ("activation_patching", "prompt over the context", lambda c: A.activation_patching(c.m, c.long, c.long, 5), ValueError, "n_ctx=64"),
    ("activation_patching", "different token lengths", lambda c: A.activation_patching(c.m, CLEAN, "The dog", 5), ValueError, r"same token length \(12 vs 5\)"),
    ("activation_patching", "unknown kind", lambda c: A.activation_patching(c.m, CLEAN, CLEAN, 5, kind="resids"), ValueError, "valid kinds: resid, attn, mlp, heads"),
    ("activation_patching", "answer id out of range", lambda c: A.activation_patching(c.m, CLEAN, CLEAN, 300), ValueError, r"0\.\.299"),
    ("activation_patching", "batch_size 0", lambda c: A.activation_patching(c.m, CLEAN, CLEAN, 5, batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    ("activation_patching", "two prompts at once", lambda c: A.activation_patching(c.m, [CLEAN, CLEAN], CLEAN, 5), ValueError, "one prompt"),
    ("causal_trace", "subject not in the prompt", lambda c: A.causal_trace(c.m, CLEAN, "dog"), ValueError, "does not occur"),
    ("causal_trace", "empty subject", lambda c: A.causal_trace(c.m, CLEAN, ""), ValueError, "subject is empty"),
    ("causal_trace", "subject position out of range", lambda c: A.causal_trace(c.m, CLEAN, [12]), ValueError, r"0\.\.11"),
    ("causal_trace", "unknown kind", lambda c: A.causal_trace(c.m, CLEAN, "cat", kind="mlps"), ValueError, "valid kinds"),
    ("causal_trace", "samples 0", lambda c: A.causal_trace(c.m, CLEAN, "cat", samples=0), ValueError, "samples must be"),
    ("causal_trace", "window 0", lambda c: A.causal_trace(c.m, CLEAN, "cat", window=0), ValueError, r"window must be an integer in 1\.\.3"),
    ("causal_trace", "NaN noise", lambda c: A.causal_trace(c.m, CLEAN, "cat", noise=NAN), ValueError, "noise must be a finite number"),
    ("causal_trace", "empty prompt", lambda c: A.causal_trace(c.m, " ", "cat"), ValueError, "whitespace"),
    ("causal_traces", "unknown kind among several", lambda c: A.causal_traces(c.m, CLEAN, "cat", kinds=["resid", "heads"]), ValueError, "valid kinds"),
    ("causal_traces", "no kinds", lambda c: A.causal_traces(c.m, CLEAN, "cat", kinds=[]), ValueError, "valid kinds"),
    ("causal_traces", "batch_size 0", lambda c: A.causal_traces(c.m, CLEAN, "cat", batch_size=0), ValueError, "batch_size"),
    ("attention_knockout", "key position out of range", lambda c: A.attention_knockout(c.m, CLEAN, key=[12]), ValueError, "key position 12 is out of range.*0..11"),
    ("attention_knockout", "layer out of range", lambda c: A.attention_knockout(c.m, CLEAN, key=[1], layers=[3]), ValueError, r"valid layers are 0\.\.2"),
    ("attention_knockout", "query out of range", lambda c: A.attention_knockout(c.m, CLEAN, key=[1], query=40), ValueError, "out of range"),
    ("attention_knockout", "no key positions", lambda c: A.attention_knockout(c.m, CLEAN, key=[]), ValueError, "key positions"),
    ("attention_knockout", "no prompts", lambda c: A.attention_knockout(c.m, [], key=[1]), ValueError, "no prompts"),
    ("subject_positions", "empty subject", lambda c: A.subject_positions(c.m, CLEAN, ""), ValueError, "subject is empty"),
    # neurons
    ("decode_neurons", "k 0", lambda c: A.decode_neurons(c.m, k=0), ValueError, r"k must be an integer in 1\.\.300"),
    ("decode_neurons", "k over the vocabulary", lambda c: A.decode_neurons(c.m, k=301), ValueError, r"1\.\.300"),
    ("decode_neurons", "layer out of range", lambda c: A.decode_neurons(c.m, layers=[3]), ValueError, r"valid layers are 0\.\.2"),
    ("top_activating", "neuron out of range", lambda c: A.top_activating(c.m, [CLEAN], 0, 64), ValueError, r"valid neurons are 0\.\.63"),
    ("top_activating", "layer out of range", lambda c: A.top_activating(c.m, [CLEAN], 3, 0), ValueError, r"valid layers are 0\.\.2"),
    ("top_activating", "no texts", lambda c: A.top_activating(c.m, [], 0, 0), ValueError, "texts is empty"),
    ("top_activating", "an empty text", lambda c: A.top_activating(c.m, [CLEAN, ""], 0, 0), ValueError, "prompt 1 is empty"),
    ("clamp_effect", "neuron out of range", lambda c: A.clamp_effect(c.m, CLEAN, 0, 64, 1.0), ValueError, r"valid neurons are 0\.\.63"),
    ("clamp_effect", "layer out of range", lambda c: A.clamp_effect(c.m, CLEAN, -4, 0, 1.0), ValueError, r"valid layers are 0\.\.2"),
    ("clamp_effect", "NaN value", lambda c: A.clamp_effect(c.m, CLEAN, 0, 0, NAN), ValueError, "value must be a finite number"),
    ("clamp_effect", "k over the vocabulary", lambda c: A.clamp_effect(c.m, CLEAN, 0, 0, 1.0, k=301), ValueError, r"1\.\.300"),
    ("clamp_effect", "prompt over the context", lambda c: A.clamp_effect(c.m, c.long, 0, 0, 1.0), ValueError, "n_ctx=64"),
    # voids
    ("active_layers", "a model instead of a trace", lambda c: A.active_layers(c.m), TypeError, "Trace"),
    ("active_layers", "missing captures", lambda c: A.active_layers(c.tr_logits), ValueError, "resid_pre"),
    ("active_layers", "NaN alpha", lambda c: A.active_layers(c.tr, alpha=NAN), ValueError, "alpha must be a finite number"),
    ("skip_voids", "empty prompt", lambda c: A.skip_voids(c.m, ""), ValueError, "empty"),
    # factual recall
    ("recall_summary", "lengths disagree", lambda c: A.recall_summary(c.m, [CLEAN], ["cat", "mat"], [" mat"]), ValueError, "1 prompts, 2 subjects, 1 answers"),
    ("recall_summary", "subject not in its prompt", lambda c: A.recall_summary(c.m, [CLEAN], ["dog"], [" mat"]), ValueError, "does not occur"),
    ("recall_story", "lengths disagree", lambda c: A.recall_story(c.m, [CLEAN, CLEAN], ["cat"], [" mat"]), ValueError, "2 prompts, 1 subjects, 1 answers"),
    ("recall_story", "no facts", lambda c: A.recall_story(c.m, [], [], []), ValueError, "non-zero number"),
    # features, SNMF, steering
    ("snmf", "NaN in the activations", lambda c: A.snmf(c.nan_acts, 3), ValueError, "NaN"),
    ("snmf", "a vector instead of a matrix", lambda c: A.snmf(c.acts[0], 3), ValueError, r"\[d_mlp, n_tokens\]"),
    ("snmf", "k out of range", lambda c: A.snmf(c.acts, 0), ValueError, r"1\.\.40"),
    ("snmf", "complex activations", lambda c: A.snmf(c.acts.to(torch.complex64), 3), TypeError, "real numbers"),
    ("nmf", "NaN in the activations", lambda c: A.nmf(c.nan_acts, 3), ValueError, "NaN"),
    ("mlp_activations", "no prompts", lambda c: A.mlp_activations(c.m, [], 0), ValueError, "no prompts"),
    ("mlp_activations", "layer out of range", lambda c: A.mlp_activations(c.m, [CLEAN], 3), ValueError, r"valid layers are 0\.\.2"),
    ("mlp_activations", "whitespace prompt", lambda c: A.mlp_activations(c.m, ["\n"], 0), ValueError, "whitespace"),
    ("diff_means", "NaN in the activations", lambda c: A.diff_means(c.nan_acts, c.labels), ValueError, "acts holds 1 NaN"),
    ("diff_means", "labels for the wrong number of tokens", lambda c: A.diff_means(c.acts, c.labels[:5]), ValueError, r"shape \[40\]"),
    ("diff_means", "float labels", lambda c: A.diff_means(c.acts, c.labels.float()), TypeError, "integer class ids"),
    ("diff_means", "a vector instead of a matrix", lambda c: A.diff_means(c.acts[0], c.labels), ValueError, r"\[d_mlp, n_tokens\]"),
    ("label_purity", "NaN scores", lambda c: A.label_purity(c.nan_acts, c.labels), ValueError, "scores holds 1 NaN"),
    ("label_purity", "labels below -1", lambda c: A.label_purity(c.acts, c.labels - 5), ValueError, r"-1 for none"),
    ("chance_purity", "draws 0", lambda c: A.chance_purity(c.labels, draws=0), ValueError, "draws must be an integer >= 1"),
    ("compare_purity", "NaN in the activations", lambda c: A.compare_purity(c.nan_acts, c.labels, 3), ValueError, "NaN"),
    ("random_sparse_like", "NaN vector", lambda c: A.random_sparse_like(torch.tensor([1.0, NAN])), ValueError, "vector holds 1 NaN"),
    ("direction_logits", "wrong width", lambda c: A.direction_logits(c.m, torch.ones(5)), ValueError, r"\[d_model=32\]"),
    ("direction_logits", "NaN direction", lambda c: A.direction_logits(c.m, torch.full((32,), NAN)), ValueError, "NaN"),
    ("decode_direction", "wrong width", lambda c: A.decode_direction(c.m, 0, torch.ones(5)), ValueError, r"\[d_mlp=64\]"),
    ("decode_direction", "layer out of range", lambda c: A.decode_direction(c.m, 3, c.z), ValueError, r"valid layers are 0\.\.2"),
    ("decode_direction", "NaN direction", lambda c: A.decode_direction(c.m, 0, torch.full((64,), NAN)), ValueError, "NaN"),
    ("steer_mlp", "layer out of range", lambda c: A.steer_mlp(c.m, CLEAN, 3, c.z, 1.0), ValueError, r"valid layers are 0\.\.2"),
    ("steer_mlp", "wrong width", lambda c: A.steer_mlp(c.m, CLEAN, 0, torch.ones(32), 1.0), ValueError, r"\[d_mlp=64\]"),
    ("steer_mlp", "NaN alpha", lambda c: A.steer_mlp(c.m, CLEAN, 0, c.z, NAN), ValueError, "alpha must be a finite number"),
    ("steer_mlp", "position out of range", lambda c: A.steer_mlp(c.m, CLEAN, 0, c.z, 1.0, pos=12), ValueError, "position 12 is out of range"),
    ("steer_at_matched_kl", "target KL 0", lambda c: A.steer_at_matched_kl(c.m, CLEAN, 0, c.z, 0.0), ValueError, "target_kl must be a positive finite number"),
    ("steer_at_matched_kl", "NaN direction", lambda c: A.steer_at_matched_kl(c.m, CLEAN, 0, torch.full((64,), NAN), 0.1), ValueError, "NaN"),
    ("steer_at_matched_kl", "layer out of range", lambda c: A.steer_at_matched_kl(c.m, CLEAN, 5, c.z, 0.1), ValueError, r"valid layers are 0\.\.2"),
    ("compare_steering", "no directions", lambda c: A.compare_steering(c.m, CLEAN, 0, {}, 0.1, concept=[" cat"]), ValueError, "at least one direction"),
    ("steering_table", "not steering results", lambda c: A.steering_table({"a": 1.0}), TypeError, "SteeringResult"),
    ("concept_ids", "no words", lambda c: A.concept_ids(c.m, []), ValueError, "no tokens"),
    ("concept_ids", "token id out of range", lambda c: A.concept_ids(c.m, [300]), ValueError, r"valid ids are 0\.\.299"),
    # circuits (lesson 05)
    ("path_patching", "receivers neither heads nor 'logits'", lambda c: A.path_patching(c.m, CLEAN, CLEAN, " cat", " mat", receivers="heads"), ValueError, r"\(layer, head\) pairs or 'logits'"),
    ("path_patching", "a trace instead of a model", lambda c: A.path_patching(c.tr, CLEAN, CLEAN, " cat", " mat"), TypeError, r"kit model"),
    ("attribution_patching", "unknown kind", lambda c: A.attribution_patching(c.m, CLEAN, CLEAN, " cat", kind="neurons"), ValueError, "valid kinds"),
    ("agreement", "results of different kinds", lambda c: A.agreement(A.attribution_patching(c.m, CLEAN, CLEAN, " cat", kind="heads"), A.activation_patching(c.m, CLEAN, CLEAN, " cat", kind="mlp")), ValueError, "shapes differ"),
    ("qk_circuit", "head out of range", lambda c: A.qk_circuit(c.m, 0, 9), ValueError, r"valid heads are 0\.\.3"),
    ("ov_circuit", "no tokens", lambda c: A.ov_circuit(c.m, 0, 0, tokens=[]), ValueError, "tokens is empty"),
    ("composition_baseline", "unknown kind", lambda c: A.composition_baseline(c.m, "x"), ValueError, "valid kinds"),
    ("compare_ablations", "one prompt", lambda c: A.compare_ablations(c.m, [CLEAN], " cat", " mat"), ValueError, "at least 2 prompts"),
    ("ablate_heads", "unknown method", lambda c: A.ablate_heads(c.m, [(0, 0)], "knockout", None), ValueError, "valid: zero, mean, resample"),
    ("backup_heads", "no heads to ablate", lambda c: A.backup_heads(c.m, [CLEAN, CLEAN], " cat", " mat", ablate=[]), ValueError, "no heads given"),
    ("train_toy_models", "a sparsity of 1", lambda c: A.train_toy_models(sparsities=(1.0,)), ValueError, "sparsities"),
    ("train_dictionary", "negative l1", lambda c: A.train_dictionary(c.acts, l1=-1.0), ValueError, "l1 must be >= 0"),
    ("train_sae", "no latents", lambda c: A.train_sae(c.acts, 0), ValueError, r"k must be an integer >= 1"),
    ("train_transcoder", "outputs for other tokens", lambda c: A.train_transcoder(c.acts, c.acts[:, :30], 8), ValueError, r"one column per input token"),
    ("mlp_io", "layer out of range", lambda c: A.mlp_io(c.m, [CLEAN], 7), ValueError, r"layer"),
    ("splice", "an SAE of another width", lambda c: A.splice(c.m, [CLEAN], 0, A.train_sae(c.acts[:10], 4, steps=2)), ValueError, r"mlp_post \[d_mlp=64"),
    # contrasts and the final block (lessons 01 and 03)
    ("contrast_attribution", "one competitor list for two prompts", lambda c: A.contrast_attribution(c.m.trace([CLEAN, CLEAN]), [" cat", " cat"], [[" mat"]]), ValueError, r"one list of tokens per prompt: 2 prompts, 1 lists"),
    ("contrast_attribution", "no competitors", lambda c: A.contrast_attribution(c.tr, " cat", [[]]), ValueError, r"prompt 0 has no competitors"),
    ("contrast_attribution", "competitor id out of range", lambda c: A.contrast_attribution(c.tr, " cat", [[10**6]]), ValueError, r"token id 1000000 is out of range: valid ids are 0\.\.299"),
    ("final_block_measures", "a trace instead of a model", lambda c: A.final_block_measures(c.tr, [CLEAN], [" cat"], [[" mat"]]), TypeError, r"kit model"),
    ("final_block_measures", "answers and prompts of different lengths", lambda c: A.final_block_measures(c.m, [CLEAN, CLEAN], [" cat"], [[" mat"], [" mat"]]), ValueError, r"answers"),
    ("token_id", "an id out of range", lambda c: A.token_id(c.m, 300), ValueError, r"token id 300 is out of range: valid ids are 0\.\.299"),
    ("token_id", "a negative id", lambda c: A.token_id(c.m, -1), ValueError, r"out of range"),
    ("token_id", "text that gives no token", lambda c: A.token_id(c.m, ""), ValueError, r"produced no tokens"),
]


@pytest.mark.parametrize("fn,what,call,exc,match", ROWS, ids=[f"{r[0]}: {r[1]}" for r in ROWS])
def test_bad_input_is_refused_clearly_and_changes_nothing(ctx, fn, what, call, exc, match):
    m = ctx.m
    hooks, weights = _hooks(m), _weights_sum(m)
    with pytest.raises(exc, match=match):
        call(ctx)
    assert _hooks(m) == hooks, "a hook was left on the model"
    assert m.hf.config._attn_implementation == "sdpa"
    assert not m.hf.training
    assert _weights_sum(m) == weights


def test_every_public_function_has_a_row():
    functions = {n for n in A.__all__ if inspect.isfunction(getattr(A, n))}
    assert functions - {r[0] for r in ROWS} == set()


def test_the_functions_still_work_after_refusing(ctx):
    """A refused call leaves the model usable: the same trace as before."""
    with pytest.raises(ValueError):
        A.clamp_effect(ctx.m, CLEAN, 0, 64, 1.0)
    assert torch.equal(ctx.m.trace(CLEAN, capture=[]).logits, ctx.tr_logits.logits)
    assert _steer_result(ctx).evaluations <= 2


def test_head_scores_work_on_a_word_level_vocabulary():
    """induction-2l's tokenizer knows only its syllables: probing it with arbitrary text used to fail."""
    model = kit.load("induction-2l", device="cpu")
    assert A.repeated_tokens(model, seq_len=4, batch=1)[0, 0] == model.tokenizer.bos_token_id
    assert float(A.induction_scores(model).max()) > 0.4 and float(A.prev_token_scores(model).max()) > 0.4
