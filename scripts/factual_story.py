"""The factual-recall story of ``facts-4l``, measured and written into its model card.

``python scripts/factual_story.py [DIR]`` measures :func:`kit.analysis.recall_story` over facts the
model answers correctly in each relation's first template and rewrites the card's "Factual recall,
measured" section (tests/test_factual_story.py checks the card against the weights). ``DIR``
defaults to the shipped ``kit/zoo/facts-4l``.

A report, not part of the library: it ties ``kit.analysis`` (the measurements) to ``kit.train`` (the
world the model was trained on), which the library packages never do to each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import kit
from kit.analysis import recall_story
from kit.models import ZOO_DIR
from kit.train.world import load_world

__all__ = ["story_examples", "write_story", "STORY_HEADING"]

STORY_HEADING = "## Factual recall, measured"


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
               f"{_peak_sentence(story)}\n")
    card_path = Path(directory) / "MODEL_CARD.md"
    card_path.write_text(card_path.read_text().split(STORY_HEADING)[0].rstrip() + "\n\n" + section)
    return section


def _peak_sentence(story) -> str:
    """Where the MLP causal effect peaks, compared with ROME's finding."""
    if story.mlp_subject_last >= max(story.mlp_other, story.mlp_last):
        return ("The MLP causal effect peaks at the subject's last token, as Meng et al. (2022) found in GPT-2 XL. "
                "It does so because of the entity records in the training text (see Data), and not for every "
                "training seed or invented world: `docs/factual_recall_experiments.md` gives the runs, per relation "
                "and per seed.")
    where = ("an earlier token (for a subject, the token at which its invented name becomes distinctive)"
             if story.mlp_other >= story.mlp_last else "the last token")
    return (f"The MLP causal effect does not peak at the subject's last token, as Meng et al. (2022) found in "
            f"GPT-2 XL, but at {where}. `docs/factual_recall_experiments.md` records the training designs tried "
            "to move it.")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(ZOO_DIR / "facts-4l")
    print(write_story(target))
