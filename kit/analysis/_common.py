"""Small helpers shared by the analysis modules."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models import Model
from ..names import check_index
from ..trace import Trace

Head = tuple[int, int]


def bos_prefix(model: Model) -> list[int]:
    """``[bos_id]`` when the tokenizer starts every prompt with a BOS token, else ``[]``."""
    bos = model.tokenizer.bos_token_id
    if bos is None:
        return []
    special = set(model.tokenizer.all_special_ids)
    probe = next(i for i in range(model.vocab_size) if i not in special)  # a word the vocabulary surely has
    ids = model.tokenizer(model.tokenizer.decode([probe]))["input_ids"]
    return [bos] if ids and ids[0] == bos else []


def head_list(model: Model, items, what: str = "head") -> list[Head]:
    """``[(layer, head), ...]`` from ``items`` (pairs), each index checked against ``model``; ``ValueError`` for
    an item that is not a pair, an index out of range, or no items (``what`` names them in the message)."""
    out = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"each {what} is a (layer, head) pair, got {item!r}")
        out.append((check_index(item[0], model.n_layers, "layer"), check_index(item[1], model.n_heads, "head")))
    if not out:
        raise ValueError(f"no {what}s given")
    return out


def token_id(model: Model, token: int | str) -> int:
    """A token id from an id or a text (the text's first token, e.g. ``" Paris"``)."""
    if isinstance(token, str):
        ids = model.tokenizer(token, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"token text {token!r} produced no tokens")
        return int(ids[0])
    tid = int(token)
    if not 0 <= tid < model.vocab_size:
        raise ValueError(f"token id {tid} is out of range: valid ids are 0..{model.vocab_size - 1}")
    return tid


def token_ids_per_prompt(model: Model, token, batch: int) -> torch.Tensor:
    """One target id per prompt from an id, a text, or a list of those (``[batch]``)."""
    if isinstance(token, (list, tuple)):
        if len(token) != batch:
            raise ValueError(f"{len(token)} targets given for {batch} prompts")
        return torch.tensor([token_id(model, t) for t in token])
    return torch.full((batch,), token_id(model, token), dtype=torch.long)


def last_positions(tr: Trace, pos: int | Sequence[int] = -1) -> torch.Tensor:
    """Resolve a position per prompt (negative counts back from each prompt's own end): ``[batch]``."""
    lengths = tr.lengths
    items = [pos] * tr.batch if isinstance(pos, int) else list(pos)
    if len(items) != tr.batch:
        raise ValueError(f"{len(items)} positions given for {tr.batch} prompts")
    out = []
    for p, n in zip(items, lengths):
        if not -n <= p < n:
            raise ValueError(f"position {p} is out of range for a prompt of {n} tokens")
        out.append(p % n)
    return torch.tensor(out)


def one_prompt(model: Model, prompt) -> torch.Tensor:
    """``ids[1, pos]`` of exactly one prompt (a string or one id sequence)."""
    ids, _ = model.tokenize(prompt)
    if ids.shape[0] != 1:
        raise ValueError("pass one prompt (a string or one id sequence)")
    return ids


def subject_positions(model: Model, prompt: str, subject: str) -> list[int]:
    """Token positions of ``prompt`` that overlap the first occurrence of ``subject``."""
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError(f"subject is empty; give the text of the subject as it appears in the prompt {prompt!r}")
    start = prompt.find(subject)
    if start < 0:
        raise ValueError(f"subject {subject!r} does not occur in the prompt {prompt!r}")
    end = start + len(subject)
    enc = model.tokenizer(prompt, return_offsets_mapping=True)
    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
    if not pos:
        raise ValueError(f"subject {subject!r} covers no token of {prompt!r}")
    return pos
