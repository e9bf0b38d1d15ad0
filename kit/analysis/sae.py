"""A small sparse autoencoder (SAE) of MLP activations, the baseline the SNMF paper compares with.

An SAE encodes each token's activation vector ``x[d_mlp]`` into ``k`` non-negative latents,
``y = ReLU(W_enc (x - b_dec) + b_enc)``, and decodes ``x̂ = Z y + b_dec`` with unit-norm decoder
columns ``Z[:, j]``; it is trained to reconstruct ``x`` with an L1 penalty on ``y`` that keeps few
latents active per token (Bricken et al. 2023, *Towards Monosemanticity*; Cunningham et al. 2023).
Unlike SNMF, whose features are fitted jointly to the whole corpus in closed-form alternating steps,
the SAE learns an encoder that can be applied to new tokens.

:func:`train_sae` uses the layout of :func:`kit.analysis.snmf.snmf` (``acts[d_mlp, n_tokens]``) and
returns an :class:`SAE`, a :class:`~kit.analysis.snmf.Decomposition` whose ``Z`` are the decoder
directions (MLP-space, usable for steering like an SNMF ``z``) and ``Y[k, n_tokens]`` the latents,
so label purity, top tokens and steering treat SNMF, NMF and SAE features alike. Deterministic for
a seed on the CPU; trains in about a second on a few thousand tokens of ``facts-4l``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .._validate import check_int, check_tensor
from .snmf import Decomposition

__all__ = ["SAE", "train_sae"]


@dataclass(frozen=True, repr=False)
class SAE(Decomposition):
    """A trained sparse autoencoder. ``Z[d_mlp, k]``: unit-norm decoder directions; ``Y[k, n_tokens]``:
    latents of the training tokens; ``W_enc[k, d_mlp]``, ``b_enc[k]``, ``b_dec[d_mlp]``. Reconstructs
    ``x̂ = Z y + b_dec`` (:meth:`reconstruct`); :meth:`encode` maps new activations to latents."""

    W_enc: torch.Tensor | None = None  # [k, d_mlp]
    b_enc: torch.Tensor | None = None  # [k]
    b_dec: torch.Tensor | None = None  # [d_mlp]

    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        """Latents ``[k, n_tokens]`` of activations ``acts[d_mlp, n_tokens]``."""
        acts = check_tensor(acts, "acts", (self.d_mlp, None), f"[d_mlp={self.d_mlp}, n_tokens]")
        x = acts.float().to(self.Z.device) - self.b_dec[:, None]
        return torch.relu(self.W_enc @ x + self.b_enc[:, None])

    def reconstruct(self) -> torch.Tensor:
        """``Z @ Y + b_dec``: ``[d_mlp, n_tokens]``."""
        return self.Z @ self.Y + self.b_dec[:, None]

    def to(self, device: str | torch.device) -> "SAE":
        move = lambda t: t.to(device)  # noqa: E731
        return SAE(move(self.Z), move(self.Y), list(self.losses), self.method, self.best_iter, self.seconds,
                   dict(self.params), move(self.W_enc), move(self.b_enc), move(self.b_dec))

    def __repr__(self) -> str:
        active = float((self.Y > 0).float().sum(0).mean())
        return (f"SAE(k={self.k}, d_mlp={self.d_mlp}, n_tokens={self.n_tokens}, loss={self.loss:.4f} (relative), "
                f"{active:.1f} latents active per token, l1={self.params.get('l1')}, {self.seconds:.1f}s)")


def train_sae(acts: torch.Tensor, k: int, *, l1: float = 0.1, steps: int = 300, batch: int = 256, lr: float = 3e-3,
              seed: int = 0) -> SAE:
    """Train an SAE with ``k`` latents on ``acts[d_mlp, n_tokens]`` (Adam, ``steps`` minibatches of
    ``batch`` tokens drawn with ``seed``).

    The activations are divided by their mean token norm before training, so ``l1`` does not depend
    on the layer's scale (the returned weights are in the activations' own units). Loss: mean squared
    error of the reconstruction relative to the mean squared norm, plus ``l1`` times the mean L1 norm
    of the latents. Decoder columns are renormalised to unit norm after every step (so the penalty
    cannot be dodged by shrinking latents). ``losses[i]``: relative error of step ``i``'s minibatch; the
    last entry is over every token, for the returned weights.
    """
    acts = check_tensor(acts, "acts", (None, None), "[d_mlp, n_tokens]")
    check_int(k, "k", low=1)
    check_int(steps, "steps", low=1)
    check_int(batch, "batch", low=1)
    if not (l1 >= 0 and lr > 0):
        raise ValueError(f"l1 must be >= 0 and lr > 0; got l1={l1!r}, lr={lr!r}")
    start = time.perf_counter()
    A = acts.detach().float()
    d, n = A.shape
    if n < 2:
        raise ValueError("train_sae needs at least two tokens")
    scale = float(A.norm(dim=0).mean().clamp_min(1e-12))
    X = (A / scale).T.contiguous()  # [n_tokens, d_mlp]
    g = torch.Generator(device="cpu").manual_seed(seed)
    dev = X.device
    W_dec = torch.randn(k, d, generator=g).to(dev)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.clone().T.contiguous()  # [d, k]: tied start, a common initialisation
    b_enc = torch.zeros(k, device=dev)
    b_dec = X.mean(0).clone()
    params = [p.requires_grad_() for p in (W_enc, b_enc, W_dec, b_dec)]
    opt = torch.optim.Adam(params, lr=lr)
    norm2 = float((X ** 2).sum(1).mean())
    losses: list[float] = []
    total = float((X ** 2).sum()) ** 0.5
    for _ in range(steps):
        xb = X[torch.randint(n, (min(batch, n),), generator=g).to(dev)]  # [batch, d_mlp]
        y = torch.relu((xb - b_dec) @ W_enc + b_enc)  # [batch, k]
        x_hat = y @ W_dec + b_dec
        err = ((x_hat - xb) ** 2).sum(1).mean() / norm2
        loss = err + l1 * y.sum(1).mean()  # y >= 0: its L1 norm is its sum
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
            losses.append(float(err) ** 0.5)
    with torch.no_grad():
        Y = torch.relu((X - b_dec) @ W_enc + b_enc)  # [n, k], in units of `scale`
        final = float((Y @ W_dec + b_dec - X).norm()) / total
    losses.append(final)
    # back to the activations' units: x = scale * x_scaled, so y and b scale with it; W_enc stays
    return SAE(W_dec.detach().T.contiguous(), (Y * scale).T.contiguous(), losses, "sae", len(losses) - 1,
               time.perf_counter() - start,
               {"l1": l1, "steps": steps, "batch": batch, "lr": lr, "seed": seed, "scale": scale},
               W_enc.detach().T.contiguous(), (b_enc.detach() * scale), (b_dec.detach() * scale))
