"""Lesson 03 (factual recall): the lesson's measurements and its exercise checks.

Helpers measure what the lesson shows on ``facts-4l`` (or any model with a world of facts):
:func:`lesson_facts` picks facts the model answers and :func:`competitors` the answers each competes
with (for logit differences); :func:`head_readout` reads what one head's output names (mover or
extractor?), :func:`subject_enrichment` what the subject's last token already names (Geva et al.
2023), :func:`mlp_amplification` whether an MLP amplifies or erases what a head writes (against a
noise floor), :func:`mlp_answer_readout` how well each MLP's output alone names the answer (an
implicit ``get_capital(X)``), and :func:`trace_by_role` averages causal traces over facts by token
role, as in Meng et al. (2022). The ``check_*`` functions return a
:class:`~kit.lessons.CheckResult` and compute their truth from the model they are given.

Per-student variants (:mod:`kit.lessons.variants`; the lesson's own instances without a student): 03.1
checks the learner's function on the student's own prompts, 03.2 asks about the student's own facts
(:func:`exercise_facts`) and 03.3 and 03.4 about the student's own fact (:func:`exercise_fact`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..analysis import attention_knockout, causal_trace, recall_summary, subject_positions
from ..analysis.features import direction_logits
from ..interventions import Ablate, Edit
from ._check import CheckResult, failed, is_unanswered, passed, unanswered
from ._learner import run_learner
from ._names import head_help, head_name, parse_head
from .student import current_student
from .variants import variant, variant_index

__all__ = [
    "ROLES", "lesson_facts", "first_token", "competitors", "head_readout", "subject_enrichment", "mlp_amplification",
    "mlp_answer_readout", "trace_by_role",
    "check_subject_tokens", "check_mover_head", "check_subject_peak", "check_knockout_drop",
    "exercise_facts", "exercise_fact", "EX_TOKENS", "EX_MOVER", "EX_PEAK", "EX_KNOCKOUT",
]

EX_TOKENS = "03.1 subject tokens"
EX_MOVER = "03.2 the head that moves the subject"
EX_PEAK = "03.3 where the subject's information lives"
EX_KNOCKOUT = "03.4 attention knockout"
MOVER_MARGIN = 0.005  # 03.2: the top head's mean attention to the subject leads the next by this much
PEAK_MARGIN = 0.05  # 03.3: the subject's top restored cell leads the next by this much p(answer)
MIN_DROP = 0.5  # 03.4: knocking out the subject must cost at least this much p(answer) (the lesson's claim)
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


def competitors(model, world, facts: Sequence) -> list[list[int]]:
    """Per fact: first-token ids of the other answers of its relation (those whose first token differs
    from the fact's answer), the answers it competes with in a logit difference."""
    cache: dict[str, list[int]] = {}
    out = []
    for f in facts:
        if f.relation not in cache:
            cache[f.relation] = sorted({first_token(model, " " + a) for a in world.answers(f.relation)})
        mine = first_token(model, f.answer)
        out.append([t for t in cache[f.relation] if t != mine])
    return out


def _rank_among(logits: torch.Tensor, model, answers: Sequence[str], truth: str) -> int:
    """Rank (0 = first) of ``truth`` among ``answers`` by ``logits[vocab]`` of their first tokens."""
    cand = torch.tensor([first_token(model, " " + a) for a in answers], device=logits.device)
    scores = logits[cand]
    return int((scores > scores[list(answers).index(truth)]).sum())


@torch.no_grad()
def head_readout(model, world, facts: Sequence, layer: int, head: int) -> dict[str, list[int]]:
    """What one head's own output at the last position names, read alone through the unembedding
    (:func:`~kit.analysis.direction_logits`), as ranks among the answers of a relation (0 = first).

    ``{"answer": [rank of each fact's answer among its relation's answers], attribute: [...]}`` with,
    for each country attribute (capital, language, continent, currency), the rank of the subject's own
    value among that attribute's answers, over the facts whose subject is a country, whatever the
    prompt asks. A head that moves only the subject would rank no answer first; a head that extracts
    attributes from an enriched subject (Geva et al. 2023) ranks the subject's attributes first.
    """
    tr = model.trace([f.text for f in facts], capture=["head_out"], layers=[layer])
    last = torch.tensor(tr.lengths) - 1
    out: dict[str, list[int]] = {"answer": []}
    countries = {c["name"]: c for c in world.countries}
    attrs = [r for r in world.relations if world.relations[r].subject_type == "country"]
    for a in attrs:
        out[a] = []
    for b, f in enumerate(facts):
        logits = direction_logits(model, tr["head_out", layer][b, last[b], head])
        out["answer"].append(_rank_among(logits, model, world.answers(f.relation), f.answer.strip()))
        if f.subject in countries:
            for a in attrs:
                out[a].append(_rank_among(logits, model, world.answers(a), countries[f.subject][a]))
    return out


@torch.no_grad()
def subject_enrichment(model, world, facts: Sequence) -> dict[str, float]:
    """How often the residual stream at the subject's **last token** already names the fact's answer
    (ranked first among the relation's answers, read through the unembedding): before the first MLP
    (embeddings + attention of layer 0) and after each block. Geva et al. (2023) call the rise the
    subject's enrichment by early MLPs."""
    tr = model.trace([f.text for f in facts], capture=["resid_pre", "attn_out", "resid_post"])
    stages = {"before MLP0": lambda b, s: tr["resid_pre", 0][b, s] + tr["attn_out", 0][b, s]}
    for l in range(model.n_layers):
        stages[f"after block {l}"] = lambda b, s, l=l: tr["resid_post", l][b, s]
    out = {}
    for name, get in stages.items():
        hits = [_rank_among(direction_logits(model, get(b, subject_positions(model, f.text, f.subject)[-1])), model,
                            world.answers(f.relation), f.answer.strip()) == 0 for b, f in enumerate(facts)]
        out[name] = sum(hits) / len(hits)
    return out


@torch.no_grad()
def mlp_amplification(model, facts: Sequence, heads: Sequence[tuple[int, int]], seeds: int = 8
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Does an MLP amplify or erase what a head writes at the last position? ``(k, floor)``.

    ``k[head_i, layer]``: mean-ablate head ``heads[head_i]`` at the last position (its mean over the
    facts: the head still writes its average, only what is specific to the prompt is removed), and
    measure how much of the removed vector ``d`` MLP ``layer``'s output loses **along d**:
    ``<Δmlp_out, d> / |d|²`` (mean over facts). +0.1: the MLP adds 10 % more of what the head wrote
    (amplifies); -0.1: it cancels 10 % of it (erases). NaN for MLPs before the head's layer.

    ``floor[head_i, layer]``: the noise floor, the largest ``|k|`` when, instead of the head, a random
    direction of the same size is removed from that layer's attention output (``seeds`` draws). An
    MLP responds to any change of its input; only a ``k`` beyond the floor is specific to the head.
    """
    texts = [f.text for f in facts]
    clean = model.trace(texts, capture=["head_out", "mlp_out", "z"])
    rows, last = torch.arange(len(facts)), torch.tensor(clean.lengths) - 1
    L = model.n_layers
    k = torch.full((len(heads), L), float("nan"))
    floor = torch.full((len(heads), L), float("nan"))

    def response(tr, d: torch.Tensor, layer: int) -> list[float]:
        out = []
        for m in range(layer, L):
            dm = (clean["mlp_out", m][rows, last] - tr["mlp_out", m][rows, last]).float()
            out.append(float(((dm * d).sum(-1) / (d * d).sum(-1)).mean()))
        return out

    for i, (layer, head) in enumerate(heads):
        tr = model.trace(texts, capture=["head_out", "mlp_out"],
                         interventions=[Ablate(layer, head, how="mean", pos=-1, reference=clean)])
        d = (clean["head_out", layer][rows, last, head] - tr["head_out", layer][rows, last, head]).float()
        k[i, layer:] = torch.tensor(response(tr, d, layer))
        size = d.norm(dim=-1, keepdim=True)  # [batch, 1]
        draws = []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            r = torch.randn(len(facts), model.d_model, generator=g).to(d.device)
            r = r / r.norm(dim=-1, keepdim=True) * size

            def remove(x: torch.Tensor, r=r) -> torch.Tensor:
                x = x.clone()
                x[rows, last] = x[rows, last] - r.to(x.dtype)
                return x

            tr = model.trace(texts, capture=["mlp_out"], interventions=[Edit("attn_out", layer, remove)])
            draws.append(response(tr, r, layer))
        floor[i, layer:] = torch.tensor(draws).abs().max(0).values
    return k, floor


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


def _todo(*args: Any) -> None:
    raise NotImplementedError


def exercise_facts(model, facts: Sequence, student: str | None = None, n: int = 12, draws: int = 8) -> list:
    """The facts of 03.2 for ``student`` (default: the current one): all of ``facts`` with no student, else
    ``n`` of them drawn for the student (one of ``draws`` seeded subsets) on which the top head's mean
    attention to the subject leads the next head's by at least ``MOVER_MARGIN``."""
    facts = list(facts)
    student = student if student is not None else current_student()
    if student is None:
        return facts

    def subset(k: int) -> list:  # the k-th of the fixed subsets the students draw from
        g = torch.Generator().manual_seed(k)
        return [facts[j] for j in sorted(torch.randperm(len(facts), generator=g)[:n].tolist())]

    def clear(k: int) -> bool:
        sub = subset(k)
        att = recall_summary(model, [p.text for p in sub], [p.subject for p in sub],
                             [p.answer for p in sub]).subject_attention.flatten().topk(2).values
        return float(att[0] - att[1]) >= MOVER_MARGIN

    return subset(variant(EX_MOVER, list(range(draws)), student=student, where=clear))


def _fact_is_well_posed(model) -> Callable[[Any], bool]:
    def ok(fact: Any) -> bool:
        ct = causal_trace(model, fact.text, fact.subject, answer=fact.answer, kind="resid", samples=10, seed=0)
        top = ct.scores[:, ct.subject].flatten().topk(2).values
        if float(top[0] - top[1]) < PEAK_MARGIN:
            return False
        ko = attention_knockout(model, fact.text, key=subject_positions(model, fact.text, fact.subject),
                                answer=fact.answer)
        return float(ko["before"][0] - ko["after"][0]) >= MIN_DROP
    return ok


def exercise_fact(model, facts: Sequence, student: str | None = None):
    """The fact of 03.3 and 03.4 (a ``world.prompts`` item: ``.text``, ``.subject``, ``.answer``) for
    ``student`` (default: the current one): ``facts[0]``, the lesson's own, with no student, else a fact
    drawn among ``facts[1:]`` whose residual causal trace has one clear top subject cell (by
    ``PEAK_MARGIN``) and whose knockout costs at least ``MIN_DROP`` of p(answer)."""
    student = student if student is not None else current_student()
    if student is None:
        return facts[0]
    return variant(EX_PEAK, list(facts[1:]), student=student, where=_fact_is_well_posed(model))


def check_subject_tokens(fn: Callable[[str, str], Any], model, world) -> CheckResult:
    """Exercise 1: ``fn(prompt, subject)`` returns the token positions of the subject in the prompt."""
    name = EX_TOKENS
    hint = "tokenize with model.tokenizer(prompt, return_offsets_mapping=True) and keep the tokens whose span overlaps the subject"
    if is_unanswered(fn):
        return run_learner(name, hint, _todo)[1]
    cases = []
    student = current_student()
    for rel in world.relations:  # one prompt per relation, the templates differ in where the subject sits
        prompts = world.prompts("all", rel)
        # the lesson's own prompts without a student, else the student's own
        i = len(cases) * 7 if student is None else variant_index(f"{name}\0{rel}", len(prompts), student)
        cases.append(prompts[i % len(prompts)])
    for p in cases:
        got, verdict = run_learner(name, hint, fn, p.text, p.subject)
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
            ids = model.tokenizer(p.text)["input_ids"]
            start = p.text.index(p.subject)
            if [i + 1 for i in items] == truth:
                hint = " Your positions are one too small: position 0 is the <|bos|> token that the tokenizer adds."
            elif items == [ids[i] for i in truth]:
                hint = " Those are the subject's token ids; give their positions in the prompt."
            elif items == list(range(start, start + len(p.subject))):
                hint = " Those are character positions; give token positions."
            elif set(items) < set(truth):
                hint = " You found only part of the subject: invented names span several tokens."
            elif set(truth) < set(items):
                hint = " You included tokens outside the subject: keep only spans that overlap it."
            return failed(name, f"for {p.text!r} with subject {p.subject!r} you gave {items}; the subject covers "
                                f"positions {truth} ({shown}).{hint} Tokenize with "
                                "model.tokenizer(prompt, return_offsets_mapping=True) and keep the tokens whose "
                                "character span overlaps the subject's.")
    return passed(name, f"right on {len(cases)} prompts of different templates, e.g. {cases[0].subject!r} in "
                        f"{cases[0].text!r} is at {subject_positions(model, cases[0].text, cases[0].subject)}.")


def check_mover_head(answer: Any, model, facts: Sequence) -> CheckResult:
    """Exercise 2: ``(layer, head)`` whose attention from the last token to the subject is highest
    (summed over the subject's tokens, mean over ``facts``)."""
    name = EX_MOVER
    if is_unanswered(answer):
        return unanswered(name, "for each layer l, tr['pattern', l][b, :, last, subject].sum(-1) is each head's "
                                "attention from the last token to the subject; average over the facts.")
    pair = parse_head(answer, model.n_layers, model.n_heads)
    if pair is None:
        return failed(name, f"{answer!r} is not a head of this model; {head_help(model.n_layers, model.n_heads)}")
    layer, head = pair
    s = recall_summary(model, [p.text for p in facts], [p.subject for p in facts], [p.answer for p in facts])
    (bl, bh, best), = s.top_subject_heads(1)
    mine = float(s.subject_attention[layer, head])
    if (layer, head) == (bl, bh):
        return passed(name, f"{head_name(bl, bh)} puts {best:.2f} of its attention from the last token on the "
                            f"subject (mean over {len(facts)} facts).")
    hint = ""
    swapped = parse_head((head, layer), model.n_layers, model.n_heads)
    first = recall_summary(model, [facts[0].text], [facts[0].subject], [facts[0].answer]).top_subject_heads(1)[0]
    if swapped == (bl, bh):
        hint = " You swapped the two numbers: (layer, head), layer first."
    elif (layer, head) == first[:2]:
        hint = " That is the top head on the first prompt; average over all the facts."
    elif best - mine < 0.03:
        hint = " Very close: average over all the facts, not one prompt."
    elif _max_token_head(model, facts) == (layer, head):
        hint = " You took each head's largest weight on one subject token; sum over all the subject's tokens."
    return failed(name, f"{head_name(layer, head)} puts {mine:.2f} of its attention from the last token on the "
                        f"subject; another head puts {best:.2f} there.{hint} Compare every layer and head, summing "
                        "the attention over all the subject's tokens.")


@torch.no_grad()
def _max_token_head(model, facts: Sequence) -> tuple[int, int]:
    """The head with the highest mean of its *largest* weight on one subject token (a common slip)."""
    tr = model.trace([p.text for p in facts], capture=["pattern"])
    last = torch.tensor(tr.lengths) - 1
    score = torch.zeros(model.n_layers, model.n_heads)
    for b, p in enumerate(facts):
        pos = subject_positions(model, p.text, p.subject)
        for l in range(model.n_layers):
            score[l] += tr["pattern", l][b, :, last[b], pos].max(-1).values.float().cpu()
    i = int(score.argmax())
    return i // model.n_heads, i % model.n_heads


def check_subject_peak(answer: Any, model, prompt: str, subject: str, target: str, samples: int = 10,
                       seed: int = 0) -> CheckResult:
    """Exercise 3: ``(layer, pos)`` of the residual causal trace's largest restored p(answer) among the
    subject's positions (causal_trace with ``samples`` and ``seed`` as in the lesson)."""
    name = EX_PEAK
    if is_unanswered(answer):
        return unanswered(name, "index ct.scores[:, ct.subject] and find its argmax; map the column back to a position.")
    pair = _pair(answer)
    if pair is None:
        return failed(name, f"give (layer, position) as two ints, layer first; got {answer!r}")
    ct = causal_trace(model, prompt, subject, answer=target, kind="resid", samples=samples, seed=seed)
    L, T = ct.scores.shape
    layer, pos = pair
    sub = ct.scores[:, ct.subject]
    i = int(sub.argmax())
    bl, bp = i // sub.shape[1], ct.subject[i % sub.shape[1]]
    if (pos, layer) == (bl, bp) and (layer, pos) != (bl, bp):
        return failed(name, f"you gave ({layer}, {pos}); the order is (layer, position): layer first.")
    if not (0 <= layer < L and 0 <= pos < T):
        return failed(name, f"(layer, position) = {pair} is out of range: layers 0..{L - 1}, positions 0..{T - 1}")
    if pos == T - 1:
        return failed(name, f"position {pos} is the last token: restoring it restores everything trivially. "
                            f"Look only at the subject's columns {ct.subject}.")
    if pos not in ct.subject:
        return failed(name, f"position {pos} is {ct.tokens[pos]!r}, not a subject token; the subject is at "
                            f"{ct.subject}. Look only at the subject's columns.")
    if (layer, pos) == (bl, bp):
        return passed(name, f"restoring the residual stream after layer {bl} at {ct.tokens[bp]!r} (position {bp}) "
                            f"brings p(answer) back to {float(ct.scores[bl, bp]):.2f} (clean {ct.clean:.2f}, "
                            f"corrupted {ct.corrupted:.2f}).")
    mine = float(ct.scores[layer, pos])
    if layer == bl:
        hint = (f" The layer is right, the position is not: within layer {layer}, compare the subject's "
                f"positions {ct.subject}.")
    elif pos == bp:
        hint = " The position is right, the layer is not: compare every layer in that column."
    else:
        hint = " Take the argmax over every layer and every subject position."
    return failed(name, f"restoring (layer {layer}, position {pos}) gives p(answer) {mine:.2f}; another subject "
                        f"cell gives {float(sub.max()):.2f}.{hint}")


def check_knockout_drop(answer: Any, model, prompt: str, subject: str, target: str) -> CheckResult:
    """Exercise 4: drop in p(answer) when attention from the last token to the subject is blocked in
    every layer (``p_before - p_after``)."""
    name = EX_KNOCKOUT
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
