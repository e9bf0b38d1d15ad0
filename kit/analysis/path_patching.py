"""Path patching (Wang et al. 2022): a sender head's effect only through chosen receivers.

Activation patching asks "does this head matter?"; path patching asks "does it matter *through that
head*?". For each sender head:

1. **Run A** (on the clean prompts): the sender's output ``z`` is replaced by its value on the
   corrupted prompts, and every other head is frozen at its clean value, so the only change in the
   residual stream is the sender's. The receivers' *inputs* change; their new ``z`` (or pattern) is
   recorded, and their outputs are frozen too (one receiver never feeds another).
2. **Run B** (on the clean prompts): only the receivers' recorded values are patched in; everything
   downstream of them recomputes. The metric (``logit[answer] - logit[contrast]`` at the last
   position, averaged over prompts) falls by what the sender sends through the receivers.

``receivers="logits"``: the sender's direct path to the unembedding (Run A alone, everything frozen).
``receiver_input``: ``"all"`` (the receivers' queries, keys and values see the patched stream),
``"pattern"`` (queries and keys only: the receivers' attention pattern from Run A, values clean) or
``"values"`` (values only: Run A keeps the receivers' clean pattern). MLPs recompute in Run A (paths
sender -> MLP -> receiver count, as in Wang et al.), unless ``freeze_mlps=True``.

Batched: each sender is a block of batch rows; a chunk of senders costs two forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .._validate import check_int, check_model
from ..interventions import Edit, Patch
from ..models import Model
from ..names import check_index
from ._common import Head, head_list, token_ids_per_prompt

__all__ = ["PathPatchingResult", "path_patching", "prompt_pair"]



@dataclass
class PathPatchingResult:
    """``scores[layer, head]``: the metric with the sender's path through the receivers corrupted (NaN for
    heads that were not senders); ``clean`` / ``corrupted``: the metric on the unpatched prompts."""

    scores: torch.Tensor
    clean: float
    corrupted: float
    receivers: list[Head] | str
    receiver_input: str
    senders: list[Head] = field(default_factory=list)

    @property
    def effect(self) -> torch.Tensor:
        """``(scores - clean) / (clean - corrupted)``: 0 where the path carries nothing, -1 where corrupting
        the path alone costs as much as corrupting the whole prompt."""
        return (self.scores - self.clean) / (self.clean - self.corrupted)

    def top(self, k: int = 3) -> list[tuple[Head, float]]:
        """The ``k`` senders whose path lowers the metric most: ``[((layer, head), effect), ...]``."""
        eff = self.effect
        order = sorted(self.senders, key=lambda lh: float(eff[lh]))
        return [(lh, float(eff[lh])) for lh in order[:k]]

    def __repr__(self) -> str:
        best = ", ".join(f"L{l}H{h} {e:+.2f}" for (l, h), e in self.top(3))
        return (f"PathPatchingResult(receivers={self.receivers}, input={self.receiver_input!r}, "
                f"clean={self.clean:.3f}, corrupted={self.corrupted:.3f}, strongest paths: {best})")


def prompt_pair(model: Model, clean, corrupted) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[batch, pos]`` of clean and corrupted prompts (one string or a list each) of one token
    length, so that each clean prompt has a corrupted twin position by position."""
    c_ids, c_mask = model.tokenize(clean)
    x_ids, x_mask = model.tokenize(corrupted)
    if c_ids.shape != x_ids.shape or not (c_mask.all() and x_mask.all()):
        raise ValueError(
            f"clean and corrupted prompts must be as many and all of one token length; got shapes "
            f"{list(c_ids.shape)} and {list(x_ids.shape)}{'' if c_mask.all() and x_mask.all() else ' (padded)'}")
    return c_ids, x_ids


def logit_diff(logits: torch.Tensor, answer: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """``logits[b, -1, answer[b]] - logits[b, -1, contrast[b]]``: ``[batch]``."""
    last = logits[:, -1].float()
    rows = torch.arange(last.shape[0], device=last.device)
    return last[rows, answer.to(last.device)] - last[rows, contrast.to(last.device)]


def _check_inputs(model, receivers, senders, receiver_input):
    if receiver_input not in ("all", "pattern", "values"):
        raise ValueError(f"receiver_input={receiver_input!r}; valid: 'all', 'pattern', 'values'")
    if isinstance(receivers, str):
        if receivers != "logits":
            raise ValueError(f"receivers={receivers!r}; give (layer, head) pairs or 'logits'")
        top = model.n_layers
        if receiver_input != "all":
            raise ValueError("receiver_input applies to receiver heads; with receivers='logits' leave it 'all'")
    else:
        receivers = head_list(model, receivers, "receiver")
        top = min(l for l, _ in receivers)
    if senders is None:
        senders = [(l, h) for l in range(top) for h in range(model.n_heads)]
        if not senders:
            raise ValueError("no head lies below the lowest receiver's layer; give senders=[...] explicitly")
    senders = head_list(model, senders, "sender")
    bad = [s for s in senders if s[0] >= top]
    if bad:
        raise ValueError(f"senders {bad} do not lie below every receiver (lowest receiver layer {top})")
    return receivers, senders


@torch.no_grad()
def path_patching(model: Model, clean: str | Sequence[str], corrupted: str | Sequence[str], answer, contrast,
                  receivers: Sequence[Head] | str = "logits", senders: Sequence[Head] | None = None,
                  receiver_input: str = "all", receiver_pos: int | None = None, freeze_mlps: bool = False,
                  batch_size: int = 256, progress: bool = False) -> PathPatchingResult:
    """Path-patch every sender (default: every head below the lowest receiver) through ``receivers``.

    ``clean`` / ``corrupted``: prompts of one token length (one string or a list each); ``answer`` /
    ``contrast``: a token (id or text) or one per prompt. ``receiver_pos``: patch the receivers only at
    that position (e.g. ``-1``, the last token), default every position. ``batch_size``: rows per forward
    pass (senders x prompts). Returns :class:`PathPatchingResult`.
    """
    check_model(model, "path_patching")
    check_int(batch_size, "batch_size", low=1)
    receivers, senders = _check_inputs(model, receivers, senders, receiver_input)
    c_ids, x_ids = prompt_pair(model, clean, corrupted)
    P, T = c_ids.shape
    if receiver_pos is not None:
        receiver_pos = check_index(receiver_pos, T, "receiver_pos")
    a = token_ids_per_prompt(model, answer, P)
    c = token_ids_per_prompt(model, contrast, P)
    names = ["z", "mlp_out"] + (["pattern"] if receiver_input != "all" else [])
    clean_tr = model.trace(c_ids, capture=names)
    corr_tr = model.trace(x_ids, capture=["z"])
    L = model.n_layers
    scores = torch.full((L, model.n_heads), float("nan"))
    per = max(1, batch_size // P)  # senders per chunk
    chunks = range(0, len(senders), per)
    for start in tqdm(chunks, desc="path patching", disable=not progress):
        chunk = senders[start:start + per]
        k = len(chunk)
        ids = c_ids.repeat(k, 1)
        rows = [torch.arange(i * P, (i + 1) * P, device=model.device) for i in range(k)]
        recorded: dict[int, torch.Tensor] = {}

        def freeze(layer: int, recorded=recorded, k=k, chunk=chunk, rows=rows):
            def fn(x: torch.Tensor) -> torch.Tensor:
                if receivers != "logits" and receiver_input != "pattern":
                    recorded[layer] = x.clone()  # receivers' z computed from the patched stream
                out = clean_tr["z", layer].to(x.dtype).repeat(k, 1, 1, 1)
                for i, (l, h) in enumerate(chunk):
                    if l == layer:
                        out[rows[i], :, h] = corr_tr["z", layer][:, :, h].to(x.dtype)
                return out
            return fn

        def keep_pattern(layer: int, recorded=recorded, k=k):
            def fn(x: torch.Tensor) -> torch.Tensor:
                if receiver_input == "pattern":
                    recorded[layer] = x.clone()  # receivers' pattern from the patched queries and keys
                    return x
                x = x.clone()  # "values": the receivers keep their clean pattern
                src = clean_tr["pattern", layer].to(x.dtype).repeat(k, 1, 1, 1)
                for l, h in receivers:
                    if l == layer:
                        x[:, h] = src[:, h]
                return x
            return fn

        edits = [Edit("z", l, freeze(l)) for l in range(L)]
        if freeze_mlps:
            edits += [Patch("mlp_out", l, clean_tr["mlp_out", l].repeat(k, 1, 1)) for l in range(L)]
        if receivers != "logits" and receiver_input != "all":
            edits += [Edit("pattern", l, keep_pattern(l)) for l in sorted({l for l, _ in receivers})]
        run_a = model.trace(ids, capture=[], interventions=edits)
        if receivers == "logits":
            final = run_a.logits
        else:
            point = "pattern" if receiver_input == "pattern" else "z"
            edits_b = [Edit(point, l, _put(recorded[l], [h for l2, h in receivers if l2 == l], point, receiver_pos))
                       for l in sorted({l for l, _ in receivers})]
            final = model.trace(ids, capture=[], interventions=edits_b).logits
        metric = logit_diff(final, a.repeat(k), c.repeat(k)).view(k, P).mean(1).cpu()
        for (l, h), value in zip(chunk, metric):
            scores[l, h] = value
    clean_v = float(logit_diff(clean_tr.logits, a, c).mean())
    corr_v = float(logit_diff(model.trace(x_ids, capture=[]).logits, a, c).mean())
    return PathPatchingResult(scores, clean_v, corr_v, receivers, receiver_input, senders)


def _put(src: torch.Tensor, heads: list[int], point: str, pos: int | None):
    """An edit fn writing ``src`` into ``x`` for ``heads`` (at query/position ``pos``, or everywhere)."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        s = src.to(x.dtype)
        where = slice(None) if pos is None else pos
        if point == "z":  # [batch, pos, head, d_head]
            x[:, where, heads] = s[:, where, heads]
        else:  # pattern [batch, head, query, key]
            x[:, heads, where] = s[:, heads, where]
        return x
    return fn
