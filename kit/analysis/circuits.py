"""QK and OV circuits of one head, as objects to inspect, and composition between heads.

Elhage et al. (2021) read an attention head as two low-rank matrices:

- the **QK circuit** ``W_E W_Q W_K^T W_E^T``, ``[query token, key token]``: how much a query token wants
  to attend to a key token (before the softmax, from the tokens' embeddings alone);
- the **OV circuit** ``W_E W_V W_O W_U``, ``[source token, output token]``: what attending to a source
  token writes onto each output logit. A copying head has a large diagonal.

These are the "full" circuits through the embedding and unembedding; layer norms, biases and position
embeddings are not folded in (the usual first approximation), and a later layer's circuits ignore what
earlier layers add to the residual stream (composition, below, measures that).
Composition scores (Q-, K-, V-composition) are :func:`kit.analysis.composition_scores`;
:func:`composition_baseline` gives the score of random matrices of the same shapes, to say what "stands
out" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validate import check_int, check_model
from ..models import Model
from ..names import check_index

__all__ = ["QKCircuit", "OVCircuit", "qk_circuit", "ov_circuit", "composition_baseline"]

MAX_FULL_VOCAB = 8192  # above this, pass tokens=[...]: a full [vocab, vocab] matrix would not fit


def _token_ids(model: Model, tokens: Sequence[int | str] | None) -> tuple[torch.Tensor, list[str]]:
    if tokens is None:
        if model.vocab_size > MAX_FULL_VOCAB:
            raise ValueError(f"vocabulary of {model.vocab_size} tokens: a full [vocab, vocab] circuit would need "
                             f"{model.vocab_size ** 2 * 4 / 2**30:.1f} GiB; pass tokens=[...] (ids or texts) to "
                             f"restrict it (at most {MAX_FULL_VOCAB} in full)")
        ids = torch.arange(model.vocab_size)
    else:
        items = list(tokens)
        if not items:
            raise ValueError("tokens is empty; give token ids or texts, or None for the whole vocabulary")
        from ._common import token_id

        ids = torch.tensor([token_id(model, t) for t in items])
    return ids, model.tokenizer.convert_ids_to_tokens(ids.tolist())


@dataclass
class _Circuit:
    layer: int
    head: int
    matrix: torch.Tensor  # [rows, cols]
    labels: list[str]  # token text of each row (= column)

    def row(self, token: int | str) -> torch.Tensor:
        """One row of the matrix, for a token id or text among ``labels``."""
        i = self._index(token)
        return self.matrix[i]

    def _index(self, token: int | str) -> int:
        if isinstance(token, str):
            if token not in self.labels:
                raise ValueError(f"token {token!r} is not among this circuit's tokens, e.g. {self.labels[:5]}")
            return self.labels.index(token)
        return check_index(token, len(self.labels), "token index")

    def top(self, token: int | str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` largest entries of ``token``'s row, as ``(token text, value)``."""
        v, i = self.row(token).topk(min(k, self.matrix.shape[1]))
        return [(self.labels[j], float(x)) for x, j in zip(v, i)]

    @property
    def diagonal_share(self) -> float:
        """Fraction of rows whose largest entry is on the diagonal (token -> itself)."""
        return float((self.matrix.argmax(1) == torch.arange(self.matrix.shape[0])).float().mean())


@dataclass
class QKCircuit(_Circuit):
    """``matrix[query token, key token]``: pre-softmax attention score from embeddings alone (scaled by
    ``1/sqrt(d_head)`` as the model does). ``top(query)``: the keys that query token prefers."""

    def __repr__(self) -> str:
        return (f"QKCircuit(L{self.layer}H{self.head}, {self.matrix.shape[0]}x{self.matrix.shape[1]} tokens, "
                f"prefers the same token in {100 * self.diagonal_share:.0f}% of rows)")


@dataclass
class OVCircuit(_Circuit):
    """``matrix[source token, output token]``: logits written when the head attends to the source token.
    ``top(source)``: the outputs it raises; ``diagonal_share``: how often it raises the source token itself."""

    @property
    def copying_score(self) -> float:
        """``sum(Re(lambda)) / sum(|lambda|)`` over the matrix's eigenvalues (Elhage et al.), in [-1, 1]."""
        eig = torch.linalg.eigvals(self.matrix.double())
        return float(eig.real.sum() / eig.abs().sum().clamp_min(1e-12))

    def __repr__(self) -> str:
        return (f"OVCircuit(L{self.layer}H{self.head}, {self.matrix.shape[0]}x{self.matrix.shape[1]} tokens, "
                f"copies (own logit largest) in {100 * self.diagonal_share:.0f}% of rows, "
                f"copying score {self.copying_score:+.2f})")


def _head(model: Model, layer: int, head: int) -> tuple[int, int]:
    return check_index(layer, model.n_layers, "layer"), check_index(head, model.n_heads, "head")


@torch.no_grad()
def qk_circuit(model: Model, layer: int, head: int, tokens: Sequence[int | str] | None = None) -> QKCircuit:
    """The full QK circuit of head ``(layer, head)`` over ``tokens`` (default: the whole vocabulary)."""
    check_model(model, "qk_circuit")
    layer, head = _head(model, layer, head)
    ids, labels = _token_ids(model, tokens)
    a = model.adapter
    E = a.embed.weight.float()[ids.to(a.embed.weight.device)]  # [tokens, d_model]
    W_Q, W_K, _ = a.W_QKV(layer)  # [head, d_model, d_head]; key heads repeated for grouped-query models
    q, k = E @ W_Q[head].float(), E @ W_K[head].float()  # [tokens, d_head]
    return QKCircuit(layer, head, (q @ k.T / model.d_head ** 0.5).cpu(), labels)


@torch.no_grad()
def ov_circuit(model: Model, layer: int, head: int, tokens: Sequence[int | str] | None = None) -> OVCircuit:
    """The full OV circuit of head ``(layer, head)`` over ``tokens`` (rows and columns; default: all)."""
    check_model(model, "ov_circuit")
    layer, head = _head(model, layer, head)
    ids, labels = _token_ids(model, tokens)
    a = model.adapter
    dev = a.embed.weight.device
    E = a.embed.weight.float()[ids.to(dev)]  # [tokens, d_model]
    W_V = a.W_QKV(layer)[2][head].float()  # [d_model, d_head]
    W_O = a.W_O(layer)[head].float()  # [d_head, d_model]
    U = a.W_U.float()[:, ids.to(dev)]  # [d_model, tokens]
    return OVCircuit(layer, head, (E @ W_V @ W_O @ U).cpu(), labels)


@torch.no_grad()
def composition_baseline(model: Model, kind: str = "k", samples: int = 200, seed: int = 0) -> tuple[float, float]:
    """``(mean, std)`` of the composition score between random Gaussian matrices of the model's head shapes:
    a score many standard deviations above the mean is composition, not chance."""
    check_model(model, "composition_baseline")
    check_int(samples, "samples", low=2)
    if kind not in ("q", "k", "v"):
        raise ValueError(f"kind={kind!r}; valid kinds: 'q', 'k', 'v'")
    g = torch.Generator().manual_seed(seed)
    D, d = model.d_model, model.d_head
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    A = r(samples, D, d) @ r(samples, d, D)  # W_OV of head 1, rank d_head
    B = r(samples, D, d) @ r(samples, d, D)  # W_QK or W_OV of head 2
    prod = A @ B  # the score's distribution is the same for every kind with random factors of these shapes
    score = prod.flatten(1).norm(dim=1) / (A.flatten(1).norm(dim=1) * B.flatten(1).norm(dim=1))
    return float(score.mean()), float(score.std())
