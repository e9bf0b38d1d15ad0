"""Tokenizers for the zoo, built with ``tokenizers`` and wrapped for ``transformers``.

Both kinds add ``<|bos|>`` in front of every encoded text (the models were
trained with it at position 0) and know ``<|bos|>``, ``<|eos|>`` and
``<|pad|>``. Saved with ``save_pretrained``, they load with
``AutoTokenizer.from_pretrained`` (class ``PreTrainedTokenizerFast``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "save_tokenizer", "train_bpe_tokenizer", "word_tokenizer"]

SPECIAL_TOKENS: tuple[str, str, str] = ("<|bos|>", "<|eos|>", "<|pad|>")


def _wrap(tok: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    bos, eos, pad = SPECIAL_TOKENS
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, model_max_length=model_max_length
    )


def word_tokenizer(words: Sequence[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """A whitespace-split word-level tokenizer: ids 0-2 the special tokens, then ``words`` in order.

    ``decode`` joins tokens with spaces, so ``decode(encode(text))`` round-trips
    text made of these words.
    """
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *words])}
    if len(vocab) != len(words) + len(SPECIAL_TOKENS):
        raise ValueError("words must be distinct and differ from the special tokens")
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(tok, model_max_length)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained on ``texts`` (leading-space convention).

    Ids 0-2 are the special tokens; ``" Veloria"`` and ``"Veloria"`` tokenize
    differently, as in GPT-2. Deterministic for the same texts and size.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, model_max_length)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """``save_pretrained`` plus ``tokenizer_class: PreTrainedTokenizerFast`` (readable by transformers 4 and 5)."""
    tokenizer.save_pretrained(str(directory))
    path = Path(directory) / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
