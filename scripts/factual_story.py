"""The factual-recall story of ``facts-4l``, measured and written into its model card.

``python scripts/factual_story.py [DIR]`` measures :func:`kit.analysis.recall_story` over facts the
model answers correctly in each relation's first template and rewrites the card's "Factual recall,
measured" section (tests/test_factual_story.py checks the card against the weights), then measures
the same story per relation (all six) and per template split (trained, held-out), so the card says
where a user who varies the prompt will find the peak. ``DIR`` defaults to the shipped
``kit/zoo/facts-4l``.

A report, not part of the library: it ties ``kit.analysis`` (the measurements) to ``kit.train`` (the
world the model was trained on), which the library packages never do to each other.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import kit
from kit.analysis import recall_story
from kit.models import ZOO_DIR
from kit.train.world import load_world

__all__ = ["story_examples", "relation_rows", "RelationRow", "write_story", "STORY_HEADING", "ACROSS_HEADING"]

STORY_HEADING = "## Factual recall, measured"
ACROSS_HEADING = "### Across relations and templates"
SPLITS = ("train", "held_out")


def story_examples(model, world, n: int = 60, relations=("capital", "language", "currency", "birthplace")):
    """``(prompts, subjects, answers)``: facts in each relation's first template that the model gets
    right (top-1 on the first answer token), at most ``n``, taken round-robin over ``relations``."""
    pools = {rel: [p for p in world.prompts("train", rel) if p.template == 0] for rel in relations}
    prompts, subjects, answers = [], [], []
    for i in range(max(len(v) for v in pools.values())):
        for rel in relations:
            if i >= len(pools[rel]) or len(prompts) >= n:
                continue
            p = pools[rel][i]
            first = model.tokenizer(p.answer, add_special_tokens=False)["input_ids"][0]
            if int(model.trace(p.text, capture=[]).logits[0, -1].argmax()) == first:
                prompts.append(p.text), subjects.append(p.subject), answers.append(p.answer)
    return prompts, subjects, answers


def split_examples(model, world, relation: str, split: str, n: int = 30) -> list:
    """Up to ``n`` prompts of ``relation`` in the templates of ``split`` that the model gets right
    (top-1 on the first answer token), taken round-robin over the split's templates (entity ``i`` in
    every template, then entity ``i + 1``), so every template counts about equally."""
    from kit.train.facts import answer_correct

    prompts = world.prompts(split, relation)
    by_template: dict[int, list] = {}
    for p in prompts:
        by_template.setdefault(p.template, []).append(p)
    pools = list(by_template.values())
    order = [pool[i] for i in range(max(map(len, pools))) for pool in pools if i < len(pool)]
    ok = answer_correct(model.hf, model.tokenizer, order)
    return [p for p, right in zip(order, ok.tolist()) if right][:n]


@dataclass(frozen=True)
class RelationRow:
    """The story of one relation in one template split: means over ``n`` facts of the MLP causal
    effect at the subject's last token, the best other earlier token and the last token; the standard
    errors of the two paired differences (subject's last minus each other place); the knockout ratio;
    the head that attends most from the last token to the subject."""

    relation: str
    split: str
    templates: tuple[int, ...]
    n: int
    subject_last: float
    other: float
    last: float
    se_other: float
    se_last: float
    knockout_ratio: float
    top_head: tuple[int, int]

    @property
    def peak(self) -> str:
        """Where the MLP effect peaks, with a margin of two standard errors of the paired difference;
        a difference within it is called a tie."""
        gaps = {"an earlier token": (self.subject_last - self.other, self.se_other),
                "the last token": (self.subject_last - self.last, self.se_last)}
        if all(d > 2 * se for d, se in gaps.values()):
            return "subject's last token"
        ahead = [where for where, (d, se) in gaps.items() if d < -2 * se]
        if ahead:
            return ahead[0] if len(ahead) == 1 else "elsewhere"
        tied = [where for where, (d, se) in gaps.items() if abs(d) <= 2 * se]
        return "tie with " + " and ".join(tied)

    def cells(self) -> list[str]:
        split = "trained" if self.split == "train" else "held-out"
        return [self.relation, split, ", ".join(map(str, self.templates)), str(self.n),
                f"{self.subject_last:.3f}", f"{self.other:.3f}", f"{self.last:.3f}", self.peak,
                f"{self.knockout_ratio:.3f}", f"L{self.top_head[0]}H{self.top_head[1]}"]


def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else float("nan")
    return m, math.sqrt(var / len(xs))


def relation_rows(model, world, n: int = 30) -> list[RelationRow]:
    """One :class:`RelationRow` per relation of ``world`` and per split (trained, held-out templates):
    :func:`kit.analysis.recall_story` over up to ``n`` facts the model gets right, each fact also
    measured alone for the paired standard errors (the story's figures are means over facts)."""
    rows = []
    for rel in world.relations.values():
        for split in SPLITS:
            ex = split_examples(model, world, rel.name, split, n)
            if len(ex) < 2:
                raise ValueError(f"{rel.name}, {split} templates: the model knows {len(ex)} facts, too few to measure")
            alone = [recall_story(model, [p.text], [p.subject], [p.answer]) for p in ex]
            story = recall_story(model, [p.text for p in ex], [p.subject for p in ex], [p.answer for p in ex])
            (layer, head, _), = story.summary.top_subject_heads(1)
            _, se_o = _mean_se([a.mlp_subject_last - a.mlp_other for a in alone])
            _, se_l = _mean_se([a.mlp_subject_last - a.mlp_last for a in alone])
            rows.append(RelationRow(rel.name, split, tuple(sorted({p.template for p in ex})), story.n,
                                    story.mlp_subject_last, story.mlp_other, story.mlp_last, se_o, se_l,
                                    story.knockout_ratio, (layer, head)))
    return rows


def across_section(rows: list[RelationRow]) -> str:
    """The card's per-relation, per-split table and what it shows."""
    head = ["relation", "templates", "template ids", "facts", "MLP effect: subject's last token",
            "best other earlier token", "last token", "peak (2 standard errors)", "knockout ratio",
            "top head to the subject"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    peaks = [r for r in rows if r.peak == "subject's last token"]
    others = "; ".join(f"{r.relation} ({'trained' if r.split == 'train' else 'held-out'}): {r.peak}"
                       for r in rows if r not in peaks) or "none"
    return (f"{ACROSS_HEADING}\n\nThe figures above pool four relations (capital, language, currency, "
            f"birthplace) in their first template. A user may ask in other words or of other relations: the "
            f"same measurement over up to {max(r.n for r in rows)} facts per relation and per template split "
            f"(trained templates, round-robin over them; the held-out ones, never trained on), by "
            f"`python scripts/factual_story.py` (`relation_rows`). The peak is the subject's last token where its "
            f"effect exceeds both the best other earlier token's and the last token's by more than two standard "
            f"errors of the paired difference over facts; within that margin it is a tie.\n\n"
            + "\n".join(lines) + "\n\n"
            f"The MLP effect peaks at the subject's last token in {len(peaks)} of {len(rows)} rows. "
            f"Elsewhere: {others}.\n")


def write_story(directory: str | Path, n: int = 60) -> str:
    """Measure the story on the model in ``directory`` and write it into its MODEL_CARD.md."""
    model = kit.load(directory, device="cpu")
    prompts, subjects, answers = story_examples(model, load_world(Path(directory) / "world.json"), n)
    story = recall_story(model, prompts, subjects, answers)
    final = story.summary.final_block_effect
    verdict = ("negative: it suppresses the correct answer, like the seed paper's anti-overconfidence mechanism"
               if final < 0 else "positive: it promotes the correct answer; no anti-overconfidence in this model")
    section = (f"{STORY_HEADING}\n\nOver {story.n} facts that the model answers correctly in each relation's first "
               f"template, measured by `python scripts/factual_story.py` (`kit.analysis.recall_story`: causal tracing "
               f"with 5 noise samples of 3x the embedding std, MLP window 1 layer; effects are restored minus "
               f"corrupted p(answer); attention knockout in every layer):\n\n{story.table()}\n\n"
               f"The final block's direct effect on the correct answer's logit is {verdict}.\n\n"
               f"{_peak_sentence(story)}\n\n"
               f"{across_section(relation_rows(model, load_world(Path(directory) / 'world.json')))}")
    card_path = Path(directory) / "MODEL_CARD.md"
    card_path.write_text(card_path.read_text().split(STORY_HEADING)[0].rstrip() + "\n\n" + section)
    return section


def _peak_sentence(story) -> str:
    """Where the MLP causal effect peaks, compared with ROME's finding."""
    if story.mlp_subject_last >= max(story.mlp_other, story.mlp_last):
        return ("The MLP causal effect peaks at the subject's last token, as Meng et al. (2022) found in GPT-2 XL. "
                "This depends on the training design and on the seeds: it appeared in none of seven designs trained "
                "on template sentences alone, and with entity records (see Data) in 7 of 46 trainings; with this "
                "card's recipe on world seed 0 in 1 of 8 training seeds (seed 0, the one this model uses: .343 at "
                "the subject's last token against .183 at the best other earlier token and .116 at the last token) "
                "and in 2 of 4 invented worlds (world seed 2, this model's: .422/.142/.149). "
                "`docs/factual_recall_experiments.md` gives every run, per relation and per seed.")
    where = ("an earlier token (for a subject, the token at which its invented name becomes distinctive)"
             if story.mlp_other >= story.mlp_last else "the last token")
    return (f"The MLP causal effect does not peak at the subject's last token, as Meng et al. (2022) found in "
            f"GPT-2 XL, but at {where}. `docs/factual_recall_experiments.md` records the training designs tried "
            "to move it.")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(ZOO_DIR / "facts-4l")
    print(write_story(target))
