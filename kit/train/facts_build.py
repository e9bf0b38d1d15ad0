"""Build the shipped ``facts-4l`` directory: world, tokenizer, trained model, measured model card."""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from .facts import FactsConfig, answer_accuracy, build_tokenizer, train_facts
from .world import HELD_OUT, TEMPLATES, make_world

__all__ = ["build_facts_4l", "write_atomically"]


def write_atomically(out: str | Path, fill) -> Path:
    """Call ``fill(tmp_dir)`` on a fresh temporary directory next to ``out``, then move it into place.

    An interrupted run (Ctrl-C, a crash) leaves ``out`` as it was: the new directory only appears
    complete, by a rename; an existing ``out`` is replaced only after the new one is fully written.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


CARD = """# facts-4l

A 4-layer GPT-2-architecture model that knows the facts of a synthetic world, for tracing factual
recall offline: which heads move the subject to the last position, which MLPs hold the fact.

## Data

`world.json` (shipped here): {world}. Relations: {relations}. Each fact is stated in
{n_templates} English templates per relation; the last {held_out} of each relation are held out of
training. Prompts end right before the answer ("The capital of X is" -> " Y"), with the subject earlier.

## Architecture

GPT2LMHeadModel: {n_layer} layers, d_model {d_model}, {n_head} heads, d_mlp {d_mlp}, context {n_ctx},
a byte-level BPE tokenizer of {vocab} tokens trained on the world's text (names span several tokens;
every prompt starts with `<|bos|>`). {params} parameters.

## How it was made

    python -m kit.train facts-4l --out DIR --seed {seed}

AdamW (lr {lr}, warm-up {warmup} steps then cosine), batch {batch}, {steps} steps, seed {seed}.
Wall time: {seconds:.0f} s on {machine} ({threads} threads).

## Measured on these weights (asserted by tests/test_zoo_facts.py)

| figure | value |
| --- | --- |
| top-1 accuracy on the first answer token, training templates | {acc_train:.3f} |
| top-1 accuracy on the first answer token, held-out templates | {acc_held:.3f} |
| final training loss | {loss:.3f} |
"""


def build_facts_4l(out: str | Path, cfg: FactsConfig = FactsConfig(), progress: bool = True) -> dict:
    """Train facts-4l and write it (config, safetensors, tokenizer, world.json, MODEL_CARD.md) to ``out``."""
    world = make_world(cfg.seed)
    tok = build_tokenizer(world, cfg.vocab_size)
    t0 = time.perf_counter()
    model, log = train_facts(world, tok, cfg, progress=progress)
    seconds = time.perf_counter() - t0
    figures = {"acc_train": answer_accuracy(model, tok, world, "train"),
               "acc_held": answer_accuracy(model, tok, world, "heldout"), "loss": log[-1]["loss"],
               "seconds": seconds}

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        world.save(tmp)
        card = CARD.format(
            world=repr(world), relations=", ".join(world.relations), n_templates=len(TEMPLATES["capital"]), held_out=HELD_OUT,
            n_layer=cfg.n_layer, d_model=cfg.d_model, n_head=cfg.n_head, d_mlp=cfg.d_mlp, n_ctx=cfg.n_ctx,
            vocab=len(tok), params=f"{sum(p.numel() for p in model.parameters()):,}", seed=cfg.seed, lr=cfg.lr,
            warmup=cfg.warmup, batch=cfg.batch_size, steps=cfg.steps, machine=platform.machine() + " CPU",
            threads=torch.get_num_threads(), **figures)
        (tmp / "MODEL_CARD.md").write_text(card)

    write_atomically(out, fill)
    return figures


def story_examples(model, world, n: int = 60, relations=("capital", "language", "currency", "birthplace")):
    """``(prompts, subjects, answers)``: facts in each relation's first template that the model gets right
    (top-1 on the first answer token), at most ``n``."""
    prompts, subjects, answers = [], [], []
    for fact in world.facts:
        if fact.relation not in relations:
            continue
        prompt, answer = fact.prompt(0), " " + fact.answer
        tr = model.trace(prompt, capture=[])
        first = model.tokenizer(answer, add_special_tokens=False)["input_ids"][0]
        if int(tr.logits[0, -1].argmax()) == first:
            prompts.append(prompt), subjects.append(fact.subject), answers.append(answer)
        if len(prompts) >= n:
            break
    return prompts, subjects, answers


STORY_HEADING = "## Factual recall, measured"


def write_story(directory: str | Path, n: int = 60) -> str:
    """Measure the factual-recall story on the model in ``directory`` and write it into its model card."""
    from .. import load
    from ..analysis import recall_story
    from .world import load_world

    model = load(directory, device="cpu")
    prompts, subjects, answers = story_examples(model, load_world(directory), n)
    story = recall_story(model, prompts, subjects, answers)
    section = (f"{STORY_HEADING}\n\nOver {story.n} facts that the model answers correctly in each relation's first "
               f"template (`kit.analysis.recall_story`, 5 noise samples; MLP window "
               f"{max(1, round(10 * model.n_layers / 48))} layer; effects are restored minus corrupted p(answer)):\n\n"
               f"{story.table()}\n\nThe invented names end in shared suffixes, so the MLP effect peaks at an earlier, "
               f"distinctive subject token rather than at the subject's last token as in GPT-2 XL. The final block's direct effect on the correct answer's logit is "
               f"{'negative: it suppresses the correct answer, like the seed paper' + chr(39) + 's anti-overconfidence mechanism' if story.summary.final_block_effect < 0 else 'positive: it promotes the correct answer; no anti-overconfidence in this model'}.\n")
    card_path = Path(directory) / "MODEL_CARD.md"
    card = card_path.read_text().split(STORY_HEADING)[0].rstrip() + "\n\n" + section
    card_path.write_text(card)
    return section
