"""Altair charts of analysis results: valid Vega-Lite with the data the result holds."""

from __future__ import annotations

import torch

from kit import analysis as A, charts


def _values(chart) -> list[dict]:
    spec = chart.to_dict()
    data = spec.get("data") or spec["layer"][0]["data"]
    return data["values"]


def test_head_heatmap_has_one_row_per_head():
    s = torch.arange(6.0).view(2, 3) / 10
    rows = _values(charts.head_heatmap(s, "scores"))
    assert len(rows) == 6 and rows[5] == {"layer": 1, "head": 2, "score": 0.5}


def test_causal_trace_chart_marks_subject_and_holds_the_grid(tiny_models):
    m = tiny_models["gpt2"]
    ct = A.causal_trace(m, "The cat sat on the mat.", " cat", samples=2)
    rows = _values(charts.causal_trace_chart(ct))
    assert len(rows) == ct.scores.numel()
    assert any(r["token"].endswith("*") for r in rows)
    assert max(r["p"] for r in rows) == round(float(ct.scores.max()), 4)


def test_patching_and_lens_charts_render_to_vega_lite(tiny_models):
    m = tiny_models["gpt2"]
    ids = m.to_tokens("The cat sat on the mat.")
    bad = ids.clone()
    bad[1] = 40
    res = A.activation_patching(m, ids, bad, answer=5)
    assert len(_values(charts.patching_chart(res))) == res.scores.numel()
    tr = m.trace("The cat sat", capture=["resid_post"])
    lens = A.logit_lens(tr, k=2)
    rows = _values(charts.logit_lens_chart(lens, tr.tokens[0]))
    assert len(rows) == m.n_layers * tr.n_pos
    assert charts.bars({"a": 1.0, "b": -2.0}).to_dict()["mark"]["type"] == "bar"
