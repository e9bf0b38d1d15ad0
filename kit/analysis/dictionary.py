"""Sparse dictionaries: a sparse autoencoder (SAE) and a transcoder, trained with the kit (seeded).

Both write a vector as a sparse, non-negative combination of learnt directions:

- **SAE** (Bricken et al. 2023, Cunningham et al. 2023): ``f = ReLU((x - b_dec) W_enc + b_enc)`` and
  ``x' = f W_dec + b_dec``, trained to reconstruct ``x`` (e.g. MLP activations ``mlp_post``);
- **transcoder** (Dunefsky et al. 2024): the same shape, but it reads the MLP's *input* and writes its
  *output*, ``y' = f W_dec + b_dec``: a sparse, wider stand-in for the MLP itself.

Loss: ``mean ||target - target'||^2 + l1 * mean sum_i f_i ||W_dec[i]||`` (the L1 penalty weighted by each
decoder row's norm, so shrinking codes cannot be undone by growing rows). Adam, seeded data order and
initialisation: the same call gives the same dictionary. :meth:`SparseDictionary.as_decomposition`
returns ``Z = W_dec^T``, ``Y = f^T``, the :class:`~kit.analysis.Decomposition` shape of SNMF (``Y >= 0``),
so the kit's purity and steering comparisons apply to it unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .._validate import check_int
from .snmf import Decomposition

__all__ = ["SparseDictionary", "train_dictionary"]


@dataclass
class SparseDictionary:
    """A trained SAE (``kind="sae"``) or transcoder (``"transcoder"``): ``W_enc[d_in, k]``, ``b_enc[k]``,
    ``W_dec[k, d_out]``, ``b_dec[d_out]``; ``history``: the training loss every 50 steps."""

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    kind: str
    l1: float
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def k(self) -> int:
        return self.W_enc.shape[1]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``f[n, k] >= 0``: the feature activations of inputs ``x[n, d_in]``."""
        x = x.float()
        if self.kind == "sae":
            x = x - self.b_dec
        return torch.relu(x @ self.W_enc + self.b_enc)

    @torch.no_grad()
    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """``[n, d_out]``: what the features write."""
        return f @ self.W_dec + self.b_dec

    @torch.no_grad()
    def stats(self, x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, float]:
        """On inputs ``x`` (and the ``target`` of a transcoder): ``explained_variance`` (1 - residual variance
        / variance of the target), ``l0`` (mean active features per input), ``dead`` (share of features that
        never fire on these inputs)."""
        target = x if target is None else target
        f = self.encode(x)
        err = (target.float() - self.decode(f)).pow(2).sum()
        var = (target.float() - target.float().mean(0)).pow(2).sum().clamp_min(1e-12)
        return {"explained_variance": float(1 - err / var), "l0": float((f > 0).float().sum(1).mean()),
                "dead": float(((f > 0).sum(0) == 0).float().mean())}

    def as_decomposition(self, x: torch.Tensor) -> Decomposition:
        """``Z[d_out, k] = W_dec^T``, ``Y[k, n] = encode(x)^T``: the SNMF shape, for the purity and steering
        comparisons (for a transcoder, ``Z`` lives in the MLP's output space)."""
        Y = self.encode(x).T
        return Decomposition(self.W_dec.T.clone(), Y, [], method=self.kind, params={"l1": self.l1})

    def __repr__(self) -> str:
        d_in, d_out = self.W_enc.shape[0], self.W_dec.shape[1]
        last = f", final loss {self.history[-1]:.4g}" if self.history else ""
        return f"SparseDictionary({self.kind}, {d_in} -> {self.k} features -> {d_out}, l1={self.l1:g}{last})"


def train_dictionary(inputs: torch.Tensor, targets: torch.Tensor | None = None, k: int = 256, l1: float = 1e-3,
                     steps: int = 2000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                     progress: bool = False) -> SparseDictionary:
    """Train an SAE on ``inputs[n, d]`` (``targets=None``) or a transcoder from ``inputs[n, d_in]`` to
    ``targets[n, d_out]``, with ``k`` features and L1 coefficient ``l1``. Seeded; CPU tensors."""
    if inputs.ndim != 2 or inputs.shape[0] < 2:
        raise ValueError(f"inputs must be [n, d] with n >= 2, got shape {list(inputs.shape)}")
    if targets is not None and (targets.ndim != 2 or targets.shape[0] != inputs.shape[0]):
        raise ValueError(f"targets must be [n, d_out] with the inputs' n = {inputs.shape[0]}, "
                         f"got shape {list(targets.shape)}")
    check_int(k, "k", low=1)
    check_int(steps, "steps", low=1)
    check_int(batch_size, "batch_size", low=1)
    if not l1 >= 0:
        raise ValueError(f"l1 must be >= 0, got {l1}")
    kind = "sae" if targets is None else "transcoder"
    x = inputs.detach().float().cpu()
    y = x if targets is None else targets.detach().float().cpu()
    g = torch.Generator().manual_seed(seed)
    d_in, d_out = x.shape[1], y.shape[1]
    W_dec = torch.randn(k, d_out, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    W_enc = (W_dec.T.clone() if kind == "sae" else torch.randn(d_in, k, generator=g) / d_in ** 0.5)
    W_enc, W_dec = W_enc.requires_grad_(), W_dec.requires_grad_()
    b_enc = torch.zeros(k, requires_grad=True)
    b_dec = y.mean(0).clone().requires_grad_()  # start from the mean output
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    history: list[float] = []
    t0 = time.perf_counter()
    for step in tqdm(range(steps), desc=kind, disable=not progress, mininterval=0.5):
        idx = torch.randint(x.shape[0], (batch_size,), generator=g)
        xb, yb = x[idx], y[idx]
        f = torch.relu(((xb - b_dec) if kind == "sae" else xb) @ W_enc + b_enc)  # [batch, k]
        out = f @ W_dec + b_dec
        mse = (yb - out).pow(2).sum(1).mean()
        loss = mse + l1 * (f * W_dec.norm(dim=1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            history.append(float(loss.detach()))
    return SparseDictionary(W_enc.detach(), b_enc.detach(), W_dec.detach(), b_dec.detach(), kind, float(l1),
                            history, time.perf_counter() - t0)
