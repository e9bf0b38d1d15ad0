"""Ablation methodology: zero, mean and resample ablation of the same heads, and backup behaviour.

To ask "what does this head contribute?", replace its output and watch the metric. *What* it is replaced
with changes the answer:

- **zero**: ``z = 0``. Simple, but zero may be a value the head never takes: later layers see an
  input they were never trained on, so the effect mixes "the head's information is gone" with "the
  stream is off-distribution".
- **mean**: the head's mean output over a reference set of prompts of the task (at each position). It
  removes what varies between prompts (the information) and keeps what is constant (e.g. "a name is
  coming"), so it stays on-distribution.
- **resample**: the head's output on a *different* prompt of the reference set (prompt ``i`` gets the
  output of prompt ``i + 1``), averaged over prompts: a value the head really takes, carrying the
  wrong information. The most faithful, and noisier (report the spread).

**Backup behaviour** (Wang et al. 2022; "the Hydra effect", McGrath et al. 2023): when an important head
is ablated, other heads may change what they write and partly make up for it. :func:`backup_heads`
measures every head's direct effect on the metric before and after ablating the chosen heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validate import check_model
from ..interventions import Ablate, Edit
from ..models import Model
from ._common import Head, head_list, token_ids_per_prompt
from .attribution import direct_logit_attribution
from .path_patching import logit_diff

__all__ = ["AblationComparison", "BackupResult", "METHODS", "ablate_heads", "backup_heads", "compare_ablations"]

METHODS = ("zero", "mean", "resample")


def _prompts_ids(model: Model, prompts, what: str) -> torch.Tensor:
    ids, mask = model.tokenize(prompts)
    if not mask.all():
        raise ValueError(f"{what} must all have one token length (positions are compared across prompts)")
    return ids


def ablate_heads(model: Model, heads: Sequence[Head], method: str, reference) -> list:
    """Interventions that ablate ``heads`` by ``method`` (``"zero"``, ``"mean"``, ``"resample"``), using
    ``reference`` (a Trace of reference prompts of the traced length that captured ``z``) for mean and resample.
    Mean is per position, over the reference prompts; resample gives traced prompt ``i`` the reference's
    prompt ``(i + 1) % n`` (so a reference equal to the traced prompts never gives a prompt its own value)."""
    check_model(model, "ablate_heads")
    if method not in METHODS:
        raise ValueError(f"method={method!r}; valid: {', '.join(METHODS)}")
    heads = head_list(model, heads)
    out = []
    for layer in sorted({l for l, _ in heads}):
        hs = [h for l, h in heads if l == layer]
        if method == "zero":
            out.append(Ablate(layer, hs, how="zero"))
            continue
        ref = reference["z", layer]  # [ref prompt, pos, head, d_head]
        if method == "mean":
            src = ref.mean(0, keepdim=True)
        else:
            src = ref.roll(-1, dims=0)

        def fn(x: torch.Tensor, src=src, hs=hs) -> torch.Tensor:
            if src.shape[1] != x.shape[1] or (src.shape[0] not in (1, x.shape[0])):
                raise ValueError(f"the reference has shape {list(src.shape)}; the traced batch needs "
                                 f"[{x.shape[0]} (or 1 for mean), {x.shape[1]}, ...]: same prompts count and length")
            x = x.clone()
            x[:, :, hs] = src[:, :, hs].to(x.dtype).expand(x.shape[0], -1, -1, -1)
            return x
        out.append(Edit("z", layer, fn))
    return out


@dataclass
class AblationComparison:
    """``effects[method, layer, head]``: metric after ablating that head alone, minus the clean metric
    (negative: the head helped), for ``methods``; ``spread[layer, head]``: the standard deviation over
    prompts of the resample effect; ``clean``: the unablated metric."""

    effects: torch.Tensor
    spread: torch.Tensor
    clean: float
    methods: tuple[str, ...] = METHODS

    def of(self, method: str) -> torch.Tensor:
        """``effects[layer, head]`` of one method."""
        return self.effects[self.methods.index(method)]

    def __repr__(self) -> str:
        parts = []
        for m in self.methods:
            e = self.of(m).nan_to_num(float("inf"))  # heads not ablated are NaN
            i = int(e.argmin())
            parts.append(f"{m}: strongest L{i // e.shape[1]}H{i % e.shape[1]} {float(e.min()):+.2f}")
        return f"AblationComparison(clean={self.clean:.3f}; " + "; ".join(parts) + ")"


@torch.no_grad()
def compare_ablations(model: Model, prompts: Sequence[str], answer, contrast, heads: Sequence[Head] | None = None,
                      reference: Sequence[str] | None = None) -> AblationComparison:
    """Ablate each head of ``heads`` (default: all) alone, by zero, mean and resample ablation, on ``prompts``
    (one token length); metric: mean ``logit[answer] - logit[contrast]`` at the last position. ``reference``:
    prompts for the mean and the resample (default: ``prompts`` themselves)."""
    check_model(model, "compare_ablations")
    ids = _prompts_ids(model, prompts, "prompts")
    P = ids.shape[0]
    if P < 2:
        raise ValueError("give at least 2 prompts: resample ablation takes each head's output from another prompt")
    ref_ids = ids if reference is None else _prompts_ids(model, reference, "reference prompts")
    a, c = token_ids_per_prompt(model, answer, P), token_ids_per_prompt(model, contrast, P)
    heads = head_list(model, heads) if heads is not None else [(l, h) for l in range(model.n_layers)
                                                               for h in range(model.n_heads)]
    ref = model.trace(ref_ids, capture=["z"])
    clean_diff = logit_diff(model.trace(ids, capture=[]).logits, a, c)
    effects = torch.full((len(METHODS), model.n_layers, model.n_heads), float("nan"))
    spread = torch.full((model.n_layers, model.n_heads), float("nan"))
    for l, h in heads:
        for i, method in enumerate(METHODS):
            out = model.trace(ids, capture=[], interventions=ablate_heads(model, [(l, h)], method, ref))
            d = logit_diff(out.logits, a, c).cpu() - clean_diff.cpu()
            effects[i, l, h] = d.mean()
            if method == "resample":
                spread[l, h] = d.std()
    return AblationComparison(effects, spread, float(clean_diff.mean()))


@dataclass
class BackupResult:
    """Direct effect of every head on the metric, ``before[layer, head]`` and ``after[layer, head]`` ablating
    ``ablated`` (mean over prompts); ``metric_before`` / ``metric_after``: the metric itself. A head whose
    direct effect grows after the ablation (``change > 0``) is backing up the ablated ones."""

    before: torch.Tensor
    after: torch.Tensor
    ablated: list[Head]
    method: str
    metric_before: float
    metric_after: float

    @property
    def change(self) -> torch.Tensor:
        """``after - before`` (the ablated heads themselves are NaN)."""
        out = self.after - self.before
        for l, h in self.ablated:
            out[l, h] = float("nan")
        return out

    def __repr__(self) -> str:
        ch = self.change.nan_to_num(float("-inf"))
        i = int(ch.argmax())
        H = ch.shape[1]
        return (f"BackupResult(ablated={self.ablated}, {self.method}; metric {self.metric_before:.2f} -> "
                f"{self.metric_after:.2f}; largest backup L{i // H}H{i % H} {float(ch.max()):+.2f})")


@torch.no_grad()
def backup_heads(model: Model, prompts: Sequence[str], answer, contrast, ablate: Sequence[Head],
                 method: str = "mean", reference: Sequence[str] | None = None) -> BackupResult:
    """Each head's direct logit attribution to ``logit[answer] - logit[contrast]`` (last position, mean over
    prompts) before and after ablating the heads ``ablate`` by ``method``."""
    check_model(model, "backup_heads")
    ids = _prompts_ids(model, prompts, "prompts")
    ref = model.trace(ids if reference is None else _prompts_ids(model, reference, "reference prompts"), capture=["z"])
    names = ["resid_pre", "resid_post", "head_out", "mlp_out"]
    tr0 = model.trace(ids, capture=names)
    tr1 = model.trace(ids, capture=names, interventions=ablate_heads(model, ablate, method, ref))
    P = ids.shape[0]
    ans, con = token_ids_per_prompt(model, answer, P).tolist(), token_ids_per_prompt(model, contrast, P).tolist()
    d0 = direct_logit_attribution(tr0, ans, con, neurons=False)
    d1 = direct_logit_attribution(tr1, ans, con, neurons=False)
    return BackupResult(d0.heads.mean(0), d1.heads.mean(0), head_list(model, ablate), method,
                        float(d0.total.mean()), float(d1.total.mean()))
