"""Lesson 03 (factual recall): the lesson's measurements and its exercise checks.

Helpers measure what the lesson shows on ``facts-4l`` (or any model with a world of facts):
:func:`lesson_facts` picks facts the model answers, :func:`mlp_response_to_heads` asks whether an
MLP amplifies or erases what a head carries, :func:`mlp_answer_readout` measures how well each MLP's
output alone names the answer (an implicit ``get_capital(X)``), and :func:`trace_by_role` averages
causal traces over facts by token role, as in Meng et al. (2022). The ``check_*`` functions return a
:class:`~kit.lessons.CheckResult` and compute their truth from the model they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..analysis import attention_knockout, causal_trace, recall_summary, subject_positions
from ..analysis.attribution import frozen_norm
from ..analysis.features import direction_logits
from ..interventions import Ablate
from ._check import CheckResult, call_learner, failed, is_unanswered, passed, unanswered

__all__ = [
    "ROLES", "lesson_facts", "first_token", "mlp_response_to_heads", "mlp_answer_readout", "trace_by_role",
    "check_subject_tokens", "check_mover_head", "check_subject_peak", "check_knockout_drop",
]

ROLES = ("first subject token", "middle subject tokens", "last subject token", "first token after the subject",
         "further tokens", "last token")


def first_token(model, text: str) -> int:
    """Id of the first token of ``text`` (answers start with a space: ``" Paris"``)."""
    return int(model.tokenizer(text, add_special_tokens=False)["input_ids"][0])


@torch.no_grad()
def lesson_facts(model, world, n: int = 24, relations: Sequence[str] | None = None, template: int = 0,
                 batch_size: int = 64) -> list:
    """Up to ``n`` prompts (``world.prompts`` items) in ``template`` that the model answers right
    (top-1 on the answer's first token), taken round-robin over ``relations`` (default: every
    relation whose subjects are countries or people)."""
    relations = list(world.relations) if relations is None else list(relations)
    pools = [[p for p in world.prompts("train", r) if p.template == template] for r in relations]
    order = [pool[i] for i in range(max(map(len, pools))) for pool in pools if i < len(pool)]
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        tr = model.trace([p.text for p in chunk], capture=[])
        last = torch.tensor(tr.lengths) - 1
        top = tr.logits[torch.arange(len(chunk)), last.to(tr.logits.device)].argmax(-1).tolist()
        out += [p for p, t in zip(chunk, top) if t == first_token(model, p.answer)]
        if len(out) >= n:
            break
    return out[:n]


@torch.no_grad()
def mlp_response_to_heads(model, facts: Sequence, heads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``response[head_i, layer]``: the direct effect on the answer's logit of MLP ``layer`` at the last
    position that disappears when head ``heads[head_i]`` is zero-ablated there (mean over ``facts``).

    Read through the final norm frozen at the clean run, so only the MLP's own change counts. Same
    sign as the head's direct effect: the MLP amplifies what the head carries; opposite: it erases it.
    """
    texts = [p.text for p in facts]
    ids = torch.tensor([first_token(model, p.answer) for p in facts])
    clean = model.trace(texts, capture=["resid_post", "mlp_out"])
    rows, last = torch.arange(len(facts)), torch.tensor(clean.lengths) - 1
    linear, _ = frozen_norm(model.adapter.final_norm, clean["resid_post", -1][rows, last])
    unembed = model.adapter.W_U.detach().float()[:, ids.to(model.device)].T  # [batch, d_model]
    effect = lambda x: float((linear(x) * unembed).sum(-1).mean())  # noqa: E731
    out = torch.zeros(len(heads), model.n_layers)
    for i, (layer, head) in enumerate(heads):
        tr = model.trace(texts, capture=["mlp_out"], interventions=[Ablate(layer, head, pos=-1)])
        for m in range(model.n_layers):
            out[i, m] = effect(clean["mlp_out", m][rows, last] - tr["mlp_out", m][rows, last])
    return out


@torch.no_grad()
def mlp_answer_readout(model, world, relations: Sequence[str], template: int = 0) -> dict[str, torch.Tensor]:
    """``{relation: accuracy[layer]}``: how often MLP ``layer``'s output at the last position, read
    alone through the unembedding, ranks the right answer first among all of the relation's answers
    (over every subject of the relation, in ``template``). Chance is 1 / number of answers."""
    out = {}
    for rel in relations:
        prompts = [p for p in world.prompts("train", rel) if p.template == template]
        answers = world.answers(rel)
        cand = torch.tensor([first_token(model, " " + a) for a in answers])
        truth = torch.tensor([answers.index(p.answer.strip()) for p in prompts])
        tr = model.trace([p.text for p in prompts], capture=["mlp_out"])
        rows, last = torch.arange(len(prompts)), torch.tensor(tr.lengths) - 1
        acc = torch.zeros(model.n_layers)
        for m in range(model.n_layers):
            logits = torch.stack([direction_logits(model, x) for x in tr["mlp_out", m][rows, last]])  # [batch, vocab]
            acc[m] = (logits[:, cand.to(logits.device)].argmax(-1).cpu() == truth).float().mean()
        out[rel] = acc
    return out


def _roles(n_pos: int, subject: Sequence[int]) -> list[int]:
    """Index into :data:`ROLES` of each position (the last token wins over every other role)."""
    first, last = min(subject), max(subject)
    roles = []
    for p in range(n_pos):
        if p == n_pos - 1:
            roles.append(5)
        elif p == first:
            roles.append(0)
        elif p == last:
            roles.append(2)
        elif first < p < last:
            roles.append(1)
        elif p == last + 1:
            roles.append(3)
        elif p > last:
            roles.append(4)
        else:
            roles.append(-1)  # before the subject: not shown
    return roles


def trace_by_role(traces: Sequence) -> torch.Tensor:
    """``effect[layer, role]``: causal-tracing effects (restored minus corrupted p(answer)) averaged over
    facts by token role (:data:`ROLES`); NaN where no fact has a token in that role."""
    L = traces[0].effect.shape[0]
    total, count = torch.zeros(L, len(ROLES)), torch.zeros(len(ROLES))
    for ct in traces:
        for p, r in enumerate(_roles(ct.effect.shape[1], ct.subject)):
            if r >= 0:
                total[:, r] += ct.effect[:, p]
                count[r] += 1
    return total / count.where(count > 0, torch.tensor(float("nan")))


# ---------------------------------------------------------------------------------- checks
def _as_int_list(x: Any) -> list[int] | None:
    if isinstance(x, torch.Tensor):
        x = x.flatten().tolist()
    if isinstance(x, (list, tuple, range)) and all(isinstance(i, int) and not isinstance(i, bool) for i in x):
        return list(x)
    return None


def _pair(x: Any) -> tuple[int, int] | None:
    items = _as_int_list(x)
    return (items[0], items[1]) if items is not None and len(items) == 2 else None


def check_subject_tokens(fn: Callable[[str, str], Any], model, world) -> CheckResult:
    """Exercise 1: ``fn(prompt, subject)`` returns the token positions of the subject in the prompt."""
    name = "03.1 subject tokens"
    cases = []
    for rel in world.relations:  # one prompt per relation, the templates differ in where the subject sits
        prompts = world.prompts("all", rel)
        cases.append(prompts[len(cases) * 7 % len(prompts)])
    for p in cases:
        got, verdict = call_learner(name, fn, p.text, p.subject)
        if verdict is not None:
            return verdict
        items = _as_int_list(got)
        if items is None:
            return failed(name, f"return a list of ints (token positions); for {p.text!r} you returned "
                                f"{type(got).__name__} {got!r}")
        truth = subject_positions(model, p.text, p.subject)
        tokens = model.to_str_tokens(p.text)
        if items != truth:
            shown = ", ".join(f"{i}:{tokens[i]!r}" for i in truth)
            hint = ""
            if [i + 1 for i in items] == truth:
                hint = " Your positions are one too small: position 0 is the <|bos|> token that the tokenizer adds."
            elif set(items) < set(truth):
                hint = " You found only part of the subject: invented names span several tokens."
            return failed(name, f"for {p.text!r} with subject {p.subject!r} you gave {items}; the subject covers "
                                f"positions {truth} ({shown}).{hint} Tokenize with "
                                "model.tokenizer(prompt, return_offsets_mapping=True) and keep the tokens whose "
                                "character span overlaps the subject's.")
    return passed(name, f"right on {len(cases)} prompts of different templates, e.g. {cases[0].subject!r} in "
                        f"{cases[0].text!r} is at {subject_positions(model, cases[0].text, cases[0].subject)}.")


def check_mover_head(answer: Any, model, facts: Sequence) -> CheckResult:
    """Exercise 2: ``(layer, head)`` whose attention from the last token to the subject is highest
    (summed over the subject's tokens, mean over ``facts``)."""
    name = "03.2 the head that moves the subject"
    if is_unanswered(answer):
        return unanswered(name, "for each layer l, tr['pattern', l][b, :, last, subject].sum(-1) is each head's "
                                "attention from the last token to the subject; average over the facts.")
    pair = _pair(answer)
    if pair is None:
        return failed(name, f"give (layer, head) as two ints, e.g. (1, 0); got {answer!r}")
    layer, head = pair
    if not (0 <= layer < model.n_layers and 0 <= head < model.n_heads):
        return failed(name, f"(layer, head) = {pair} is out of range: layers 0..{model.n_layers - 1}, "
                            f"heads 0..{model.n_heads - 1}")
    s = recall_summary(model, [p.text for p in facts], [p.subject for p in facts], [p.answer for p in facts])
    (bl, bh, best), = s.top_subject_heads(1)
    mine = float(s.subject_attention[layer, head])
    if (layer, head) == (bl, bh):
        return passed(name, f"L{bl}H{bh} puts {best:.2f} of its attention from the last token on the subject "
                            f"(mean over {len(facts)} facts); its direct effect on the answer's logit is "
                            f"{float(s.head_effect[bl, bh]):+.2f}.")
    close = " Very close: average over all the facts, not one prompt." if best - mine < 0.03 else ""
    return failed(name, f"L{layer}H{head} puts {mine:.2f} of its attention from the last token on the subject; "
                        f"another head puts {best:.2f} there.{close} Compare every layer and head, summing the "
                        "attention over all the subject's tokens.")


def check_subject_peak(answer: Any, model, prompt: str, subject: str, target: str, samples: int = 10,
                       seed: int = 0) -> CheckResult:
    """Exercise 3: ``(layer, pos)`` of the residual causal trace's largest restored p(answer) among the
    subject's positions (causal_trace with ``samples`` and ``seed`` as in the lesson)."""
    name = "03.3 where the subject's information lives"
    if is_unanswered(answer):
        return unanswered(name, "index ct.scores[:, ct.subject] and find its argmax; map the column back to a position.")
    pair = _pair(answer)
    if pair is None:
        return failed(name, f"give (layer, position) as two ints; got {answer!r}")
    ct = causal_trace(model, prompt, subject, answer=target, kind="resid", samples=samples, seed=seed)
    L, T = ct.scores.shape
    layer, pos = pair
    if not (0 <= layer < L and 0 <= pos < T):
        return failed(name, f"(layer, position) = {pair} is out of range: layers 0..{L - 1}, positions 0..{T - 1}")
    sub = ct.scores[:, ct.subject]
    i = int(sub.argmax())
    bl, bp = i // sub.shape[1], ct.subject[i % sub.shape[1]]
    if pos not in ct.subject:
        return failed(name, f"position {pos} is {ct.tokens[pos]!r}, not a subject token; the subject is at "
                            f"{ct.subject}. Look only at the subject's columns.")
    if (layer, pos) == (bl, bp):
        return passed(name, f"restoring the residual stream after layer {bl} at {ct.tokens[bp]!r} (position {bp}) "
                            f"brings p(answer) back to {float(ct.scores[bl, bp]):.2f} (clean {ct.clean:.2f}, "
                            f"corrupted {ct.corrupted:.2f}).")
    return failed(name, f"restoring (layer {layer}, position {pos}) gives p(answer) {float(ct.scores[layer, pos]):.2f}; "
                        f"another subject cell gives {float(sub.max()):.2f}. Take the argmax over every layer and "
                        "every subject position.")


def check_knockout_drop(answer: Any, model, prompt: str, subject: str, target: str) -> CheckResult:
    """Exercise 4: drop in p(answer) when attention from the last token to the subject is blocked in
    every layer (``p_before - p_after``)."""
    name = "03.4 attention knockout"
    if is_unanswered(answer):
        return unanswered(name, "trace with interventions=[kit.Knockout(layers, query=-1, key=subject_positions)] "
                                "and compare p(answer) at the last position with the clean trace's.")
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, (int, float)) or isinstance(answer, bool):
        return failed(name, f"give the drop as one number (p before minus p after); got {type(answer).__name__}")
    ko = attention_knockout(model, prompt, key=subject_positions(model, prompt, subject), answer=target)
    before, after = float(ko["before"][0]), float(ko["after"][0])
    drop = before - after
    if abs(answer - drop) <= 0.01:
        return passed(name, f"p(answer) falls from {before:.2f} to {after:.2f} (drop {drop:.2f}) when the last "
                            "token cannot see the subject.")
    hint = ""
    if abs(answer - after) <= 0.01:
        hint = " That is p(answer) after the knockout; give before minus after."
    elif abs(answer + drop) <= 0.01:
        hint = " The sign is flipped: before minus after."
    elif before > 0 and abs(answer - after / before) <= 0.01:
        hint = " That is the ratio after / before; give the difference."
    return failed(name, f"you gave {answer:.3f}; blocking the last token's attention to the subject in every layer "
                        f"changes p(answer) by a different amount.{hint} Knock out every layer "
                        "(layer=list(range(model.n_layers))) and use softmax probabilities, not logits.")
