"""Tiny random-weight models of every supported family, built from a config (no download)."""

from __future__ import annotations

import torch
import transformers as T

COMMON = dict(vocab_size=300, bos_token_id=0, eos_token_id=0, pad_token_id=0)
LLAMA_LIKE = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                  intermediate_size=48, max_position_embeddings=64, **COMMON)


def config(name: str):
    """A tiny config of family variant ``name`` (see :data:`VARIANTS`)."""
    if name == "gpt2":
        return T.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64, n_inner=64, **COMMON)
    if name in ("gpt_neox", "gpt_neox_seq"):
        return T.GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                               max_position_embeddings=64, rotary_pct=0.5,
                               use_parallel_residual=name == "gpt_neox", **COMMON)
    if name == "llama":
        return T.LlamaConfig(**LLAMA_LIKE)
    if name == "mistral":  # a sliding window shorter than the prompts
        return T.MistralConfig(**LLAMA_LIKE, sliding_window=3)
    if name == "qwen2":
        return T.Qwen2Config(**{**LLAMA_LIKE, "num_key_value_heads": 1})
    if name == "qwen3":  # q/k norms, head_dim not d_model / heads
        return T.Qwen3Config(**LLAMA_LIKE, head_dim=12)
    if name == "gemma":
        return T.GemmaConfig(**{**LLAMA_LIKE, "num_key_value_heads": 1}, head_dim=8)
    if name == "gemma2":  # soft-capping of scores and logits, sliding-window layers, post norms
        return T.Gemma2Config(**LLAMA_LIKE, head_dim=8, sliding_window=3, attn_logit_softcapping=5.0,
                              final_logit_softcapping=3.0, query_pre_attn_scalar=10)
    if name == "gemma3":
        return T.Gemma3TextConfig(**{**LLAMA_LIKE, "num_hidden_layers": 3}, head_dim=8, sliding_window=3,
                                  sliding_window_pattern=2, query_pre_attn_scalar=10, final_logit_softcapping=3.0)
    if name == "phi3":
        return T.Phi3Config(**LLAMA_LIKE)
    if name == "olmo2":
        return T.Olmo2Config(**LLAMA_LIKE)
    if name == "gptj":
        return T.GPTJConfig(n_layer=2, n_head=4, n_embd=32, n_inner=64, rotary_dim=4, n_positions=64, **COMMON)
    if name == "opt":
        return T.OPTConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, ffn_dim=64,
                           max_position_embeddings=64, word_embed_proj_dim=32, enable_bias=True,
                           **{**COMMON, "pad_token_id": 1})
    if name == "falcon":  # falcon-7b style: multi-query, one norm feeding attention and MLP
        return T.FalconConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, alibi=False,
                              new_decoder_architecture=False, parallel_attn=True, multi_query=True, bias=True,
                              max_position_embeddings=64, **COMMON)
    if name == "falcon_new":  # falcon-40b style: grouped key/value heads, two norms
        return T.FalconConfig(num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2, hidden_size=32,
                              alibi=False, new_decoder_architecture=True, max_position_embeddings=64, **COMMON)
    raise ValueError(name)


# variant -> (family name the kit reports, block kind)
VARIANTS: dict[str, tuple[str, str]] = {
    "gpt2": ("gpt2", "sequential"), "gpt_neox": ("gpt_neox", "parallel"), "gpt_neox_seq": ("gpt_neox", "sequential"),
    "llama": ("llama", "sequential"), "mistral": ("llama", "sequential"), "qwen2": ("llama", "sequential"),
    "qwen3": ("llama", "sequential"), "gemma": ("gemma", "sequential"), "gemma2": ("gemma2", "post_norm"),
    "gemma3": ("gemma3", "post_norm"), "phi3": ("phi3", "sequential"), "olmo2": ("olmo2", "post_norm"),
    "gptj": ("gptj", "parallel"), "opt": ("opt", "sequential"), "falcon": ("falcon", "parallel"),
    "falcon_new": ("falcon", "parallel"),
}


def build(name: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A random-weight ``*ForCausalLM`` of variant ``name``, with random biases and norm gains."""
    torch.manual_seed(seed)
    cfg = config(name)
    cfg._attn_implementation = None  # each family's default (Gemma 2: eager, others: SDPA)
    hf = T.AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()
    with torch.no_grad():  # random biases and norm weights, so the invariants cannot pass by accident
        for pname, p in hf.named_parameters():
            if pname.endswith("bias") or "norm" in pname or "ln" in pname:
                p.add_(torch.randn_like(p) * 0.3)
    return hf
