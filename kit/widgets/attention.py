"""AttentionViewer: every head of every layer at a glance, one head up close."""

from __future__ import annotations

from typing import Any

import torch
import traitlets

from ._base import STATIC, KitWidget
from ._options import refuse_unknown
from ._patterns import check_scores, from_source, thumbnails
from ._tokens import visible_token
from ._wire import Encoded, encode_tensor, is_causal

__all__ = ["AttentionViewer"]


class AttentionViewer(KitWidget):
    """Attention patterns of one prompt: all layers x heads as thumbnails; click (or Enter)
    zooms one head into a query x key heatmap; hovering a token shows what it attends to and
    what attends to it; a click locks the token.

    ``AttentionViewer(trace)`` or ``AttentionViewer(model, prompt)``; ``batch_index`` picks a
    prompt of a batched trace; ``scores={"induction": Tensor[layer, head], "prev_token": ...}``
    shows head scores. The selection is synced both ways: read or set ``viewer.layer``,
    ``viewer.head`` and ``viewer.token`` (-1: none).
    """

    _esm = STATIC / "attention_viewer.js"
    _module = "attention_viewer"

    _tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _shape = traitlets.Dict().tag(sync=True)  # {n_layers, n_heads, n_tokens}
    _thumbs = traitlets.Dict().tag(sync=True)  # envelope [layer, head, s, s] uint8
    _scores = traitlets.Dict().tag(sync=True)  # {name: envelope [layer, head] float16}

    def __init__(
        self,
        source: Any,
        prompt: str | None = None,
        *,
        batch_index: int = 0,
        scores: dict[str, torch.Tensor] | None = None,
        layer: int = 0,
        head: int = 0,
        token: int = -1,
        theme: str = "auto",
        height: int = 0,
        **unknown: Any,
    ) -> None:
        refuse_unknown(
            "AttentionViewer",
            unknown,
            ["prompt", "batch_index", "scores", "layer", "head", "token", "theme", "height"],
        )
        attention = from_source(source, prompt, batch_index)
        self._attention = attention
        self._score_tensors = check_scores(scores, attention.n_layers, attention.n_heads)
        thumbs = thumbnails(attention.patterns)  # [layer, head, s, s]; the full patterns when short
        self._thumbs_are_full = thumbs.shape[-1] == len(attention.tokens)
        super().__init__(
            _tokens=attention.tokens,
            _shape={"n_layers": attention.n_layers, "n_heads": attention.n_heads, "n_tokens": len(attention.tokens)},
            _thumbs=encode_tensor(thumbs, "uint8", layout="tril" if is_causal(thumbs) else "dense").envelope(),
            _scores={name: encode_tensor(t, "float16").envelope() for name, t in self._score_tensors.items()},
            layer=layer,
            head=head,
            token=token,
            theme=theme,
            height=height,
        )

    # --- public, read-only views of the data

    @property
    def tokens(self) -> list[str]:
        """The prompt's tokens as text."""
        return list(self._attention.tokens)

    @property
    def n_layers(self) -> int:
        return self._attention.n_layers

    @property
    def n_heads(self) -> int:
        return self._attention.n_heads

    @property
    def scores(self) -> dict[str, torch.Tensor]:
        """Head scores shown by the viewer, {name: [layer, head]}."""
        return dict(self._score_tensors)

    def pattern(self, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """[query, key] attention of a head (default: the selected one)."""
        layer = self.layer if layer is None else layer
        head = self.head if head is None else head
        return self._attention.patterns[layer][head]

    # --- KitWidget hooks

    def _limits(self) -> dict[str, int]:
        attention = getattr(self, "_attention", None)
        if attention is None:
            return {}
        return {"layer": attention.n_layers, "head": attention.n_heads, "token": len(attention.tokens)}

    def _blob_keys(self) -> list[str]:
        if self._thumbs_are_full:  # short prompts: the thumbnails already hold every pattern
            return []
        return [f"layer/{layer}" for layer in range(self.n_layers)]

    def _make_blob(self, key: str) -> Encoded:
        kind, _, index = key.partition("/")
        if kind != "layer" or not index.isdigit() or int(index) >= self.n_layers:
            raise KeyError(key)
        p = self._attention.patterns[int(index)]  # [head, query, key]
        return encode_tensor(p, "uint8", layout="tril" if is_causal(p) else "dense")

    def __repr__(self) -> str:
        shown = " ".join(visible_token(t) for t in self._attention.tokens[:8])
        more = " …" if len(self._attention.tokens) > 8 else ""
        known = f", scores: {', '.join(self._score_tensors)}" if self._score_tensors else ""
        plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
        return (
            f"AttentionViewer({plural(self.n_layers, 'layer')} x {plural(self.n_heads, 'head')}, "
            f"{plural(len(self._attention.tokens), 'token')}: "
            f"{shown}{more}{known}; layer={self.layer}, head={self.head}, token={self.token})"
        )
