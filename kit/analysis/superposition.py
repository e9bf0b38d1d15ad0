"""Toy models of superposition (Elhage et al. 2022): more features than dimensions, when features are sparse.

Each input ``x[feature]`` is 0 with probability ``sparsity`` and uniform in [0, 1] otherwise. A model
squeezes it into ``d_hidden < n_features`` dimensions and back: ``h = W x``, ``x' = ReLU(W^T h + b)``,
trained to minimise ``sum_i importance[i] * (x[i] - x'[i])^2``. With dense features it keeps only the
``d_hidden`` most important ones (orthogonal columns of ``W``, the rest near 0); as features get sparser it
represents more and more of them, with interference between them: **superposition**.

:func:`train_toy_models` trains one model per sparsity, all at once (a few seconds on a CPU), seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .._validate import check_int

__all__ = ["ToyModels", "train_toy_models"]


@dataclass
class ToyModels:
    """``W[model, d_hidden, feature]`` and ``b[model, feature]`` of one toy model per ``sparsities[model]``;
    ``importance[feature]``; ``losses[model]`` the final mean weighted loss."""

    W: torch.Tensor
    b: torch.Tensor
    sparsities: list[float]
    importance: torch.Tensor
    losses: torch.Tensor

    @property
    def norms(self) -> torch.Tensor:
        """``norms[model, feature]``: ``||W[:, feature]||``, about 1 for a represented feature, about 0 for one
        the model dropped."""
        return self.W.norm(dim=1)

    def represented(self, threshold: float = 0.5) -> torch.Tensor:
        """``count[model]``: features whose column norm is above ``threshold``."""
        return (self.norms > threshold).sum(1)

    @property
    def interference(self) -> torch.Tensor:
        """``[model, feature]``: ``sum_{j != i} (W_i . W_j)^2 / ||W_i||^2``, how much the other features
        project onto each feature's direction (0 for orthogonal features)."""
        gram = self.W.transpose(1, 2) @ self.W  # [model, feature, feature]
        off = gram - torch.diag_embed(gram.diagonal(dim1=1, dim2=2))
        return (off ** 2).sum(-1) / gram.diagonal(dim1=1, dim2=2).clamp_min(1e-9)

    def __repr__(self) -> str:
        counts = ", ".join(f"S={s:g}: {int(c)}" for s, c in zip(self.sparsities, self.represented()))
        return (f"ToyModels({self.W.shape[2]} features -> {self.W.shape[1]} dimensions; features represented "
                f"(norm > 0.5): {counts})")


def train_toy_models(n_features: int = 20, d_hidden: int = 5, sparsities: Sequence[float] = (0.0, 0.7, 0.9, 0.97),
                     importance_decay: float = 0.9, steps: int = 1500, batch_size: int = 512, lr: float = 1e-2,
                     seed: int = 0, progress: bool = False) -> ToyModels:
    """Train one toy model per sparsity (all in one batched loop, AdamW, seeded) and return them.

    ``importance[i] = importance_decay ** i``: feature 0 matters most.
    """
    check_int(n_features, "n_features", low=2)
    check_int(d_hidden, "d_hidden", low=1, high=n_features)
    check_int(steps, "steps", low=1)
    check_int(batch_size, "batch_size", low=1)
    sparsities = [float(s) for s in sparsities]
    if not sparsities or not all(0.0 <= s < 1.0 for s in sparsities):
        raise ValueError(f"sparsities must be a non-empty list of probabilities in [0, 1); got {sparsities}")
    g = torch.Generator().manual_seed(seed)
    M = len(sparsities)
    W = (torch.randn(M, d_hidden, n_features, generator=g) * (2 / (d_hidden + n_features)) ** 0.5).requires_grad_()
    b = torch.zeros(M, n_features, requires_grad=True)
    importance = importance_decay ** torch.arange(n_features, dtype=torch.float32)
    keep = 1.0 - torch.tensor(sparsities)[:, None, None]  # [model, 1, 1]: probability a feature is present
    opt = torch.optim.AdamW([W, b], lr=lr, weight_decay=0.0)
    for _ in tqdm(range(steps), desc="toy models", disable=not progress, mininterval=0.5):
        x = torch.rand(M, batch_size, n_features, generator=g)
        x = x * (torch.rand(M, batch_size, n_features, generator=g) < keep)  # [model, batch, feature]
        h = x @ W.transpose(1, 2)  # [model, batch, d_hidden]
        out = torch.relu(h @ W + b[:, None])  # [model, batch, feature]
        loss = (importance * (x - out) ** 2).sum(-1).mean(-1)  # [model]
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    return ToyModels(W.detach(), b.detach(), sparsities, importance, loss.detach())
