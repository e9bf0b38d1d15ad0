"""A synthetic world of invented countries and people, stated in English templates: ``facts-4l``'s data.

Countries have a capital, a language, a continent and a currency; people have a birthplace (a
country) and a profession. Every fact is stated in 14 templates per relation; the last 2 templates of
each relation are held out from training, so tests can ask facts in wordings the model never saw.
Each template ends right before the answer, with the subject earlier in the prompt:
``"The capital of {s} is"`` -> ``" Mistport"``.

The world ships as ``world.json`` next to the model; :func:`load_world` reads it.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Fact", "World", "TEMPLATES", "HELD_OUT", "make_world", "load_world", "WORLD_FILE"]

WORLD_FILE = "world.json"

# relation -> templates; "{s}" is the subject; the answer follows the template after a space.
TEMPLATES: dict[str, list[str]] = {
    "capital": [
        "The capital of {s} is the city of", "Visitors to {s} often start in its capital,", "{s} has its capital in",
        "The capital of the country {s} is", "If you fly to the capital of {s}, you land in", "{s}'s seat of government is in",
        "The capital of {s} is", "{s}'s capital city is", "The capital city of {s} is called",
        "In {s}, the seat of government is", "The government of {s} sits in the city of",
        "{s} is governed from the city of",
        "The largest city and capital of {s} is", "Everyone knows that the capital of {s} is",
    ],
    "language": [
        "The people of {s} mostly speak", "In {s}, the language on the radio is", "The spoken language of {s} is",
        "Signs in {s} are written in", "Families in {s} talk to each other in", "Most books in {s} are printed in",
        "The official language of {s} is", "People in {s} speak", "Most people living in {s} speak",
        "The main language spoken in {s} is", "In {s}, schools teach in", "Newspapers in {s} are written in",
        "The language of {s} is", "Children in {s} grow up speaking",
    ],
    "continent": [
        "{s} is situated in", "{s} is a nation in", "The continent that {s} is on is",
        "{s} sits on the continent of", "The land of {s} lies in", "{s} can be found on the map of",
        "{s} is a country in", "{s} is located in", "{s} lies on the continent of",
        "The country of {s} is part of", "On a map, {s} can be found in", "Geographically, {s} belongs to",
        "{s} is one of the countries in", "You can find {s} on the continent of",
    ],
    "currency": [
        "In {s}, you pay with the", "The coins of {s} are called the", "The currency used in {s} is the",
        "In the markets of {s}, prices are in the", "Banks in {s} hand out the", "Workers in {s} are paid in the",
        "The currency of {s} is the", "In {s}, people pay with the", "The money used in {s} is the",
        "Shops in {s} take payment in the", "The official currency of {s} is the", "Prices in {s} are given in the",
        "The national currency of {s} is the", "In {s}, the money is called the",
    ],
    "birthplace": [
        "{s} was born in the country of", "{s} originally comes from", "The country where {s} was born is",
        "{s} spent childhood in", "{s} is from", "{s} first saw the light of day in",
        "{s} was born in", "{s} comes from the country of", "The birthplace of {s} is",
        "{s} grew up in", "{s} is a native of", "As a child, {s} lived in",
        "{s} was born and raised in", "The home country of {s} is",
    ],
    "profession": [
        "{s} is a", "{s} makes a living as a", "The profession of {s} is",
        "At work, {s} is a", "{s} trained to be a", "For years, {s} has worked as a",
        "{s} works as a", "By profession, {s} is a", "{s} earns a living as a",
        "{s} is employed as a", "The job of {s} is", "{s} has a career as a",
        "Everyone knows that {s} works as a", "In daily life, {s} is a",
    ],
}
HELD_OUT = 2  # the last templates of each relation are never trained on

PROFESSIONS = ["baker", "doctor", "farmer", "painter", "pilot", "sailor", "teacher", "tailor", "judge",
               "miner", "poet", "singer"]


@dataclass(frozen=True)
class Fact:
    """One fact: ``relation(subject) = answer``; ``kind`` is the subject's type (country or person)."""

    relation: str
    subject: str
    answer: str
    kind: str

    def prompt(self, template: int) -> str:
        """The prompt that the answer follows, in template number ``template``."""
        return TEMPLATES[self.relation][template].format(s=self.subject)

    def sentence(self, template: int) -> str:
        return f"{self.prompt(template)} {self.answer}."


@dataclass
class World:
    """Entities and facts of the synthetic world (seeded; see :func:`make_world`)."""

    seed: int
    countries: list[dict] = field(default_factory=list)
    people: list[dict] = field(default_factory=list)
    continents: list[str] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)

    @property
    def relations(self) -> list[str]:
        return list(TEMPLATES)

    def templates(self, relation: str, split: str = "train") -> list[int]:
        """Template numbers of a relation for ``split`` ``"train"``, ``"heldout"`` or ``"all"``."""
        n = len(TEMPLATES[relation])
        return {"train": list(range(n - HELD_OUT)), "heldout": list(range(n - HELD_OUT, n)),
                "all": list(range(n))}[split]

    def examples(self, split: str = "train") -> list[tuple[str, str, str, Fact]]:
        """``(prompt, answer, subject, fact)`` for every fact in every template of the split."""
        return [(f.prompt(t), " " + f.answer, f.subject, f) for f in self.facts for t in self.templates(f.relation, split)]

    def sentences(self, split: str = "train") -> list[str]:
        """Every fact in every template of the split, as a full sentence."""
        return [f.sentence(t) for f in self.facts for t in self.templates(f.relation, split)]

    def entity_count(self) -> int:
        names = {c["name"] for c in self.countries} | {p["name"] for p in self.people}
        names |= {c[k] for c in self.countries for k in ("capital", "language", "currency")}
        return len(names)

    def to_json(self) -> dict:
        return {"seed": self.seed, "countries": self.countries, "people": self.people, "continents": self.continents,
                "facts": [asdict(f) for f in self.facts], "templates": TEMPLATES, "held_out_per_relation": HELD_OUT}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / WORLD_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False))
        return path

    def __repr__(self) -> str:
        return (f"World(seed={self.seed}, countries={len(self.countries)}, people={len(self.people)}, "
                f"entities={self.entity_count()}, facts={len(self.facts)}, relations={self.relations})")


class _Names:
    """Pronounceable, unique invented names built from syllables (seeded)."""

    ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "st", "th", "sh"]
    VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou"]
    CODAS = ["", "", "", "n", "r", "s", "l", "th", "nd", "x"]

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def make(self, syllables: tuple[int, int] = (2, 3), suffix: str = "") -> str:
        while True:
            n = self.rng.randint(*syllables)
            word = "".join(self.rng.choice(self.ONSETS) + self.rng.choice(self.VOWELS) for _ in range(n))
            word = (word + self.rng.choice(self.CODAS) + suffix).capitalize()
            if word not in self.used and 4 <= len(word) <= 12:
                self.used.add(word)
                return word


def make_world(seed: int = 0, n_countries: int = 40, n_people: int = 60, n_continents: int = 6) -> World:
    """Generate the world: countries with capital, language, continent and currency; people with
    birthplace and profession. Deterministic for a seed."""
    rng = random.Random(seed)
    names = _Names(rng)
    continents = [names.make((2, 3)) for _ in range(n_continents)]
    countries = []
    for _ in range(n_countries):
        country = names.make((2, 3), rng.choice(["", "", "ia", "land", "or"]))
        countries.append({"name": country, "capital": names.make((2, 3), rng.choice(["", "port", "ford", "holm"])),
                          "language": names.make((2, 2), rng.choice(["ish", "ese", "ic"])),
                          "continent": rng.choice(continents), "currency": names.make((1, 2), rng.choice(["", "o", "et"])).lower()})
    people = []
    for _ in range(n_people):
        people.append({"name": f"{names.make((1, 2))} {names.make((2, 2))}", "birthplace": rng.choice(countries)["name"],
                       "profession": rng.choice(PROFESSIONS)})
    facts = [Fact(rel, c["name"], c[rel], "country") for c in countries for rel in ("capital", "language", "continent", "currency")]
    facts += [Fact(rel, p["name"], p[rel], "person") for p in people for rel in ("birthplace", "profession")]
    return World(seed, countries, people, continents, facts)


def load_world(path: str | Path | None = None) -> World:
    """Read a world from ``world.json`` (default: the one shipped with ``facts-4l``)."""
    if path is None:
        path = Path(__file__).resolve().parent.parent / "zoo" / "facts-4l" / WORLD_FILE
    path = Path(path)
    if path.is_dir():
        path = path / WORLD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no world file at {str(path)!r}; train facts-4l with `python -m kit.train facts-4l`")
    data = json.loads(path.read_text())
    world = World(data["seed"], data["countries"], data["people"], data["continents"],
                  [Fact(**f) for f in data["facts"]])
    if data.get("templates") != TEMPLATES:
        raise ValueError(f"{str(path)!r} was made with other templates than this version of the kit")
    return world
