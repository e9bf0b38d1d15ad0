"""Checks for lesson 01, *Attention and the residual stream* (on ``facts-4l``).

Every check computes the truth from the model or trace it is given (never a stored answer), and
returns a :class:`~kit.lessons.CheckResult` that says what is wrong and how to get closer.

- :func:`check_residual_from_parts`: the learner's ``fn(tr, layer) -> resid[batch, pos, d_model]``.
- :func:`check_most_attended`: the learner's ``fn(tr, layer, head) -> key position`` of the last token.
- :func:`check_first_top1_layer`: the first layer whose logit lens ranks the answer top-1.
- :func:`check_top_component`: the component with the largest direct logit attribution.

Helpers the lesson uses too: :func:`component_effects` (direct effects by name) and
:func:`parse_component` (``"L3H0"``, ``"MLP2"``, ``"embed"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from ..analysis import direct_logit_attribution, logit_lens
from ..models import Model
from ..trace import Trace
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner, todo

__all__ = [
    "check_residual_from_parts", "check_most_attended", "check_first_top1_layer", "check_top_component",
    "component_effects", "parse_component", "answer_ranks",
]

EX_RESID = "1.1 residual stream from its parts"
EX_ATTEND = "1.2 where a head looks"
EX_LENS = "1.3 logit lens"
EX_DLA = "1.4 direct logit attribution"
HINT_RESID = "start from tr['resid_pre', 0] and add tr['attn_out', l] + tr['mlp_out', l] for l = 0 .. layer"
HINT_ATTEND = ("tr['pattern', layer] is [batch, head, query, key]; the last token is query -1; "
               "take the argmax over the keys")


# --- helpers ----------------------------------------------------------------------------------------

def component_effects(model: Model, prompt: str, answer: str) -> dict[str, float]:
    """Direct effect of each component on ``answer``'s logit at the last position of ``prompt``.

    Keys: ``"embed"``, ``"L{layer}H{head}"`` for every head, ``"MLP{layer}"`` for every MLP (the
    biases are left out: they are not components a learner can point at).
    """
    tr = model.trace(prompt, capture=["resid_pre", "resid_post", "head_out", "mlp_out"])
    att = direct_logit_attribution(tr, answer, neurons=False)
    out = {"embed": float(att.embed[0])}
    for l in range(model.n_layers):
        out.update({f"L{l}H{h}": float(att.heads[0, l, h]) for h in range(model.n_heads)})
    out.update({f"MLP{l}": float(att.mlps[0, l]) for l in range(model.n_layers)})
    return out


def parse_component(name: Any, n_layers: int, n_heads: int) -> str | None:
    """``"L3H0"``, ``"MLP2"`` or ``"embed"`` in canonical spelling, or ``None`` if it names none of them."""
    if not isinstance(name, str):
        return None
    text = name.strip().replace(" ", "").replace(".", "")
    if text.lower() in ("embed", "embedding", "embeddings"):
        return "embed"
    m = re.fullmatch(r"[lL](\d+)[hH](\d+)", text)
    if m and int(m.group(1)) < n_layers and int(m.group(2)) < n_heads:
        return f"L{int(m.group(1))}H{int(m.group(2))}"
    m = re.fullmatch(r"(?:mlp|MLP|Mlp)(\d+)", text)
    if m and int(m.group(1)) < n_layers:
        return f"MLP{int(m.group(1))}"
    return None


def answer_ranks(model: Model, prompt: str, answer: str) -> list[int]:
    """``ranks[layer]``: the logit lens's rank of ``answer`` at the last position (0 = top-1)."""
    tr = model.trace(prompt, capture=["resid_post"])
    return [int(r) for r in logit_lens(tr, k=1, target=answer).target_rank[:, 0, -1]]


def _ordinal(rank: int) -> str:
    n = rank + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- exercise 1.1 ------------------------------------------------------------------------------------

def check_residual_from_parts(fn: Callable[[Trace, int], Any], tr: Trace) -> CheckResult:
    """``fn(tr, layer)`` must equal ``tr["resid_post", layer]`` for every layer of ``tr``."""
    if is_unanswered(fn):
        return todo(EX_RESID, HINT_RESID)
    for layer in range(tr.model.n_layers):
        got, verdict = run_learner(EX_RESID, HINT_RESID, fn, tr, layer)
        if verdict is not None:
            return verdict
        want = tr["resid_post", layer]  # [batch, pos, d_model]
        if not isinstance(got, torch.Tensor):
            return failed(EX_RESID, f"for layer {layer} your function returned {type(got).__name__}; return a tensor "
                                    f"[batch, pos, d_model] like tr['resid_post', {layer}]")
        if tuple(got.shape) != tuple(want.shape):
            return failed(EX_RESID, f"for layer {layer} your tensor has shape {tuple(got.shape)}, but the residual "
                                    f"stream has shape {tuple(want.shape)} [batch, pos, d_model]: add whole "
                                    f"activations, do not index or sum over positions")
        got = got.detach().float().to(want.device)
        tol = 1e-4 * float(want.abs().max()) + 1e-5
        if (got - want).abs().max() <= tol:
            continue
        if layer == 0 and (got - tr["resid_pre", 0]).abs().max() <= tol:
            return failed(EX_RESID, "for layer 0 you returned the embeddings; resid_post of layer 0 also holds "
                                    "what block 0 added: its attention output and its MLP output")
        if layer > 0 and (got - tr["resid_post", layer - 1]).abs().max() <= tol:
            return failed(EX_RESID, f"for layer {layer} you returned resid_post of layer {layer - 1}: include block "
                                    f"{layer} itself (sum l from 0 up to and including `layer`)")
        no_mlp = tr["resid_pre", 0] + sum(tr["attn_out", l] for l in range(layer + 1))
        if (got - no_mlp).abs().max() <= tol:
            return failed(EX_RESID, "you added the attention outputs but not the MLP outputs: every block adds both")
        no_attn = tr["resid_pre", 0] + sum(tr["mlp_out", l] for l in range(layer + 1))
        if (got - no_attn).abs().max() <= tol:
            return failed(EX_RESID, "you added the MLP outputs but not the attention outputs: every block adds both")
        err = float((got - want).abs().max())
        return failed(EX_RESID, f"for layer {layer} your tensor differs from tr['resid_post', {layer}] by up to "
                                f"{err:.3g}; resid_post[layer] = resid_pre[0] + sum over l <= layer of "
                                f"(attn_out[l] + mlp_out[l])")
    return passed(EX_RESID, f"your sum equals resid_post at all {tr.model.n_layers} layers: the residual stream is "
                            f"the embeddings plus what every block wrote into it")


# --- exercise 1.2 ------------------------------------------------------------------------------------

def check_most_attended(fn: Callable[[Trace, int, int], Any], tr: Trace) -> CheckResult:
    """``fn(tr, layer, head)`` must give the key position the last token of prompt 0 attends to most."""
    if is_unanswered(fn):
        return todo(EX_ATTEND, HINT_ATTEND)
    model = tr.model
    n = tr.lengths[0]
    for layer in range(model.n_layers):
        row = tr["pattern", layer][0, :, n - 1, :n]  # [head, key]: what the last token attends to
        for head in range(model.n_heads):
            got, verdict = run_learner(EX_ATTEND, HINT_ATTEND, fn, tr, layer, head)
            if verdict is not None:
                return verdict
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, float) and not got.is_integer():
                return failed(EX_ATTEND, f"for L{layer}H{head} you returned {got:.3f}, an attention weight; return "
                                         f"the position (an int): the argmax, not the max")
            if isinstance(got, bool) or not isinstance(got, (int, float)):
                return failed(EX_ATTEND, f"for L{layer}H{head} you returned {type(got).__name__}; return one key "
                                         f"position as an int (0 .. {n - 1})")
            got = int(got)
            want = int(row[head].argmax())
            if not -n <= got < n:
                return failed(EX_ATTEND, f"for L{layer}H{head} you returned position {got}, but the prompt has "
                                         f"only {n} tokens (0 .. {n - 1})")
            if got % n != want:
                w_got, w_want = float(row[head, got % n]), float(row[head, want])
                return failed(EX_ATTEND, f"for L{layer}H{head} you returned position {got}, which the last token "
                                         f"attends to with weight {w_got:.2f}; another key gets {w_want:.2f}. "
                                         f"pattern is [batch, head, query, key]: fix the query at the last "
                                         f"token and take the argmax over the key axis")
    return passed(EX_ATTEND, f"right for all {model.n_layers * model.n_heads} heads: you can read a pattern "
                             f"as [batch, head, query, key]")


# --- exercise 1.3 ------------------------------------------------------------------------------------

def check_first_top1_layer(answer: Any, model: Model, prompt: str, target: str) -> CheckResult:
    """``answer``: the first layer at which the logit lens of the last position ranks ``target`` top-1."""
    if is_unanswered(answer):
        return unanswered(EX_LENS, f"logit_lens(tr, target={target!r}).target_rank[:, 0, -1] holds the rank of "
                                   f"the answer after each layer (0 = top-1)")
    ranks = answer_ranks(model, prompt, target)
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, int):
        return failed(EX_LENS, f"give a layer number as an int (0 .. {model.n_layers - 1}), not "
                               f"{type(answer).__name__} {answer!r}")
    if not 0 <= answer < model.n_layers:
        return failed(EX_LENS, f"layer {answer} does not exist: this model has layers 0 .. {model.n_layers - 1}")
    first = next((l for l, r in enumerate(ranks) if r == 0), None)
    if first is None:
        return failed(EX_LENS, f"the model never ranks {target!r} top-1 on this prompt; check the prompt and target")
    if answer == first:
        return passed(EX_LENS, f"after layer {first} the residual stream already ranks {target!r} top-1 "
                               f"(ranks by layer: {ranks})")
    if ranks[answer] == 0:
        return failed(EX_LENS, f"after layer {answer} {target!r} is top-1 indeed, but it already is after an "
                               f"earlier layer: look for the first one")
    return failed(EX_LENS, f"after layer {answer} the logit lens ranks {target!r} {_ordinal(ranks[answer])}, "
                           f"not 1st; look {'later' if answer < first else 'earlier'}")


# --- exercise 1.4 ------------------------------------------------------------------------------------

def check_top_component(answer: Any, model: Model, prompt: str, target: str) -> CheckResult:
    """``answer``: the component (``"L{l}H{h}"``, ``"MLP{l}"`` or ``"embed"``) with the largest direct effect."""
    if is_unanswered(answer):
        return unanswered(EX_DLA, "direct_logit_attribution(tr, target) gives .heads[batch, layer, head], "
                                  ".mlps[batch, layer] and .embed[batch]; name the largest, e.g. 'L2H3' or 'MLP1'")
    name = parse_component(answer, model.n_layers, model.n_heads)
    if name is None:
        return failed(EX_DLA, f"{answer!r} names no component of this model; write 'L<layer>H<head>' "
                              f"(e.g. 'L2H3'), 'MLP<layer>' (e.g. 'MLP1') or 'embed' "
                              f"(layers 0 .. {model.n_layers - 1}, heads 0 .. {model.n_heads - 1})")
    effects = component_effects(model, prompt, target)
    best = max(effects, key=effects.get)
    if name == best:
        second = sorted(effects.values(), reverse=True)[1]
        return passed(EX_DLA, f"{best} writes {effects[best]:+.2f} directly onto the logit of {target!r}, the most "
                              f"of any component (next: {second:+.2f})")
    rank = sorted(effects, key=effects.get, reverse=True).index(name)
    return failed(EX_DLA, f"{name} writes {effects[name]:+.2f} onto the logit of {target!r} ({_ordinal(rank)} "
                          f"largest); one component writes {effects[best]:+.2f}. Compare every head, every MLP and "
                          f"the embeddings, not only one kind")
