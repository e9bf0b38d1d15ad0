"""Tiny random models of every supported family, built from a config (no download)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig, MistralConfig, PreTrainedTokenizerFast,
    Qwen2Config,
)

CORPUS = [
    "The capital of Veloria is Mistport.", "The cat sat on the mat.", "Once upon a time there was a model.",
    "Attention heads move information between positions.", "Induction heads copy what came after.",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", "0 1 2 3 4 5 6 7 8 9 + - * / = < > & ' \"",
]
VOCAB = 300


def save_tokenizer(out: Path) -> Path:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    fast.save_pretrained(out)
    return Path(out)


def config(family: str):
    common = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt2":
        return GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=64, n_inner=64, **common)
    if family == "gpt_neox":
        return GPTNeoXConfig(num_hidden_layers=3, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                             max_position_embeddings=64, rotary_pct=0.5, use_parallel_residual=True, **common)
    if family == "gpt_neox_seq":
        return GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                             max_position_embeddings=64, use_parallel_residual=False, **common)
    if family == "llama":  # grouped-query attention: 4 query heads share 2 key/value heads
        return LlamaConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                           intermediate_size=48, max_position_embeddings=64, **common)
    if family == "qwen2":
        return Qwen2Config(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, hidden_size=32,
                           intermediate_size=48, max_position_embeddings=64, **common)
    if family == "mistral":
        return MistralConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                             intermediate_size=48, max_position_embeddings=64, **common)
    raise ValueError(family)


FAMILIES = ("gpt2", "gpt_neox", "gpt_neox_seq", "llama", "qwen2", "mistral")


def save_model(family: str, out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(config(family))
    with torch.no_grad():  # random biases and norm weights, so invariants cannot pass by accident
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(out, safe_serialization=True)
    PreTrainedTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(out)
    return Path(out)
