"""The real-model track: the lessons' optional sections on GPT-2 small and Pythia, online or skipped cleanly.

:func:`real_model` loads a hub model when the hub (or the local cache) can provide it, and otherwise
raises :class:`RealModelUnavailable`, which a notebook shows as one line (no traceback wall), so an
offline student sees why the optional cells stop. :func:`real_models` is what the lessons call: it
loads several (default :data:`TRACK`), asks the hub once, and reports those it cannot load in one printed
line instead of raising, so the section's later cells loop over what loaded (nothing, offline). With ``KIT_REAL_MODEL=random`` it returns a
**stand-in** instead (:func:`standin`): a model of the same architecture and shape (layers, heads,
widths, vocabulary size, context) with random weights, and a word-level tokenizer in which every
word of ``words`` is one token. The tests run every lesson's optional section on these stand-ins,
so the code path is tested offline; the numbers it prints mean nothing (random weights).

With ``KIT_REAL_MODEL=tiny`` the stand-in keeps the family, the number of layers and heads (so the heads
a section cites exist) but is narrow (8 dimensions per head, a vocabulary just big enough for the words):
the quick default-run tests use it.

Known models: ``"gpt2"`` (GPT-2 small: 12 layers x 12 heads, d_model 768), ``"EleutherAI/pythia-160m"``
(GPT-NeoX: 12 layers x 12 heads, d_model 768, rotary on a quarter of each head, parallel attention and
MLP, untied unembedding) and ``"EleutherAI/pythia-70m"`` (GPT-NeoX: 6 layers x 8 heads, d_model 512).
:data:`TRACK` names the two every lesson's optional section runs on. Any other hub id is loaded as is
(no stand-in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch

__all__ = ["REAL_MODELS", "TRACK", "ENV_REAL_MODEL", "RealModelUnavailable", "RealModelShape", "real_model",
           "real_models", "label", "standin", "words_in"]

ENV_REAL_MODEL = "KIT_REAL_MODEL"  # "random": full-shape stand-ins; "tiny": narrow ones (tests; no download)


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

    def tiny(self, vocab_size: int) -> RealModelShape:
        """The same family, layers and heads, narrow: 8 dimensions per head, 4x that in the MLP, 256
        positions, ``vocab_size`` tokens. Seconds, not minutes, to run a section on."""
        d_model = 8 * self.n_heads
        return replace(self, d_model=d_model, d_mlp=4 * d_model, vocab_size=vocab_size, n_ctx=256,
                       label=f"{self.label} (narrow)")

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
    "EleutherAI/pythia-160m": RealModelShape("EleutherAI/pythia-160m", "gpt_neox", 12, 12, 768, 3072, 50304, 2048,
                                             "Pythia-160M"),
    "EleutherAI/pythia-70m": RealModelShape("EleutherAI/pythia-70m", "gpt_neox", 6, 8, 512, 2048, 50304, 2048,
                                            "Pythia-70M"),
}
TRACK = ("gpt2", "EleutherAI/pythia-160m")  # the models every lesson's optional section runs on


def label(name: str) -> str:
    """A hub id's readable name (``"gpt2"`` -> ``"GPT-2 small"``); the id itself when unknown."""
    return REAL_MODELS[name].label if name in REAL_MODELS else name


class RealModelUnavailable(RuntimeError):
    """The hub model cannot be loaded here (offline, not cached): the optional cells are skipped."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"Skipped: {self}"]


def _mode() -> str:
    mode = os.environ.get(ENV_REAL_MODEL, "").strip().lower()
    if mode not in {"", "random", "tiny"}:
        raise ValueError(f"${ENV_REAL_MODEL}={mode!r}: use 'random' (full-shape stand-ins), 'tiny' (narrow ones) "
                         "or leave it unset (the hub)")
    return mode


def real_model(name: str, device: str = "cpu", words: Iterable[str] = ()):
    """A hub model for an optional section: loaded with :func:`kit.load` when the hub (or its cache)
    has it; a random-weight stand-in of the same shape when ``$KIT_REAL_MODEL`` is ``random`` (or a
    narrow one when it is ``tiny``); otherwise :class:`RealModelUnavailable` saying why."""
    mode = _mode()
    if mode:
        return standin(name, words=words, device=device, tiny=mode == "tiny")
    return _load(name, device, _unreachable(name))


def _load(name: str, device: str, why: str | None):
    from ..models import load

    if why is None:
        try:
            return load(name, device=device)
        except OSError as err:  # no such repository, or the connection broke
            why = str(err).splitlines()[0].rstrip(".")
    raise RealModelUnavailable(
        f"{label(name)} ({name}) could not be loaded from the Hugging Face hub ({why}). The optional sections need "
        f"the network once (the model is then cached); the rest of the lesson runs offline.") from None


def real_models(*names: str, device: str = "cpu", words: Iterable[str] = ()) -> dict[str, Any]:
    """``{hub id: Model}`` for each of ``names`` (default :data:`TRACK`) that can be loaded, in order.

    The ones that cannot are reported in **one** printed line (``Skipped: ...``), not raised, so an
    optional section's later cells simply loop over what loaded (nothing, offline). The hub is asked
    once: when it is unreachable, no model is tried again.
    """
    names = names or TRACK
    mode, words = _mode(), list(words)
    out: dict[str, Any] = {}
    skipped: list[str] = []
    reason, hub_down = "", None
    for name in names:
        if mode:
            out[name] = standin(name, words=words, device=device, tiny=mode == "tiny")
            continue
        why = hub_down if hub_down and not _cached(name) else _unreachable(name)
        hub_down = hub_down or why
        try:
            out[name] = _load(name, device, why)
        except RealModelUnavailable as err:
            skipped.append(f"{label(name)} ({name})")
            reason = str(err).split(" could not be loaded ", 1)[1]
    if skipped:
        print(f"Skipped: {' and '.join(skipped)} could not be loaded {reason}")
    return out


def _unreachable(name: str, timeout: float = 3.0) -> str | None:
    """None when ``name`` is in the local hub cache or the hub answers within ``timeout`` seconds;
    else why not (without the minute of retries a plain download attempt makes offline)."""
    import socket

    if _cached(name):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set and the model is not in the local cache"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError as err:
        return f"huggingface.co is not reachable: {err}"
    return None


def _cached(name: str) -> bool:
    """Whether the local hub cache holds ``name``'s config (so it loads without the network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


_WORD = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


def _vocab(words: Iterable[str]) -> dict[str, int]:
    """``{token: id}``: the end-of-text and unknown tokens, the 256 byte symbols, and each pre-tokenized piece of ``words``."""
    from tokenizers import pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pieces = sorted({p for w in words for p, _ in byte_level.pre_tokenize_str(w)})
    vocab: dict[str, int] = {}
    for token in ["<|endoftext|>", "<|unk|>", *sorted(pre_tokenizers.ByteLevel.alphabet()), *pieces]:
        vocab.setdefault(token, len(vocab))
    return vocab


def _tokenizer(words: Iterable[str], vocab_size: int):
    """A GPT-2-like word-level tokenizer: GPT-2's pre-tokenization (words with their leading space), each
    piece of ``words`` one token, every other piece ``<|unk|>``; ids fill ``vocab_size`` exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab(words)
    if len(vocab) > vocab_size:
        raise ValueError(f"{len(vocab)} tokens do not fit a vocabulary of {vocab_size}")
    while len(vocab) < vocab_size:  # unused ids, so that random token ids decode to something
        vocab[f"<|unused{len(vocab)}|>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|unk|>")


def standin(name: str, words: Iterable[str] = (), device: str = "cpu", seed: int = 0, tiny: bool = False):
    """A random-weight model with ``name``'s architecture and shape (see :data:`REAL_MODELS`), and a
    tokenizer in which each word of ``words`` (e.g. ``" Paris"``) is one token. ``tiny``: the same
    family, layers and heads, narrow (:meth:`RealModelShape.tiny`). For tests only."""
    from transformers import AutoModelForCausalLM

    from ..models import Model

    if name not in REAL_MODELS:
        raise ValueError(f"no stand-in for {name!r}; known real models: {sorted(REAL_MODELS)}")
    shape = REAL_MODELS[name]
    words = list(words)
    if tiny:
        shape = shape.tiny(vocab_size=_round_up(len(_vocab(words)) + 64, 64))
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(shape.config(), attn_implementation="sdpa").to(device).eval()
    kind = "narrow random-weight stand-in" if tiny else "random-weight stand-in"
    return Model(hf, _tokenizer(words, shape.vocab_size), name=f"{name} ({kind})")


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def words_in(source: str) -> list[str]:
    """The words of every string literal in Python ``source`` (with their leading spaces, GPT-2 style):
    what a stand-in's tokenizer must hold as single tokens for that code."""
    out: list[Any] = []
    for literal in re.findall(r'"([^"\\\n]*)"', source):
        out += _WORD.findall(literal)
    return [w for w in out if w.strip()]
