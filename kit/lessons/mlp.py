"""Lesson 04 (MLP decomposition): the lesson's data helpers and its exercise checks.

:func:`world_sentences` and :func:`token_labels` turn the invented world into sentences whose every
token carries a label (a relation's template word, a country's or a person's name, or an answer of
some type), the labels that :func:`kit.analysis.label_purity` scores units against.
:func:`concept_mask` marks the positions where the model is about to say an answer of one relation,
:func:`pick_feature` the SNMF feature that fires there, and :func:`polysemantic_neuron` a strong
neuron whose top tokens span many labels. The ``check_*`` functions return a
:class:`~kit.lessons.CheckResult` and compute their truth from what they are given.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..analysis import decode_neurons, diff_means, label_purity
from ..analysis.steering import steer
from ._check import CheckResult, call_learner, failed, is_unanswered, passed, unanswered

__all__ = [
    "world_sentences", "label_names", "token_labels", "concept_mask", "pick_feature", "polysemantic_neuron",
    "check_decoded_tokens", "check_diff_means", "check_feature_purity", "check_steering_scale",
]

BOUNDARY = "start or end of sentence"


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
    for layer, neuron in cases:
        got, verdict = call_learner(name, fn, layer, neuron, k)
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
        return failed(name, f"give a vector of shape [d_mlp={d_mlp}] (one number per neuron); got {shape}"
                            + (". Average over the token axis (dim 1) of acts[d_mlp, n_tokens]." if v is not None
                               and v.ndim == 1 and v.shape[0] == acts.shape[1] else ""))
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
    if abs(answer - truth * top) < 1e-3:
        hint = f" That is a count: divide by {top}."
    elif answer > 1:
        hint = " Purity is a share, between 0 and 1."
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
    if abs(kl - target_kl) <= rtol * target_kl:
        return passed(name, f"α = {answer:.3g} gives KL {kl:.3f} (target {target_kl}).")
    way = "larger" if kl < target_kl else "smaller"
    return failed(name, f"α = {answer:.3g} gives KL {kl:.3f}, not within {rtol:.0%} of {target_kl}: try a {way} α "
                        "(the KL grows with α).")
