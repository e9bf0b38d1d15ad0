"""AttentionViewer: every head of every layer at a glance, one head up close."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import traitlets

from ..names import check_index
from ._base import STATIC, KitWidget
from ._html import html_page
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

    What travels: thumbnails of every head (max-pooled to at most 64 x 64) up front; the zoomed
    head's full pattern is fetched from Python when it is shown, one head at a time (about
    ``n * (n + 1) / 2`` bytes before compression: 2.1 MB at 2048 tokens), never a whole layer.
    ``to_html(path, heads=[(layer, head), ...])`` exports only those heads' full patterns.
    """

    _esm = STATIC / "attention_viewer.js"
    _module = "attention_viewer"
    _export_hint = "viewer.to_html(path, heads=[(layer, head), ...]) inlines only those heads' full patterns"

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
        refuse_unknown(AttentionViewer, unknown)
        attention = from_source(source, prompt, batch_index)
        self._attention = attention
        self._score_tensors = check_scores(scores, attention.n_layers, attention.n_heads)
        thumbs = thumbnails(attention.patterns)  # [layer, head, s, s]; the full patterns when short
        self._thumbs_are_full = thumbs.shape[-1] == len(attention.tokens)
        self._export_heads: list[tuple[int, int]] | None = None
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
        heads = self._export_heads
        if heads is None:
            heads = [(layer, head) for layer in range(self.n_layers) for head in range(self.n_heads)]
        return [f"head/{layer}/{head}" for layer, head in heads]

    def _make_blob(self, key: str) -> Encoded:
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "head" or not (parts[1].isdigit() and parts[2].isdigit()):
            raise KeyError(key)
        layer, head = int(parts[1]), int(parts[2])
        if layer >= self.n_layers or head >= self.n_heads:
            raise KeyError(key)
        p = self._attention.patterns[layer][head]  # [query, key]
        return encode_tensor(p, "uint8", layout="tril" if is_causal(p) else "dense")

    def to_html(self, path: str | Path | None = None, *, heads: Sequence[tuple[int, int]] | None = None,
                max_bytes: int | None = None) -> str:
        """One self-contained HTML page (see :meth:`KitWidget.to_html`).

        ``heads``: the ``(layer, head)`` pairs whose full patterns the page holds (default: all);
        every thumbnail is always there, and zooming a head that was left out says so. Long
        prompts need it: at 2048 tokens each head takes about 2 MB.
        """
        if heads is not None:
            chosen = []
            for pair in heads:
                if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                    raise ValueError(f"heads takes (layer, head) pairs, e.g. heads=[(0, 1), (2, 3)]; got {pair!r}")
                layer = check_index(pair[0], self.n_layers, "layer")
                chosen.append((layer, check_index(pair[1], self.n_heads, "head")))
            heads = chosen
        self._export_heads = heads
        try:
            return html_page([self], path=path, max_bytes=max_bytes)
        finally:
            self._export_heads = None

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
