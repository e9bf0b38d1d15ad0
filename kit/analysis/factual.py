"""Factual recall, after "Interpreting Key Mechanisms of Factual Recall in Transformer-Based LMs".

For prompts such as "The capital of Veloria is" -> " Mistport": which heads carry the subject to the
last position (their attention from the last token to the subject, and their direct effect on the
answer), what each MLP writes onto the answer directly, and the final block's direct effect on the
correct answer's logit (the paper's "anti-overconfidence" question: negative means it suppresses the
correct prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validate import check_int, check_model, check_same_length
from ..models import Model
from ._common import last_positions, token_ids_per_prompt
from .attribution import Attribution, direct_logit_attribution, frozen_norm
from .patching import subject_positions

__all__ = ["RecallSummary", "recall_summary", "RecallStory", "recall_story", "contrast_attribution",
           "FinalBlockMeasures", "final_block_measures"]


@dataclass
class RecallSummary:
    """Means over the prompts.

    ``subject_attention[layer, head]``: attention from the last token to the subject's tokens (summed
    over them). ``head_effect[layer, head]`` and ``mlp_effect[layer]``: direct effect on the answer's
    logit. ``final_block_effect``: the last block's (attention + MLP + their biases) direct effect on
    the answer logit. ``answer_prob``: p(answer) at the last position.
    """

    subject_attention: torch.Tensor
    head_effect: torch.Tensor
    mlp_effect: torch.Tensor
    final_block_effect: float
    answer_prob: float
    n_prompts: int

    def top_subject_heads(self, k: int = 3) -> list[tuple[int, int, float]]:
        """The ``k`` heads that attend most from the last token to the subject: ``(layer, head, weight)``."""
        flat = self.subject_attention.flatten()
        H = self.subject_attention.shape[1]
        return [(int(i) // H, int(i) % H, float(flat[i])) for i in flat.argsort(descending=True)[:k]]

    def __repr__(self) -> str:
        return (f"RecallSummary(n_prompts={self.n_prompts}, answer_prob={self.answer_prob:.3f}, "
                f"final_block_effect={self.final_block_effect:+.3f}, top_subject_heads={self.top_subject_heads(2)})")


@torch.no_grad()
def recall_summary(model: Model, prompts: Sequence[str], subjects: Sequence[str], answers: Sequence[str | int],
                   batch_size: int = 32) -> RecallSummary:
    """Measure the recall pipeline's pieces over many ``(prompt, subject, answer)`` triples."""
    check_model(model, "recall_summary")
    check_same_length("recall_summary", prompts=prompts, subjects=subjects, answers=answers)
    check_int(batch_size, "batch_size", low=1)
    L, H = model.n_layers, model.n_heads
    att, heads, mlps, final, prob = torch.zeros(L, H), torch.zeros(L, H), torch.zeros(L), 0.0, 0.0
    for start in range(0, len(prompts), batch_size):
        ps, ss, ans = (list(x[start:start + batch_size]) for x in (prompts, subjects, answers))
        tr = model.trace(ps, capture=["pattern", "resid_pre", "resid_post", "head_out", "mlp_out"])
        last = torch.tensor(tr.lengths) - 1
        for b, (p, s) in enumerate(zip(ps, ss)):
            pos = subject_positions(model, p, s)
            att += torch.stack([tr["pattern", l][b, :, last[b], pos].sum(-1).float().cpu() for l in range(L)])
        dla = direct_logit_attribution(tr, ans, neurons=False)
        heads += dla.heads.sum(0)
        mlps += dla.mlps.sum(0)
        final += float((dla.heads[:, -1].sum(-1) + dla.attn_bias[:, -1] + dla.mlps[:, -1]).sum())
        rows = torch.arange(tr.batch)
        logp = tr.logits[rows, last.to(tr.logits.device)].float().softmax(-1)
        ids = torch.tensor([int(model.tokenizer(a, add_special_tokens=False)["input_ids"][0]) if isinstance(a, str)
                            else int(a) for a in ans])
        prob += float(logp[rows, ids.to(logp.device)].sum())
    n = len(prompts)
    return RecallSummary(att / n, heads / n, mlps / n, final / n, prob / n, n)


@dataclass
class RecallStory:
    """The factual-recall figures of a model over many facts (means over prompts).

    ``mlp_subject_last`` / ``mlp_other`` / ``mlp_last``: MLP causal-tracing effect (max over layers of
    restored minus corrupted p(answer)) at the subject's last token, the best other earlier position,
    and the last position. ``resid_early_subject`` / ``resid_early_last``: residual effect after the
    first layer at the subject's last token and at the last position; ``resid_late_last``: after the
    last layer at the last position. ``knockout_ratio``: mean p(answer) with attention from the last
    token to the subject blocked in every layer, over the mean without. ``summary``: a
    :class:`RecallSummary` of the same prompts.
    """

    n: int
    mlp_subject_last: float
    mlp_other: float
    mlp_last: float
    resid_early_subject: float
    resid_early_last: float
    resid_late_last: float
    knockout_ratio: float
    summary: RecallSummary

    def rows(self) -> list[tuple[str, float]]:
        s = self.summary
        (l, h, w), = s.top_subject_heads(1)
        return [
            ("facts measured", self.n),
            ("p(answer), clean", round(s.answer_prob, 3)),
            ("MLP causal effect at the subject's last token", round(self.mlp_subject_last, 3)),
            ("MLP causal effect at the best other earlier token", round(self.mlp_other, 3)),
            ("MLP causal effect at the last token", round(self.mlp_last, 3)),
            ("residual causal effect after layer 0 at the subject's last token", round(self.resid_early_subject, 3)),
            ("residual causal effect after layer 0 at the last token", round(self.resid_early_last, 3)),
            ("residual causal effect after the last layer at the last token", round(self.resid_late_last, 3)),
            ("p(answer) with last-to-subject attention knocked out / without", round(self.knockout_ratio, 3)),
            (f"attention from the last token to the subject, top head L{l}H{h}", round(w, 3)),
            (f"direct effect of head L{l}H{h} on the answer logit", round(float(s.head_effect[l, h]), 3)),
            ("final block's direct effect on the answer logit", round(s.final_block_effect, 3)),
        ]

    def table(self) -> str:
        return "\n".join(["| figure | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in self.rows()])


@torch.no_grad()
def recall_story(model: Model, prompts: Sequence[str], subjects: Sequence[str], answers: Sequence[str],
                 samples: int = 5, seed: int = 0) -> RecallStory:
    """Causal tracing (MLP and residual), attention knockout and :func:`recall_summary` over many facts."""
    from .patching import attention_knockout, causal_trace

    check_model(model, "recall_story")
    check_same_length("recall_story", prompts=prompts, subjects=subjects, answers=answers)
    mlp_s, mlp_o, mlp_l, re_s, re_l, rl_l, keys = [], [], [], [], [], [], []
    for p, s, a in zip(prompts, subjects, answers):
        mlp = causal_trace(model, p, s, answer=a, kind="mlp", samples=samples, seed=seed)
        res = causal_trace(model, p, s, answer=a, kind="resid", samples=samples, seed=seed)
        eff = mlp.effect.max(0).values  # [pos]: best layer per position
        last_subj, T = mlp.subject[-1], eff.shape[0]
        others = [i for i in range(T - 1) if i != last_subj]
        mlp_s.append(float(eff[last_subj]))
        mlp_o.append(float(eff[others].max()) if others else 0.0)
        mlp_l.append(float(eff[-1]))
        re_s.append(float(res.effect[0, last_subj]))
        re_l.append(float(res.effect[0, -1]))
        rl_l.append(float(res.effect[-1, -1]))
        keys.append(mlp.subject)
    ko = attention_knockout(model, list(prompts), key=keys, answer=list(answers))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    summary = recall_summary(model, prompts, subjects, answers)
    return RecallStory(len(prompts), mean(mlp_s), mean(mlp_o), mean(mlp_l), mean(re_s), mean(re_l), mean(rl_l),
                       float(ko["after"].mean() / ko["before"].mean()), summary)


@torch.no_grad()
def contrast_attribution(tr, answers: Sequence[str | int] | str | int,
                         competitors: Sequence[Sequence[str | int]], pos: int | list[int] = -1,
                         neurons: bool = False) -> Attribution:
    """Direct logit attribution onto ``logit[answer] - mean(logit[c] for c in competitors)``, per prompt.

    ``competitors[b]``: the tokens (ids or texts) that prompt ``b``'s answer competes with, e.g. the
    other answers of the same relation. A raw logit is not shift-invariant (a component that raises
    every answer of a relation raises the right one too); the difference against the competitors
    keeps only what singles the right answer out. Every field is ``raw(answer) - mean_c raw(c)``, so
    the parts still add up to ``total``.
    """
    B = tr.batch
    if isinstance(answers, (str, int)):
        answers = [answers] * B
    if len(competitors) != B or any(len(c) == 0 for c in competitors):
        raise ValueError(f"competitors needs one non-empty list of tokens per prompt ({B} prompts), "
                         f"got {len(competitors)} lists")
    base = direct_logit_attribution(tr, list(answers), pos=pos, neurons=neurons)
    fields = ("embed", "heads", "attn_bias", "mlps", "neurons", "mlp_bias", "bias", "total")
    acc = {f: None for f in fields}
    for j in range(max(len(c) for c in competitors)):
        toks = [c[j] if j < len(c) else c[0] for c in competitors]
        weight = torch.tensor([1.0 / len(c) if j < len(c) else 0.0 for c in competitors])
        part = direct_logit_attribution(tr, toks, pos=pos, neurons=neurons)
        for f in fields:
            v = getattr(part, f)
            if v is None:
                continue
            w = weight.reshape(-1, *([1] * (v.ndim - 1)))
            acc[f] = v * w if acc[f] is None else acc[f] + v * w
    out = {f: None if getattr(base, f) is None else getattr(base, f) - acc[f] for f in fields}
    return Attribution(**out)


@dataclass
class FinalBlockMeasures:
    """Four measures of what the final block does to the correct answer (means over prompts).

    ``raw_logit``: its direct effect on the answer's logit. ``logit_diff``: its direct effect on the
    answer's logit minus the mean logit of the competitors. ``delta_logprob``: log p(answer) of the
    model minus log p(answer) with the final block's direct contribution removed from the final
    residual (the final norm's scale frozen at the clean run, as in attribution). ``lens_before`` /
    ``lens_after``: the logit lens's p(answer) after the second-to-last and after the last layer.
    Negative, negative, negative and ``lens_after < lens_before`` would each be the
    "anti-overconfidence" of Lv et al. (2024); each is reported on its own.
    """

    raw_logit: float
    logit_diff: float
    delta_logprob: float
    lens_before: float
    lens_after: float
    n_prompts: int

    def rows(self) -> list[tuple[str, float, bool]]:
        """``(measure, value, suppresses the answer?)`` for each measure."""
        return [
            ("direct effect on the answer's raw logit", self.raw_logit, self.raw_logit < 0),
            ("direct effect on the logit difference vs the other answers", self.logit_diff, self.logit_diff < 0),
            ("change in log p(answer) from the final block's direct path", self.delta_logprob, self.delta_logprob < 0),
            ("logit-lens p(answer): after the last layer minus before it", self.lens_after - self.lens_before,
             self.lens_after < self.lens_before),
        ]


@torch.no_grad()
def final_block_measures(model: Model, prompts: Sequence[str], answers: Sequence[str | int],
                         competitors: Sequence[Sequence[str | int]]) -> FinalBlockMeasures:
    """Measure the final block's effect on the correct answer four ways (see :class:`FinalBlockMeasures`)."""
    check_model(model, "final_block_measures")
    check_same_length("final_block_measures", prompts=prompts, answers=answers, competitors=competitors)
    prompts = list(prompts)
    tr = model.trace(prompts, capture=["resid_pre", "resid_post", "head_out", "mlp_out", "attn_out"])
    B, L = tr.batch, model.n_layers
    rows, last = torch.arange(B), last_positions(tr, -1)
    raw = direct_logit_attribution(tr, list(answers), neurons=False)
    diff = contrast_attribution(tr, list(answers), competitors)
    block = lambda a: a.heads[:, -1].sum(-1) + a.attn_bias[:, -1] + a.mlps[:, -1]  # noqa: E731
    ids = token_ids_per_prompt(model, list(answers), B).to(model.device)
    a = model.adapter
    final = tr["resid_post", L - 1][rows, last]  # [batch, d_model]
    linear, norm_bias = frozen_norm(a.final_norm, final)
    b_U = a.b_U.float() if a.b_U is not None else 0.0
    logits = lambda x: (linear(x) + norm_bias) @ a.W_U.float() + b_U  # noqa: E731
    without = final - tr["attn_out", L - 1][rows, last] - tr["mlp_out", L - 1][rows, last]
    lp_full = logits(final).log_softmax(-1)[rows, ids]
    lp_without = logits(without).log_softmax(-1)[rows, ids]
    lens = lambda l: model.unembed(tr["resid_post", l][rows, last]).float().softmax(-1)[rows, ids]  # noqa: E731
    mean = lambda x: float(x.float().mean())  # noqa: E731
    return FinalBlockMeasures(mean(block(raw)), mean(block(diff)), mean(lp_full - lp_without),
                              mean(lens(L - 2)), mean(lens(L - 1)), B)
