"""Fixtures with teeth: tiny random models whose signals sit far above the tests' tolerances.

The plain tiny models of ``tests/tiny.py`` are initialised like real ones (weights of std 0.02), so
their attention is nearly uniform and an intervention moves the logits by ~1e-3: a test tolerance of
1e-5 is then about as large as the signal it guards. The models here scale the weights up so that
attention patterns are sharp, head outputs and interventions move the logits by O(1), and a causal
tracing grid spreads over O(0.1) of probability; the figures are measured by
``tests/test_fixtures_teeth.py`` (which states the floors every teeth test relies on).

- ``gpt2``: GPT-2 (LayerNorm, Conv1D, biases everywhere), n_ctx 128, with an unembedding bias
  (``lm_head.bias``, as GPT-J or Phi have; added after loading because GPT-2's head has none).
- ``llama``: Llama with grouped-query attention (4 query heads share 2 key/value heads), RMSNorm,
  no biases, n_ctx 128.
- ``bos``: GPT-2 whose tokenizer starts every prompt with ``<|bos|>`` (id 1), so positions are
  shifted by one against the text.
- ``LONG``: a prompt of more than 64 tokens (thumbnails are pooled above 64).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

from tests import tiny

N_CTX = 128
BOS = "<|bos|>"
PROMPT, SUBJECT = "The capital of Veloria is", " Veloria"
LONG = " ".join(tiny.CORPUS[:4])  # 80 tokens: more than 64 (asserted in the tests)


def save_tokenizer(out: Path, bos: bool) -> Path:
    """Byte-level BPE over the tiny corpus; with ``bos``, a template puts ``<|bos|>`` before each prompt."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=tiny.VOCAB, special_tokens=["<|endoftext|>", BOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tiny.CORPUS * 5, trainer)
    extra = {}
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                           special_tokens=[(BOS, tok.token_to_id(BOS))])
        extra = {"bos_token": BOS}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   **extra)
    fast.save_pretrained(out)
    return Path(out)


def config(kind: str):
    common = dict(vocab_size=tiny.VOCAB, eos_token_id=0, pad_token_id=0, bos_token_id=1 if kind == "bos" else 0)
    if kind in ("gpt2", "bos"):
        return GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=N_CTX, n_inner=64, **common)
    if kind == "llama":
        return LlamaConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                           intermediate_size=48, max_position_embeddings=N_CTX, tie_word_embeddings=False, **common)
    raise ValueError(kind)


def sharpen(hf: torch.nn.Module, seed: int) -> None:
    """Redraw every weight at a scale where attention is sharp and every part moves the logits by O(1).

    Matrices get std ``gain / sqrt(fan_in)`` (gain 2.5: scores of std ~6 before the softmax), biases
    and norm weights std 0.5 around their usual value; embeddings std 1.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name or ".ln_" in name or name.startswith("transformer.ln_f"):
                p.copy_(1.0 + 0.3 * noise if name.endswith("weight") else 0.3 * noise)
            elif name.endswith("bias"):
                p.copy_(0.5 * noise)
            elif p.ndim == 2 and ("wte" in name or "wpe" in name or "embed" in name):
                p.copy_(noise)
            elif p.ndim == 2:
                fan_in = p.shape[0] if hf.config.model_type == "gpt2" else p.shape[1]  # Conv1D is [in, out]
                p.copy_(2.5 * noise / fan_in ** 0.5)


def build(kind: str, out: Path, seed: int = 0):
    """Save a sharpened model of ``kind`` with its tokenizer to ``out`` and load it with ``kit.load``."""
    import kit

    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(config(kind))
    sharpen(hf, seed)
    hf.save_pretrained(out, safe_serialization=True)
    save_tokenizer(out, bos=kind == "bos")
    model = kit.load(out, device="cpu")
    if kind == "gpt2":  # an unembedding bias: lm_head.bias[vocab], std 1 (as large as a logit's spread)
        head = model.hf.get_output_embeddings()
        head.bias = torch.nn.Parameter(torch.randn(tiny.VOCAB, generator=torch.Generator().manual_seed(seed + 1)))
    return model


@pytest.fixture(scope="session")
def teeth(tmp_path_factory) -> dict:
    """``{"gpt2": ..., "llama": ..., "bos": ...}``: sharpened tiny models (see the module docstring)."""
    return {kind: build(kind, tmp_path_factory.mktemp(f"teeth_{kind}")) for kind in ("gpt2", "llama", "bos")}
