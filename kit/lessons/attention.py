"""Checks for lesson 01, *Attention and the residual stream* (on ``facts-4l``).

Every check computes the truth from the model or trace it is given (never a stored answer), and
returns a :class:`~kit.lessons.CheckResult` that says what is wrong and how to get closer.

- :func:`check_residual_from_parts`: the learner's ``fn(tr, layer) -> resid[batch, pos, d_model]``.
- :func:`check_most_attended`: the learner's ``fn(tr, layer, head) -> key position`` of the last token.
- :func:`check_first_top1_layer`: the first layer whose logit lens ranks the answer top-1.
- :func:`check_top_component`: the component with the largest direct effect on the answer's logit
  *difference* against its competitors (the other answers of the same relation).

Helpers the lesson uses too: :func:`component_effects` (direct effects by name, raw or against
competitors) and :func:`parse_component` (``"L3H0"``, ``"MLP2"``, ``"embed"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..analysis import direct_logit_attribution, logit_lens
from ..analysis.factual import contrast_attribution
from ..models import Model
from ..trace import Trace
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner, todo
from ._names import parse_component
from ..train import metrics
from .variants import variant, variant_seed

__all__ = [
    "check_residual_from_parts", "check_most_attended", "check_first_top1_layer", "check_top_component",
    "component_effects", "parse_component", "answer_ranks", "relation_competitors", "exercise_person",
    "PEOPLE", "DLA_MARGIN",
]

EX_RESID = "1.1 residual stream from its parts"
EX_ATTEND = "1.2 where a head looks"
EX_LENS = "1.3 logit lens"
EX_DLA = "1.4 direct logit attribution"
HINT_RESID = "start from tr['resid_pre', 0] and add tr['attn_out', l] + tr['mlp_out', l] for l = 0 .. layer"
PEOPLE = 16  # exercises 1.3 and 1.4 draw their person among world.people[:PEOPLE]
DLA_MARGIN = 0.3  # a person is drawn only when the top component leads the next by this much (logit difference)
HINT_ATTEND = ("tr['pattern', layer] is [batch, head, query, key]; the last token is query -1; "
               "take the argmax over the keys")


# --- helpers ----------------------------------------------------------------------------------------

def component_effects(model: Model, prompt: str, answer: str,
                      competitors: Sequence[str | int] | None = None) -> dict[str, float]:
    """Direct effect of each component at the last position of ``prompt`` on ``answer``'s logit minus
    the mean logit of ``competitors`` (e.g. the other answers of the same relation); on the raw logit
    when ``competitors`` is ``None`` (the trap: a raw logit is not shift-invariant).

    Keys: ``"embed"``, ``"L{layer}H{head}"`` for every head, ``"MLP{layer}"`` for every MLP (the
    biases are left out: they are not components a learner can point at).
    """
    tr = model.trace(prompt, capture=["resid_pre", "resid_post", "head_out", "mlp_out"])
    if competitors is None:
        att = direct_logit_attribution(tr, answer, neurons=False)
    else:
        att = contrast_attribution(tr, [answer], [list(competitors)])
    out = {"embed": float(att.embed[0])}
    for l in range(model.n_layers):
        out.update({f"L{l}H{h}": float(att.heads[0, l, h]) for h in range(model.n_heads)})
    out.update({f"MLP{l}": float(att.mlps[0, l]) for l in range(model.n_layers)})
    return out


def relation_competitors(model: Model, world: Any, relation: str, answer: str) -> list[int]:
    """First-token ids of the other answers of ``relation`` in ``world`` (those whose first token
    differs from ``answer``'s): the answers that ``answer`` competes with."""
    tid = lambda text: int(model.tokenizer(text, add_special_tokens=False)["input_ids"][0])  # noqa: E731
    mine = tid(answer)
    return sorted({tid(" " + a) for a in world.answers(relation)} - {mine})


def answer_ranks(model: Model, prompt: str, answer: str) -> list[int]:
    """``ranks[layer]``: the logit lens's rank of ``answer`` at the last position (0 = top-1)."""
    tr = model.trace(prompt, capture=["resid_post"])
    return [int(r) for r in logit_lens(tr, k=1, target=answer).target_rank[:, 0, -1]]


def _ordinal(rank: int) -> str:
    n = rank + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _profession_prompt(person: dict) -> tuple[str, str]:
    return f"{person['name']} works as a", " " + person["profession"]


def _well_posed(model: Model, world: Any) -> Callable[[dict], bool]:
    """Whether exercises 1.3 and 1.4 are well posed on a person: the model's output ranks the
    profession top-1 (so 1.3 has a first top-1 layer) and the top component's direct effect on the logit
    difference leads the runner-up by at least :data:`DLA_MARGIN` (so 1.4 has one clear answer)."""
    def ok(person: dict) -> bool:
        prompt, answer = _profession_prompt(person)
        if answer_ranks(model, prompt, answer)[-1] != 0:
            return False
        effects = sorted(component_effects(model, prompt, answer,
                                           relation_competitors(model, world, "profession", answer)).values())
        return effects[-1] - effects[-2] >= DLA_MARGIN
    return ok


def _traces(tr: Trace, exercise: str) -> list[Trace]:
    """The traces a function exercise (1.1, 1.2) is checked on: the lesson's ``tr``, and with a student
    also the student's own sequence (``<|bos|>`` if the model has one, then random ordinary tokens, as
    many as ``tr`` has, drawn from the student's seed), so that replaying the lesson's numbers fails."""
    seed = variant_seed(exercise, -1)
    if seed == -1:
        return [tr]
    model = tr.model
    ids = metrics.random_tokens(model.hf, 1, tr.lengths[0] - 1, seed)  # [1, pos]
    bos = model.tokenizer.bos_token_id
    if bos is not None:
        ids = torch.cat([torch.full((1, 1), bos), ids], dim=1)
    return [tr, model.trace(ids)]


def exercise_person(model: Model, world: Any, student: str | None = None) -> dict:
    """The person of exercises 1.3 and 1.4 (``{"name", "profession", ...}``) for ``student`` (default: the
    current one, :mod:`kit.lessons.student`): ``world.people[0]`` with no student, else a person drawn
    among ``world.people[:PEOPLE]`` on whom both exercises are well posed on ``model``. The prompt is
    ``f"{name} works as a"``, the answer ``" " + profession``."""
    return variant(EX_DLA, world.people[:PEOPLE], student=student, where=_well_posed(model, world))


# --- exercise 1.1 ------------------------------------------------------------------------------------

class _Shortcut(Exception):
    """Raised by :class:`_PartsOnly` when a learner's function reads a residual stream it must build."""


class _PartsOnly:
    """A trace that serves the embeddings and the blocks' outputs, and refuses the residual streams
    ``resid_post`` and ``resid_pre`` after layer 0 (exercise 1.1 builds them from the parts)."""

    def __init__(self, tr: Trace) -> None:
        self._tr = tr

    def __getitem__(self, key: Any) -> torch.Tensor:
        name, layer = key if isinstance(key, tuple) and len(key) == 2 else (key, None)
        n = self._tr.model.n_layers
        if name == "resid_post" or (name == "resid_pre" and isinstance(layer, int) and layer % n != 0):
            raise _Shortcut(f"tr[{name!r}, {layer}]")
        return self._tr[key]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._tr, attr)


def _residual_verdict(fn: Callable[[Trace, int], Any], tr: Trace) -> CheckResult | None:
    """None when ``fn`` builds every layer's residual stream of ``tr`` from its parts; else the failed verdict."""
    parts = _PartsOnly(tr)

    def guarded(t: Any, layer: int) -> Any:
        try:
            return fn(t, layer)
        except _Shortcut as read:
            return read

    for layer in range(tr.model.n_layers):
        got, verdict = run_learner(EX_RESID, HINT_RESID, guarded, parts, layer)
        if verdict is not None:
            return verdict
        if isinstance(got, _Shortcut):
            return failed(EX_RESID, f"your function read {got} for layer {layer}: that is the answer itself, not "
                                    f"the sum of its parts. Build it from tr['resid_pre', 0] (the embeddings) and "
                                    f"tr['attn_out', l] + tr['mlp_out', l] for every block l <= layer")
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
        only_this = tr["resid_pre", 0] + tr["attn_out", layer] + tr["mlp_out", layer]
        if layer > 0 and (got - only_this).abs().max() <= tol:
            return failed(EX_RESID, f"for layer {layer} you added only block {layer}'s outputs to the embeddings: "
                                    f"the stream keeps what every earlier block wrote too (sum over l = 0 .. layer)")
        err = float((got - want).abs().max())
        return failed(EX_RESID, f"for layer {layer} your tensor differs from tr['resid_post', {layer}] by up to "
                                f"{err:.3g}; resid_post[layer] = resid_pre[0] + sum over l <= layer of "
                                f"(attn_out[l] + mlp_out[l])")
    return None


def check_residual_from_parts(fn: Callable[[Trace, int], Any], tr: Trace) -> CheckResult:
    """``fn(tr, layer)`` must equal ``tr["resid_post", layer]`` at every layer, built only from
    ``tr["resid_pre", 0]``, ``tr["attn_out", l]`` and ``tr["mlp_out", l]`` (the function is handed a
    trace that refuses the residual streams themselves)."""
    if is_unanswered(fn):
        return todo(EX_RESID, HINT_RESID)
    for t in _traces(tr, EX_RESID):  # the lesson's trace, then the student's own sequence (with a student)
        verdict = _residual_verdict(fn, t)
        if verdict is not None:
            return verdict
    return passed(EX_RESID, f"your sum equals resid_post at all {tr.model.n_layers} layers: the residual stream is "
                            f"the embeddings plus what every block wrote into it")


# --- exercise 1.2 ------------------------------------------------------------------------------------

def _attended_verdict(fn: Callable[[Trace, int, int], Any], tr: Trace) -> CheckResult | None:
    """None when ``fn`` finds the most attended key of every head on ``tr``; else the failed verdict."""
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
    return None


def check_most_attended(fn: Callable[[Trace, int, int], Any], tr: Trace) -> CheckResult:
    """``fn(tr, layer, head)`` must give the key position the last token of prompt 0 attends to most."""
    if is_unanswered(fn):
        return todo(EX_ATTEND, HINT_ATTEND)
    for t in _traces(tr, EX_ATTEND):  # the lesson's trace, then the student's own sequence (with a student)
        verdict = _attended_verdict(fn, t)
        if verdict is not None:
            return verdict
    model = tr.model
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

def check_top_component(answer: Any, model: Model, prompt: str, target: str,
                        competitors: Sequence[str | int]) -> CheckResult:
    """``answer``: the component (``"L{l}H{h}"``, ``"MLP{l}"`` or ``"embed"``) with the largest (most
    positive) direct effect on ``logit[target] - mean(logit[competitors])``."""
    if is_unanswered(answer):
        return unanswered(EX_DLA, "component_effects(model, prompt, answer, competitors) or "
                                  "contrast_attribution(tr, [answer], [competitors]) give each component's effect "
                                  "on the logit difference; name the largest, e.g. 'L2H3' or 'MLP1'")
    name = parse_component(answer, model.n_layers, model.n_heads)
    if name is None:
        return failed(EX_DLA, f"{answer!r} names no component of this model; write 'L<layer>H<head>' "
                              f"(e.g. 'L2H3'), 'MLP<layer>' (e.g. 'MLP1') or 'embed' "
                              f"(layers 0 .. {model.n_layers - 1}, heads 0 .. {model.n_heads - 1})")
    effects = component_effects(model, prompt, target, competitors)
    ranked = sorted(effects, key=effects.get, reverse=True)
    best = ranked[0]
    if name == best:
        return passed(EX_DLA, f"{best} adds {effects[best]:+.2f} to the logit difference between {target!r} and "
                              f"the other answers, the most of any component (next: {ranked[1]} "
                              f"{effects[ranked[1]]:+.2f})")
    raw = component_effects(model, prompt, target)
    mine = f"{name} adds {effects[name]:+.2f} to the logit difference ({_ordinal(ranked.index(name))} largest)"
    if name == max(raw, key=raw.get):
        return failed(EX_DLA, f"{name} has the largest effect on the raw logit of {target!r} ({raw[name]:+.2f}), "
                              f"but against the other answers it adds only {effects[name]:+.2f}: it raises every "
                              f"answer of the relation, not the right one. Attribute the logit difference "
                              f"(competitors given), not the raw logit")
    if effects[name] < 0:
        return failed(EX_DLA, f"{mine}: it pushes {target!r} down relative to the others. 'Largest' means the "
                              f"most positive effect, not the largest in size")
    return failed(EX_DLA, f"{mine}; one component adds {effects[best]:+.2f}. Compare every head, every MLP and the "
                          f"embeddings, not only one kind")
