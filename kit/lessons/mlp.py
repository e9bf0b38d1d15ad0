"""Lesson 04 (MLP decomposition): the lesson's data helpers and its exercise checks.

:func:`world_sentences` and :func:`token_labels` turn the invented world into sentences whose every
token carries a label (a relation's template word, a country's or a person's name, or an answer of
some type), the labels that :func:`kit.analysis.label_purity` scores units against.
:func:`concept_mask` marks the positions where the model is about to say an answer of one relation,
:func:`pick_feature` the SNMF feature that fires there, and :func:`polysemantic_neuron` a strong
neuron whose top tokens span many labels. The ``check_*`` functions return a
:class:`~kit.lessons.CheckResult` and compute their truth from what they are given.

Per-student variants (:mod:`kit.lessons.variants`; the lesson's own instances without a student):
:func:`exercise_neurons` (the neurons 04.1 decodes), :func:`exercise_feature` (the feature whose purity
04.2 asks for), :func:`exercise_concept` (the concept of 04.3's DiffMeans) and :func:`exercise_target_kl`
(04.4's target KL).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..analysis import compare_steering, decode_neurons, diff_means, label_purity, random_sparse_like
from ..analysis.steering import steer
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner, todo
from .student import current_student
from .variants import variant, variant_seed

__all__ = [
    "world_sentences", "label_names", "token_labels", "concept_mask", "pick_feature", "polysemantic_neuron",
    "check_decoded_tokens", "check_diff_means", "check_feature_purity", "check_steering_scale",
    "concept_neuron", "concept_feature", "MatchedComparison", "matched_kl_comparison", "relation_groups",
    "feature_overlap", "steered_answers", "exercise_neurons", "exercise_feature", "exercise_concept",
    "exercise_target_kl", "TARGET_KLS",
]

BOUNDARY = "start or end of sentence"
EX_DECODE, EX_PURITY, EX_DIFF, EX_STEER = "04.1 decode a neuron", "04.2 label purity", "04.3 DiffMeans", \
    "04.4 steering scale"
TARGET_KLS = (0.5, 0.25, 0.35, 0.65, 0.75)  # 04.4's target KLs (0.5: the lesson's own; not 1.0, whose scale
# the lesson's steering table prints)
SHOWN_FEATURES = 4  # the lesson prints the purity of features 0 .. 3 (and of its own feature)


def world_sentences(world, per_relation: int = 40, seed: int = 0, split: str = "train") -> list:
    """``per_relation`` prompts (``world.prompts`` items) of each relation, shuffled with ``seed``;
    ``p.sentence`` is the full sentence with its answer."""
    out = []
    for rel in world.relations:
        prompts = world.prompts(split, rel)
        random.Random(seed).shuffle(prompts)
        out += prompts[:per_relation]
    return out


def label_names(world) -> list[str]:
    """Names of the token labels: one per relation's template words, then subject types, answer types,
    and the sentence boundaries (``<|bos|>``, the final full stop)."""
    rels = list(world.relations.values())
    subjects = sorted({r.subject_type for r in rels})
    answers = sorted({r.answer_type for r in rels})
    return ([f"{r.name} template" for r in rels] + [f"{s} name" for s in subjects] + [f"{a} answer" for a in answers]
            + [BOUNDARY])


def token_labels(model, world, prompts: Sequence) -> list[list[int]]:
    """Per prompt, per token of ``p.sentence`` (``<|bos|>`` included): the index into :func:`label_names`."""
    names = label_names(world)
    out = []
    for p in prompts:
        rel = world.relations[p.relation]
        s0, s1 = p.subject_span
        a0, a1 = len(p.text), len(p.text) + len(p.answer)
        enc = model.tokenizer(p.sentence, return_offsets_mapping=True)
        labels = []
        for a, b in enc["offset_mapping"]:
            if b <= a or p.sentence[a:b].strip() == ".":
                labels.append(names.index(BOUNDARY))
            elif a < s1 and b > s0:
                labels.append(names.index(f"{rel.subject_type} name"))
            elif a < a1 and b > a0:
                labels.append(names.index(f"{rel.answer_type} answer"))
            else:
                labels.append(names.index(f"{rel.name} template"))
        out.append(labels)
    return out


def concept_mask(model, col, prompts: Sequence, relation: str) -> torch.Tensor:
    """``mask[n_tokens]`` over the tokens of ``col`` (:func:`kit.analysis.mlp_activations` of the
    prompts' sentences): the last token of each prompt of ``relation``, where the answer comes next."""
    last = torch.tensor([len(model.to_tokens(p.text)) - 1 for p in prompts])  # [prompt]
    is_rel = torch.tensor([p.relation == relation for p in prompts])
    return (col.pos.cpu() == last[col.prompt.cpu()]) & is_rel[col.prompt.cpu()]


def pick_feature(Y: torch.Tensor, mask: torch.Tensor, top: int = 20) -> int:
    """The feature (row of ``Y[k, n_tokens]``) whose ``top`` strongest tokens fall most often in
    ``mask``; ties go to the higher mean activation on the mask."""
    idx = Y.topk(min(top, Y.shape[1]), dim=1).indices  # [k, top]
    hits = mask.to(Y.device)[idx].float().mean(1)  # [k]
    score = hits + 1e-6 * Y[:, mask.to(Y.device)].mean(1) / Y.mean(1).clamp_min(1e-12)
    return int(score.argmax())


def polysemantic_neuron(acts: torch.Tensor, labels: torch.Tensor, top: int = 20) -> int:
    """Among neurons whose largest activation is above the median neuron's, the one whose ``top``
    tokens carry the most distinct labels (ties: the strongest)."""
    strength = acts.max(1).values  # [d_mlp]
    idx = acts.topk(top, dim=1).indices  # [d_mlp, top]
    lab = labels.to(acts.device)[idx]
    distinct = torch.tensor([len(set(row.tolist()) - {-1}) for row in lab], dtype=torch.float)
    score = distinct + 1e-3 * strength.cpu() / strength.max().cpu()
    score[strength.cpu() <= strength.median().cpu()] = -1
    return int(score.argmax())


# ---------------------------------------------------------------------------------- variants
def exercise_neurons(model, layer: int, neuron: int, student: str | None = None) -> list[tuple[int, int]]:
    """The ``(layer, neuron)`` cases 04.1 decodes for ``student`` (default: the current one): the lesson's
    ``neuron`` of ``layer`` first, then ``(0, 0), (1, 7)`` with no student, else two neurons drawn for the
    student (in two different layers)."""
    seed = variant_seed(EX_DECODE, 0, student=student)
    if seed == 0:
        return [(layer, neuron), (0, 0), (1, 7)]
    g = torch.Generator().manual_seed(seed)
    layers = torch.randperm(model.n_layers, generator=g)[:2].tolist()
    return [(layer, neuron)] + [(l, int(torch.randint(model.d_mlp, (1,), generator=g))) for l in layers]


def _purity_is_distinct(scores: torch.Tensor, labels: torch.Tensor, top: int = 20) -> bool:
    """Whether 04.2's common wrong answers (another number of top tokens, the bottom tokens) give another
    value than the purity itself on ``scores[n_tokens]``, so the check can tell them apart."""
    purity = lambda x, n: float(label_purity(x[None].float(), labels, n).purity[0])  # noqa: E731
    truth = purity(scores, top)
    return all(abs(v - truth) >= 1e-3 for v in (purity(scores, 10), purity(scores, 50), purity(-scores, top)))


def exercise_feature(Y: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, student: str | None = None) -> int:
    """The feature (row of ``Y[k, n_tokens]``) whose label purity 04.2 asks ``student`` (default: the current
    one) for: the concept's feature (:func:`pick_feature`) with no student, else a feature drawn among those
    whose purity the lesson never prints (not the concept's, not 0 .. 3) and on which the common wrong
    answers give another value."""
    own = pick_feature(Y, mask)
    student = student if student is not None else current_student()
    if student is None:
        return own
    shown = {own, *range(SHOWN_FEATURES)}
    pool = [j for j in range(Y.shape[0]) if j not in shown]
    return variant(EX_PURITY, pool, student=student, where=lambda j: _purity_is_distinct(Y[j], labels))


def exercise_concept(world, concept: str, student: str | None = None) -> str:
    """The relation whose DiffMeans direction 04.3 asks ``student`` (default: the current one) for: the
    lesson's ``concept`` with no student, else one drawn among the world's relations."""
    return variant(EX_DIFF, [concept] + [r for r in world.relations if r != concept], student=student)


def exercise_target_kl(student: str | None = None) -> float:
    """04.4's target KL for ``student`` (default: the current one): 0.5 with no student, else one of
    :data:`TARGET_KLS` (never 1.0: the lesson prints the scale that reaches it)."""
    return variant(EX_STEER, TARGET_KLS, student=student)


# ---------------------------------------------------------------------------------- checks
def _tensor(x: Any) -> torch.Tensor | None:
    try:
        return torch.as_tensor(x).detach().float().cpu()
    except (TypeError, ValueError, RuntimeError):
        return None


def check_decoded_tokens(fn: Callable[[int, int, int], Any], model, cases: Sequence[tuple[int, int]],
                         k: int = 8) -> CheckResult:
    """Exercise 1: ``fn(layer, neuron, k)`` returns the ``k`` tokens the neuron's output promotes most
    (its ``W_out`` row times the final norm's weight, through ``W_U``), best first, as texts or ids."""
    name = "04.1 decode a neuron"
    hint = ("multiply model.adapter.W_out(layer)[neuron] by model.adapter.final_norm.weight, then by "
            "model.adapter.W_U, and take the top k")
    if is_unanswered(fn):
        return todo(name, hint)
    for layer, neuron in cases:
        got, verdict = run_learner(name, hint, fn, layer, neuron, k)
        if verdict is not None:
            return verdict
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or len(got) != k:
            return failed(name, f"return a list of {k} tokens (texts or ids); for layer {layer}, neuron {neuron} "
                                f"you returned {type(got).__name__} {str(got)[:80]}")
        texts = [model.to_str_tokens([t])[0] if isinstance(t, int) else t for t in got]
        dec = decode_neurons(model, k=k, layers=[layer])
        truth = dec.tokens(0, neuron)
        if texts == truth:
            continue
        W = model.adapter.W_out(layer)[neuron].detach().float()
        raw = model.to_str_tokens((W @ model.adapter.W_U.detach().float()).topk(k).indices)
        hint = ""
        if texts == raw:
            hint = " You left out the final norm's weight: multiply W_out[neuron] by model.adapter.final_norm.weight."
        elif texts == dec.tokens(0, neuron, suppressed=True):
            hint = " Those are the most suppressed tokens: take the largest logits, not the smallest."
        elif set(texts) == set(truth):
            hint = " Right tokens, wrong order: the most promoted token comes first."
        return failed(name, f"layer {layer}, neuron {neuron}: you gave {texts}, which are not its top {k} promoted "
                            f"tokens.{hint} Its output row is model.adapter.W_out(layer)[neuron] ([d_model]); read it "
                            "through the final norm's weight and model.adapter.W_U ([d_model, vocab]).")
    layer, neuron = cases[0]
    return passed(name, f"right on {len(cases)} neurons, e.g. layer {layer}, neuron {neuron} promotes "
                        f"{decode_neurons(model, k=k, layers=[layer]).tokens(0, neuron)[:4]}.")


def check_diff_means(answer: Any, acts: torch.Tensor, mask: torch.Tensor) -> CheckResult:
    """Exercise 3: the DiffMeans direction ``[d_mlp]``: mean of ``acts[:, mask]`` minus mean of ``acts[:, ~mask]``."""
    name = "04.3 DiffMeans"
    if is_unanswered(answer):
        return unanswered(name, "acts[:, mask].mean(1) minus the mean over the other tokens")
    v = _tensor(answer)
    d_mlp = acts.shape[0]
    if v is None or v.shape != (d_mlp,):
        shape = list(v.shape) if v is not None else type(answer).__name__
        hint = ""
        if v is not None and v.ndim == 1 and v.shape[0] == acts.shape[1]:
            hint = ". You averaged over the neuron axis: average over the token axis (dim 1) of acts[d_mlp, n_tokens]"
        elif v is not None and v.ndim == 0:
            hint = ". You reduced to one number: keep one entry per neuron (average over tokens only)"
        return failed(name, f"give a vector of shape [d_mlp={d_mlp}] (one number per neuron); got {shape}{hint}")
    truth = diff_means(acts, mask).float().cpu()
    if torch.allclose(v, truth, atol=1e-4, rtol=1e-3):
        return passed(name, f"the concept's mean minus the others' mean; its largest entry is neuron "
                            f"{int(truth.argmax())} ({float(truth.max()):+.2f}).")
    A = acts.float().cpu()
    m = mask.cpu()
    hint = ""
    if torch.allclose(v, -truth, atol=1e-4, rtol=1e-3):
        hint = " The sign is flipped: concept minus others."
    elif torch.allclose(v, A[:, m].mean(1), atol=1e-4, rtol=1e-3):
        hint = " That is the concept's mean alone: subtract the mean over the other tokens."
    elif torch.allclose(v, A[:, m].mean(1) - A.mean(1), atol=1e-4, rtol=1e-3):
        hint = " You subtracted the mean over all tokens; subtract the mean over the tokens outside the mask."
    elif torch.allclose(v, A[:, m].sum(1) - A[:, ~m].sum(1), atol=1e-3, rtol=1e-3):
        hint = " You subtracted sums; subtract means (the two groups have different sizes)."
    elif torch.allclose(v / v.norm().clamp_min(1e-12), truth / truth.norm(), atol=1e-4):
        hint = " Right direction, wrong length: do not normalise it (the check compares the raw difference)."
    return failed(name, f"your vector differs from the DiffMeans direction (largest gap "
                        f"{float((v - truth).abs().max()):.3f}).{hint}")


def check_feature_purity(answer: Any, scores: torch.Tensor, labels: torch.Tensor, top: int = 20) -> CheckResult:
    """Exercise 2: label purity of one unit (``scores[n_tokens]``): the share of its ``top`` tokens that
    carry their most common label (-1 never counts)."""
    name = "04.2 label purity"
    if is_unanswered(answer):
        return unanswered(name, f"take the {top} tokens where the feature is largest, count their labels, "
                                f"divide the most common count by {top}")
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, (int, float)) or isinstance(answer, bool):
        return failed(name, f"give one number between 0 and 1; got {type(answer).__name__}")
    truth = float(label_purity(scores[None], labels, top).purity[0])
    if abs(answer - truth) < 1e-3:
        return passed(name, f"{truth:.2f} of the feature's top {top} tokens share one label.")
    hint = ""
    idx = scores.float().topk(min(top, scores.shape[0])).indices
    lab = labels.to(idx.device)[idx]
    shares = torch.bincount(lab[lab >= 0]).float() / top if (lab >= 0).any() else torch.zeros(1)
    bottom = float(label_purity(-scores[None].float(), labels, top).purity[0])
    other_top = {n: float(label_purity(scores[None], labels, n).purity[0]) for n in (10, 50) if n != top}
    if abs(answer - truth * top) < 1e-3:
        hint = f" That is a count: divide by {top}."
    elif answer > 1:
        hint = " Purity is a share, between 0 and 1."
    elif any(abs(answer - v) < 1e-3 for v in other_top.values()):
        hint = f" You used another number of top tokens: take exactly the top {top}."
    elif abs(answer - bottom) < 1e-3 and abs(bottom - truth) >= 1e-3:
        hint = " You took the tokens where the feature is smallest: take the largest (topk, not the bottom)."
    elif shares.numel() > 1 and any(abs(answer - float(x)) < 1e-3 for x in shares if float(x) != truth):
        hint = " That is the share of another label, not of the most common one."
    return failed(name, f"you gave {answer:.3f}; recount the labels of the {top} highest-scoring tokens "
                        f"(topk on the feature's row of Y); label -1, if any, never counts.{hint}")


def check_steering_scale(answer: Any, model, prompts: Sequence[str], layer: int, direction: torch.Tensor,
                         target_kl: float, rtol: float = 0.1, pos: int = -1) -> CheckResult:
    """Exercise 4: a scale ``α`` at which adding ``α · direction / ‖direction‖`` to ``mlp_post`` at ``pos``
    gives a mean KL(clean ‖ steered) of the next token within ``rtol`` of ``target_kl``."""
    name = "04.4 steering scale"
    if is_unanswered(answer):
        return unanswered(name, "try a scale, measure the KL, double it or halve it, then bisect")
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, (int, float)) or isinstance(answer, bool):
        return failed(name, f"give the scale as one number; got {type(answer).__name__}")
    clean = model.trace(list(prompts), capture=[])
    steered = steer(model, list(prompts), layer, direction, float(answer), pos=pos)
    rows, last = torch.arange(len(prompts)), torch.tensor(clean.lengths) - 1
    base = clean.logits[rows, last].float().log_softmax(-1)
    new = steered.logits[rows, last].float().log_softmax(-1)
    kl = float((base.exp() * (base - new)).sum(-1).mean())
    if answer < 0:
        return failed(name, f"α = {answer:.3g} is negative: it steers away from the concept. The scale is a size "
                            f"(α >= 0) along the direction; find the positive α that gives KL {target_kl}.")
    if abs(kl - target_kl) <= rtol * target_kl:
        return passed(name, f"α = {answer:.3g} gives KL {kl:.3f} (target {target_kl}).")
    way = "larger" if kl < target_kl else "smaller"
    hint = ""
    if abs(answer - target_kl) < 1e-9:
        hint = " You gave the target KL itself; give the scale α that produces it."
    return failed(name, f"α = {answer:.3g} gives KL {kl:.3f}, not within {rtol:.0%} of {target_kl}: try a {way} α "
                        f"(the KL grows with α).{hint}")


# ---------------------------------------------------------------------------------- comparisons
def concept_neuron(acts: torch.Tensor, mask: torch.Tensor) -> int:
    """The neuron whose mean activation rises most on the tokens of ``mask`` (the argmax of DiffMeans)."""
    return int(diff_means(acts, mask).argmax())


def concept_feature(fit, mask: torch.Tensor) -> int:
    """The feature (row of ``fit.Y``) that fires most selectively on ``mask``: the largest difference of
    its mean inside and outside the mask, in units of its standard deviation over all tokens."""
    Y = fit.Y.float()
    m = mask.to(Y.device)
    sel = (Y[:, m].mean(1) - Y[:, ~m].mean(1)) / Y.std(1).clamp_min(1e-12)
    return int(sel.argmax())


@dataclass(frozen=True, repr=False)
class MatchedComparison:
    """Steering gains at one matched KL: ``gain[method][concept, seed]`` (rise of the concept's log-prob)
    and ``kl[method][concept, seed]`` (the KL each run reached); ``concepts`` and ``seeds`` name the axes."""

    gain: dict[str, torch.Tensor]
    kl: dict[str, torch.Tensor]
    concepts: list[str]
    seeds: list[int]
    target_kl: float

    def difference(self, a: str, b: str) -> tuple[float, float, int]:
        """``(mean, standard deviation, n)`` of the paired difference ``gain[a] - gain[b]`` over every
        concept and seed."""
        d = (self.gain[a] - self.gain[b]).flatten()
        return float(d.mean()), float(d.std()), d.numel()

    def verdict(self, a: str, b: str) -> str:
        """``"tie"`` when the paired difference's 95 % interval (mean ± 2 sd / √n) contains 0, else which
        method is ahead."""
        mean, sd, n = self.difference(a, b)
        if abs(mean) <= 2 * sd / n ** 0.5:
            return "tie"
        return f"{a} ahead" if mean > 0 else f"{b} ahead"

    def table(self) -> str:
        """Markdown: per concept, each method's gain as mean ± sd over the seeds."""
        names = list(self.gain)
        lines = ["| concept | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
        for i, c in enumerate(self.concepts):
            cells = [f"{float(self.gain[m][i].mean()):+.2f} ± {float(self.gain[m][i].std()):.2f}" for m in names]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("| **all** | " + " | ".join(f"**{float(self.gain[m].mean()):+.2f} ± "
                                               f"{float(self.gain[m].std()):.2f}**" for m in names) + " |")
        return "\n".join(lines)


def matched_kl_comparison(model, world, col, prompts: Sequence, fits: dict[str, Sequence], target_kl: float = 1.0,
                          rtol: float = 0.01, n_prompts: int = 10, relations: Sequence[str] | None = None
                          ) -> MatchedComparison:
    """Steer with each relation's feature of every fit, DiffMeans and a random direction, all at the same
    KL (within ``rtol``), over several seeds.

    ``col``: :func:`kit.analysis.mlp_activations` of the ``prompts``' sentences. ``fits[method][s]``: a
    decomposition (SNMF, SAE, ...) fitted with seed ``s``; for each relation its feature is
    :func:`concept_feature` on the relation's last prompt tokens. The concept is the relation's
    answers; the steered prompts are ``n_prompts`` held-out prompts of the *other* relations, drawn
    with seed ``s`` (so DiffMeans, which has no seed, gets a spread too), steered at the last token.
    The random direction has the first method's feature's sparsity, drawn with seed ``s``.
    """
    relations = list(relations or world.relations)
    seeds = list(range(len(next(iter(fits.values())))))
    methods = list(fits) + ["DiffMeans", "random (sparse)"]
    gain = {m: torch.zeros(len(relations), len(seeds)) for m in methods}
    kl = {m: torch.zeros(len(relations), len(seeds)) for m in methods}
    for i, rel in enumerate(relations):
        mask = concept_mask(model, col, prompts, rel)
        dm = diff_means(col.acts, mask)
        pool = [p.text for r in world.relations if r != rel for p in world.prompts("held_out", r)]
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            texts = [pool[j] for j in torch.randperm(len(pool), generator=g)[:n_prompts].tolist()]
            dirs = {m: fits[m][s].Z[:, concept_feature(fits[m][s], mask)] for m in fits}
            dirs["DiffMeans"] = dm
            dirs["random (sparse)"] = random_sparse_like(dirs[methods[0]], seed=s)
            res = compare_steering(model, texts, col.layer, dirs, target_kl, concept=world.answers(rel), pos=-1,
                                   rtol=rtol)
            for m in methods:
                gain[m][i, s], kl[m][i, s] = res[m].gain, res[m].kl
    return MatchedComparison(gain, kl, relations, seeds, target_kl)


def relation_groups(world) -> dict[str, list[str]]:
    """Relations grouped by the type of their subject (``{"country": [...], "person": [...]}``)."""
    out: dict[str, list[str]] = {}
    for r in world.relations.values():
        out.setdefault(r.subject_type, []).append(r.name)
    return out


def feature_overlap(fit, model, col, prompts: Sequence, world) -> tuple[float, float]:
    """Do related concepts reuse neurons? ``(within, across)``: mean |cosine| between the MLP-space
    directions ``z`` of the relations' features (:func:`concept_feature`), over pairs of relations that
    share a subject type (within) and pairs that do not (across)."""
    rels = list(world.relations)
    z = torch.stack([fit.Z[:, concept_feature(fit, concept_mask(model, col, prompts, r))] for r in rels])
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (z @ z.T).abs()
    kind = {r: world.relations[r].subject_type for r in rels}
    within = [float(cos[i, j]) for i in range(len(rels)) for j in range(i + 1, len(rels)) if kind[rels[i]] == kind[rels[j]]]
    across = [float(cos[i, j]) for i in range(len(rels)) for j in range(i + 1, len(rels)) if kind[rels[i]] != kind[rels[j]]]
    return sum(within) / len(within), sum(across) / len(across)


def steered_answers(model, world, prompts: Sequence, logprobs: torch.Tensor, relation: str) -> dict[str, float]:
    """What steered prompts now say, for prompts about countries steered toward ``relation``'s answers.

    ``logprobs[batch, vocab]``: the steered next-token log-probabilities of ``prompts`` (``world.prompts``
    items). Returns the share of prompts whose top token is ``"own"``: the subject's own answer of
    ``relation`` (e.g. its own currency); ``"other"``: another subject's answer of ``relation``;
    ``"asked"``: the answer the prompt asked for (its own relation); ``"else"``: anything else.
    """
    countries = {c["name"]: c for c in world.countries}
    answers = {_first(model, " " + a): a for a in world.answers(relation)}
    out = {"own": 0, "other": 0, "asked": 0, "else": 0}
    top = logprobs.argmax(-1).tolist()
    for p, t in zip(prompts, top):
        entity = countries.get(p.subject)
        own = None if entity is None or relation not in entity else _first(model, " " + entity[relation])
        if t == own:
            out["own"] += 1
        elif t in answers:
            out["other"] += 1
        elif t == _first(model, p.answer):
            out["asked"] += 1
        else:
            out["else"] += 1
    return {k: v / len(prompts) for k, v in out.items()}


def _first(model, text: str) -> int:
    return int(model.tokenizer(text, add_special_tokens=False)["input_ids"][0])
