"""Pronounceable invented names from a seeded generator (``random.Random``: the same on every platform).

``NameGenerator(seed).name(kind)`` returns a fresh name of one kind: a stem of
consonant-vowel syllables (and a consonant where the ending starts with a
vowel) plus an ending typical of the kind
(``"Veloria"`` for a country, ``"Mistport"`` for a city, ``"Tarvish"`` for a
language). Names are unique across every kind drawn from one generator.
"""

from __future__ import annotations

import random

__all__ = ["KINDS", "NameGenerator"]

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "st", "tr", "th", "sh"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou"]
_CODAS_BEFORE_CONSONANT = ["", "", "n", "l", "r", "s", "st", "m"]
_CODAS_BEFORE_VOWEL = ["n", "l", "r", "s", "m", "v", "d", "t", "k"]

# kind -> (syllables in the stem (min, max), endings, capitalised)
KINDS: dict[str, tuple[tuple[int, int], tuple[str, ...], bool]] = {
    "country": ((1, 2), ("ria", "land", "ovia", "esh", "ania", "ora", "istan", "enne", "aria", "mark"), True),
    "city": ((1, 2), ("port", "ford", "holm", "burg", "ton", "mouth", "dale", "vik", "haven", "field"), True),
    "language": ((1, 2), ("ish", "ese", "ic", "ian", "i", "ol"), True),
    "currency": ((1, 1), ("", "o", "et", "ar", "ek", "um"), False),
    "continent": ((2, 2), ("ea", "asia", "ica", "ora"), True),
    "first_name": ((1, 2), ("a", "o", "en", "is", "el", "ina", "ard", "ette"), True),
    "last_name": ((1, 2), ("as", "ov", "son", "ez", "ard", "ine", "berg", "wick"), True),
}


# Invented names that happen to spell an English word people may find offensive.
_BLOCKED = frozenset({"retard", "retards", "nazi", "rape", "slut", "dick", "dildo", "negro"})


class NameGenerator:
    """Seeded source of unique, pronounceable names; ``name(kind)`` for kinds in ``KINDS``."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.used: set[str] = set()

    def _stem(self, n_syllables: int, before_vowel: bool) -> str:
        r = self.rng
        stem = "".join(r.choice(_ONSETS) + r.choice(_VOWELS) for _ in range(n_syllables))
        return stem + r.choice(_CODAS_BEFORE_VOWEL if before_vowel else _CODAS_BEFORE_CONSONANT)

    def name(self, kind: str) -> str:
        """A name of ``kind`` never returned before by this generator."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; kinds: {sorted(KINDS)}")
        (lo, hi), endings, capital = KINDS[kind]
        for _ in range(10_000):
            ending = self.rng.choice(endings)
            stem = self._stem(self.rng.randint(lo, hi), before_vowel=ending[:1] in tuple("aeiou"))
            word = stem + ending
            word = word.capitalize() if capital else word.lower()
            if 4 <= len(word) <= 12 and word.lower() not in self.used and word.lower() not in _BLOCKED:
                self.used.add(word.lower())
                return word
        raise RuntimeError(f"could not find a fresh {kind} name")

    def names(self, kind: str, n: int) -> list[str]:
        """``n`` fresh names of ``kind``."""
        return [self.name(kind) for _ in range(n)]
