"""Causal tracing after Meng et al. (2022): the whole grid in one forward pass per chunk of cells.

A cell ``(kind, layer, pos)`` adds noise to the subject's embeddings, restores the clean state of
``kind`` at ``pos`` in ``layer`` (and its window of neighbouring layers), and measures p(answer) at
the last position, averaged over the noise samples. The grid equals a loop of one forward pass per
cell (to float tolerance; ``tests/test_causal_tracing.py`` checks it cell by cell), but skips work
that is provably the same:

1. **One pass holds everything.** Row 0 of the batch is the clean prompt, rows ``1..S`` its ``S``
   noised copies; a cell reads the clean state it restores from row 0 of the same pass, so the clean
   and corrupted runs are never repeated, and all kinds can share them (:func:`causal_traces`).
2. **Fan-out.** Below the first layer a cell restores, its rows equal the corrupted rows, so they
   are not computed: a hook copies the corrupted rows when the pass reaches that layer, and the batch
   grows on the way up (a cell restoring late costs only its last layers). A restored residual or
   MLP output (and an attention output in a parallel block) only changes the block's output at the
   cell's position, by a difference the pass already holds, so those rows start after that block.
3. **Cells that restore nothing** score the corrupted baseline without running: a position before the
   subject (in a causal model its state does not depend on the noise, so clean and corrupted states
   there are equal), and any position but the last in the last layer (no later position reads it).
   Restoring the whole residual at the last position of the last layer gives the clean value.
4. **Only the last position is finished.** Logits are computed at the last position only
   (``logits_to_keep=1``), and in the last block so are the attention output projection and the MLP
   (pre-hooks pass them the last position; the block's residual sum broadcasts it, so the other
   positions of the final hidden state hold values that nothing reads). The attention itself still
   reads every position's keys and values.

Hooks sit on the real modules (blocks, attention, MLP) for one pass and are removed after it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .._calls import input_name
from .._validate import check_int, check_model, check_number
from ..models import Model
from ._common import one_prompt, subject_positions, token_id

__all__ = ["CausalTrace", "causal_trace", "causal_traces", "KINDS"]

KINDS = ("resid", "mlp", "attn")  # restore the residual after the block, the MLP output, the attention output
DEFAULT_MAX_BYTES = 512 * 2**20  # activations of one pass when batch_size is not given (x8 on CUDA)


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


@dataclass(frozen=True)
class _Cell:
    """One grid cell to run: restore ``kind`` at ``pos`` in ``layers`` (its window, trimmed to the
    layers where a restore can change the output); its rows are created at block input ``start``."""

    kind: str
    layer: int
    pos: int
    layers: tuple[int, ...]
    start: int  # fan-out point: the input of block `start` (n_layers: after the last block)
    delta: bool = False  # its first restore is added at the block's output as (clean - noised) sublayer output


def default_window(kind: str, n_layers: int) -> int:
    """The paper's window (10 of GPT-2 XL's 48 layers) scaled to ``n_layers``; 1 for the residual."""
    return 1 if kind == "resid" else max(1, round(10 * n_layers / 48))


def _plan(kind: str, L: int, T: int, first_subject: int, window: int, parallel: bool = False):
    """Split one kind's grid into cells to run and cells with a known value ("corrupted" / "clean").

    A restored residual is written after its block, so its cell's rows start after that block. So do
    a restored MLP output's (the block's output at that position changes by clean minus noised MLP
    output, and nothing else in the block reads it), and an attention output's in a parallel block;
    in a sequential block the MLP reads the attention output, so those rows start at the block's input.
    """
    run: list[_Cell] = []
    known: dict[tuple[int, int], str] = {}
    for layer in range(L):
        lo = layer - window // 2
        span = [x for x in range(lo, lo + window) if 0 <= x < L]
        for pos in range(T):
            if pos < first_subject:  # the clean and the corrupted state are equal here
                known[layer, pos] = "corrupted"
                continue
            if kind == "resid" and pos == T - 1 and L - 1 in span:  # the whole last state: the clean logits
                known[layer, pos] = "clean"
                continue
            eff = tuple(x for x in span if x < L - 1 or pos == T - 1)  # the last layer only feeds its own position
            if not eff:
                known[layer, pos] = "corrupted"
                continue
            delta = kind == "mlp" or (kind == "attn" and parallel)
            start = eff[0] + 1 if kind == "resid" or delta else eff[0]
            run.append(_Cell(kind, layer, pos, eff, start, delta))
    return run, known


def _rows_per_pass(model: Model, T: int, batch_size: int | None) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return batch_size
    per_row = 4 * T * (8 * model.d_model + 4 * model.d_mlp + model.n_heads * T)  # float32 activations of one row
    budget = DEFAULT_MAX_BYTES * (8 if model.device.type == "cuda" else 1)
    return max(1, budget // per_row)


def _batchwise(x, src: torch.Tensor, n_in: int):
    """Index tensors that carry the input batch (``[n_in, ...]``, e.g. a 4-d attention mask) by ``src``."""
    if isinstance(x, torch.Tensor) and x.ndim >= 2 and x.shape[0] == n_in and n_in > 1:
        return x.index_select(0, src.to(x.device))
    if isinstance(x, tuple):
        return tuple(_batchwise(v, src, n_in) for v in x)
    return x


class _FanOut:
    """The hooks of one pass over the clean row, ``S`` noised rows and the rows of ``cells``."""

    def __init__(self, model: Model, cells: Sequence[_Cell], samples: int, subj: torch.Tensor, eps: torch.Tensor):
        self.model, self.S, self.subj, self.eps = model, samples, subj, eps
        L, dev = model.n_layers, model.device
        self.n_in = 1 + samples
        self.src = torch.arange(self.n_in, device=dev)  # input row of every current row
        self.fan: dict[int, int] = {}  # fan-out point -> number of cells created there
        where: dict[tuple[str, int], list[tuple[int, int]]] = {}
        if any(a.start > b.start for a, b in itertools.pairwise(cells)):
            raise ValueError("cells must come sorted by their fan-out point")
        deltas: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for k, c in enumerate(cells):
            self.fan[c.start] = self.fan.get(c.start, 0) + 1
            for i, x in enumerate(c.layers):
                to = deltas if c.delta and i == 0 else where
                to.setdefault((c.kind, x), []).append((self.n_in + k * samples, c.pos))

        def rows_pos(items: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
            first = torch.tensor([r for r, _ in items], device=dev)
            rows = (first[:, None] + torch.arange(samples, device=dev)).flatten()  # [cell * sample]
            return rows, torch.tensor([p for _, p in items], device=dev).repeat_interleave(samples)

        self.restore = {key: rows_pos(items) for key, items in where.items()}
        self.delta = {key: rows_pos(items) for key, items in deltas.items()}  # added after block `layer`
        self.stash: dict[tuple[str, int], torch.Tensor] = {}  # sublayer outputs of the clean and noised rows
        self.noised = torch.arange(1, self.n_in, device=dev)  # the rows a new cell copies
        self.L = L

    # hidden states ---------------------------------------------------------------------------
    def _grow(self, h: torch.Tensor, point: int) -> torch.Tensor:
        """Append ``S`` copies of the noised rows per cell whose rows start at ``point``."""
        n = self.fan.get(point, 0)
        if not n:
            return h
        new = self.noised.repeat(n)
        self.src = torch.cat([self.src, new])
        return torch.cat([h, h.index_select(0, new)])

    def _add_deltas(self, h: torch.Tensor, layer: int) -> None:
        """Block output of cells whose first restore is at ``layer``'s MLP (or parallel attention):
        add the clean minus the noised sublayer output at their position."""
        for kind in ("mlp", "attn"):
            hit = self.delta.get((kind, layer))
            if hit is None:
                continue
            rows, pos = hit
            out = self.stash[kind, layer]  # [1 + S, pos or 1, d_model]
            at = torch.zeros_like(pos) if out.shape[1] == 1 else pos  # the last block: the last position only
            sample = torch.arange(1, self.n_in, device=rows.device).repeat(len(rows) // self.S)
            h[rows, pos] += (out[0, at] - out[sample, at]).to(h.dtype)

    def _write(self, h: torch.Tensor, kind: str, layer: int) -> None:
        hit = self.restore.get((kind, layer))
        if hit is not None:
            rows, pos = hit
            if h.shape[1] == 1:  # the last block's sublayers see only the last position (see last_only)
                pos = torch.zeros_like(pos)
            h[rows, pos] = h[0, pos]  # the clean row's state at each cell's position

    # hooks -------------------------------------------------------------------------------------
    def block_pre(self, layer: int):
        def hook(module, args, kwargs):
            key = None if args else input_name(type(module))  # a block called by keyword
            h = args[0] if args else kwargs[key]
            if layer == 0:  # noise on the subject's embeddings of rows 1..S, then the first fan-out
                h = h.clone()
                h[1:, self.subj] += self.eps.to(h.dtype)
                h = self._grow(h, 0)
            rest = tuple(_batchwise(a, self.src, self.n_in) for a in args[1:])
            kw = {k: _batchwise(v, self.src, self.n_in) for k, v in kwargs.items() if k != key}
            if args:
                return (h,) + rest, kw
            return rest, {**kw, key: h}
        return hook

    def block_post(self, layer: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            h = self._grow(h, layer + 1)
            self._write(h, "resid", layer)
            self._add_deltas(h, layer)
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h
        return hook

    @staticmethod
    def last_only(module, args, kwargs):
        """Pre-hook: pass a module only the last position of its input ``[batch, pos, width]``.

        A flattened ``[batch * pos, width]`` input (OPT's MLP) is passed whole: still exact at the
        last position, only not shortened."""
        if args:
            if args[0].ndim == 2:
                return None
            return (args[0][:, -1:],) + tuple(args[1:]), kwargs
        key = input_name(type(module))
        return args, {**kwargs, key: kwargs[key][:, -1:]}

    def sublayer(self, kind: str, layer: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            if h.ndim == 2:  # OPT's MLP runs on flattened [batch * pos, d_model] states: a view writes through
                h = h.view(len(self.src), -1, h.shape[-1])
            if (kind, layer) in self.delta:
                self.stash[kind, layer] = h[: self.n_in].clone()
            self._write(h, kind, layer)
        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        a = self.model.adapter
        handles = []
        try:
            for l in range(self.L):
                handles.append(a.blocks[l].register_forward_pre_hook(self.block_pre(l), with_kwargs=True))
                handles.append(a.blocks[l].register_forward_hook(self.block_post(l)))
                # the sublayer's output as it enters the residual stream: after the norm that follows it in
                # post-norm blocks (Gemma 2/3, OLMo 2), so that a restored difference is the residual's
                if ("mlp", l) in self.restore or ("mlp", l) in self.delta:
                    handles.append(a.mlp_out_at(l).register_forward_hook(self.sublayer("mlp", l)))
                if ("attn", l) in self.restore or ("attn", l) in self.delta:
                    handles.append(a.attn_out_at(l).register_forward_hook(self.sublayer("attn", l)))
            for module in (a.o_proj(self.L - 1), a.mlp(self.L - 1)):  # the last block finishes the last position only
                handles.append(module.register_forward_pre_hook(self.last_only, with_kwargs=True))
            yield
        finally:
            for h in handles:
                h.remove()

    def run(self, ids: torch.Tensor) -> torch.Tensor:
        """``logits[row, vocab]`` at the last position: clean row, noised rows, then each cell's rows."""
        with self.attached():
            out = self.model.hf(input_ids=ids.expand(self.n_in, -1), use_cache=False, logits_to_keep=1)
        return out.logits[:, -1].float()


@torch.no_grad()
def causal_traces(model: Model, prompt: str, subject: str | Sequence[int], answer: int | str | None = None,
                  kinds: Sequence[str] = KINDS, noise: float = 3.0, samples: int = 10, window: int | None = None,
                  seed: int = 0, batch_size: int | None = None, progress: bool = False) -> dict[str, CausalTrace]:
    """Causal tracing of several ``kinds`` at once, sharing the clean and the corrupted runs.

    Returns ``{kind: CausalTrace}``; each equals :func:`causal_trace` with that kind and the same
    arguments. ``batch_size`` caps the rows of one forward pass (the clean row, the ``samples``
    noised rows, and ``samples`` rows per cell); by default about 512 MiB of activations (4 GiB on CUDA),
    and never fewer than one cell per pass.
    """
    check_model(model, "causal_trace")
    kinds = [kinds] if isinstance(kinds, str) else list(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kind={bad[0] if bad else kinds!r}; valid kinds: 'resid', 'mlp', 'attn'")
    check_int(samples, "samples", low=1)
    check_number(noise, "noise", low=0.0)
    if batch_size is not None:
        check_int(batch_size, "batch_size", low=1)
    if window is not None:
        check_int(window, "window", low=1, high=model.n_layers)
    ids = one_prompt(model, prompt)
    T, L, d = ids.shape[1], model.n_layers, model.d_model
    subj = subject_positions(model, prompt, subject) if isinstance(subject, str) else sorted(set(subject))
    if not subj or min(subj) < 0 or max(subj) >= T:
        raise ValueError(f"subject positions {subj} must lie in 0..{T - 1}")
    windows = {k: default_window(k, L) if window is None else window for k in kinds}
    plans = {k: _plan(k, L, T, subj[0], windows[k], model.adapter.parallel) for k in kinds}

    g = torch.Generator().manual_seed(seed)
    std = float(model.adapter.embed.weight.detach().float().std())
    eps = (torch.randn(samples, len(subj), d, generator=g) * noise * std).to(model.device)
    subj_t = torch.tensor(subj, device=model.device)

    cells = sorted((c for k in kinds for c in plans[k][0]), key=lambda c: (c.start, KINDS.index(c.kind), c.layer, c.pos))
    per_pass = max(1, (_rows_per_pass(model, T, batch_size) - 1 - samples) // samples)
    chunks = [cells[i:i + per_pass] for i in range(0, len(cells), per_pass)] or [[]]
    p_cell: dict[_Cell, float] = {}
    logits0 = None
    for chunk in tqdm(chunks, desc="causal trace", disable=not progress):
        logits = _FanOut(model, chunk, samples, subj_t, eps).run(ids)  # [row, vocab]
        if logits0 is None:
            logits0 = logits[: 1 + samples]
            a_id = int(logits0[0].argmax()) if answer is None else token_id(model, answer)
        p = logits.softmax(-1)[:, a_id]
        means = p[1 + samples:].view(len(chunk), samples).mean(1).tolist()  # the chunk's cells, in row order
        p_cell.update(zip(chunk, means))
    p0 = logits0.softmax(-1)[:, a_id]
    p_clean, p_corrupt = float(p0[0]), float(p0[1:].mean())

    tokens = model.to_str_tokens(ids[0])
    out = {}
    for k in kinds:
        run, known = plans[k]
        scores = torch.empty(L, T)
        for (layer, pos), which in known.items():
            scores[layer, pos] = p_clean if which == "clean" else p_corrupt
        for c in run:
            scores[c.layer, c.pos] = p_cell[c]
        out[k] = CausalTrace(scores, p_clean, p_corrupt, k, windows[k], subj, tokens, a_id)
    return out


def causal_trace(model: Model, prompt: str, subject: str | Sequence[int], answer: int | str | None = None,
                 kind: str = "resid", noise: float = 3.0, samples: int = 10, window: int | None = None,
                 seed: int = 0, batch_size: int | None = None, progress: bool = False) -> CausalTrace:
    """Causal tracing after Meng et al. (2022).

    Adds Gaussian noise of ``noise`` times the embedding standard deviation to the subject's token
    embeddings (``samples`` seeded draws), then for every (layer, position) restores the clean state
    and measures p(answer) at the last position (``answer``: the clean prediction by default).
    ``kind="resid"`` restores the residual stream after the layer; ``"mlp"`` / ``"attn"`` restore that
    sublayer's output over a ``window`` of neighbouring layers centred on the layer (default: the
    paper's 10 of 48 layers, scaled to this model's depth). ``subject``: its text or its positions.
    Batched: see the module docstring for how; ``batch_size`` caps the rows of one forward pass.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; valid kinds: 'resid', 'mlp', 'attn'")
    return causal_traces(model, prompt, subject, answer, (kind,), noise, samples, window, seed, batch_size,
                         progress)[kind]
