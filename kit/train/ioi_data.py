"""Synthetic data for ``ioi-3l``: indirect-object identification with invented names.

A prompt names two people, then repeats one of them (the *subject*, S) and ends
just before the other one (the *indirect object*, IO)::

    When Brenina and Kosard went to the market , Kosard gave a letter to   ->  Brenina

The model must find the name that is *not* repeated. Which of the two names
comes first (``ABBA`` or ``BABA`` order), the template, the place and the object
vary per prompt, so no position and no word solves the task; only comparing the
names does.

Token ids: ``0 <|bos|>``, ``1 <|eos|>``, ``2 <|pad|>``, then the names, then the
template words (a word-level tokenizer: words and punctuation are separated by
spaces). The training loss counts only the answer token.

Glossary of a prompt's positions: ``IO`` and ``S1`` are the two names of the
opening clause (in either order), ``S2`` the repeated subject, ``END`` the last
token (``to``), where the answer is predicted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from kit.train.batch import Batch, pack_rows
from kit.train.names import NameGenerator

__all__ = [
    "ADJECTIVES", "ADVERBS", "HELD_OUT_TEMPLATES", "IOIPrompt", "IOITask", "OBJECTS", "PLACES", "TEMPLATES", "ioi_names", "ioi_prompts",
    "ioi_vocabulary",
]

PAD_ID = 2  # the order of SPECIAL_TOKENS

# {A} and {B}: the two names in order of appearance; {S}: the repeated one.
# {adv}: 0 or 1 adverb after the subject; {adj}: 0 to 2 adjectives before the object. They put the
# repeated name S2 at a varying distance from the end, so that no fixed offset finds it.
TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the {place} , {S} {adv} gave a {adj} {object} to",
    "After {A} and {B} arrived at the {place} , {S} {adv} handed the {adj} {object} to",
    "{A} and {B} were working at the {place} . {S} {adv} passed the {adj} {object} to",
    "Then {A} and {B} walked to the {place} , and {S} {adv} threw a {adj} {object} to",
    "While {A} and {B} were at the {place} , {S} {adv} sent a {adj} {object} to",
    "{A} and {B} found a {adj} {object} at the {place} . {S} {adv} gave it to",
)
HELD_OUT_TEMPLATES: tuple[str, ...] = (  # never trained on: the card measures generalisation on these
    "Once {A} and {B} got to the {place} , {S} {adv} offered a {adj} {object} to",
    "Later {A} and {B} sat in the {place} , then {S} {adv} brought the {adj} {object} to",
)
PLACES: tuple[str, ...] = ("store", "park", "market", "school", "garden", "station", "lake", "library")
OBJECTS: tuple[str, ...] = ("drink", "book", "ball", "key", "letter", "apple", "ring", "map")
ADVERBS: tuple[str, ...] = ("soon", "quickly", "kindly", "later")
ADJECTIVES: tuple[str, ...] = ("small", "red", "old", "new", "shiny", "heavy")
MAX_ADVERBS, MAX_ADJECTIVES = 1, 2


def ioi_names(n: int, seed: int = 0) -> list[str]:
    """``n`` invented first names (pronounceable, unique), the same for the same seed."""
    return NameGenerator(seed).names("first_name", n)


def ioi_vocabulary(names: list[str]) -> list[str]:
    """The ordinary tokens in id order (after the special tokens): the names, then every template word."""
    words: list[str] = []
    for text in TEMPLATES + HELD_OUT_TEMPLATES:
        for w in text.split():
            if not w.startswith("{") and w not in words:
                words.append(w)
    return [*names, *sorted(words), *PLACES, *OBJECTS, *ADVERBS, *ADJECTIVES]


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI prompt: its text (without the answer), the indirect object ``io`` (the answer), the subject
    ``s``, the word-level ``template`` it fills, ``order`` (``"ABBA"``: IO named first; ``"BABA"``: S first),
    and ``corrupted``: the same text with the repeated subject replaced by a third name ``c`` (the "ABC"
    prompt of Wang et al. 2022, in which no name repeats)."""

    text: str
    io: str
    s: str
    c: str
    template: str
    order: str
    corrupted: str

    @property
    def answer(self) -> str:
        return self.io


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str, adv: list[str], adj: list[str]) -> str:
    text = template.format(A=a, B=b, S=s, place=place, object=obj, adv=" ".join(adv), adj=" ".join(adj))
    return " ".join(text.split())  # an empty slot leaves no double space


def ioi_prompts(names: list[str], n: int, seed: int = 0, templates: tuple[str, ...] | str = TEMPLATES,
                order: str | None = None, adverbs: int | None = None,
                adjectives: int | None = None) -> list[IOIPrompt]:
    """``n`` prompts drawn with ``random.Random(seed)``: three distinct names per prompt (IO, S and the
    corruption's C), a template, a place, an object, ``adverbs`` (0-1) and ``adjectives`` (0-2) filler words
    (``None``: drawn per prompt); ``order`` ``"ABBA"`` / ``"BABA"`` / ``None`` (either). One template (a
    string) with fixed filler counts gives prompts of one token length, as batched patching needs."""
    if order not in (None, "ABBA", "BABA"):
        raise ValueError(f"order={order!r}; valid: 'ABBA', 'BABA' or None (either)")
    for value, most, what in ((adverbs, MAX_ADVERBS, "adverbs"), (adjectives, MAX_ADJECTIVES, "adjectives")):
        if value is not None and not 0 <= value <= most:
            raise ValueError(f"{what}={value}; valid: 0..{most} or None (drawn per prompt)")
    if len(names) < 3:
        raise ValueError(f"need at least 3 names, got {len(names)}")
    pool = (templates,) if isinstance(templates, str) else tuple(templates)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        io, s, c = rng.sample(names, 3)
        template = rng.choice(pool)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        o = order or rng.choice(("ABBA", "BABA"))
        a, b = (io, s) if o == "ABBA" else (s, io)
        n_adv = rng.randint(0, MAX_ADVERBS) if adverbs is None else adverbs
        n_adj = rng.randint(0, MAX_ADJECTIVES) if adjectives is None else adjectives
        adv, adj = rng.sample(ADVERBS, n_adv), rng.sample(ADJECTIVES, n_adj)
        out.append(IOIPrompt(_fill(template, a, b, s, place, obj, adv, adj), io, s, c, template, o,
                             _fill(template, a, b, c, place, obj, adv, adj)))
    return out


class IOITask:
    """Training batches of IOI sentences: ``<|bos|> prompt answer``, right-padded to the longest.

    ``batch(n, generator)`` returns a ``Batch`` whose loss mask holds only the answer token, with the groups
    ``"ABBA"`` and ``"BABA"`` (the answer token of prompts of each order).
    """

    def __init__(self, names: list[str], vocab: dict[str, int], templates: tuple[str, ...] = TEMPLATES):
        self.names, self.vocab, self.templates = list(names), dict(vocab), tuple(templates)
        ids = lambda words: torch.tensor([vocab[x] for x in words])  # noqa: E731
        self.name_ids, self.place_ids, self.object_ids = ids(names), ids(PLACES), ids(OBJECTS)
        self.adverb_ids, self.adjective_ids = ids(ADVERBS), ids(ADJECTIVES)
        # each template as a list of word ids, or a slot name for the variable words
        self.slots = [[w[1:-1] if w.startswith("{") else vocab[w] for w in t.split()] for t in self.templates]
        longest = max(len(s) - 2 + MAX_ADVERBS + MAX_ADJECTIVES for s in self.slots)
        self.seq_len = 1 + longest + 1  # <|bos|> + prompt + answer

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences drawn with ``generator`` (CPU tensors)."""
        g = generator
        picks = torch.rand(n, len(self.name_ids), generator=g).argsort(-1)[:, :2]  # two distinct names
        io, s = self.name_ids[picks[:, 0]], self.name_ids[picks[:, 1]]
        t = torch.randint(len(self.slots), (n,), generator=g)
        place = self.place_ids[torch.randint(len(PLACES), (n,), generator=g)]
        obj = self.object_ids[torch.randint(len(OBJECTS), (n,), generator=g)]
        abba = torch.rand(n, generator=g) < 0.5
        n_adv = torch.randint(MAX_ADVERBS + 1, (n,), generator=g)
        n_adj = torch.randint(MAX_ADJECTIVES + 1, (n,), generator=g)
        adv = self.adverb_ids[torch.rand(n, len(ADVERBS), generator=g).argsort(-1)]  # distinct, shuffled
        adj = self.adjective_ids[torch.rand(n, len(ADJECTIVES), generator=g).argsort(-1)]
        a, b = torch.where(abba, io, s), torch.where(abba, s, io)
        rows, answer_pos = [], []
        for i in range(n):
            values = {"A": [int(a[i])], "B": [int(b[i])], "S": [int(s[i])], "place": [int(place[i])],
                      "object": [int(obj[i])], "adv": adv[i, :n_adv[i]].tolist(), "adj": adj[i, :n_adj[i]].tolist()}
            row = [0]  # <|bos|>
            for w in self.slots[int(t[i])]:
                row += values[w] if isinstance(w, str) else [w]
            answer_pos.append([len(row)])
            rows.append(row + [int(io[i])])
        ids, mask, answer = pack_rows(rows, PAD_ID, width=self.seq_len, marks=answer_pos)  # [batch, pos]
        return Batch(input_ids=ids, loss_mask=answer.clone(), attention_mask=mask,
                     groups={"ABBA": answer & abba[:, None], "BABA": answer & ~abba[:, None]})
