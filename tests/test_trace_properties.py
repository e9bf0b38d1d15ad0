"""Property-based tests: the tracer's invariants over random prompts and random small configs."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig, PreTrainedTokenizerFast

import kit
from tests import tiny


@functools.lru_cache(maxsize=1)
def _tokenizer() -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(tiny.save_tokenizer(Path(tempfile.mkdtemp())))


@st.composite
def configs(draw):
    family = draw(st.sampled_from(["gpt2", "gpt_neox", "llama"]))
    layers = draw(st.integers(1, 3))
    heads = draw(st.sampled_from([1, 2, 4]))
    d_head = draw(st.sampled_from([4, 8]))
    d = heads * d_head
    d_mlp = draw(st.sampled_from([8, 24]))
    common = dict(vocab_size=tiny.VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt2":
        return GPT2Config(n_layer=layers, n_head=heads, n_embd=d, n_inner=d_mlp, n_positions=32, **common)
    if family == "gpt_neox":
        return GPTNeoXConfig(num_hidden_layers=layers, num_attention_heads=heads, hidden_size=d,
                             intermediate_size=d_mlp, max_position_embeddings=32,
                             use_parallel_residual=draw(st.booleans()), **common)
    kv = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0]))
    return LlamaConfig(num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                       hidden_size=d, intermediate_size=d_mlp, max_position_embeddings=32, **common)


prompts = st.lists(st.lists(st.integers(1, tiny.VOCAB - 1), min_size=1, max_size=12), min_size=1, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), ids=prompts, seed=st.integers(0, 2**16))
def test_tracer_invariants_hold_for_random_configs_and_prompts(cfg, ids, seed):
    torch.manual_seed(seed)
    model = kit.Model(AutoModelForCausalLM.from_config(cfg), _tokenizer())
    tr = model.trace(ids)
    real = tr.mask
    with torch.no_grad():
        plain = model.hf(input_ids=tr.input_ids, attention_mask=real.long()).logits
    torch.testing.assert_close(tr.logits[real], plain[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(model.unembed(tr["resid_post", -1]), tr.logits, atol=1e-4, rtol=0)
    for l in range(model.n_layers):
        torch.testing.assert_close(tr["resid_post", l], tr["resid_pre", l] + tr["attn_out", l] + tr["mlp_out", l],
                                   atol=1e-4, rtol=0)
        bias = model.adapter.b_O(l)
        torch.testing.assert_close(tr["head_out", l].sum(2) + (0 if bias is None else bias), tr["attn_out", l],
                                   atol=1e-4, rtol=0)
        p = tr["pattern", l]
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5, rtol=0)
        assert p.triu(1).abs().max() == 0
    # each prompt alone gives the same logits on its real tokens
    for b, seq in enumerate(ids):
        single = model.trace([seq], capture=[])
        torch.testing.assert_close(tr.logits[b, : len(seq)], single.logits[0], atol=1e-4, rtol=0)
