"""Activation patching, attention knockout and causal tracing, batched.

Every grid here is computed by stacking its cells along the batch axis and running a few large
forward passes, never one forward pass per cell. Each cell's edit is an ordinary kit intervention
(:class:`kit.Edit`) restricted to its own batch rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .._validate import check_int, check_model, check_number
from ..interventions import Edit, Knockout
from ..models import Model
from ._common import token_id

__all__ = [
    "PatchingResult", "activation_patching", "CausalTrace", "causal_trace", "subject_positions",
    "attention_knockout",
]

_KIND_POINT = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out", "heads": "z"}


def subject_positions(model: Model, prompt: str, subject: str) -> list[int]:
    """Token positions of ``prompt`` that overlap the first occurrence of ``subject``."""
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError(f"subject is empty; give the text of the subject as it appears in the prompt {prompt!r}")
    start = prompt.find(subject)
    if start < 0:
        raise ValueError(f"subject {subject!r} does not occur in the prompt {prompt!r}")
    end = start + len(subject)
    enc = model.tokenizer(prompt, return_offsets_mapping=True)
    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
    if not pos:
        raise ValueError(f"subject {subject!r} covers no token of {prompt!r}")
    return pos


def _one(model: Model, prompt) -> torch.Tensor:
    ids, _ = model.tokenize(prompt)
    if ids.shape[0] != 1:
        raise ValueError("pass one prompt (a string or one id sequence)")
    return ids


def _metric(logits: torch.Tensor, answer: int, contrast: int | None) -> torch.Tensor:
    """``logit[answer] - logit[contrast]`` with a contrast, else ``p(answer)``, at the last position."""
    last = logits[:, -1].float()
    if contrast is not None:
        return last[:, answer] - last[:, contrast]
    return last.softmax(-1)[:, answer]


def _restore(point: str, rows: torch.Tensor, where: torch.Tensor, src: torch.Tensor, by_head: bool):
    """An edit fn that writes ``src[0]`` into ``x`` at (row, position) or (row, head) pairs."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        s = src.to(x.dtype)
        if by_head:  # z [batch, pos, head, d_head]: the whole head, every position
            x[rows, :, where] = s[0, :, where].transpose(0, 1)
        else:  # [batch, pos, width]
            x[rows, where] = s[0, where]
        return x
    return fn


@dataclass
class PatchingResult:
    """``scores[layer, pos]`` (or ``[layer, head]`` for heads): the metric with one cell patched from
    the clean run into the corrupted run; ``clean`` and ``corrupted`` are the unpatched values."""

    scores: torch.Tensor
    clean: float
    corrupted: float
    kind: str
    metric: str
    clean_tokens: list[str] = field(default_factory=list)
    corrupted_tokens: list[str] = field(default_factory=list)

    @property
    def normalized(self) -> torch.Tensor:
        """0 where a patch leaves the corrupted value, 1 where it restores the clean value."""
        gap = self.clean - self.corrupted
        return (self.scores - self.corrupted) / (gap if abs(gap) > 1e-12 else 1e-12)

    def __repr__(self) -> str:
        return (f"PatchingResult(kind={self.kind!r}, grid={list(self.scores.shape)}, metric={self.metric!r}, "
                f"clean={self.clean:.4g}, corrupted={self.corrupted:.4g})")


@torch.no_grad()
def activation_patching(model: Model, clean: str | torch.Tensor, corrupted: str | torch.Tensor,
                        answer: int | str, contrast: int | str | None = None, kind: str = "resid",
                        batch_size: int = 64, progress: bool = False) -> PatchingResult:
    """Patch each cell of the clean run into the corrupted run and measure the metric.

    ``kind``: ``"resid"`` (residual stream entering each layer, by position), ``"attn"`` / ``"mlp"``
    (attention or MLP output, by position), ``"heads"`` (each head's output at every position).
    Metric: ``logit[answer] - logit[contrast]`` at the last position, or ``p(answer)`` without a
    contrast. The prompts must have the same number of tokens.
    """
    check_model(model, "activation_patching")
    if kind not in _KIND_POINT:
        raise ValueError(f"kind={kind!r}; valid kinds: {', '.join(_KIND_POINT)}")
    check_int(batch_size, "batch_size", low=1)
    point = _KIND_POINT[kind]
    c_ids, x_ids = _one(model, clean), _one(model, corrupted)
    if c_ids.shape != x_ids.shape:
        raise ValueError(f"clean and corrupted prompts must have the same token length "
                         f"({c_ids.shape[1]} vs {x_ids.shape[1]})")
    a_id = token_id(model, answer)
    c_id = None if contrast is None else token_id(model, contrast)
    clean_tr = model.trace(c_ids, capture=[point])
    base = model.trace(x_ids, capture=[])
    L, T = model.n_layers, c_ids.shape[1]
    width = model.n_heads if kind == "heads" else T
    cells = torch.cartesian_prod(torch.arange(L), torch.arange(width))  # [cell, (layer, pos|head)]
    scores = torch.empty(len(cells))
    chunks = range(0, len(cells), batch_size)
    for start in tqdm(chunks, desc=f"patching {kind}", disable=not progress):
        chunk = cells[start:start + batch_size]
        rows = torch.arange(len(chunk), device=model.device)
        edits = []
        for l in chunk[:, 0].unique().tolist():
            sel = chunk[:, 0] == l
            edits.append(Edit(point, l, _restore(point, rows[sel.to(rows.device)], chunk[sel, 1].to(model.device),
                                                 clean_tr[point, l], by_head=kind == "heads")))
        out = model.trace(x_ids.expand(len(chunk), -1), capture=[], interventions=edits)
        scores[start:start + len(chunk)] = _metric(out.logits, a_id, c_id).cpu()
    return PatchingResult(scores.view(L, width), float(_metric(clean_tr.logits, a_id, c_id)),
                          float(_metric(base.logits, a_id, c_id)), kind,
                          "logit_diff" if c_id is not None else "prob",
                          model.to_str_tokens(c_ids[0]), model.to_str_tokens(x_ids[0]))


@dataclass
class CausalTrace:
    """``scores[layer, pos]``: p(answer) with the subject corrupted by noise and one state restored
    (averaged over noise samples). ``clean`` is p(answer) on the clean prompt, ``corrupted`` with
    noise and nothing restored."""

    scores: torch.Tensor
    clean: float
    corrupted: float
    kind: str
    window: int
    subject: list[int]
    tokens: list[str]
    answer: int

    @property
    def effect(self) -> torch.Tensor:
        """Indirect effect of each state: ``scores - corrupted``."""
        return self.scores - self.corrupted

    def peak(self) -> tuple[int, int]:
        """``(layer, pos)`` of the largest restored probability."""
        i = int(self.scores.argmax())
        return i // self.scores.shape[1], i % self.scores.shape[1]

    def __repr__(self) -> str:
        return (f"CausalTrace(kind={self.kind!r}, window={self.window}, grid={list(self.scores.shape)}, "
                f"clean={self.clean:.4g}, corrupted={self.corrupted:.4g}, peak={self.peak()})")


@torch.no_grad()
def causal_trace(model: Model, prompt: str, subject: str | Sequence[int], answer: int | str | None = None,
                 kind: str = "resid", noise: float = 3.0, samples: int = 10, window: int | None = None,
                 seed: int = 0, batch_size: int = 512, progress: bool = False) -> CausalTrace:
    """Causal tracing after Meng et al. (2022).

    Adds Gaussian noise of ``noise`` times the embedding standard deviation to the subject's token
    embeddings (``samples`` seeded draws), then for every (layer, position) restores the clean state
    and measures p(answer) at the last position. ``kind="resid"`` restores the residual stream after
    the layer; ``"mlp"`` / ``"attn"`` restore that sublayer's output over a ``window`` of neighbouring
    layers centred on the layer (default: the paper's 10 of 48 layers, scaled to this model's depth).
    All cells run batched: ``layers * positions * samples`` rows, ``batch_size`` rows per pass.
    """
    check_model(model, "causal_trace")
    if kind not in ("resid", "mlp", "attn"):
        raise ValueError(f"kind={kind!r}; valid kinds: 'resid', 'mlp', 'attn'")
    check_int(samples, "samples", low=1)
    check_number(noise, "noise", low=0.0)
    check_int(batch_size, "batch_size", low=1)
    if window is not None:
        check_int(window, "window", low=1, high=model.n_layers)
    ids = _one(model, prompt)
    T, L, d = ids.shape[1], model.n_layers, model.d_model
    subj = subject_positions(model, prompt, subject) if isinstance(subject, str) else sorted(set(subject))
    if not subj or min(subj) < 0 or max(subj) >= T:
        raise ValueError(f"subject positions {subj} must lie in 0..{T - 1}")
    if window is None:
        window = 1 if kind == "resid" else max(1, round(10 * L / 48))
    point = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}[kind]
    clean = model.trace(ids, capture=[point])
    a_id = int(clean.logits[0, -1].argmax()) if answer is None else token_id(model, answer)
    p_clean = float(clean.logits[0, -1].float().softmax(-1)[a_id])

    g = torch.Generator().manual_seed(seed)
    std = float(model.adapter.embed.weight.detach().float().std())
    eps = (torch.randn(samples, len(subj), d, generator=g) * noise * std).to(model.device)
    subj_t = torch.tensor(subj, device=model.device)

    def corrupt(x: torch.Tensor) -> torch.Tensor:  # resid_pre[0]: embeddings (+ positions)
        x = x.clone()
        reps = x.shape[0] // samples
        x[:, subj_t] += eps.repeat(reps, 1, 1).to(x.dtype)
        return x

    base = model.trace(ids.expand(samples, -1), capture=[], interventions=[Edit("resid_pre", 0, corrupt)])
    p_corrupt = float(base.logits[:, -1].float().softmax(-1)[:, a_id].mean())

    cells = torch.cartesian_prod(torch.arange(L), torch.arange(T))  # [cell, (layer, pos)]
    per_pass = max(1, batch_size // samples)
    scores = torch.empty(len(cells))
    for start in tqdm(range(0, len(cells), per_pass), desc=f"causal trace ({kind})", disable=not progress):
        chunk = cells[start:start + per_pass]
        n = len(chunk)
        row_cell = torch.arange(n * samples, device=model.device) // samples  # rows: cell-major, then sample
        edits = [Edit("resid_pre", 0, corrupt)]
        for l in range(L):
            lo, hi = chunk[:, 0] - window // 2, chunk[:, 0] - window // 2 + window  # layers each cell restores
            hit = ((lo <= l) & (l < hi)).to(model.device)  # [cell]
            if not hit.any():
                continue
            rows = hit[row_cell].nonzero().flatten()
            where = chunk[:, 1].to(model.device)[row_cell[rows]]
            edits.append(Edit(point, l, _restore(point, rows, where, clean[point, l], by_head=False)))
        out = model.trace(ids.expand(n * samples, -1), capture=[], interventions=edits)
        p = out.logits[:, -1].float().softmax(-1)[:, a_id].view(n, samples).mean(1)
        scores[start:start + n] = p.cpu()
    return CausalTrace(scores.view(L, T), p_clean, p_corrupt, kind, window, subj, model.to_str_tokens(ids[0]), a_id)


@torch.no_grad()
def attention_knockout(model: Model, prompts: str | Sequence[str], key: Sequence[Sequence[int]] | Sequence[int],
                       answer: int | str | Sequence[int | str] | None = None,
                       layers: int | Sequence[int] | None = None, query: int = -1) -> dict[str, torch.Tensor]:
    """Block attention from ``query`` (default: each prompt's last token) to ``key`` positions in
    ``layers`` (default: all) and measure p(answer) at the last position before and after.

    ``key``: positions per prompt (a list of lists), or one list for every prompt. Returns
    ``{"before": [batch], "after": [batch], "answer": [batch]}``.
    """
    check_model(model, "attention_knockout")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids, mask = model.tokenize(prompts)
    B, T = ids.shape
    key = list(key)
    if not key:
        raise ValueError("no key positions given: pass the positions to block, e.g. key=[1, 2] (or one list per prompt)")
    keys = [key] * B if key and isinstance(key[0], int) else key
    if len(keys) != B:
        raise ValueError(f"{len(keys)} key position lists given for {B} prompts; give one list of positions "
                         f"for every prompt, or one list for all")
    kmask = torch.zeros(B, T, dtype=torch.bool, device=ids.device)
    for b, ks in enumerate(keys):
        n = int(mask[b].sum())
        if len(ks) == 0:
            raise ValueError(f"no key positions given for prompt {b}; give positions in 0..{n - 1}")
        for k in ks:
            if not 0 <= k < n:
                raise ValueError(f"key position {k} is out of range for prompt {b}: valid positions are 0..{n - 1}")
            kmask[b, k] = True
    layer_list = list(range(model.n_layers)) if layers is None else layers
    before = model.trace(ids, capture=[])
    lengths = mask.sum(1)
    last = (lengths - 1).to(ids.device)
    rows = torch.arange(B, device=ids.device)
    if answer is None:
        a = before.logits[rows, last].argmax(-1)
    else:
        answers = list(answer) if isinstance(answer, (list, tuple)) else [answer] * B
        a = torch.tensor([token_id(model, x) for x in answers], device=ids.device)
    # a padded batch: pass token ids with the mask so each prompt keeps its own last position
    after = model.trace([row[m].tolist() for row, m in zip(ids, mask)], capture=[],
                        interventions=[Knockout(layer_list, query=query, key=kmask)])
    p = lambda tr: tr.logits[rows, last].float().softmax(-1)[rows, a].cpu()  # noqa: E731
    return {"before": p(before), "after": p(after), "answer": a.cpu()}
