"""Checks and helpers for lesson 02, *Induction heads* (on ``induction-2l``).

Sequences: ``ids[batch, pos]`` of ``<|bos|>`` followed by ``half_len`` random tokens repeated twice
(``kit.train.metrics.repeated_tokens``), so the first copy starts at position ``offset = 1`` and
the second at ``offset + half_len``. Patterns are ``pattern[batch, head, query, key]``.

Every check computes the truth from the model it is given (never a stored answer) and returns a
:class:`~kit.lessons.CheckResult`:

- :func:`check_prev_token_score`: the learner's ``fn(pattern) -> score[head]``.
- :func:`check_induction_score`: the learner's ``fn(pattern, half_len) -> score[head]``.
- :func:`check_heads`: the previous-token head and the set of induction heads (score above 0.4).
- :func:`check_ablation_prediction`: the head whose ablation raises the second copy's loss most.

Per-student variants (:mod:`kit.lessons.variants`; the defaults without a student): 2.1 and 2.2 check the
learner's function on the student's own random sequences (seeds 3 and 4 by default), and 2.4 asks about
the student's own segment length (:func:`exercise_half_len`, 16 by default; the answer depends on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import head_scores as hs
from ..interventions import Ablate, Intervention
from ..models import Model
from ..train import metrics
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner, todo
from ._names import head_help, parse_head
from .student import current_student
from .variants import variant, variant_seed

__all__ = [
    "INDUCTION_THRESHOLD", "repeated_ids", "random_ids", "prev_token_score_of", "induction_score_of",
    "copy_losses", "ablation_table", "parse_head",
    "check_prev_token_score", "check_induction_score", "check_heads", "check_ablation_prediction",
    "exercise_half_len", "ABLATION_LENGTHS", "ABLATION_MARGIN",
]

INDUCTION_THRESHOLD = hs.INDUCTION_THRESHOLD  # ARENA calls a head with an induction score above 0.4 an induction head
OFFSET = 1  # <|bos|> comes first
SCORE_ATOL = 1e-4  # float32 means of at most a few hundred probabilities agree to ~1e-7; a wrong query range is off by >1e-3

ABLATION_LENGTHS = (16, 8, 12, 24, 32, 40)  # segment lengths 2.4 draws from (16: the lesson's own)
ABLATION_MARGIN = 0.1  # nats: a length is drawn only when the top ablation leads the next by this much
EX_PREV = "2.1 previous-token score"
EX_IND = "2.2 induction score"
EX_HEADS = "2.3 name the heads"
EX_ABL = "2.4 predict an ablation"
HINT_PREV = ("the previous token of query i is key i - 1: the first sub-diagonal (pattern.diagonal(offset=-1, "
             "dim1=-2, dim2=-1)); average it over the batch and the queries")
HINT_IND = ("a query i of the second copy should attend to key i - half_len + 1 (the token after its first "
            "occurrence); the second copy holds positions 1 + half_len .. 2 * half_len")


# --- data and truths ----------------------------------------------------------------------------------

def random_ids(model: Model, n_seqs: int = 8, length: int = 32, seed: int = 0) -> torch.Tensor:
    """``ids[batch, 1 + length]``: ``<|bos|>`` then uniformly random ordinary tokens (seeded)."""
    ids = metrics.random_tokens(model.hf, n_seqs, length, seed)
    return torch.cat([torch.full((n_seqs, 1), model.tokenizer.bos_token_id), ids], dim=1)


def repeated_ids(model: Model, n_seqs: int = 8, half_len: int = 16, seed: int = 0) -> torch.Tensor:
    """``ids[batch, 1 + 2 * half_len]``: ``<|bos|>`` then ``half_len`` random tokens, twice (seeded)."""
    ids, offset = metrics.repeated_tokens(model.hf, n_seqs, half_len, seed)
    assert offset == OFFSET, "induction-2l puts <|bos|> first"
    return ids


def prev_token_score_of(pattern: torch.Tensor) -> torch.Tensor:
    """``score[head]``: mean of ``pattern[batch, head, i, i - 1]`` over the batch and every query ``i >= 1``."""
    return hs.prev_token_score(pattern).mean(0)


def induction_score_of(pattern: torch.Tensor, half_len: int) -> torch.Tensor:
    """``score[head]``: on ``<bos> + x + x``, mean of ``pattern[batch, head, i, i - half_len + 1]`` over the
    queries ``i`` of the second copy (positions ``1 + half_len .. 2 * half_len``)."""
    return hs.induction_score(pattern, half_len, OFFSET).mean(0)


@torch.no_grad()
def copy_losses(model: Model, ids: torch.Tensor, half_len: int,
                interventions: Intervention | Sequence[Intervention] = ()) -> dict[str, float]:
    """Mean next-token loss (nats) on the first and on the second copy of ``<bos> + x + x``.

    ``{"first": ..., "second": ...}``: the loss of predicting tokens 2..half_len of each copy from the
    tokens before them (``kit.head_scores.copy_losses``: a copy's first token follows nothing it could be
    copied from).
    """
    tr = model.trace(ids, capture=[], interventions=interventions)
    logp = tr.logits.float().log_softmax(-1)  # [batch, pos, vocab]
    targets = ids[:, 1:].to(logp.device)
    loss = -logp[:, :-1].gather(-1, targets[..., None])[..., 0]  # loss[b, p - 1]: predicting token p
    return hs.copy_losses(torch.nn.functional.pad(loss, (1, 0)).cpu(), half_len, OFFSET)


def ablation_table(model: Model, ids: torch.Tensor, half_len: int) -> dict[tuple[int, int], float]:
    """``{(layer, head): loss on the second copy with that head zero-ablated}`` for every head."""
    return {(l, h): copy_losses(model, ids, half_len, [Ablate(l, h)])["second"]
            for l in range(model.n_layers) for h in range(model.n_heads)}


def _head_help(model: Model) -> str:
    return head_help(model.n_layers, model.n_heads)


def _fmt(scores: torch.Tensor, digits: int = 2) -> str:
    return "[" + ", ".join(f"{float(s):.{digits}f}" for s in scores) + "]"


def _differences(got: torch.Tensor, want: torch.Tensor, atol: float) -> str:
    """Where two score lists differ, head by head, at a precision that shows the gap."""
    gap = (got - want).abs()
    digits = 2
    while digits < 6 and float(gap.max()) < 10 ** -digits * 5:
        digits += 1  # enough digits that the rounded lists differ where they do
    bad = [h for h in range(len(want)) if float(gap[h]) > atol]
    heads = ", ".join(f"head {h}: yours {float(got[h]):.{digits}f}, expected {float(want[h]):.{digits}f}" for h in bad)
    return f"your scores {_fmt(got, digits)} differ from the expected {_fmt(want, digits)} ({heads})"


def _check_scores(exercise: str, got: Any, want: torch.Tensor, what: str) -> CheckResult | None:
    """``None`` when ``got`` is a tensor [head] equal to ``want``; else a failed verdict."""
    if not isinstance(got, torch.Tensor):
        return failed(exercise, f"your function returned {type(got).__name__}; return a tensor score[head] "
                                f"with one {what} per head")
    if tuple(got.shape) != tuple(want.shape):
        return failed(exercise, f"your scores have shape {tuple(got.shape)}; expected ({want.shape[0]},), one per "
                                f"head: average over the batch and over the queries (dimensions 0 and 2 of "
                                f"pattern[batch, head, query, key])")
    got = got.detach().float().cpu()
    if not torch.allclose(got, want, atol=SCORE_ATOL):
        return failed(exercise, f"{what}s: " + _differences(got, want, SCORE_ATOL))
    return None


# --- exercise 2.1 -------------------------------------------------------------------------------------

def check_prev_token_score(fn: Callable[[torch.Tensor], Any], model: Model) -> CheckResult:
    """``fn(pattern[batch, head, query, key]) -> score[head]``, checked on every layer of ``model``."""
    if is_unanswered(fn):
        return todo(EX_PREV, HINT_PREV)
    tr = model.trace(random_ids(model, n_seqs=8, length=32, seed=variant_seed(EX_PREV, 3)), capture=["pattern"])
    for layer in range(model.n_layers):
        pattern = tr["pattern", layer].detach().cpu()
        got, verdict = run_learner(EX_PREV, HINT_PREV, fn, pattern.clone())
        if verdict is not None:
            return verdict
        want = prev_token_score_of(pattern)
        bad = _check_scores(EX_PREV, got, want, "previous-token score")
        if bad is None:
            continue
        if isinstance(got, torch.Tensor) and got.shape == want.shape:
            if torch.allclose(got.float(), pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean((0, 2)), atol=1e-4):
                return failed(EX_PREV, "you read the diagonal above the main one, key i + 1: a causal model "
                                       "never attends to the future, so it is all zeros. The previous token is "
                                       "key i - 1 (offset=-1)")
            if torch.allclose(got.float(), pattern.diagonal(dim1=-2, dim2=-1).mean((0, 2)), atol=1e-4):
                return failed(EX_PREV, "you read the main diagonal: how much each token attends to itself. "
                                       "The previous token is key i - 1 (offset=-1)")
        return CheckResult(bad.exercise, bad.status, f"layer {layer}: {bad.message}")
    return passed(EX_PREV, "your previous-token scores match on every layer")


# --- exercise 2.2 -------------------------------------------------------------------------------------

def check_induction_score(fn: Callable[[torch.Tensor, int], Any], model: Model) -> CheckResult:
    """``fn(pattern[batch, head, query, key], half_len) -> score[head]`` on ``<bos> + x + x``."""
    if is_unanswered(fn):
        return todo(EX_IND, HINT_IND)
    for half_len in (16, 9):  # two lengths: a hard-coded 16 fails
        tr = model.trace(repeated_ids(model, n_seqs=8, half_len=half_len, seed=variant_seed(EX_IND, 4)),
                         capture=["pattern"])
        worst: tuple[float, int, CheckResult] | None = None  # the failing layer with the largest gap
        for layer in range(model.n_layers):
            pattern = tr["pattern", layer].detach().cpu()
            got, verdict = run_learner(EX_IND, HINT_IND, fn, pattern.clone(), half_len)
            if verdict is not None:
                return verdict
            want = induction_score_of(pattern, half_len)
            bad = _check_scores(EX_IND, got, want, "induction score")
            if bad is None:
                continue
            if isinstance(got, torch.Tensor) and got.shape == want.shape:
                got = got.detach().float().cpu()
                q = torch.arange(OFFSET + half_len, OFFSET + 2 * half_len)
                same = pattern[:, :, q, q - half_len].float().mean((0, 2))
                if torch.allclose(got, same, atol=SCORE_ATOL):
                    return failed(EX_IND, "you measured attention to the first occurrence of the same token "
                                          "(key i - half_len); an induction head attends to the token *after* "
                                          "it (key i - half_len + 1), whose value is the prediction")
                for shift, where in ((-1, "one query too early"), (1, "one query too late")):
                    qs = q + shift
                    qs = qs[(qs - half_len + 1 >= 0) & (qs < pattern.shape[2])]
                    shifted = pattern[:, :, qs, qs - half_len + 1].float().mean((0, 2))
                    if torch.allclose(got, shifted, atol=SCORE_ATOL):
                        bad = CheckResult(bad.exercise, bad.status, f"{bad.message}. Your query range starts "
                                          f"{where}: the second copy holds positions {OFFSET + half_len} .. "
                                          f"{OFFSET + 2 * half_len - 1} (<|bos|> is position 0)")
                gap = float((got - want).abs().max())
            else:
                gap = float("inf")
            if worst is None or gap > worst[0]:
                worst = (gap, layer, bad)
        if worst is not None:
            _, layer, bad = worst
            return CheckResult(bad.exercise, bad.status, f"layer {layer}, half_len {half_len}: {bad.message}")
    return passed(EX_IND, "your induction scores match on every layer and for two sequence lengths")


# --- exercise 2.3 -------------------------------------------------------------------------------------

def check_heads(prev_token_head: Any, induction_heads: Any, model: Model, half_len: int = 16) -> CheckResult:
    """``prev_token_head``: the head with the highest previous-token score; ``induction_heads``: every head
    whose induction score exceeds :data:`INDUCTION_THRESHOLD` (in any order)."""
    if is_unanswered(prev_token_head) or is_unanswered(induction_heads):
        return unanswered(EX_HEADS, "read the two score tables above: prev_token_head = (layer, head); "
                                    "induction_heads = [(layer, head), ...] for every score above 0.4")
    prev = metrics.prev_token_scores(model.hf)  # [layer, head]
    ind = metrics.induction_scores(model.hf, half_len=half_len)  # [layer, head]
    head = parse_head(prev_token_head, model.n_layers, model.n_heads)
    if head is None:
        return failed(EX_HEADS, f"prev_token_head = {prev_token_head!r} is not a head; {_head_help(model)}")
    best = divmod(int(prev.argmax()), model.n_heads)
    if head != best:
        return failed(EX_HEADS, f"L{head[0]}H{head[1]} has previous-token score {float(prev[head]):.2f}; the head "
                                f"you want attends from each token to the one before it, so its score is the "
                                f"highest of all (look at the first sub-diagonal of its pattern)")
    if isinstance(induction_heads, (str, tuple)) and parse_head(induction_heads, model.n_layers, model.n_heads):
        induction_heads = [induction_heads]
    if not isinstance(induction_heads, (list, tuple, set)):
        return failed(EX_HEADS, f"induction_heads should be a list of heads, got {type(induction_heads).__name__}; "
                                f"{_head_help(model)}")
    heads = [parse_head(h, model.n_layers, model.n_heads) for h in induction_heads]
    if None in heads:
        wrong = list(induction_heads)[heads.index(None)]
        return failed(EX_HEADS, f"{wrong!r} in induction_heads is not a head; {_head_help(model)}")
    want = {(l, h) for l in range(model.n_layers) for h in range(model.n_heads) if ind[l, h] > INDUCTION_THRESHOLD}
    extra, missing = set(heads) - want, want - set(heads)
    if extra:
        l, h = min(extra)
        return failed(EX_HEADS, f"L{l}H{h} has induction score {float(ind[l, h]):.2f}, not above "
                                f"{INDUCTION_THRESHOLD}: it is not an induction head")
    if missing:
        return failed(EX_HEADS, f"{len(missing)} head(s) with an induction score above {INDUCTION_THRESHOLD} are "
                                f"missing from your list; check every head of every layer")
    names = ", ".join(f"L{l}H{h}" for l, h in sorted(want))
    return passed(EX_HEADS, f"L{best[0]}H{best[1]} is the previous-token head ({float(prev[best]):.2f}); the "
                            f"induction heads are {names}")


def _ablation_leader_is_clear(model: Model) -> Callable[[int], bool]:
    def ok(half_len: int) -> bool:
        losses = sorted(ablation_table(model, repeated_ids(model, n_seqs=32, half_len=half_len, seed=0),
                                       half_len).values())
        return losses[-1] - losses[-2] >= ABLATION_MARGIN
    return ok


def exercise_half_len(model: Model, student: str | None = None) -> int:
    """The segment length of exercise 2.4 for ``student`` (default: the current one): 16 with no student,
    else one of :data:`ABLATION_LENGTHS` at which one head's ablation clearly hurts the second copy most
    (by :data:`ABLATION_MARGIN` nats), never 16 (the lesson prints its ablation table). On the shipped
    ``induction-2l`` the head is the same at every length (its only previous-token head); the losses differ."""
    student = student if student is not None else current_student()
    lengths = ABLATION_LENGTHS if student is None else ABLATION_LENGTHS[1:]
    return variant(EX_ABL, lengths, student=student, where=_ablation_leader_is_clear(model))


# --- exercise 2.4 -------------------------------------------------------------------------------------

def check_ablation_prediction(answer: Any, model: Model, half_len: int = 16) -> CheckResult:
    """``answer``: the single head whose zero-ablation raises the loss on the second copy the most."""
    if is_unanswered(answer):
        return unanswered(EX_ABL, "predict before you measure: which one head, silenced, hurts the second copy "
                                  "most? Think about how many heads of each kind the model has")
    head = parse_head(answer, model.n_layers, model.n_heads)
    if head is None:
        return failed(EX_ABL, f"{answer!r} is not a head; {_head_help(model)}")
    ids = repeated_ids(model, n_seqs=32, half_len=half_len, seed=0)
    clean = copy_losses(model, ids, half_len)["second"]
    table = ablation_table(model, ids, half_len)
    best = max(table, key=table.get)
    if head == best:
        return passed(EX_ABL, f"ablating L{head[0]}H{head[1]} raises the loss on the second copy from {clean:.2f} "
                              f"to {table[head]:.2f} nats, more than any other head")
    return failed(EX_ABL, f"ablating L{head[0]}H{head[1]} moves the loss on the second copy from {clean:.2f} to "
                          f"{table[head]:.2f} nats; another head's ablation raises it to {table[best]:.2f}. Hint: "
                          f"when several heads do the same job, silencing one leaves the others: count the heads "
                          f"that share each job, and look at how much each one carries")
