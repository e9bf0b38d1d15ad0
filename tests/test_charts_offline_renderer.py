"""Charts of the kit render offline: drawn in the kernel to SVG and PNG, no script from a CDN, and a
renderer the user chose is kept."""

from __future__ import annotations

import json

import altair as alt
import pytest
import torch

import kit._altair as offline
from kit import charts


@pytest.fixture
def renderer():
    before = alt.renderers.active
    yield
    alt.renderers.enable(before)
    offline._done = False


def test_a_kit_chart_is_an_svg_and_a_png_with_no_cdn(renderer):
    chart = charts.head_heatmap(torch.tensor([[0.1, 0.9], [0.5, 0.2]]), "scores")
    offline.offline_charts(force=True)
    data, meta = chart._repr_mimebundle_()
    assert set(data) == {"image/svg+xml", "image/png"}
    assert data["image/svg+xml"].lstrip().startswith("<svg") and "0.90" in data["image/svg+xml"]
    assert data["image/png"][:4] == b"\x89PNG" and meta["image/png"]["width"] > 50
    assert "cdn" not in json.dumps(data["image/svg+xml"]) and "<script" not in data["image/svg+xml"]


def test_a_renderer_the_user_enabled_is_kept(renderer):
    alt.renderers.enable("json")
    offline._done = False
    assert offline.offline_charts() == "json"
    alt.renderers.enable("default")
    offline._done = False
    assert offline.offline_charts() == offline.RENDERER
