"""The real-model track: the lessons' optional sections on GPT-2 small and Pythia, online or skipped cleanly.

:func:`real_model` loads a hub model when the hub (or the local cache) can provide it, and otherwise
raises :class:`RealModelUnavailable`, which a notebook shows as one line (no traceback wall), so an
offline student sees why the optional cells stop. With ``KIT_REAL_MODEL=random`` it returns a
**stand-in** instead (:func:`standin`): a model of the same architecture and shape (layers, heads,
widths, vocabulary size, context) with random weights, and a word-level tokenizer in which every
word of ``words`` is one token. The tests run every lesson's optional section on these stand-ins,
so the code path is tested offline; the numbers it prints mean nothing (random weights).

Known models: ``"gpt2"`` (GPT-2 small: 12 layers x 12 heads, d_model 768) and
``"EleutherAI/pythia-70m"`` (GPT-NeoX: 6 layers x 8 heads, d_model 512, rotary, parallel attention
and MLP). Any other hub id is loaded as is (no stand-in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["REAL_MODELS", "ENV_REAL_MODEL", "RealModelUnavailable", "RealModelShape", "real_model", "standin", "words_in"]

ENV_REAL_MODEL = "KIT_REAL_MODEL"  # "random": stand-ins of the same shapes (tests; no download)


@dataclass(frozen=True)
class RealModelShape:
    """A hub model's architecture and shape: enough to build a random-weight model just like it."""

    hub_id: str
    family: str  # "gpt2" | "gpt_neox"
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    vocab_size: int
    n_ctx: int
    label: str

    def config(self):
        """The ``transformers`` config of this shape."""
        from transformers import GPT2Config, GPTNeoXConfig

        if self.family == "gpt2":
            return GPT2Config(n_layer=self.n_layers, n_head=self.n_heads, n_embd=self.d_model, n_inner=self.d_mlp,
                              vocab_size=self.vocab_size, n_positions=self.n_ctx, bos_token_id=0, eos_token_id=0)
        return GPTNeoXConfig(num_hidden_layers=self.n_layers, num_attention_heads=self.n_heads,
                             hidden_size=self.d_model, intermediate_size=self.d_mlp, vocab_size=self.vocab_size,
                             max_position_embeddings=self.n_ctx, rotary_pct=0.25, use_parallel_residual=True,
                             bos_token_id=0, eos_token_id=0)


REAL_MODELS: dict[str, RealModelShape] = {
    "gpt2": RealModelShape("gpt2", "gpt2", 12, 12, 768, 3072, 50257, 1024, "GPT-2 small"),
    "EleutherAI/pythia-70m": RealModelShape("EleutherAI/pythia-70m", "gpt_neox", 6, 8, 512, 2048, 50304, 2048,
                                            "Pythia-70M"),
}


class RealModelUnavailable(RuntimeError):
    """The hub model cannot be loaded here (offline, not cached): the optional cells are skipped."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"Skipped: {self}"]


def real_model(name: str, device: str = "cpu", words: Iterable[str] = ()):
    """A hub model for an optional section: loaded with :func:`kit.load` when the hub (or its cache)
    has it; a random-weight stand-in of the same shape when ``$KIT_REAL_MODEL`` is ``random``;
    otherwise :class:`RealModelUnavailable` saying why."""
    from ..models import load

    if os.environ.get(ENV_REAL_MODEL, "").strip().lower() == "random":
        return standin(name, words=words, device=device)
    label = REAL_MODELS[name].label if name in REAL_MODELS else name
    why = _unreachable(name)
    if why is None:
        try:
            return load(name, device=device)
        except OSError as err:  # no such repository, or the connection broke
            why = str(err).splitlines()[0].rstrip(".")
    raise RealModelUnavailable(
        f"{label} ({name}) could not be loaded from the Hugging Face hub ({why}). The optional sections need "
        f"the network once (the model is then cached); the rest of the lesson runs offline.") from None


def _unreachable(name: str, timeout: float = 3.0) -> str | None:
    """None when ``name`` is in the local hub cache or the hub answers within ``timeout`` seconds;
    else why not (without the minute of retries a plain download attempt makes offline)."""
    import socket

    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set and the model is not in the local cache"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError as err:
        return f"huggingface.co is not reachable: {err}"
    return None


_WORD = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


def _tokenizer(words: Iterable[str], vocab_size: int):
    """A GPT-2-like word-level tokenizer: GPT-2's pre-tokenization (words with their leading space), each
    piece of ``words`` one token, every other piece ``<|unk|>``; ids fill ``vocab_size`` exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pieces = sorted({p for w in words for p, _ in byte_level.pre_tokenize_str(w)})
    tokens = ["<|endoftext|>", "<|unk|>", *sorted(pre_tokenizers.ByteLevel.alphabet()), *pieces]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    if len(vocab) > vocab_size:
        raise ValueError(f"{len(vocab)} tokens do not fit a vocabulary of {vocab_size}")
    while len(vocab) < vocab_size:  # unused ids, so that random token ids decode to something
        vocab[f"<|unused{len(vocab)}|>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|unk|>")


def standin(name: str, words: Iterable[str] = (), device: str = "cpu", seed: int = 0):
    """A random-weight model with ``name``'s architecture and shape (see :data:`REAL_MODELS`), and a
    tokenizer in which each word of ``words`` (e.g. ``" Paris"``) is one token. For tests only."""
    from transformers import AutoModelForCausalLM

    from ..models import Model

    if name not in REAL_MODELS:
        raise ValueError(f"no stand-in for {name!r}; known real models: {sorted(REAL_MODELS)}")
    shape = REAL_MODELS[name]
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(shape.config(), attn_implementation="sdpa").to(device).eval()
    return Model(hf, _tokenizer(words, shape.vocab_size), name=f"{name} (random-weight stand-in)")


def words_in(source: str) -> list[str]:
    """The words of every string literal in Python ``source`` (with their leading spaces, GPT-2 style):
    what a stand-in's tokenizer must hold as single tokens for that code."""
    out: list[Any] = []
    for literal in re.findall(r'"([^"\\\n]*)"', source):
        out += _WORD.findall(literal)
    return [w for w in out if w.strip()]
