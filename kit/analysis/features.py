"""Features of MLP activations: collecting them, DiffMeans, label purity, decoding a direction.

Everything here uses the layout of :func:`kit.analysis.snmf.snmf`: activations ``acts[d_mlp, n_tokens]``
(one column per real token), per-unit scores ``[units, n_tokens]`` (a feature's ``Y`` row, a neuron's
activations), and per-token integer ``labels[n_tokens]`` with ``-1`` for "no label".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from .._validate import check_int, check_labels, check_layer, check_model, check_tensor

if TYPE_CHECKING:  # pragma: no cover
    from ..models import Model

__all__ = ["MLPActivations", "mlp_activations", "diff_means", "Purity", "label_purity", "chance_purity",
           "random_sparse_like", "direction_logits", "decode_direction", "PurityComparison", "compare_purity"]


@dataclass(frozen=True, repr=False)
class MLPActivations:
    """MLP neuron activations of one layer over the real tokens of many prompts.

    ``acts[d_mlp, n_tokens]``; for token ``i``: ``prompt[i]`` (which prompt), ``pos[i]`` (its
    position there), ``token_ids[i]`` and ``tokens[i]`` (its text). ``prompt_tokens[p]`` holds the
    texts of prompt ``p``, so :meth:`context` can show a token in its sentence.
    """

    acts: torch.Tensor  # [d_mlp, n_tokens]
    token_ids: torch.Tensor  # [n_tokens]
    prompt: torch.Tensor  # [n_tokens]
    pos: torch.Tensor  # [n_tokens]
    prompt_tokens: list[list[str]]
    layer: int

    @property
    def n_tokens(self) -> int:
        return self.acts.shape[1]

    @property
    def tokens(self) -> list[str]:
        return [self.prompt_tokens[p][q] for p, q in zip(self.prompt.tolist(), self.pos.tolist(), strict=True)]

    def context(self, i: int, before: int = 4, after: int = 1) -> str:
        """Token ``i`` in brackets with its neighbours, e.g. ``'The capital of[ Veloria] is'``."""
        toks = self.prompt_tokens[int(self.prompt[i])]
        q = int(self.pos[i])
        return "".join(toks[max(0, q - before):q]) + "[" + toks[q] + "]" + "".join(toks[q + 1:q + 1 + after])

    def __repr__(self) -> str:
        return (f"MLPActivations(layer={self.layer}, d_mlp={self.acts.shape[0]}, n_tokens={self.n_tokens}, "
                f"prompts={len(self.prompt_tokens)})")


def mlp_activations(model: "Model", prompts: Sequence[str], layer: int, batch_size: int = 64) -> MLPActivations:
    """Trace ``prompts`` in batches and collect ``mlp_post`` of ``layer`` at every real token."""
    check_model(model, "mlp_activations")
    layer = check_layer(model, layer)
    check_int(batch_size, "batch_size", low=1)
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    acts, ids, which, pos, texts = [], [], [], [], []
    for s in range(0, len(prompts), batch_size):
        tr = model.trace(prompts[s:s + batch_size], capture=["mlp_post"], layers=[layer])
        mask = tr.mask  # [batch, pos]
        acts.append(tr["mlp_post", layer][mask].float())  # [tokens, d_mlp]
        ids.append(tr.input_ids[mask])
        b, p = mask.nonzero(as_tuple=True)
        which.append(b + s)
        pos.append(p)
        texts.extend(tr.tokens)
    return MLPActivations(torch.cat(acts).T.contiguous(), torch.cat(ids), torch.cat(which), torch.cat(pos), texts,
                         layer % model.n_layers)


def _labels_for(acts: torch.Tensor, labels) -> torch.Tensor:
    labels = torch.as_tensor(labels, device=acts.device)
    if labels.ndim != 1 or labels.shape[0] != acts.shape[1]:
        hint = " (acts looks transposed: pass [d_mlp, n_tokens])" if labels.shape[:1] == acts.shape[:1] else ""
        raise ValueError(f"labels must have one entry per token: shape [{acts.shape[1]}], "
                         f"got {list(labels.shape)}{hint}")
    return check_labels(labels)


def diff_means(acts: torch.Tensor, labels_or_mask) -> torch.Tensor:
    """Difference in means: mean activation on a concept's tokens minus the mean on all others.

    ``acts[d_mlp, n_tokens]``. With a bool mask ``[n_tokens]`` returns ``[d_mlp]``; with integer
    labels ``[n_tokens]`` (``-1`` = no label, counted among the others) returns ``[n_labels, d_mlp]``,
    row ``c`` for label ``c`` against the rest.
    """
    acts = check_tensor(acts, "acts", (None, None), "[d_mlp, n_tokens]")
    lab = _labels_for(acts, labels_or_mask)
    A = acts.float()
    if lab.dtype == torch.bool:
        if lab.all() or not lab.any():
            raise ValueError("the mask must mark some tokens and leave some out")
        return A[:, lab].mean(1) - A[:, ~lab].mean(1)
    lab = lab.long()
    n_labels = int(lab.max()) + 1 if len(lab) else 0
    if n_labels < 2:
        raise ValueError("integer labels need at least two classes (0, 1, ...; -1 for none)")
    onehot = torch.zeros(n_labels, lab.shape[0], device=A.device)
    valid = lab >= 0
    onehot[lab[valid], valid.nonzero().flatten()] = 1.0
    count = onehot.sum(1)  # [n_labels]
    if (count == 0).any() or (count == lab.shape[0]).any():
        raise ValueError(f"every label 0..{n_labels - 1} needs some tokens and some tokens outside it; "
                         f"counts {count.tolist()}")
    total = A.sum(1)  # [d_mlp]
    inside = onehot @ A.T  # [n_labels, d_mlp]
    return inside / count[:, None] - (total[None, :] - inside) / (lab.shape[0] - count)[:, None]


class Purity(NamedTuple):
    """Per-unit label purity of the top-activating tokens: ``purity[units]`` in [0, 1], ``label[units]``."""

    purity: torch.Tensor
    label: torch.Tensor


def label_purity(scores: torch.Tensor, labels, top: int = 20) -> Purity:
    """For each unit (row of ``scores[units, n_tokens]``), the share of its ``top`` highest-scoring
    tokens that carry its most common label (tokens labelled ``-1`` never count as a match).

    Units: SNMF features (``result.Y``), NMF components, single neurons (``acts``). 1.0 means all
    of a unit's top tokens belong to one relation (or entity type, ...).
    """
    scores = check_tensor(scores, "scores", (None, None), "[units, n_tokens]")
    lab = _labels_for(scores, labels).long()
    top = min(top, scores.shape[1])
    if top < 1:
        raise ValueError("top must be at least 1")
    idx = scores.float().topk(top, dim=1).indices  # [units, top]
    got = lab[idx]  # [units, top]
    n_labels = int(lab.max()) + 1
    if n_labels < 1:
        return Purity(torch.zeros(scores.shape[0]), torch.full((scores.shape[0],), -1))
    counts = torch.zeros(scores.shape[0], n_labels + 1, device=got.device)
    counts.scatter_add_(1, got + 1, torch.ones_like(got, dtype=counts.dtype))  # column 0: no label
    best, which = counts[:, 1:].max(1)
    return Purity((best / top).cpu(), which.cpu())


def chance_purity(labels, top: int = 20, draws: int = 500, seed: int = 0) -> float:
    """Expected purity of ``top`` tokens drawn at random: the floor that a unit should beat."""
    lab = check_labels(labels).long()
    check_int(draws, "draws", low=1)
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(draws, lab.shape[0], generator=g)
    return float(label_purity(scores, lab, top).purity.mean())


def random_sparse_like(vector: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A random direction with as many nonzero entries as ``vector`` (at random places) and its norm."""
    vector = check_tensor(vector, "vector")
    g = torch.Generator().manual_seed(seed)
    v = vector.detach().float().cpu()
    nnz = int((v != 0).sum())
    if nnz == 0:
        raise ValueError("vector is all zeros")
    out = torch.zeros_like(v)
    idx = torch.randperm(v.numel(), generator=g)[:nnz]
    out.view(-1)[idx] = torch.randn(nnz, generator=g)
    return (out * v.norm() / out.norm()).to(vector.device, vector.dtype)


def direction_logits(model: "Model", direction: torch.Tensor) -> torch.Tensor:
    """Logits ``[vocab]`` that a residual direction ``[d_model]`` writes, read through the unembedding.

    The final norm's elementwise weight is folded in (and, for LayerNorm, the mean removed); its bias
    and scale are not, since they do not depend on the direction.
    """
    check_model(model, "direction_logits")
    direction = check_tensor(direction, "direction", (model.d_model,), f"[d_model={model.d_model}]")
    x = direction.detach().to(model.device, torch.float32)
    norm = model.adapter.final_norm
    if isinstance(norm, torch.nn.LayerNorm) or getattr(norm, "bias", None) is not None:
        x = x - x.mean()
    weight = getattr(norm, "weight", None)
    if weight is not None:
        x = x * weight.detach().float()
    return x @ model.adapter.W_U.detach().float()


def decode_direction(model: "Model", layer: int, mlp_direction: torch.Tensor, top: int = 10) -> list[str]:
    """Tokens most promoted by an MLP-space direction ``[d_mlp]`` (e.g. an SNMF ``z``) at ``layer``:
    its residual direction ``W_outᵀ z`` through :func:`direction_logits`."""
    check_model(model, "decode_direction")
    mlp_direction = check_tensor(mlp_direction, "mlp_direction", (model.d_mlp,), f"[d_mlp={model.d_mlp}]")
    W_out = model.adapter.W_out(check_layer(model, layer)).detach().float()  # [d_mlp, d_model]
    logits = direction_logits(model, mlp_direction.to(W_out.device, torch.float32) @ W_out)
    return model.to_str_tokens(logits.topk(min(top, logits.numel())).indices)


@dataclass(frozen=True, repr=False)
class PurityComparison:
    """Label purity of SNMF features, single neurons and (optionally) NMF components on the same tokens.

    ``purity[name]`` holds each unit's purity; ``chance`` the purity of random token sets; ``snmf`` and
    ``nmf`` the fitted decompositions. :meth:`table` renders a markdown table.
    """

    purity: dict[str, torch.Tensor]
    chance: float
    top: int
    snmf: object
    nmf: object | None

    def mean(self, name: str) -> float:
        return float(self.purity[name].float().mean())

    def table(self) -> str:
        lines = [f"| units | count | mean purity (top {self.top} tokens) | median | share >= 0.9 |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for name, p in self.purity.items():
            p = p.float()
            lines.append(f"| {name} | {len(p)} | {p.mean():.3f} | {p.median():.3f} | {(p >= 0.9).float().mean():.0%} |")
        lines.append(f"| random tokens (chance) | - | {self.chance:.3f} | - | - |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={self.mean(name):.3f}" for name in self.purity)
        return f"PurityComparison(mean purity: {parts}, chance={self.chance:.3f}, top={self.top})"


def compare_purity(acts: torch.Tensor, labels, k: int, *, top: int = 20, density: float = 0.01, seed: int = 0,
                   nmf: bool = True, **snmf_kwargs) -> PurityComparison:
    """Fit SNMF (and NMF, needs scikit-learn) with ``k`` units to ``acts[d_mlp, n_tokens]`` and compare
    the label purity of their top tokens with that of every single neuron (see :func:`label_purity`)."""
    from .snmf import nmf as fit_nmf
    from .snmf import snmf as fit_snmf

    lab = _labels_for(acts, labels)
    res = fit_snmf(acts, k, density=density, seed=seed, **snmf_kwargs)
    purity = {"SNMF features": label_purity(res.Y, lab, top).purity,
              "single neurons": label_purity(acts, lab, top).purity}
    base = None
    if nmf:
        base = fit_nmf(acts, k, seed=seed)
        purity["NMF components (clipped acts)"] = label_purity(base.Y, lab, top).purity
    return PurityComparison(purity, chance_purity(lab, top, seed=seed), top, res, base)
