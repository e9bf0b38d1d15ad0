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

from ..models import Model
from .attribution import direct_logit_attribution
from .patching import subject_positions

__all__ = ["RecallSummary", "recall_summary"]


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
    if not (len(prompts) == len(subjects) == len(answers)) or not prompts:
        raise ValueError("give the same, non-zero number of prompts, subjects and answers")
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
