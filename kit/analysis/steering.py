"""Steering with MLP-space directions at a matched KL divergence.

Adding ``α · u`` (``u`` a unit direction ``[d_mlp]``: an SNMF feature's ``z``, a DiffMeans vector, a
random direction) to the MLP activations ``mlp_post`` of one layer changes the next-token
distribution. Different directions need different ``α`` for the same disruption, so methods are
compared at the same KL divergence ``KL(p_clean ‖ p_steered)`` of the next-token distribution at
each prompt's last token (mean over prompts), found by a binary search on ``α``; the score is how
much the log-probability of a concept's tokens rises (the seed paper's protocol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .._validate import check_layer, check_model, check_number, check_tensor
from ..interventions import Edit

if TYPE_CHECKING:  # pragma: no cover
    from ..models import Model

__all__ = ["SteeringResult", "concept_ids", "steer", "steer_at_matched_kl", "compare_steering", "steering_table"]


@dataclass(frozen=True, repr=False)
class SteeringResult:
    """One steering run: ``alpha`` (the scale of the unit direction) and its mean ``kl``.

    ``logprobs`` / ``base_logprobs``: next-token log-probabilities ``[batch, vocab]`` at each
    prompt's last token, steered and clean. ``concept``: token ids scored; ``concept_logprob`` /
    ``base_concept_logprob``: mean over prompts of ``log Σ_{t in concept} p(t)``.
    ``matched``: the search reached ``target_kl`` within its tolerance.
    """

    alpha: float
    kl: float
    target_kl: float
    matched: bool
    logprobs: torch.Tensor  # [batch, vocab]
    base_logprobs: torch.Tensor  # [batch, vocab]
    concept: tuple[int, ...]
    concept_logprob: float
    base_concept_logprob: float
    evaluations: int
    name: str = ""

    @property
    def gain(self) -> float:
        """Rise in the concept's log-probability: ``concept_logprob − base_concept_logprob``."""
        return self.concept_logprob - self.base_concept_logprob

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (f"SteeringResult({label}alpha={self.alpha:.3g}, kl={self.kl:.4f} (target {self.target_kl:g}"
                f"{'' if self.matched else ', NOT matched'}), concept log-prob {self.base_concept_logprob:.3f} -> "
                f"{self.concept_logprob:.3f} (gain {self.gain:+.3f}), {self.evaluations} forward passes)")


def concept_ids(model: "Model", words: Sequence[str | int]) -> tuple[int, ...]:
    """Token ids of a concept's words: ints pass through; each word maps to the first token of
    ``" " + word`` (how a word after a space is tokenized), and of ``word`` too when that differs."""
    check_model(model, "concept_ids")
    ids: list[int] = []
    for w in words:
        if isinstance(w, int):
            if not 0 <= w < model.vocab_size:
                raise ValueError(f"token id {w} is out of range: valid ids are 0..{model.vocab_size - 1}")
            ids.append(w)
            continue
        for variant in (" " + w.strip(), w.strip()):
            toks = model.tokenizer(variant, add_special_tokens=False)["input_ids"]
            if toks and toks[0] not in ids:
                ids.append(int(toks[0]))
    if not ids:
        raise ValueError("the concept has no tokens")
    return tuple(ids)


def _last_logprobs(tr) -> torch.Tensor:
    last = tr.mask.sum(1) - 1  # [batch]
    return tr.logits[torch.arange(tr.batch, device=last.device), last].float().log_softmax(-1)  # [batch, vocab]


def _steer_mask(model: "Model", prompts, pos) -> torch.Tensor:
    ids, mask = model.tokenize(prompts)  # [batch, pos]
    if pos is None:
        return mask
    if isinstance(pos, torch.Tensor) and pos.dtype == torch.bool:
        return pos.to(mask.device).expand_as(mask) & mask
    lengths = mask.sum(1)
    out = torch.zeros_like(mask)
    for b, n in enumerate(lengths.tolist()):
        items = [pos] if isinstance(pos, int) else list(pos)
        for p in items:
            if not -n <= p < n:
                raise ValueError(f"position {p} is out of range for prompt {b} with {n} tokens")
            out[b, p % n] = True
    return out


def steer(model: "Model", prompts, layer: int, direction: torch.Tensor, alpha: float, pos=None,
          capture: Sequence[str] = ()):
    """Trace ``prompts`` with ``alpha · direction / ‖direction‖`` added to ``mlp_post`` of ``layer``.

    ``pos``: ``None`` (every real token), an int (negative counts from each prompt's end), a list of
    ints, or a bool mask ``[batch, pos]``. Returns the :class:`kit.Trace` (logits, plus ``capture``).
    """
    check_model(model, "steer")
    check_layer(model, layer)
    check_number(alpha, "alpha")
    u = _unit(model, direction)
    where = _steer_mask(model, prompts, pos)[:, :, None]  # [batch, pos, 1]
    fn = lambda x: x + (alpha * where.to(x.dtype)) * u.to(x.dtype)  # noqa: E731
    return model.trace(prompts, capture=list(capture), interventions=[Edit("mlp_post", layer, fn)])


def _unit(model: "Model", direction: torch.Tensor) -> torch.Tensor:
    v = check_tensor(direction, "direction", (model.d_mlp,), f"an MLP-space vector [d_mlp={model.d_mlp}]")
    v = v.detach().float().to(model.device)
    norm = v.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("direction must be finite and nonzero")
    return v / norm


def _kl(base: torch.Tensor, steered: torch.Tensor) -> float:
    """Mean over prompts of KL(base ‖ steered), both log-probabilities [batch, vocab]."""
    return float((base.exp() * (base - steered)).sum(-1).mean())


def _concept_logprob(logprobs: torch.Tensor, ids: Sequence[int]) -> float:
    return float(logprobs[:, list(ids)].logsumexp(-1).mean())


def steer_at_matched_kl(model: "Model", prompts, layer: int, direction: torch.Tensor, target_kl: float, *,
                        concept: Sequence[str | int] = (), pos=None, rtol: float = 0.05, max_evals: int = 40,
                        name: str = "") -> SteeringResult:
    """Steer with ``direction`` (``[d_mlp]``, normalised) at the scale ``α >= 0`` that gives ``target_kl``.

    ``α`` starts at the mean norm of ``mlp_post`` at ``layer`` on these prompts, doubles or halves to
    bracket the target, then bisects until the mean KL is within ``rtol`` of it (or ``max_evals``
    forward passes are spent: the closest run is returned with ``matched=False``).
    ``concept``: words or token ids whose log-probability is scored (see :func:`concept_ids`).
    """
    check_model(model, "steer_at_matched_kl")
    if not (target_kl > 0 and math.isfinite(target_kl)):
        raise ValueError(f"target_kl must be a positive finite number, got {target_kl!r}")
    check_layer(model, layer)
    _unit(model, direction)  # validate early
    ids = concept_ids(model, concept) if len(concept) else ()
    clean = model.trace(prompts, capture=["mlp_post"], layers=[layer])
    base = _last_logprobs(clean)
    alpha = float(clean["mlp_post", layer][clean.mask].float().norm(dim=-1).mean())
    runs: list[tuple[float, float, torch.Tensor]] = []

    def run(a: float) -> float:
        lp = _last_logprobs(steer(model, prompts, layer, direction, a, pos))
        kl = _kl(base, lp)
        runs.append((a, kl, lp))
        return kl

    lo, hi = 0.0, math.inf
    while len(runs) < max_evals:  # bracket: lo gives KL below target, hi above
        kl = run(alpha)
        if abs(kl - target_kl) <= rtol * target_kl:
            break
        if kl < target_kl:
            lo = alpha
            alpha = alpha * 2 if hi == math.inf else (lo + hi) / 2
        else:
            hi = alpha
            alpha = (lo + hi) / 2
        if alpha > 1e8:
            break
    a, kl, lp = min(runs, key=lambda r: abs(r[1] - target_kl))
    return SteeringResult(
        alpha=a, kl=kl, target_kl=target_kl, matched=abs(kl - target_kl) <= rtol * target_kl, logprobs=lp.cpu(),
        base_logprobs=base.cpu(), concept=ids, concept_logprob=_concept_logprob(lp, ids) if ids else float("nan"),
        base_concept_logprob=_concept_logprob(base, ids) if ids else float("nan"), evaluations=len(runs), name=name)


def compare_steering(model: "Model", prompts, layer: int, directions: dict[str, torch.Tensor], target_kl: float, *,
                     concept: Sequence[str | int], pos=None, rtol: float = 0.05) -> dict[str, SteeringResult]:
    """:func:`steer_at_matched_kl` for each named direction, e.g. ``{"SNMF feature": z, "DiffMeans": dm,
    "random": random_sparse_like(z)}``; same prompts, layer, target KL and concept."""
    check_model(model, "compare_steering")
    if not directions:
        raise ValueError('give at least one direction, e.g. directions={"SNMF feature": z, "DiffMeans": dm}')
    for d in directions.values():
        _unit(model, d)  # validate every direction before running any
    return {name: steer_at_matched_kl(model, prompts, layer, d, target_kl, concept=concept, pos=pos, rtol=rtol,
                                      name=name) for name, d in directions.items()}


def steering_table(results: dict[str, SteeringResult]) -> str:
    """A markdown table of steering results: method, α, KL, concept log-prob before/after, gain."""
    lines = ["| direction | α | KL | concept log-prob (clean) | concept log-prob (steered) | gain |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        if not isinstance(r, SteeringResult):
            raise TypeError(f"steering_table takes {{name: SteeringResult}} (from compare_steering or "
                            f"steer_at_matched_kl); {name!r} is a {type(r).__name__}")
        kl = f"{r.kl:.3f}" + ("" if r.matched else " (unmatched)")
        lines.append(f"| {name} | {r.alpha:.3g} | {kl} | {r.base_concept_logprob:.3f} | {r.concept_logprob:.3f} "
                     f"| {r.gain:+.3f} |")
    return "\n".join(lines)
