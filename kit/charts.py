"""Altair charts of analysis results: small grids (layers x heads, layers x positions) and bars.

Importing this module switches altair to rendering SVG in the kernel (see :mod:`kit._altair`), so
that these charts, and any other altair chart in the notebook, show with no network in every
host and in exported pages; a renderer you enabled yourself is kept.

Every chart here has far fewer than altair's 5,000-row default limit: a grid is ``layers x heads``
or ``layers x positions``. Dense attention patterns belong in :class:`kit.widgets.AttentionViewer`.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import torch

from ._altair import offline_charts

offline_charts()

__all__ = ["offline_charts", "head_heatmap", "layer_pos_heatmap", "causal_trace_chart", "patching_chart", "logit_lens_chart", "bars"]


def _label(tokens: Sequence[str]) -> list[str]:
    """Unique, readable x labels: ``"3: Paris"`` (whitespace made visible)."""
    return [f"{i}:{t.replace(' ', '·').replace(chr(10), '↵')}" for i, t in enumerate(tokens)]


def head_heatmap(scores: torch.Tensor, title: str = "", scheme: str = "viridis") -> alt.Chart:
    """``scores[layer, head]`` as a heatmap with the value printed in each cell."""
    L, H = scores.shape
    rows = [{"layer": l, "head": h, "score": round(float(scores[l, h]), 3)} for l in range(L) for h in range(H)]
    base = alt.Chart(alt.Data(values=rows)).encode(x="head:O", y="layer:O")
    rect = base.mark_rect().encode(color=alt.Color("score:Q", scale=alt.Scale(scheme=scheme)),
                                   tooltip=["layer:O", "head:O", "score:Q"])
    text = base.mark_text(fontSize=10).encode(text=alt.Text("score:Q", format=".2f"))
    return (rect + text).properties(title=title, width=max(120, 28 * H), height=max(60, 24 * L))


def layer_pos_heatmap(grid: torch.Tensor, tokens: Sequence[str], title: str = "", diverging: bool = False,
                      value: str = "value") -> alt.Chart:
    """``grid[layer, pos]`` with token labels on the x axis (diverging colours centred on 0 if asked)."""
    L, T = grid.shape
    labels = _label(tokens)
    rows = [{"layer": l, "token": labels[p], value: round(float(grid[l, p]), 4)} for l in range(L) for p in range(T)]
    scale = alt.Scale(scheme="redblue", domainMid=0, reverse=True) if diverging else alt.Scale(scheme="purples")
    return alt.Chart(alt.Data(values=rows)).mark_rect().encode(
        x=alt.X("token:N", sort=labels, title=None), y=alt.Y("layer:O", sort="descending"),
        color=alt.Color(f"{value}:Q", scale=scale), tooltip=["layer:O", "token:N", f"{value}:Q"],
    ).properties(title=title, width=max(200, 34 * T), height=max(80, 22 * L))


def causal_trace_chart(ct) -> alt.Chart:
    """A :class:`kit.analysis.CausalTrace` as a layer x token heatmap of restored p(answer)."""
    tokens = [t + ("*" if i in ct.subject else "") for i, t in enumerate(ct.tokens)]
    title = f"restore {ct.kind} (window {ct.window}): p(answer), clean {ct.clean:.2f}, corrupted {ct.corrupted:.2f}"
    return layer_pos_heatmap(ct.scores, tokens, title=title, value="p")


def patching_chart(res) -> alt.Chart:
    """A :class:`kit.analysis.PatchingResult`, normalised (0 = corrupted, 1 = clean), diverging colours."""
    if res.kind == "heads":
        return head_heatmap(res.normalized, title=f"patching heads ({res.metric}, normalised)", scheme="redblue")
    return layer_pos_heatmap(res.normalized, res.clean_tokens, title=f"patching {res.kind} ({res.metric}, normalised)",
                             diverging=True, value="restored")


def logit_lens_chart(lens, tokens: Sequence[str], batch_index: int = 0) -> alt.Chart:
    """Top-1 token of every layer at every position, coloured by its probability."""
    L, _, T, _ = lens.top_ids.shape
    labels = _label(tokens)
    rows = [{"layer": l, "token": labels[p], "prediction": lens.top_tokens[l][batch_index][p][0],
             "p": round(float(lens.top_probs[l, batch_index, p, 0]), 3)} for l in range(L) for p in range(len(tokens))]
    base = alt.Chart(alt.Data(values=rows)).encode(x=alt.X("token:N", sort=labels, title=None),
                                                   y=alt.Y("layer:O", sort="descending"))
    rect = base.mark_rect().encode(color=alt.Color("p:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])),
                                   tooltip=["layer:O", "token:N", "prediction:N", "p:Q"])
    text = base.mark_text(fontSize=10).encode(text="prediction:N")
    return (rect + text).properties(title="logit lens: top prediction per layer", width=max(200, 48 * T),
                                    height=max(80, 24 * L))


def bars(values: dict[str, float], title: str = "", value: str = "value") -> alt.Chart:
    """A horizontal bar chart of named values (e.g. direct effects), sorted as given."""
    rows = [{"name": k, value: round(float(v), 4)} for k, v in values.items()]
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        y=alt.Y("name:N", sort=list(values), title=None), x=f"{value}:Q",
        color=alt.condition(f"datum.{value} > 0", alt.value("#3b7dd8"), alt.value("#d8553b")),
        tooltip=["name:N", f"{value}:Q"],
    ).properties(title=title, width=320)
