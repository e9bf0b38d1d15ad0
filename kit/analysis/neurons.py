"""MLP neurons as key-value memories: decode their output weights, find what activates them, clamp them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validate import check_int, check_layer, check_model, check_number
from ..interventions import Clamp
from ..models import Model
from ..names import check_index

__all__ = ["NeuronDecoding", "decode_neurons", "top_activating", "clamp_effect"]


@dataclass
class NeuronDecoding:
    """``promoted[layer, neuron, k]`` / ``suppressed[layer, neuron, k]`` token ids with their
    ``promoted_scores`` / ``suppressed_scores``: each neuron's output direction through the unembedding."""

    promoted: torch.Tensor
    promoted_scores: torch.Tensor
    suppressed: torch.Tensor
    suppressed_scores: torch.Tensor
    model: Model

    def tokens(self, layer: int, neuron: int, suppressed: bool = False) -> list[str]:
        ids = (self.suppressed if suppressed else self.promoted)[layer, neuron]
        return self.model.to_str_tokens(ids)

    def __repr__(self) -> str:
        L, N, k = self.promoted.shape
        return f"NeuronDecoding(layers={L}, neurons={N}, k={k})"


@torch.no_grad()
def decode_neurons(model: Model, k: int = 10, layers: Sequence[int] | None = None, chunk: int = 1024) -> NeuronDecoding:
    """Top promoted and suppressed tokens of every neuron: ``W_out[neuron] * norm_weight @ W_U``.

    All layers' ``W_out`` are stacked and decoded in batched matrix products (``chunk`` neurons at a
    time, to bound memory for large vocabularies). The final norm's weight is folded in; its
    per-token scale is not (it depends on the input).
    """
    check_model(model, "decode_neurons")
    check_int(k, "k", low=1, high=model.vocab_size)
    check_int(chunk, "chunk", low=1)
    layer_list = list(range(model.n_layers)) if layers is None else [check_layer(model, l) for l in layers]
    a = model.adapter
    W_out = torch.stack([a.W_out(l).float() for l in layer_list])  # [layer, d_mlp, d_model]
    w = getattr(a.final_norm, "weight", None)
    if w is not None:
        W_out = W_out * w.float()
    W_U = a.W_U.float()  # [d_model, vocab]
    flat = W_out.reshape(-1, model.d_model)
    tops, top_v, bots, bot_v = [], [], [], []
    for start in range(0, flat.shape[0], chunk):
        logits = flat[start:start + chunk] @ W_U  # [chunk, vocab]
        v, i = logits.topk(k, -1)
        vb, ib = logits.topk(k, -1, largest=False)
        tops.append(i), top_v.append(v), bots.append(ib), bot_v.append(vb)
    shape = (len(layer_list), model.d_mlp, k)
    cat = lambda xs: torch.cat(xs).view(shape).cpu()  # noqa: E731
    return NeuronDecoding(cat(tops), cat(top_v), cat(bots), cat(bot_v), model)


@torch.no_grad()
def top_activating(model: Model, texts: Sequence[str], layer: int, neuron: int, k: int = 10,
                   batch_size: int = 32, context: int = 6) -> list[dict]:
    """The ``k`` token occurrences in ``texts`` where the neuron's activation is highest.

    Each item: ``{"text": i, "pos": p, "token": str, "activation": float, "context": str}`` where
    ``context`` is up to ``context`` tokens before and the token itself.
    """
    check_model(model, "top_activating")
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise ValueError("texts is empty; give at least one text")
    layer = check_layer(model, layer)
    n = check_index(neuron, model.d_mlp, "neuron")
    check_int(k, "k", low=1)
    check_int(batch_size, "batch_size", low=1)
    found: list[tuple[float, int, int]] = []
    token_lists: dict[int, list[str]] = {}
    for start in range(0, len(texts), batch_size):
        tr = model.trace(list(texts[start:start + batch_size]), capture=["mlp_post"], layers=[layer])
        acts = tr["mlp_post", layer][..., n].float().masked_fill(~tr.mask, float("-inf"))  # [batch, pos]
        v, i = acts.flatten().topk(min(k, int(tr.mask.sum())))
        for val, idx in zip(v.tolist(), i.tolist()):
            b, p = divmod(idx, tr.n_pos)
            found.append((val, start + b, p))
            token_lists.setdefault(start + b, tr.tokens[b])
    found.sort(key=lambda x: -x[0])
    out = []
    for val, t, p in found[:k]:
        toks = token_lists[t]
        out.append({"text": t, "pos": p, "token": toks[p], "activation": val,
                    "context": "".join(toks[max(0, p - context):p + 1])})
    return out


@torch.no_grad()
def clamp_effect(model: Model, prompt: str, layer: int, neuron: int, value: float, k: int = 10,
                 pos: int = -1) -> dict:
    """Next-token probabilities at the last position before and after clamping a neuron.

    Returns ``{"before": [vocab], "after": [vocab], "kl": float, "promoted": [(token, delta_p)],
    "demoted": [(token, delta_p)]}`` with the ``k`` largest changes each way.
    """
    check_model(model, "clamp_effect")
    check_layer(model, layer)
    check_index(neuron, model.d_mlp, "neuron")
    check_number(value, "value")
    check_int(k, "k", low=1, high=model.vocab_size)
    before = model.trace(prompt, capture=[]).logits[0, -1].float().softmax(-1)
    after = model.trace(prompt, capture=[], interventions=[Clamp(layer, neuron, value, pos=pos)]).logits[0, -1]
    after = after.float().softmax(-1)
    delta = after - before
    kl = float((after * (after.clamp_min(1e-12).log() - before.clamp_min(1e-12).log())).sum())
    up, down = delta.topk(k), delta.topk(k, largest=False)
    name = lambda ids: model.to_str_tokens(ids)  # noqa: E731
    return {"before": before.cpu(), "after": after.cpu(), "kl": kl,
            "promoted": list(zip(name(up.indices), up.values.tolist())),
            "demoted": list(zip(name(down.indices), down.values.tolist()))}

