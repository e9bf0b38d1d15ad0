"""Checks and helpers for lesson 05, *Find a circuit* (on ``ioi-3l``; optionally GPT-2).

Prompts come in pairs of one token length: a clean IOI prompt ("When A and B went to the store , B gave a
drink to" -> A) and its corrupted "ABC" twin, in which the repeated name S2 is replaced by a third name, so
that nothing says which name is the answer. The metric is the **logit difference** ``logit[IO] - logit[S]``
at the last position.

Every check computes the truth from the model it is given (never a stored answer) and returns a
:class:`~kit.lessons.CheckResult`:

- :func:`check_logit_diff`: the learner's ``fn(logits, io, s) -> diff[batch]``.
- :func:`check_top_head`: the head whose clean output, patched into the corrupted run, restores most.
- :func:`check_sender`: the head whose path into a receiver head matters most (path patching).

Per-student variants (:mod:`kit.lessons.variants`; the lesson's own instances without a student): 5.1
checks the learner's function on the student's own random logits; 5.2 and 5.3 ask about the student's own
prompts (:func:`exercise_batch`: another template and draw of names), and 5.3 about the student's own
receiver head (:func:`exercise_receiver`), each drawn only where the answer leads the runner-up clearly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import analysis as A
from ..interventions import Patch
from ..models import Model
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner, todo
from ._names import head_help, head_name, parse_head
from .student import current_student
from .variants import variant, variant_seed

__all__ = [
    "IOIBatch", "ioi_batch", "patching_by_head", "check_logit_diff", "check_top_head", "check_sender",
    "gpt2_ioi", "GPT2_NAMES", "exercise_batch", "exercise_receiver", "BATCHES", "RECEIVERS", "TOP_MARGIN",
    "SENDER_MARGIN",
]

EX_DIFF = "5.1 the logit difference"
EX_TOP = "5.2 the head that matters most"
EX_SEND = "5.3 who feeds the receiver?"
BATCHES = ((0, 1000),) + tuple((t, 1000 + k) for k in range(1, 4) for t in range(4))  # (template, seed) of 5.2/5.3
RECEIVERS = ((2, 2), (2, 0), (2, 1), (2, 3))  # 5.3's receiver heads (L2H2: the lesson's own)
TOP_MARGIN = 0.1  # 5.2: the top head restores at least this much more of the logit difference than the next
SENDER_MARGIN = 0.04  # 5.3: the top sender's path costs at least this much more of the gap than the next
HINT_DIFF = ("logits is [batch, pos, vocab]: take the last position, then for each prompt b the entry io[b] "
             "minus the entry s[b] (index the batch with torch.arange(batch))")


@dataclass
class IOIBatch:
    """Clean prompts, their corrupted ("ABC") twins, and each prompt's answer ``io`` and subject ``s``."""

    clean: list[str]
    corrupted: list[str]
    io: list[str]
    s: list[str]

    def __len__(self) -> int:
        return len(self.clean)

    def args(self) -> tuple[list[str], list[str], list[str], list[str]]:
        """``(clean, corrupted, io, s)``: the positional arguments of the kit's patching functions."""
        return self.clean, self.corrupted, self.io, self.s


def ioi_batch(n: int = 32, template: int = 0, seed: int = 1000) -> IOIBatch:
    """``n`` prompt pairs of one training template (1 adverb, 1 adjective: one token length) for ``ioi-3l``."""
    from ..train.ioi import IOIRecipe
    from ..train.ioi_data import TEMPLATES, ioi_prompts

    ps = ioi_prompts(IOIRecipe().names(), n, seed=seed, templates=TEMPLATES[template], adverbs=1, adjectives=1)
    return IOIBatch([p.text for p in ps], [p.corrupted for p in ps], [p.io for p in ps], [p.s for p in ps])


def patching_by_head(model: Model, batch: IOIBatch) -> torch.Tensor:
    """``restored[layer, head]``: the share of the logit difference (mean over the batch) that patching one
    head's clean output ``z`` (at every position) into the corrupted runs restores: ``(patched - corrupted) /
    (clean - corrupted)``, one batched forward pass per head with :class:`kit.Patch`. (Per prompt the shares
    vary a lot; the ratio of means over many prompts is the stable figure.)"""
    clean_tr = model.trace(batch.clean, capture=["z"])
    io, s = _ids(model, batch.io), _ids(model, batch.s)

    def diff(interventions=()) -> float:
        last = model.trace(batch.corrupted, capture=[], interventions=interventions).logits[:, -1].float()
        return float((last.gather(-1, io) - last.gather(-1, s)).mean())

    clean_last = clean_tr.logits[:, -1].float()
    clean = float((clean_last.gather(-1, io) - clean_last.gather(-1, s)).mean())
    corrupted = diff()
    out = torch.zeros(model.n_layers, model.n_heads)
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            out[layer, head] = (diff([Patch("z", layer, clean_tr, head=head)]) - corrupted) / (clean - corrupted)
    return out


def _argmax_head(grid: torch.Tensor) -> tuple[int, int]:
    i = int(grid.argmax())
    return divmod(i, grid.shape[1])


# --- exercise 5.1 -------------------------------------------------------------------------------------

def _reference_diff(logits: torch.Tensor, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(logits.shape[0])
    return logits[rows, -1, io] - logits[rows, -1, s]


def check_logit_diff(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]) -> CheckResult:
    """``fn(logits[batch, pos, vocab], io[batch], s[batch]) -> diff[batch]``: ``logits[b, -1, io[b]] -
    logits[b, -1, s[b]]``."""
    if is_unanswered(fn):
        return todo(EX_DIFF, HINT_DIFF)
    seed = variant_seed(EX_DIFF, 5)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 7, 30, generator=g) * 3
    if seed == 5:  # the lesson's own instance
        io = torch.tensor([3, 9, 4, 20, 11, 0])
        s = torch.tensor([8, 2, 17, 5, 29, 14])
    else:  # the student's: other answers, never an answer equal to its subject
        io = torch.randperm(30, generator=g)[:6]
        s = (io + torch.randint(1, 30, (6,), generator=g)) % 30
    got, verdict = run_learner(EX_DIFF, HINT_DIFF, fn, logits.clone(), io.clone(), s.clone())
    if verdict is not None:
        return verdict
    want = _reference_diff(logits, io, s)
    if not isinstance(got, torch.Tensor):
        return failed(EX_DIFF, f"return a tensor diff[batch], got {type(got).__name__}")
    got = got.detach().float()
    if got.shape != want.shape:
        if got.numel() == 1:
            return failed(EX_DIFF, "you returned one number: keep one value per prompt (no mean yet), "
                                   f"shape [{len(io)}]")
        if got.shape == (len(io), len(io)):
            return failed(EX_DIFF, "you got a [batch, batch] table: logits[:, -1, io] pairs every prompt with "
                                   "every answer; index the batch with torch.arange(batch) alongside io")
        return failed(EX_DIFF, f"expected shape [{len(io)}] (one value per prompt), got {list(got.shape)}")
    if torch.allclose(got, want, atol=1e-5):
        return passed(EX_DIFF, "one logit difference per prompt, at the last position")
    if torch.allclose(got, -want, atol=1e-5):
        return failed(EX_DIFF, "your sign is reversed: the metric is logit[IO] - logit[S], positive when the "
                               "model prefers the right name")
    rows = torch.arange(len(io))
    if torch.allclose(got, logits[rows, 0, io] - logits[rows, 0, s], atol=1e-5):
        return failed(EX_DIFF, "you read the first position; the prediction of the answer is at the last one "
                               "(index -1 on the position axis)")
    p = logits[:, -1].softmax(-1)
    if torch.allclose(got, p[rows, io] - p[rows, s], atol=1e-5):
        return failed(EX_DIFF, "you compared probabilities; the metric compares logits (before the softmax), "
                               "which add up linearly over components and do not saturate")
    return failed(EX_DIFF, "your values differ from logits[b, -1, io[b]] - logits[b, -1, s[b]]")


def _top_head_is_clear(model: Model) -> Callable[[tuple[int, int]], bool]:
    def ok(which: tuple[int, int]) -> bool:
        grid = patching_by_head(model, ioi_batch(32, template=which[0], seed=which[1]))
        first, second = grid.flatten().topk(2).values.tolist()
        return first - second >= TOP_MARGIN
    return ok


def exercise_batch(model: Model, student: str | None = None) -> IOIBatch:
    """The prompt pairs of exercises 5.2 and 5.3 for ``student`` (default: the current one): the lesson's
    ``ioi_batch(32)`` with no student, else 32 pairs of another template and draw of names (one of
    :data:`BATCHES`, never the lesson's, whose patching grid the lesson prints) on which the top patched
    head leads the next by :data:`TOP_MARGIN`."""
    student = student if student is not None else current_student()
    batches = BATCHES if student is None else BATCHES[1:]
    template, seed = variant(EX_TOP, batches, student=student, where=_top_head_is_clear(model))
    return ioi_batch(32, template=template, seed=seed)


def exercise_receiver(model: Model, batch: IOIBatch, student: str | None = None) -> tuple[int, int]:
    """The receiver head of exercise 5.3 for ``student`` (default: the current one): L2H2 with no student,
    else one of :data:`RECEIVERS` into which one sender's path clearly matters most on ``batch`` (its cost
    leads the next sender's by :data:`SENDER_MARGIN`)."""
    def ok(receiver: tuple[int, int]) -> bool:
        r = A.path_patching(model, *batch.args(), receivers=[receiver], receiver_pos=-1)
        (_, first), (_, second) = r.top(2)
        return second - first >= SENDER_MARGIN  # effects are negative: the most negative first
    return variant(EX_SEND, RECEIVERS, student=student, where=ok)


# --- exercise 5.2 -------------------------------------------------------------------------------------

def check_top_head(answer: Any, model: Model, batch: IOIBatch | None = None) -> CheckResult:
    """``answer``: the head whose activation patching restores the largest share of the logit difference."""
    if is_unanswered(answer):
        return unanswered(EX_TOP, "read the patching grid above: the brightest cell, as (layer, head)")
    head = parse_head(answer, model.n_layers, model.n_heads)
    if head is None:
        return failed(EX_TOP, f"{answer!r} is not a head; {head_help(model.n_layers, model.n_heads)}")
    batch = batch or ioi_batch()
    grid = patching_by_head(model, batch)
    best = _argmax_head(grid)
    if head == best:
        return passed(EX_TOP, f"{head_name(*best)} restores {float(grid[best]):.2f} of the logit difference on "
                              "its own")
    tr = model.trace(batch.clean, capture=["resid_pre", "resid_post", "head_out", "mlp_out"])
    dla = A.direct_logit_attribution(tr, batch.io, batch.s, neurons=False).heads.mean(0)
    if head == _argmax_head(dla):
        return failed(EX_TOP, f"{head_name(*head)} writes the largest *direct* effect on the logit difference, "
                              "but the question is what patching restores: its effect through every path. "
                              f"{head_name(*head)} restores {float(grid[head]):.2f}")
    return failed(EX_TOP, f"{head_name(*head)} restores {float(grid[head]):.2f} of the logit difference; one head "
                          f"restores more. Patching asks what the head carries that differs between clean and "
                          f"corrupted prompts, not how much removing it hurts")


def _ids(model: Model, tokens: list[str]) -> torch.Tensor:
    return torch.tensor([[A.token_id(model, t)] for t in tokens], device=model.device)


# --- exercise 5.3 -------------------------------------------------------------------------------------

def check_sender(answer: Any, model: Model, receiver: tuple[int, int], batch: IOIBatch | None = None) -> CheckResult:
    """``answer``: the sender head whose path into ``receiver`` (at the last position) lowers the logit
    difference most when corrupted (path patching)."""
    if is_unanswered(answer):
        return unanswered(EX_SEND, "read the path-patching grid into the receiver: the most negative effect")
    head = parse_head(answer, model.n_layers, model.n_heads)
    if head is None:
        return failed(EX_SEND, f"{answer!r} is not a head; {head_help(model.n_layers, model.n_heads)}")
    if head[0] >= receiver[0]:
        return failed(EX_SEND, f"{head_name(*head)} is not below the receiver {head_name(*receiver)}: a head can only "
                               "send to heads of later layers (it writes into the residual stream they read)")
    batch = batch or ioi_batch()
    r = A.path_patching(model, *batch.args(), receivers=[receiver], receiver_pos=-1)
    (best, effect), = r.top(1)
    if head == best:
        return passed(EX_SEND, f"corrupting {head_name(*best)}'s path into {head_name(*receiver)} alone costs "
                               f"{-effect:.2f} of the clean-corrupted gap")
    direct = A.path_patching(model, *batch.args(), receivers="logits", senders=[head])
    return failed(EX_SEND, f"{head_name(*head)}'s path into {head_name(*receiver)} carries {-float(r.effect[head]):.2f} "
                           f"of the gap, less than the strongest sender's {-effect:.2f}"
                           + (f" (its direct path to the logits carries {-float(direct.effect[head]):.2f}: a head "
                              "can matter directly without feeding this receiver)" if direct.effect[head] < -0.05
                              else ""))


# --- the optional GPT-2 section -------------------------------------------------------------------------

GPT2_NAMES = (" Mary", " John", " Tom", " James", " Dan", " Sid", " Kate", " Anne")


def gpt2_ioi(model: Model, names: tuple[str, ...] = GPT2_NAMES, n: int = 8, seed: int = 0) -> dict[str, Any]:
    """The lesson's pipeline on a larger model (GPT-2 small in the optional section): IOI prompts with common
    single-token names, the logit difference clean vs corrupted, activation patching by head (mean over the
    prompts), the strongest direct paths to the logits, and the strongest senders into the top patched head.

    Returns ``{"prompts", "batch" (the :class:`IOIBatch`), "clean", "corrupted", "patching" [layer, head],
    "top_heads", "direct_paths", "senders_into_top"}``.
    """
    import random

    rng = random.Random(seed)
    clean, corrupted, io, s = [], [], [], []
    for _ in range(n):
        a, b, c = rng.sample(list(names), 3)
        clean.append(f"When{a} and{b} went to the store,{b} gave a drink to")
        corrupted.append(f"When{a} and{b} went to the store,{c} gave a drink to")
        io.append(a)
        s.append(b)
    batch = IOIBatch(clean, corrupted, io, s)
    grid = patching_by_head(model, batch)
    top = sorted(((float(grid[l, h]), (l, h)) for l in range(model.n_layers) for h in range(model.n_heads)),
                 reverse=True)[:5]
    direct = A.path_patching(model, *batch.args(), receivers="logits")
    receiver = top[0][1]
    senders = None
    if receiver[0] > 0:
        senders = A.path_patching(model, *batch.args(), receivers=[receiver], receiver_pos=-1).top(5)
    clean_tr = model.trace(clean, capture=[])
    corr_tr = model.trace(corrupted, capture=[])
    ans, sub = _ids(model, io), _ids(model, s)
    last = lambda tr: tr.logits[:, -1].float()  # noqa: E731
    diff = lambda tr: float((last(tr).gather(-1, ans) - last(tr).gather(-1, sub)).mean())  # noqa: E731
    return {"prompts": clean, "batch": batch, "clean": diff(clean_tr), "corrupted": diff(corr_tr), "patching": grid,
            "top_heads": [(h, v) for v, h in top], "direct_paths": direct.top(5), "senders_into_top": senders}
