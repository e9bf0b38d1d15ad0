"""Sparse dictionaries: a sparse autoencoder (SAE) and a transcoder, trained with the kit (seeded).

Both write a vector as a sparse, non-negative combination of learnt unit directions ``Z[:, j]``:

- **SAE** (Bricken et al. 2023, *Towards Monosemanticity*; Cunningham et al. 2023) of activations
  ``x[d, n_tokens]`` (e.g. the MLP neurons ``mlp_post``): latents ``y = ReLU(W_enc (x - b_dec) + b_enc)``,
  reconstruction ``x̂ = Z y + b_dec``;
- **transcoder** (Dunefsky, Chlenski & Nanda 2024): the same shape, but it reads the MLP's *input*
  ``x[d_in, n_tokens]`` and writes its *output* ``t̂ = Z y + b_dec``, with ``y = ReLU(W_enc x + b_enc)``:
  a sparse, wider stand-in for the MLP itself (:func:`kit.analysis.splice.splice` puts it in the model).

Training (:func:`train_sae`, :func:`train_transcoder`; :func:`train_dictionary` is either): Adam on
minibatches of ``batch`` tokens drawn with ``seed``; loss = the squared reconstruction error relative to
the target's mean squared norm, plus ``l1`` times the mean L1 norm of the latents. Inputs and targets are
first divided by their mean token norm, so ``l1`` does not depend on a layer's scale (the returned weights
are in the data's own units). Decoder columns are renormalised to unit norm after every step, so the
penalty cannot be dodged by shrinking latents and growing directions.

The result, a :class:`Dictionary`, is a :class:`~kit.analysis.snmf.Decomposition` (``Z[d_out, k]``,
``Y[k, n_tokens]`` the latents of the training tokens, ``Y >= 0``), so label purity, top tokens and
steering treat SNMF, NMF, SAE and transcoder features alike. Layout as in :mod:`kit.analysis.snmf`:
one column per token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .._validate import check_int, check_tensor
from .snmf import Decomposition

__all__ = ["Dictionary", "train_sae", "train_transcoder", "train_dictionary", "SparseDictionary", "SAE"]

KINDS = ("sae", "transcoder")


@dataclass(frozen=True, repr=False)
class Dictionary(Decomposition):
    """A trained SAE (``kind == "sae"``) or transcoder (``"transcoder"``).

    ``Z[d_out, k]``: unit-norm decoder directions (the features); ``Y[k, n_tokens]``: latents of the training
    tokens; ``W_enc[k, d_in]``, ``b_enc[k]``, ``b_dec[d_out]``. ``losses[i]``: relative error
    ``‖target − t̂‖ / ‖target‖`` of training step ``i``'s minibatch; the last entry is over every training
    token, for the returned weights (``loss``). ``params``: the training settings (``l1``, ``seed``, ...).
    """

    W_enc: torch.Tensor | None = None  # [k, d_in]
    b_enc: torch.Tensor | None = None  # [k]
    b_dec: torch.Tensor | None = None  # [d_out]

    def __post_init__(self) -> None:
        if self.method not in KINDS:
            raise ValueError(f"a Dictionary's method is one of {KINDS}; got {self.method!r}")
        if any(t is None for t in (self.W_enc, self.b_enc, self.b_dec)):
            raise ValueError("a Dictionary needs its encoder W_enc [k, d_in], b_enc [k] and decoder bias b_dec [d_out]")
        d_out, k = self.Z.shape
        if (self.W_enc.ndim != 2 or self.W_enc.shape[0] != k or tuple(self.b_enc.shape) != (k,)
                or tuple(self.b_dec.shape) != (d_out,) or self.Y.shape[0] != k):
            raise ValueError(f"inconsistent shapes: Z {list(self.Z.shape)} = [d_out, k], Y {list(self.Y.shape)} = [k, n], "
                             f"W_enc {list(self.W_enc.shape)} = [k, d_in], b_enc {list(self.b_enc.shape)} = [k], "
                             f"b_dec {list(self.b_dec.shape)} = [d_out]")
        if self.method == "sae" and self.W_enc.shape[1] != d_out:
            raise ValueError(f"an SAE reads and writes the same space: W_enc [k, {d_out}], got {list(self.W_enc.shape)}")

    # ---------------------------------------------------------------- shape
    @property
    def kind(self) -> str:
        """``"sae"`` or ``"transcoder"``."""
        return self.method

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[1]

    @property
    def d_out(self) -> int:
        return self.Z.shape[0]

    @property
    def W_dec(self) -> torch.Tensor:
        """``[k, d_out]``: the decoder as rows (``Z.T``)."""
        return self.Z.T

    @property
    def features(self) -> torch.Tensor:
        """``[k, d_out]``: each feature's unit decoder direction (a row per feature; ``Z.T``)."""
        return self.Z.T

    @property
    def l1(self) -> float:
        return float(self.params.get("l1", float("nan")))

    # ---------------------------------------------------------------- maps
    def _check_in(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        x = check_tensor(x, name, (self.d_in, None), f"[d_in={self.d_in}, n_tokens] (one column per token)")
        return x.detach().float().to(self.Z.device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``y[k, n_tokens] >= 0`` of inputs ``x[d_in, n_tokens]``."""
        x = self._check_in(x)
        if self.kind == "sae":
            x = x - self.b_dec[:, None]
        return torch.relu(self.W_enc @ x + self.b_enc[:, None])

    @torch.no_grad()
    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """``[d_out, n_tokens]``: what latents ``y[k, n_tokens]`` write, ``Z y + b_dec``."""
        y = check_tensor(y, "y", (self.k, None), f"latents [k={self.k}, n_tokens]").detach().float()
        return self.Z @ y.to(self.Z.device) + self.b_dec[:, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the reconstruction (SAE) or predicted MLP output (transcoder), ``[d_out, n]``."""
        return self.decode(self.encode(x))

    def reconstruct(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """``Z @ Y + b_dec`` for the training tokens (``x=None``), else ``decode(encode(x))``: ``[d_out, n]``."""
        if x is None:
            return self.Z @ self.Y + self.b_dec[:, None]
        return self(x)

    # ---------------------------------------------------------------- measures
    @torch.no_grad()
    def stats(self, x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, float]:
        """On inputs ``x[d_in, n]`` (and a transcoder's ``target[d_out, n]``): ``explained_variance``
        (1 − residual / the target's variance around its mean), ``relative_error`` (``‖t − t̂‖ / ‖t‖``),
        ``l0`` (mean active latents per token), ``dead`` (share of latents that never fire on these tokens)."""
        x = self._check_in(x)
        if target is None:
            if self.kind == "transcoder":
                raise ValueError("a transcoder's stats need the target: stats(inputs, outputs) with the MLP's "
                                 f"outputs [d_out={self.d_out}, n_tokens]")
            target = x
        target = check_tensor(target, "target", (self.d_out, x.shape[1]),
                              f"[d_out={self.d_out}, n_tokens={x.shape[1]}] (as many tokens as x)")
        t = target.detach().float().to(self.Z.device)
        y = self.encode(x)
        err = (t - self.decode(y)).pow(2).sum()
        var = (t - t.mean(1, keepdim=True)).pow(2).sum().clamp_min(1e-12)
        return {"explained_variance": float(1 - err / var),
                "relative_error": float(err.sqrt() / t.norm().clamp_min(1e-12)),
                "l0": float((y > 0).float().sum(0).mean()),
                "dead": float(((y > 0).sum(1) == 0).float().mean())}

    def as_decomposition(self, x: torch.Tensor | None = None) -> Decomposition:
        """A plain :class:`~kit.analysis.snmf.Decomposition` ``(Z, Y)``; ``Y = encode(x)`` when ``x`` is given."""
        Y = self.Y if x is None else self.encode(x)
        return Decomposition(self.Z.clone(), Y, list(self.losses), self.method, self.best_iter, self.seconds,
                             dict(self.params))

    def directions(self, W_out: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
        """``[k, d_model]`` residual-stream directions: a transcoder's decoder rows (``W_out=None``), or, for an
        SAE of MLP neurons, ``W_outᵀ z`` with ``W_out[d_mlp, d_model]`` (as :meth:`Decomposition.directions`)."""
        if W_out is not None:
            return super().directions(W_out, normalize)
        if self.kind == "sae":
            raise ValueError("an SAE's features live in the space it was trained on; give W_out[d_mlp, d_model] "
                             "(model.adapter.W_out(layer)) to map MLP-neuron features to the residual stream")
        out = self.Z.T.clone()
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12) if normalize else out

    def mlp_directions(self, W_out: torch.Tensor) -> torch.Tensor:
        """``[d_mlp, k]``: each feature as a direction of the MLP neurons ``mlp_post``, for
        :func:`kit.analysis.steering.steer` and friends. An SAE of ``mlp_post``: ``Z`` itself. A transcoder
        (features in the MLP's output space): the least-norm ``u`` with ``W_outᵀ u = z``, so adding ``α u`` to
        ``mlp_post`` adds exactly ``α z`` to ``mlp_out`` (refused when ``W_out`` cannot reach ``z``)."""
        W = check_tensor(W_out, "W_out", (None, None), "[d_mlp, d_model]").detach().float().to(self.Z.device)
        if self.kind == "sae":
            if W.shape[0] != self.d_out:
                raise ValueError(f"this SAE has d_out={self.d_out}, but W_out is {list(W.shape)}: mlp_directions "
                                 "applies to an SAE of the MLP neurons (mlp_post, d_mlp = W_out.shape[0])")
            return self.Z.clone()
        if W.shape[1] != self.d_out:
            raise ValueError(f"W_out must be [d_mlp, d_model={self.d_out}] for this transcoder, got {list(W.shape)}")
        # [d_mlp, k]: W.T @ U ≈ Z, least norm, through the SVD. Not lstsq: its default CPU driver (gelsy) can
        # misjudge the rank on some hosts and return a far-off answer (pytorch/pytorch#71222, #92537).
        U = torch.linalg.pinv(W.T) @ self.Z
        miss = float((W.T @ U - self.Z).norm() / self.Z.norm())
        if miss > 1e-3:
            raise ValueError(f"W_out cannot write these features exactly (relative miss {miss:.2g}): its rank is "
                             f"below d_model")
        return U

    def to(self, device: str | torch.device) -> "Dictionary":
        move = lambda t: t.to(device)  # noqa: E731
        return Dictionary(move(self.Z), move(self.Y), list(self.losses), self.method, self.best_iter, self.seconds,
                          dict(self.params), move(self.W_enc), move(self.b_enc), move(self.b_dec))

    def __repr__(self) -> str:
        active = float((self.Y > 0).float().sum(0).mean()) if self.Y.numel() else float("nan")
        dead = float(((self.Y > 0).sum(1) == 0).float().mean()) if self.Y.numel() else float("nan")
        return (f"Dictionary({self.kind}, {self.d_in} -> k={self.k} -> {self.d_out}, n_tokens={self.n_tokens}, "
                f"loss={self.loss:.4f} (relative), L0={active:.1f}, dead={dead:.0%}, l1={self.params.get('l1')}, "
                f"{self.seconds:.1f}s)")


SAE = Dictionary  # the name lesson 04 used
SparseDictionary = Dictionary  # the name of the first transcoder branch


def _check_number(value, name: str, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if not ok or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} and finite; got {value!r}")
    return float(value)


def _check_data(x, name: str) -> torch.Tensor:
    x = check_tensor(x, name, (None, None), "[d, n_tokens] (one column per token; a trace's "
                                            "tr['mlp_post', l][tr.mask].T)")
    if x.shape[1] < 2:
        raise ValueError(f"{name} needs at least two tokens (columns); got shape {list(x.shape)}")
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def train_dictionary(inputs: torch.Tensor, targets: torch.Tensor | None = None, k: int = 64, *, l1: float = 0.1,
                     steps: int = 300, batch: int = 256, lr: float = 3e-3, seed: int = 0,
                     progress: bool = False) -> Dictionary:
    """An SAE of ``inputs[d, n_tokens]`` (``targets=None``) or a transcoder from ``inputs[d_in, n_tokens]`` to
    ``targets[d_out, n_tokens]``, with ``k`` latents (see the module docstring for the loss).

    ``steps`` Adam steps of ``batch`` tokens at learning rate ``lr``; ``seed`` fixes the initialisation and
    the minibatches (the same call gives the same dictionary on the CPU); ``progress``: a tqdm bar.
    """
    X = _check_data(inputs, "inputs")
    kind = "sae" if targets is None else "transcoder"
    if targets is not None:
        T = _check_data(targets, "targets")
        if T.shape[1] != X.shape[1]:
            raise ValueError(f"targets must have one column per input token: [d_out, {X.shape[1]}], "
                             f"got {list(T.shape)}")
    check_int(k, "k", low=1)
    check_int(steps, "steps", low=1)
    check_int(batch, "batch", low=1)
    check_int(seed, "seed")
    l1 = _check_number(l1, "l1", positive=False)
    lr = _check_number(lr, "lr", positive=True)
    start = time.perf_counter()
    d_in, n = X.shape
    s_in = float(X.norm(dim=0).mean().clamp_min(1e-12))
    Xs = (X / s_in).T.contiguous()  # [n_tokens, d_in]
    if kind == "sae":
        s_out, Ts = s_in, Xs
    else:
        s_out = float(T.norm(dim=0).mean().clamp_min(1e-12))
        Ts = (T / s_out).T.contiguous()  # [n_tokens, d_out]
    d_out = Ts.shape[1]
    g = torch.Generator(device="cpu").manual_seed(seed)
    dev = Xs.device
    W_dec = torch.randn(k, d_out, generator=g).to(dev)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    if kind == "sae":
        W_enc = W_dec.clone().T.contiguous()  # [d, k]: tied start, a common initialisation
    else:
        W_enc = (torch.randn(d_in, k, generator=g) / d_in ** 0.5).to(dev)
    b_enc = torch.zeros(k, device=dev)
    b_dec = Ts.mean(0).clone()
    params = [p.requires_grad_() for p in (W_enc, b_enc, W_dec, b_dec)]
    opt = torch.optim.Adam(params, lr=lr)
    norm2 = float((Ts ** 2).sum(1).mean())
    losses: list[float] = []
    for _ in tqdm(range(steps), desc=kind, disable=not progress, mininterval=0.5):
        idx = torch.randint(n, (min(batch, n),), generator=g).to(dev)
        xb, tb = Xs[idx], Ts[idx]  # [batch, d_in], [batch, d_out]
        y = torch.relu(((xb - b_dec) if kind == "sae" else xb) @ W_enc + b_enc)  # [batch, k]
        err = ((y @ W_dec + b_dec - tb) ** 2).sum(1).mean() / norm2
        loss = err + l1 * y.sum(1).mean()  # y >= 0: its L1 norm is its sum
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
            losses.append(float(err) ** 0.5)
    with torch.no_grad():
        Y = torch.relu(((Xs - b_dec) if kind == "sae" else Xs) @ W_enc + b_enc)  # [n, k], in units of s_out
        losses.append(float((Y @ W_dec + b_dec - Ts).norm()) / float((Ts ** 2).sum()) ** 0.5)
    # back to the data's units: t = s_out t', x = s_in x'; so y = s_out y', b = s_out b', W_enc * s_out / s_in
    W_enc_out = W_enc.detach().T.contiguous()
    if s_out != s_in:
        W_enc_out = W_enc_out * (s_out / s_in)
    return Dictionary(W_dec.detach().T.contiguous(), (Y * s_out).T.contiguous(), losses, kind, len(losses) - 1,
                      time.perf_counter() - start,
                      {"l1": l1, "steps": steps, "batch": batch, "lr": lr, "seed": seed, "scale": s_in,
                       "target_scale": s_out},
                      W_enc_out, b_enc.detach() * s_out, b_dec.detach() * s_out)


def train_sae(acts: torch.Tensor, k: int, *, l1: float = 0.1, steps: int = 300, batch: int = 256, lr: float = 3e-3,
              seed: int = 0, progress: bool = False) -> Dictionary:
    """A sparse autoencoder with ``k`` latents of ``acts[d, n_tokens]`` (e.g. ``mlp_post`` of one layer,
    :func:`kit.analysis.mlp_activations`); see :func:`train_dictionary`. A few seconds on ``facts-4l``."""
    return train_dictionary(acts, None, k, l1=l1, steps=steps, batch=batch, lr=lr, seed=seed, progress=progress)


def train_transcoder(inputs: torch.Tensor, outputs: torch.Tensor, k: int, *, l1: float = 0.1, steps: int = 300,
                     batch: int = 256, lr: float = 3e-3, seed: int = 0, progress: bool = False) -> Dictionary:
    """A transcoder with ``k`` latents from an MLP's ``inputs[d_in, n_tokens]`` to its ``outputs[d_out,
    n_tokens]`` (:func:`kit.analysis.splice.mlp_io` collects both); see :func:`train_dictionary`."""
    if outputs is None:
        raise ValueError("a transcoder needs the MLP's outputs [d_out, n_tokens]; for an SAE use train_sae")
    return train_dictionary(inputs, outputs, k, l1=l1, steps=steps, batch=batch, lr=lr, seed=seed, progress=progress)
