"""The ``induction-2l`` recipe: model, data, training and the figures measured on the result.

A 2-layer GPT-2 (``GPT2LMHeadModel``: d_model 64, 4 heads, MLP width 64,
context 128, untied unembedding, sinusoidal initial position embeddings) trained
on ``RepeatedSegmentTask``: text of a random language in which the next token
depends on the current token (bigram) and on the one before it (skip-bigram),
with segments of uniformly random tokens of 4 to 64 tokens (log-uniform
lengths) repeated two or three times at random offsets, the first segment
within 8 tokens of the start and, in 40 % of the sequences, right at it (half
the sequences without ``<|bos|>``, half the batches only 32 tokens long).
Previous-token heads form in layer 0 (the skip-bigram pays for them) and
induction heads in layer 1 (the repeats pay for them), abruptly.

The loss ratio of the card (second copy / first) leaves out the first token of
each copy: the second copy's first token cannot be predicted (nothing says the
sequence repeats yet), so it counts tokens ``2..T`` of each copy.

``train_induction(recipe, history=True)`` returns a ``TrainResult`` with a
``TrainingHistory``; ``measure_induction`` and ``induction_curve`` return the
figures of the model card. ``n_layers=1`` gives the control model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from kit.train import metrics
from kit.train.checkpoint import Checkpointer
from kit.train.history import HistoryRecorder
from kit.train.induction_data import BackgroundLanguage, RepeatedSegmentTask, syllables
from kit.train.log import TrainLog
from kit.train.loop import TrainConfig
from kit.train.phase import crossing_step, steepest_drop_step
from kit.train.recipe import Recipe, gpt2_model
from kit.train.result import TrainResult
from kit.train.tokenizers import SPECIAL_TOKENS, word_tokenizer

__all__ = [
    "InductionRecipe",
    "build_induction_model",
    "curve_lengths",
    "history_recorder",
    "induction_curve",
    "induction_task",
    "offset_curve",
    "induction_tokenizer",
    "measure_induction",
    "phase_change",
    "train_induction",
]


@dataclass(frozen=True)
class InductionRecipe(Recipe):
    """Every choice that defines ``induction-2l`` (the defaults are the shipped model's)."""

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 64
    n_ctx: int = 128
    n_tokens: int = 61  # ordinary tokens; vocab = 61 + 3 special = 64
    init_std: float = 0.07  # attention/MLP/unembedding weights (GPT-2 uses 0.02 for width 768)
    embed_std: float = 1.0  # token and position embeddings
    pos_init: str = "sinusoidal"  # position embeddings start as sines and cosines ("normal": random)
    skip: float = 0.8  # weight of the skip-bigram in the background language
    concentration: float = 0.03  # Dirichlet concentration of its transition rows
    language_seed: int = 0  # the background language is fixed: the model learns it in its weights
    segment_len: tuple[int, int] = (4, 64)  # up to half the context
    copies: tuple[int, int] = (2, 3)
    gap: tuple[int, int] = (0, 24)  # background tokens before each segment
    bos_prob: float = 0.5  # the other sequences start without <|bos|>
    segment_from_language: bool = False  # first copies: uniformly random tokens, or text of the language
    short_prob: float = 0.5  # the share of batches of short_len tokens (cheaper; induction forms sooner)
    short_len: int = 32
    segment_dist: str = "log"  # log-uniform segment lengths: short repeats common (docs/induction_short_repeats.md)
    first_gap: tuple[int, int] | None = (0, 8)  # background before the first segment (None: ``gap``)
    early_prob: float = 0.4  # the share of sequences whose first segment starts within ``early_gap``
    early_gap: tuple[int, int] = (0, 0)
    probe_half_len: int = 16  # repeated random sequences of 16 + 16 tokens
    history_every: int = 20  # a TrainingHistory snapshot every 20 steps (when one is recorded)
    history_weight_steps: tuple[int, ...] = (0, 300, 600, 900, 1200)  # steps whose full weights it keeps
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1200, batch_size=32, lr=7e-3, warmup_steps=30, min_lr_ratio=0.6,
        weight_decay=0.01, beta1=0.9, beta2=0.999, grad_clip=1.0, seed=0, probe_every=10,
    ))

    def to_dict(self) -> dict:
        """The fields as a dict; the data options ``segment_dist``, ``first_gap``, ``early_prob`` and
        ``early_gap`` only where they differ from the data of earlier recipes (``"uniform"``, ``None``, 0,
        ``(0, 0)``), so a recipe that does not use them records the same dict as before they existed."""
        out = super().to_dict()
        for key, default in (("segment_dist", "uniform"), ("first_gap", None), ("early_prob", 0.0),
                             ("early_gap", (0, 0))):
            if out[key] == default:
                del out[key]
        return out



def build_induction_model(recipe: InductionRecipe) -> GPT2LMHeadModel:
    """A freshly initialised model, seeded by ``recipe.train.seed``."""
    positions = (sinusoidal_positions(recipe.n_ctx, recipe.d_model) * recipe.embed_std
                 if recipe.pos_init == "sinusoidal" else None)
    return gpt2_model(vocab_size=recipe.n_tokens + len(SPECIAL_TOKENS), n_ctx=recipe.n_ctx, d_model=recipe.d_model,
                      n_layers=recipe.n_layers, n_heads=recipe.n_heads, d_mlp=recipe.d_mlp, init_std=recipe.init_std,
                      seed=recipe.train.seed, tied=False, embed_std=recipe.embed_std, positions=positions)


def sinusoidal_positions(n_ctx: int, d_model: int) -> torch.Tensor:
    """``pe[pos, d_model]``: the sines and cosines of Vaswani et al. (2017), scaled to unit variance.

    Any shift of position is a fixed rotation of these vectors, so a head can learn "attend to the
    previous token" once for every position instead of once per position."""
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]  # [pos, 1]
    freq = torch.exp(-torch.arange(0, d_model, 2, dtype=torch.float32) * (torch.log(torch.tensor(1e4)) / d_model))
    pe = torch.zeros(n_ctx, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe * 2 ** 0.5


def induction_task(recipe: InductionRecipe) -> RepeatedSegmentTask:
    """The data set: ``task.batch(n, generator)`` draws ``n`` training sequences."""
    language = BackgroundLanguage(
        recipe.n_tokens, skip=recipe.skip, concentration=recipe.concentration, seed=recipe.language_seed,
        first_id=len(SPECIAL_TOKENS),
    )
    return RepeatedSegmentTask(language, seq_len=recipe.n_ctx, segment_len=recipe.segment_len, copies=recipe.copies,
                               gap=recipe.gap, bos_prob=recipe.bos_prob,
                               segment_from_language=recipe.segment_from_language,
                               short_prob=recipe.short_prob, short_len=recipe.short_len,
                               segment_dist=recipe.segment_dist, first_gap=recipe.first_gap,
                               early_prob=recipe.early_prob, early_gap=recipe.early_gap)


def induction_tokenizer(recipe: InductionRecipe) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the syllable tokens ``"ba", "be", ...`` (ids 3..63)."""
    return word_tokenizer(syllables(recipe.n_tokens), model_max_length=recipe.n_ctx)


def _probes(recipe: InductionRecipe) -> dict:
    T = recipe.probe_half_len
    return {
        "induction_score": lambda m: metrics.induction_scores(m, n_seqs=8, half_len=T, seed=1)[-1].max(),
        "prev_token_score": lambda m: metrics.prev_token_scores(m, n_seqs=8, seed=1)[0].max(),
    }


def history_recorder(recipe: InductionRecipe) -> HistoryRecorder:
    """A recorder of the recipe's :class:`~kit.train.history.TrainingHistory` (snapshots every
    ``recipe.history_every`` steps on ``recipe.probe_half_len`` + ``recipe.probe_half_len`` tokens)."""
    return HistoryRecorder(f"induction-{recipe.n_layers}l", induction_tokenizer(recipe), every=recipe.history_every,
                           probe_half_len=recipe.probe_half_len, weight_steps=recipe.history_weight_steps)


def train_induction(recipe: InductionRecipe = InductionRecipe(), progress: bool | None = None,
                    checkpoint: Checkpointer | None = None,
                    history: bool | HistoryRecorder = False) -> TrainResult:
    """Train the recipe's model from scratch (or from ``checkpoint`` when it resumes); the log probes
    the best induction score of the last layer and the best previous-token score of layer 0 every
    ``probe_every`` steps. ``history=True`` (or a recorder from :func:`history_recorder`, which a view
    may already follow) also records a :class:`~kit.train.history.TrainingHistory` (``result.history``)."""
    recorder = history_recorder(recipe) if history is True else (history or None)
    return recipe.fit(build_induction_model(recipe), induction_task(recipe).batch, induction_tokenizer(recipe),
                      f"induction-{recipe.n_layers}l", _probes(recipe), progress, checkpoint, recorder)


def phase_change(log: TrainLog, window: int = 25) -> dict[str, int | None]:
    """``{"induction_crosses_half": step, "repeated_loss_drop": step}`` from a training log."""
    steps, loss = log.series("loss_repeated")
    window = min(window, (len(loss) - 1) // 2)  # short runs: a narrower window
    return {
        "induction_crosses_half": crossing_step(*log.series("induction_score"), 0.5),
        "repeated_loss_drop": steepest_drop_step(steps, loss, window) if window >= 1 else None,
    }


def curve_lengths(n_ctx: int, bos: bool) -> list[int]:
    """Every repeat length the card's curve covers: 4 up to half the context (one less after a BOS)."""
    return list(range(4, (n_ctx - int(bos)) // 2 + 1))


@torch.no_grad()
def induction_curve(model: torch.nn.Module, n_seqs: int = 32, seed: int = 0) -> list[dict]:
    """The induction head as a function of repeat length and BOS: one row per ``(bos, half_len)`` for every
    length of :func:`curve_lengths`, with the best layer-1 (last layer) induction score and its head, and
    the losses on tokens ``2..half_len`` of each copy (``kit.head_scores.copy_losses``) and their ratio.
    Each copy's first token is left out: in the second copy it is unpredictable (nothing yet says the
    sequence repeats), so only tokens 2..T measure induction."""
    model.eval()
    n_ctx = int(model.config.n_positions)
    rows = []
    for bos in (True, False):
        for T in curve_lengths(n_ctx, bos):
            ind = metrics.induction_scores(model, n_seqs=n_seqs, half_len=T, seed=seed, bos=bos)[-1]  # [head]
            loss = metrics.repeated_sequence_losses(model, n_seqs=n_seqs, half_len=T, seed=seed, bos=bos)
            rows.append({"bos": bos, "half_len": T, "induction_score": round(float(ind.max()), 4),
                         "induction_head": int(ind.argmax()), "loss_first": round(loss["first"], 4),
                         "loss_second": round(loss["second"], 4),
                         "loss_ratio": round(loss["second"] / loss["first"], 4)})
    return rows


OFFSET_PREFIXES = (8, 32, 64)  # random tokens before the first copy, for the card's offset table
OFFSET_LENGTHS = (4, 5, 6, 8, 12, 16, 24, 32, 48)


@torch.no_grad()
def offset_curve(model: torch.nn.Module, prefixes: tuple[int, ...] = OFFSET_PREFIXES,
                 lengths: tuple[int, ...] = OFFSET_LENGTHS, n_seqs: int = 32, seed: int = 0) -> list[dict]:
    """The curve of :func:`induction_curve` when the repeat does not start the sequence: one row per
    ``(bos, prefix, half_len)`` that fits the context, ``prefix`` uniformly random tokens coming before
    the first copy (the copies are the same as at prefix 0)."""
    model.eval()
    n_ctx = int(model.config.n_positions)
    rows = []
    for bos in (True, False):
        for P in prefixes:
            for T in lengths:
                if int(bos) + P + 2 * T > n_ctx:
                    continue
                ind = metrics.induction_scores(model, n_seqs=n_seqs, half_len=T, seed=seed, bos=bos, prefix=P)[-1]
                loss = metrics.repeated_sequence_losses(model, n_seqs=n_seqs, half_len=T, seed=seed, bos=bos, prefix=P)
                rows.append({"bos": bos, "prefix": P, "half_len": T, "induction_score": round(float(ind.max()), 4),
                             "loss_ratio": round(loss["second"] / loss["first"], 4)})
    return rows


@torch.no_grad()
def measure_induction(model: torch.nn.Module, half_len: int | None = None, n_seqs: int = 32,
                      seed: int = 0) -> dict[str, float]:
    """The figures the model card reports, measured on ``model`` (eval mode, CPU or not).

    ``prev_token_score``: best head of layer 0; ``induction_score``: best head of
    the last layer (both over ``n_seqs`` random sequences after ``<|bos|>``, with the defaults of
    ``kit.analysis``: ``half_len`` ``kit.head_scores.default_len``); ``loss_first_copy``,
    ``loss_second_copy`` (tokens 2..half_len of each copy) and their ``loss_ratio``.
    """
    model.eval()
    prev = metrics.prev_token_scores(model, n_seqs=n_seqs, seed=seed)  # [layer, head], default length
    ind = metrics.induction_scores(model, n_seqs=n_seqs, half_len=half_len, seed=seed)  # [layer, head]
    losses = metrics.repeated_sequence_losses(model, n_seqs=n_seqs, half_len=half_len, seed=seed)
    return {
        "prev_token_score": float(prev[0].max()),
        "prev_token_head": int(prev[0].argmax()),
        "induction_score": float(ind[-1].max()),
        "induction_head": int(ind[-1].argmax()),
        "loss_first_copy": losses["first"],
        "loss_second_copy": losses["second"],
        "loss_ratio": losses["second"] / losses["first"],
    }
