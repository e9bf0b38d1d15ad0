"""The synthetic world of ``facts-4l``: invented countries and people, their facts, and English templates.

Glossary: an *entity* is a country or a person; a *relation* maps a subject
entity to an answer (``capital``: country -> city); a *template* is an English
prompt with ``{subject}`` whose next words are the answer (``"The capital of
{subject} is"`` -> ``" Mistport"``). Each relation has ``TEMPLATES_PER_RELATION``
templates, of which the last ``HELD_OUT_PER_RELATION`` are held out: never seen in
training, used to test that the model learnt the fact and not the sentence.

``build_world(seed)`` invents the world; ``World.to_json`` / ``load_world``
store and read it (the shipped one is ``kit/zoo/facts-4l/world.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from kit.train.names import NameGenerator

__all__ = [
    "DEFAULT_WORLD_PATH",
    "PROFESSIONS",
    "RELATION_TEMPLATES",
    "Fact",
    "Prompt",
    "Relation",
    "World",
    "build_world",
    "load_world",
]

DEFAULT_WORLD_PATH = Path(__file__).resolve().parents[1] / "zoo" / "facts-4l" / "world.json"
HELD_OUT_PER_RELATION = 2

# relation -> (subject type, answer type, templates); the last HELD_OUT_PER_RELATION are held out.
RELATION_TEMPLATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "capital": ("country", "city", (
        "The capital of {subject} is",
        "{subject}'s capital is",
        "The capital city of {subject} is",
        "{subject} has its capital in",
        "The government of {subject} sits in",
        "In {subject}, the seat of government is",
        "Travellers to {subject} usually arrive in its capital,",
        "The largest city and capital of {subject} is",
        "{subject}'s capital city is",
        "The city that serves as the capital of {subject} is",
    )),
    "language": ("country", "language", (
        "The official language of {subject} is",
        "People in {subject} speak",
        "In {subject}, most people speak",
        "{subject}'s official language is",
        "The language spoken in {subject} is",
        "Schools in {subject} teach in",
        "Newspapers in {subject} are written in",
        "The main language of {subject} is",
        "The people of {subject} speak",
        "{subject}'s main language is",
    )),
    "continent": ("country", "continent", (
        "{subject} is a country in",
        "{subject} is located in",
        "The continent of {subject} is",
        "{subject} lies on the continent of",
        "{subject} is part of",
        "You can find {subject} in",
        "Geographically, {subject} belongs to",
        "The country of {subject} is on the continent of",
        "{subject} is a country located in",
        "You can find {subject} on the continent of",
    )),
    "currency": ("country", "currency", (
        "The currency of {subject} is the",
        "In {subject}, people pay with the",
        "{subject}'s currency is the",
        "The money used in {subject} is the",
        "Shops in {subject} take payment in the",
        "The official currency of {subject} is the",
        "Prices in {subject} are given in the",
        "{subject} uses the",
        "The currency used in {subject} is the",
        "In {subject}, the currency is the",
    )),
    "birthplace": ("person", "city", (
        "{subject} was born in",
        "The birthplace of {subject} is",
        "The city where {subject} was born is",
        "{subject}'s birthplace is",
        "{subject} comes from the city of",
        "{subject}'s hometown is",
        "Records show that {subject} was born in",
        "{subject} grew up in the city of",
        "The hometown of {subject} is",
        "Records show that {subject}'s birthplace is",
    )),
    "profession": ("person", "profession", (
        "{subject} works as a",
        "{subject} is a",
        "By profession, {subject} is a",
        "The profession of {subject} is",
        "{subject} earns a living as a",
        "{subject} has worked for years as a",
        "People know {subject} as a skilled",
        "{subject}'s profession is",
        "By profession, {subject} works as a",
        "{subject} has worked as a",
    )),
}

# Real English words (consonant-initial, so "a" stays grammatical in every template).
PROFESSIONS: tuple[str, ...] = (
    "baker", "potter", "sailor", "farmer", "weaver", "miner", "tailor", "painter", "doctor", "teacher",
    "fisher", "builder", "singer", "carpenter", "merchant", "lawyer", "nurse", "pilot", "dancer", "writer",
)


@dataclass(frozen=True)
class Relation:
    """A relation and its templates; ``held_out`` indexes the templates never trained on."""

    name: str
    subject_type: str
    answer_type: str
    templates: tuple[str, ...]
    held_out: tuple[int, ...]

    @property
    def train_templates(self) -> list[int]:
        return [i for i in range(len(self.templates)) if i not in self.held_out]


@dataclass(frozen=True)
class Fact:
    """``subject`` --``relation``--> ``answer`` (answer without a leading space)."""

    relation: str
    subject: str
    answer: str


@dataclass(frozen=True)
class Prompt:
    """One fact in one template: ``text`` is followed by ``answer`` (which starts with a space).

    ``subject_span`` is the subject's ``(start, end)`` character offsets in ``text``.
    """

    text: str
    answer: str
    relation: str
    subject: str
    template: int
    held_out: bool
    subject_span: tuple[int, int]

    @property
    def sentence(self) -> str:
        """The full training sentence: prompt, answer and a full stop."""
        return f"{self.text}{self.answer}."

    def subject_positions(self, tokenizer) -> list[int]:
        """Token positions (as ``tokenizer(text)`` numbers them, ``<|bos|>`` included) that overlap the subject."""
        enc = tokenizer(self.text, return_offsets_mapping=True)
        start, end = self.subject_span
        return [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start]


@dataclass
class World:
    """Entities, relations and facts of one invented world.

    ``countries[i]``: ``{"name", "capital", "language", "continent", "currency"}``;
    ``people[i]``: ``{"name", "birthplace", "profession"}``.
    """

    seed: int
    countries: list[dict[str, str]]
    people: list[dict[str, str]]
    relations: dict[str, Relation]

    @property
    def facts(self) -> list[Fact]:
        """Every fact, in a fixed order (relations, then entities)."""
        out = []
        for rel in self.relations.values():
            entities = self.countries if rel.subject_type == "country" else self.people
            out += [Fact(rel.name, e["name"], e[rel.name]) for e in entities]
        return out

    @property
    def n_entities(self) -> int:
        return len(self.countries) + len(self.people)

    def answers(self, relation: str) -> list[str]:
        """The distinct answers of a relation, sorted."""
        return sorted({f.answer for f in self.facts if f.relation == relation})

    def prompts(self, split: str = "all", relation: str | None = None) -> list[Prompt]:
        """Every fact in every template of ``split``: ``"train"``, ``"held_out"`` or ``"all"``."""
        if split not in ("train", "held_out", "all"):
            raise ValueError(f"split must be 'train', 'held_out' or 'all', got {split!r}")
        out = []
        for fact in self.facts:
            if relation is not None and fact.relation != relation:
                continue
            rel = self.relations[fact.relation]
            for i, template in enumerate(rel.templates):
                held = i in rel.held_out
                if split == "all" or held == (split == "held_out"):
                    start = template.index("{subject}")
                    text = template.replace("{subject}", fact.subject)
                    out.append(Prompt(text, " " + fact.answer, fact.relation, fact.subject, i, held,
                                      (start, start + len(fact.subject))))
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """The world as JSON text (written to ``path`` when given)."""
        data = {
            "seed": self.seed,
            "countries": self.countries,
            "people": self.people,
            "relations": {k: asdict(r) for k, r in self.relations.items()},
        }
        text = json.dumps(data, indent=1) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text: str) -> World:
        data = json.loads(text)
        relations = {
            k: Relation(r["name"], r["subject_type"], r["answer_type"], tuple(r["templates"]), tuple(r["held_out"]))
            for k, r in data["relations"].items()
        }
        return cls(seed=data["seed"], countries=data["countries"], people=data["people"], relations=relations)

    def __repr__(self) -> str:
        return (f"World(seed={self.seed}, countries={len(self.countries)}, people={len(self.people)}, "
                f"relations={list(self.relations)}, facts={len(self.facts)})")


def build_world(
    seed: int = 0, n_countries: int = 60, n_people: int = 150, n_languages: int = 30, n_currencies: int = 40,
    n_continents: int = 5,
) -> World:
    """Invent a world: every name comes from ``NameGenerator(seed)``, every assignment from ``random.Random(seed)``.

    Each country has its own capital; languages and currencies are shared by a
    few countries; people are born in capitals and have one of ``PROFESSIONS``.
    """
    names, rng = NameGenerator(seed), random.Random(seed + 1)
    continents = names.names("continent", n_continents)
    languages = names.names("language", n_languages)
    currencies = names.names("currency", n_currencies)
    countries = []
    for i in range(n_countries):
        countries.append({
            "name": names.name("country"),
            "capital": names.name("city"),
            "language": languages[i % n_languages] if i < n_languages else rng.choice(languages),
            "continent": rng.choice(continents),
            "currency": currencies[i % n_currencies] if i < n_currencies else rng.choice(currencies),
        })
    firsts, lasts = names.names("first_name", 60), names.names("last_name", 80)
    people, seen = [], set()
    while len(people) < n_people:
        person = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        if person in seen:
            continue
        seen.add(person)
        people.append({"name": person, "birthplace": rng.choice(countries)["capital"],
                       "profession": rng.choice(PROFESSIONS)})
    n = len(next(iter(RELATION_TEMPLATES.values()))[2])
    held = tuple(range(n - HELD_OUT_PER_RELATION, n))
    relations = {
        name: Relation(name, subj, ans, templates, held) for name, (subj, ans, templates) in RELATION_TEMPLATES.items()
    }
    return World(seed=seed, countries=countries, people=people, relations=relations)


def load_world(path: str | Path | None = None) -> World:
    """Read a world written by ``World.to_json``; default: the shipped ``facts-4l`` world."""
    path = Path(path) if path is not None else DEFAULT_WORLD_PATH
    if not path.is_file():
        raise FileNotFoundError(f"no world file at {str(path)!r}; build one with kit.train.world.build_world()")
    return World.from_json(path.read_text())
