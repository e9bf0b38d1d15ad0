"""ResidualLens: the logit lens of one prompt as a layers x positions grid, residual norms, and a
direct-logit-attribution waterfall for the selected position."""

from __future__ import annotations

from typing import Any

import torch
import traitlets

from ..analysis import token_id
from ._base import STATIC, KitWidget
from ._lens import DLA_NEEDS, dla_by_position, lens_data, residual_norms, target_stats
from ._options import refuse_unknown
from ._source import resolve_source
from ._tokens import visible_token
from ._wire import Encoded, encode_tensor

__all__ = ["ResidualLens"]

CAPTURE = ["resid_pre", "resid_post", "head_out", "mlp_out"]


class ResidualLens(KitWidget):
    """What the residual stream "predicts" after every layer, at every position.

    ``ResidualLens(trace)`` or ``ResidualLens(model, prompt)``; ``target=" Paris"`` (a token text or
    id) adds its rank and probability; ``batch_index`` picks a prompt of a batched trace; ``k``
    top tokens per cell (shown on hover).

    - The grid: a row per layer (the residual stream after that layer, through the final norm and
      unembedding: the logit lens), a column per position. Each cell shows the top token, coloured
      by its probability (``color="prob"``) or by the target's rank (``color="rank"``, log scale).
    - Residual-stream norms: ``‖resid‖`` entering layer 0 and after each layer, at the selected
      position.
    - A waterfall of direct logit attribution at the selected position (``token``; the last one
      when none is selected): the embeddings, each layer's attention (click to expand its heads) and
      MLP, and the final biases add up to the logit of the target, or of the model's own top
      prediction at that position when there is no target. Same definition as
      :func:`kit.analysis.direct_logit_attribution`.

    Clicking a cell selects ``layer`` and ``token``; clicking a head in the waterfall selects
    ``layer`` and ``head``.
    """

    _esm = STATIC / "residual_lens.js"
    _module = "residual_lens"
    _links = ("layer", "head", "token")

    color = traitlets.Enum(
        ("prob", "rank"), default_value="prob", help="Colour cells by probability or target rank"
    ).tag(sync=True)
    _tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _info = traitlets.Dict().tag(sync=True)  # {n_layers, n_heads, n_tokens, k, vocab_size, dla}
    _vocab = traitlets.List(traitlets.Unicode()).tag(sync=True)  # token texts that _lens.ids index
    _lens = traitlets.Dict().tag(sync=True)  # {ids: int32 [layer, pos, k], probs: float16 [layer, pos, k]}
    _norms = traitlets.Dict().tag(sync=True)  # float16 [1 + layer, pos]
    _target = traitlets.Dict().tag(sync=True)  # {} or {text, id, rank: int32 [layer, pos], prob: float16 [layer, pos]}

    def __init__(
        self,
        source: Any,
        prompt: str | None = None,
        *,
        target: int | str | None = None,
        batch_index: int = 0,
        k: int = 5,
        color: str | None = None,
        layer: int = 0,
        head: int = 0,
        token: int = -1,
        theme: str = "auto",
        height: int = 0,
        **unknown: Any,
    ) -> None:
        refuse_unknown(ResidualLens, unknown)
        tr = self._trace_of(source, prompt)
        if not 0 <= batch_index < tr.batch:
            raise ValueError(
                f"batch_index must be in 0..{tr.batch - 1} (the trace holds {tr.batch} prompts); got {batch_index}"
            )
        if not 1 <= k <= 20:
            raise ValueError(f"k must be in 1..20; got {k}")
        self._trace, self._b, self._k = tr, batch_index, k
        self._model = tr.model
        lens = lens_data(tr, batch_index, k)
        self._lensdata = lens
        self._has_dla = all(n in tr.names for n in DLA_NEEDS) and len(tr.layers) == tr.model.n_layers
        self._dla: dict[str, torch.Tensor] | None = None
        self._target_id: int | None = None
        self._top_ids: torch.Tensor | None = None
        self._norm_values = residual_norms(tr, batch_index)
        unique, index = torch.unique(lens.top_ids, return_inverse=True)
        self._vocab_ids = unique
        L, T = lens.top_ids.shape[:2]
        super().__init__(
            _tokens=[str(t) for t in lens.tokens],
            _info={
                "n_layers": L,
                "n_heads": tr.model.n_heads,
                "n_tokens": T,
                "k": k,
                "vocab_size": tr.model.vocab_size,
                "dla": self._has_dla,
                "norm_rows": ["embed"] * (self._norm_values.shape[0] - L) + [f"L{i}" for i in range(L)],
            },
            _vocab=tr.model.to_str_tokens(unique),
            _lens={
                "ids": encode_tensor(index, "int32").envelope(),
                "probs": encode_tensor(lens.top_probs, "float16").envelope(),
            },
            _norms=encode_tensor(self._norm_values, "float16").envelope(),
            layer=layer,
            head=head,
            token=token,
            theme=theme,
            height=height,
        )
        self.target = target
        if color is not None:
            self.color = color

    @staticmethod
    def _trace_of(source: Any, prompt: str | None) -> Any:
        source = resolve_source("ResidualLens", source, prompt, CAPTURE).trace
        if not hasattr(source, "model"):
            raise TypeError(f"ResidualLens takes a kit trace (from model.trace(...)); got {type(source).__name__}")
        if "resid_post" not in source.names or len(source.layers) != source.model.n_layers:
            raise ValueError(
                "ResidualLens needs a trace of every layer with 'resid_post' (and for the attribution waterfall "
                f"{', '.join(CAPTURE)}); trace with model.trace(prompt) or capture={CAPTURE}"
            )
        return source

    # --- target

    @property
    def target(self) -> str | None:
        """The target token's text (None: no target). Set it to a token text or id."""
        return None if self._target_id is None else self._model.to_str_tokens([self._target_id])[0]

    @target.setter
    def target(self, value: int | str | None) -> None:
        if value is None:
            self._target_id = None
            self._target = {}
            if self.color == "rank":
                self.color = "prob"
        else:
            tid = token_id(self._model, value)
            rank, prob = target_stats(self._trace, self._b, tid)
            self._target_id = tid
            self._target = {
                "text": self._model.to_str_tokens([tid])[0],
                "id": tid,
                "rank": encode_tensor(rank, "int32").envelope(),
                "prob": encode_tensor(prob, "float16").envelope(),
            }
        self._dla = None

    @traitlets.validate("color")
    def _check_color(self, proposal: traitlets.Bunch) -> str:
        if proposal["value"] == "rank" and getattr(self, "_target_id", None) is None:
            raise traitlets.TraitError('color="rank" needs a target token: set lens.target = " some token" first')
        return proposal["value"]

    # --- public views of the data

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    @property
    def n_layers(self) -> int:
        return int(self._info["n_layers"])

    @property
    def norms(self) -> torch.Tensor:
        """``[1 + layer, pos]``: residual-stream norm entering layer 0, then after each layer."""
        return self._norm_values.clone()

    def top_tokens(self, layer: int | None = None, pos: int | None = None) -> list[tuple[str, float]]:
        """The logit lens's top-k ``(token, probability)`` at a layer and position (default: the selection)."""
        layer = self.layer if layer is None else layer
        pos = (self.token if self.token >= 0 else len(self._tokens) - 1) if pos is None else pos
        ids = self._lensdata.top_ids[layer, pos]
        names = self._model.to_str_tokens(ids)
        return list(zip(names, self._lensdata.top_probs[layer, pos].tolist()))

    def dla_target_ids(self) -> torch.Tensor:
        """``[pos]``: the token each position's waterfall explains (the target, else the top prediction)."""
        n = len(self._tokens)
        if self._target_id is not None:
            return torch.full((n,), self._target_id, dtype=torch.long)
        if self._top_ids is None:
            self._top_ids = self._trace.logits[self._b, :n].argmax(-1).cpu()
        return self._top_ids

    def attribution(self, pos: int | None = None) -> dict[str, torch.Tensor]:
        """Direct logit attribution at ``pos`` (default: the selected token, else the last):
        ``embed``, ``heads[layer, head]``, ``attn_bias[layer]``, ``mlps[layer]``, ``bias``, ``total``."""
        if not self._has_dla:
            raise ValueError(f"this trace lacks what attribution needs: capture {CAPTURE} at every layer")
        pos = (self.token if self.token >= 0 else len(self._tokens) - 1) if pos is None else pos
        if self._dla is None:
            self._dla = dla_by_position(self._trace, self._b, self.dla_target_ids())
        return {name: t[pos] for name, t in self._dla.items()}

    # --- KitWidget hooks

    def _limits(self) -> dict[str, int]:
        info = getattr(self, "_info", None)
        if not info:
            return {}
        return {"layer": info["n_layers"], "head": info["n_heads"], "token": info["n_tokens"]}

    def _dla_key(self, pos: int) -> str:
        """Blob key of a position's waterfall: ``dla/<pos>`` for the top predictions, ``dla/<pos>@<id>`` for a target."""
        return f"dla/{pos}" + ("" if self._target_id is None else f"@{self._target_id}")

    def _blob_keys(self) -> list[str]:
        return [self._dla_key(p) for p in range(len(self._tokens))] if self._has_dla else []

    def _make_blob(self, key: str) -> Encoded:
        kind, _, index = key.partition("/")
        pos_text, _, _ = index.partition("@")
        if kind != "dla" or not pos_text.isdigit() or int(pos_text) >= len(self._tokens) or not self._has_dla:
            raise KeyError(key)
        if key != self._dla_key(int(pos_text)):
            raise KeyError(f"{key} (the target has changed since)")
        pos = int(pos_text)
        parts = self.attribution(pos)
        flat = torch.cat([parts[n].reshape(-1) for n in ("embed", "heads", "attn_bias", "mlps", "bias", "total")])
        enc = encode_tensor(flat, "float16")
        tid = int(self.dla_target_ids()[pos])
        meta = {**enc.meta, "target": self._model.to_str_tokens([tid])[0], "target_id": tid, "pos": pos}
        return Encoded(meta, enc.data)

    def __repr__(self) -> str:
        T = len(self._tokens)
        shown = " ".join(visible_token(t) for t in self._tokens[:8]) + (" …" if T > 8 else "")
        target = f", target {visible_token(self.target)!s}" if self.target is not None else ""
        return f"ResidualLens({self.n_layers} layers x {T} tokens: {shown}{target}; layer={self.layer}, token={self.token})"
