"""The ``facts-4l`` recipe: a 4-layer GPT-2 that memorises the facts of an invented world.

Data: every fact of ``kit.train.world`` stated in each of its relation's
*training* templates; each sequence packs 1 to 3 random sentences (``<|bos|> The
capital of Fusuvaria is Gregrostton. ... <|eos|>``); the held-out templates are never trained on.
Half of the sequences (``FactsRecipe.records``) are entity records instead
(``<|bos|> Fusuvaria Gregrostton Grailodese Stizekasia stounar. ... <|eos|>``): a name, then
all its answers in random order.
Tokenizer: byte-level BPE trained on the training sentences, where template
words and answers count once per sentence and subject names once in all, so
answers (cities, languages, currencies, continents, professions) are single
tokens and subjects (countries, people) span several.

``train_facts(recipe)`` returns a ``TrainResult`` (plus the world);
``measure_facts`` returns the figures of the model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from kit.train.batch import Batch, pack_rows
from kit.train.checkpoint import Checkpointer
from kit.train.loop import TrainConfig
from kit.train.recipe import Recipe, gpt2_model
from kit.train.result import TrainResult
from kit.train.tokenizers import train_bpe_tokenizer
from kit.train.world import Prompt, World, build_world

__all__ = [
    "FactsRecipe",
    "FactsTask",
    "answer_accuracy",
    "answer_correct",
    "build_facts_model",
    "facts_tokenizer",
    "measure_facts",
    "train_facts",
]


@dataclass(frozen=True)
class FactsRecipe(Recipe):
    """Every choice that defines ``facts-4l`` (the defaults are the shipped model's)."""

    world_seed: int = 2  # chosen among seeds 0-3 for the clearest fact lookup (docs/factual_recall_experiments.md)
    n_countries: int = 60
    n_people: int = 150
    vocab_size: int = 1280
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 64
    max_sentences: int = 3  # per training sequence
    # 0 (shipped): a sequence's sentences are drawn at random; n >= 2: each sequence
    # states 2 to n different training sentences about ONE subject (an experiment, see
    # docs/factual_recall_experiments.md)
    per_subject: int = 0
    # a fraction of sequences are entity records instead of template sentences: "Fusuvaria
    # Gregrostton Grailodese Stizekasia stounar." (the subject, then its answers in random
    # order), so the token after a subject's name is one of its attributes (0.0: template
    # sentences only; docs/factual_recall_experiments.md: what this does to where facts are looked up)
    records: float = 0.5
    init_std: float = 0.02
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2400, batch_size=32, lr=2e-3, warmup_steps=100, min_lr_ratio=0.1,
        weight_decay=0.01, beta1=0.9, beta2=0.98, grad_clip=1.0, seed=0, probe_every=100,
    ))

    def world(self) -> World:
        return build_world(self.world_seed, n_countries=self.n_countries, n_people=self.n_people)

    def to_dict(self) -> dict:
        """The fields as a dict; ``per_subject`` and ``records`` only where set (so recipes without them
        keep their form)."""
        out = super().to_dict()
        for optional in ("per_subject", "records"):
            if not out[optional]:
                del out[optional]
        return out


def _without_subject(prompt: Prompt) -> str:
    a, b = prompt.subject_span
    return prompt.text[:a] + prompt.text[b:]


def facts_tokenizer(world: World, vocab_size: int, n_ctx: int) -> PreTrainedTokenizerFast:
    """BPE trained on the training sentences with subjects cut out, plus each subject name once."""
    train = world.prompts("train")
    subjects = sorted({p.subject for p in train})
    sentences = [_without_subject(p) + p.answer + "." for p in train]
    corpus = sentences + [" " + s for s in sentences] + [" " + s for s in subjects] + subjects
    return train_bpe_tokenizer(corpus, vocab_size=vocab_size, model_max_length=n_ctx)


class FactsTask:
    """Training sentences as token ids; ``batch(n, generator)`` draws ``n`` sequences, right-padded.

    A sequence is ``<|bos|>``, then 1 to ``max_sentences`` random training
    sentences separated by spaces (as many as fit in ``n_ctx``), then
    ``<|eos|>``: so subjects appear after varied context and at varied
    positions, not only right after ``<|bos|>``. Loss group ``"answer"``: the
    first token of every sentence's answer.

    With ``per_subject`` n >= 2, a sequence instead states 2 to n different
    sentences (relations or templates) about one random subject. With ``records``
    r > 0, a fraction r of the sequences are 1 to ``max_sentences`` entity records
    (a subject's name, then all its answers in random order, then "."), with no
    ``"answer"`` positions.
    """

    def __init__(self, prompts: list[Prompt], tokenizer: PreTrainedTokenizerFast, n_ctx: int, max_sentences: int = 3,
                 per_subject: int = 0, records: float = 0.0):
        if per_subject == 1 or per_subject < 0:
            raise ValueError(f"per_subject must be 0 (random sentences) or at least 2, not {per_subject}")
        if not 0.0 <= records <= 1.0:
            raise ValueError(f"records is a fraction of sequences, between 0 and 1, not {records}")
        self.prompts, self.n_ctx, self.max_sentences, self.per_subject = prompts, n_ctx, max_sentences, per_subject
        self.records = records
        by_subject: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            by_subject.setdefault(p.subject, []).append(i)
        self.by_subject = [by_subject[k] for k in sorted(by_subject)]  # [subject] -> prompt indices
        self._encode_records(tokenizer)
        self.bos, self.eos, self.pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
        # per sentence, two spellings: first in the sequence (no leading space) and following another (" ...")
        self.first: list[tuple[list[int], int]] = []
        self.after: list[tuple[list[int], int]] = []
        for p in prompts:
            self.first.append(self._encode(tokenizer, p.text, p.sentence))
            self.after.append(self._encode(tokenizer, " " + p.text, " " + p.sentence))

    def _encode_records(self, tokenizer: PreTrainedTokenizerFast) -> None:
        """Per subject (sorted), its name's ids (first in a sequence / after a space) and each answer's ids."""
        encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
        self.record_names: list[tuple[list[int], list[int]]] = []
        self.record_answers: list[list[list[int]]] = []
        for indices in self.by_subject:
            subject = self.prompts[indices[0]].subject
            answers = sorted({(self.prompts[i].relation, self.prompts[i].answer) for i in indices})
            self.record_names.append((encode(subject), encode(" " + subject)))
            self.record_answers.append([encode(answer) for _, answer in answers])
        self.full_stop = encode(".")

    def record_sequence(self, subjects: list[int], orders: list[list[int]]) -> list[int]:
        """``<|bos|>`` + one record per subject (name, then its answers in ``orders[k]``, then ".") + ``<|eos|>``."""
        records = []
        for k, (subject, order) in enumerate(zip(subjects, orders)):
            name = self.record_names[subject][0 if k == 0 else 1]
            answers = [t for j in order for t in self.record_answers[subject][j]]
            records.append(name + answers + self.full_stop)
        return self._pack(records)[0]

    def _pack(self, pieces: list[list[int]]) -> tuple[list[int], list[int]]:
        """``<|bos|>`` + the leading ``pieces`` that fit in ``n_ctx`` (the first always) + ``<|eos|>``, cut
        to ``n_ctx``; and where each packed piece starts."""
        ids, starts = [self.bos], []
        for k, piece in enumerate(pieces):
            if k > 0 and len(ids) + len(piece) + 1 > self.n_ctx:
                break
            starts.append(len(ids))
            ids += piece
        return (ids + [self.eos])[: self.n_ctx], starts

    def _record_rows(self, n: int, generator: torch.Generator) -> list[tuple[list[int], list[int]]]:
        counts = torch.randint(1, self.max_sentences + 1, (n,), generator=generator).tolist()
        rows = []
        for count in counts:
            subjects = torch.randint(0, len(self.by_subject), (count,), generator=generator).tolist()
            orders = [torch.randperm(len(self.record_answers[s]), generator=generator).tolist() for s in subjects]
            rows.append((self.record_sequence(subjects, orders), []))
        return rows

    @staticmethod
    def _encode(tokenizer: PreTrainedTokenizerFast, prompt: str, sentence: str) -> tuple[list[int], int]:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
        if ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(f"the prompt's tokens are not a prefix of the sentence's: {sentence!r}")
        return ids, len(prompt_ids)

    def __len__(self) -> int:
        return len(self.prompts)

    def sequence(self, indices: list[int]) -> tuple[list[int], list[int]]:
        """Token ids of ``<|bos|>`` + the sentences ``indices`` (those that fit) + ``<|eos|>``, and answer positions."""
        spelled = [(self.first if k == 0 else self.after)[i] for k, i in enumerate(indices)]
        ids, starts = self._pack([sent for sent, _ in spelled])
        return ids, [start + answer_at for start, (_, answer_at) in zip(starts, spelled)]

    def _subject_picks(self, n: int, generator: torch.Generator) -> list[list[int]]:
        """Per row, 2 to ``per_subject`` distinct prompt indices of one random subject (different relations first)."""
        counts = torch.randint(2, self.per_subject + 1, (n,), generator=generator).tolist()
        subjects = torch.randint(0, len(self.by_subject), (n,), generator=generator).tolist()
        rows = []
        for count, subject in zip(counts, subjects):
            own = self.by_subject[subject]
            shuffled = [own[k] for k in torch.randperm(len(own), generator=generator).tolist()]
            seen: set[str] = set()
            first_of_relation = [i for i in shuffled
                                 if not (self.prompts[i].relation in seen or seen.add(self.prompts[i].relation))]
            rest = [i for i in shuffled if i not in first_of_relation]
            rows.append((first_of_relation + rest)[:count])  # different relations first
        return rows

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        if self.per_subject:
            rows = self._subject_picks(n, generator)
        else:
            counts = torch.randint(1, self.max_sentences + 1, (n,), generator=generator).tolist()
            picks = torch.randint(0, len(self.prompts), (n, self.max_sentences), generator=generator).tolist()
            rows = [picks[row][: counts[row]] for row in range(n)]
        # drawn only when records are on, so a recipe without them keeps its random stream
        is_record = (torch.rand(n, generator=generator) < self.records).tolist() if self.records else [False] * n
        records = iter(self._record_rows(sum(is_record), generator))
        seqs = [next(records) if flag else self.sequence(row) for row, flag in zip(rows, is_record)]
        ids, mask, answer = pack_rows([seq for seq, _ in seqs], self.pad, marks=[a for _, a in seqs])  # [batch, pos]
        targets = mask.bool().clone()
        targets[:, 0] = False
        return Batch(input_ids=ids, loss_mask=targets, groups={"answer": answer}, attention_mask=mask)


def build_facts_model(recipe: FactsRecipe, vocab_size: int) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 (tied embeddings), seeded by ``recipe.train.seed``."""
    return gpt2_model(vocab_size=vocab_size, n_ctx=recipe.n_ctx, d_model=recipe.d_model, n_layers=recipe.n_layers,
                      n_heads=recipe.n_heads, d_mlp=recipe.d_mlp, init_std=recipe.init_std, seed=recipe.train.seed,
                      tied=True)


@torch.no_grad()
def answer_correct(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, prompts: list[Prompt], batch_size: int = 256
) -> torch.Tensor:
    """``correct[prompt]`` (bool): is the top-1 next token after the prompt the answer's first token?"""
    if not prompts:
        raise ValueError("no prompts to measure")
    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    out = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            enc = tokenizer([p.text for p in chunk], padding=True, return_tensors="pt")
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits  # [batch, pos, vocab]
            last = mask.sum(1) - 1  # [batch] position of each prompt's last real token
            predicted = logits[torch.arange(len(chunk), device=device), last].argmax(-1).cpu()  # [batch]
            first = tokenizer([p.answer for p in chunk], add_special_tokens=False)["input_ids"]
            out.append(predicted == torch.tensor([f[0] for f in first]))
    finally:
        tokenizer.padding_side = side
    return torch.cat(out)


def answer_accuracy(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, prompts: list[Prompt], batch_size: int = 256
) -> float:
    """Fraction of ``prompts`` whose top-1 next token is the first token of the answer."""
    return _fraction(answer_correct(model, tokenizer, prompts, batch_size))


def _fraction(flags: torch.Tensor) -> float:
    return int(flags.sum()) / len(flags)


def _probes(world: World, tokenizer: PreTrainedTokenizerFast) -> dict:
    held = world.prompts("held_out")[::5]
    train_sample = world.prompts("train")[::17]
    return {
        "acc_train_templates": lambda m: answer_accuracy(m, tokenizer, train_sample),
        "acc_held_out_templates": lambda m: answer_accuracy(m, tokenizer, held),
    }


def train_facts(recipe: FactsRecipe = FactsRecipe(), progress: bool | None = None,
                checkpoint: Checkpointer | None = None) -> tuple[TrainResult, World]:
    """Invent the world, train its tokenizer and the model; probes (on subsets) every ``probe_every`` steps."""
    world = recipe.world()
    tokenizer = facts_tokenizer(world, recipe.vocab_size, recipe.n_ctx)
    task = FactsTask(world.prompts("train"), tokenizer, recipe.n_ctx, recipe.max_sentences, recipe.per_subject,
                     recipe.records)
    result = recipe.fit(build_facts_model(recipe, len(tokenizer)), task.batch, tokenizer, "facts-4l",
                        _probes(world, tokenizer), progress, checkpoint)
    return result, world


def measure_facts(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, world: World) -> dict[str, float]:
    """Top-1 first-answer-token accuracy on every fact with training and with held-out templates,
    overall and, for held-out templates, per relation."""
    prompts = world.prompts("all")
    correct = answer_correct(model, tokenizer, prompts)  # [prompt]
    held = torch.tensor([p.held_out for p in prompts])
    out = {
        "acc_train_templates": _fraction(correct[~held]),
        "acc_held_out_templates": _fraction(correct[held]),
    }
    for rel in world.relations:
        of_rel = held & torch.tensor([p.relation == rel for p in prompts])
        out[f"acc_held_out_{rel}"] = _fraction(correct[of_rel])
    return out
