"""Dashboard, Python side: which traits link, refusals, and the static page's links."""

import json
import re

import ipywidgets
import pytest

from kit.widgets._html import grid_columns
import torch
from widget_fakes import FakeTrace

from kit.analysis import PatchingResult
from kit.widgets import AttentionViewer, Dashboard, PatchingHeatmap

WORDS = ["The", " cat", " sat", " on"]


def heatmap(n_layers=2, n_tokens=4):
    return PatchingHeatmap(
        PatchingResult(torch.rand(n_layers, n_tokens), 1.0, 0.0, "resid", "prob", WORDS[:n_tokens], WORDS[:n_tokens])
    )


def viewer(n_layers=2, n_heads=3, words=WORDS):
    return AttentionViewer(FakeTrace([words], n_layers=n_layers, n_heads=n_heads))


def test_views_with_the_same_ranges_are_jslinked():
    a, b, c = viewer(), heatmap(), viewer()
    d = Dashboard(a, b, c)
    assert d.links == [
        ("AttentionViewer#0", "layer", "PatchingHeatmap#1"),
        ("AttentionViewer#0", "layer", "AttentionViewer#2"),
        ("AttentionViewer#0", "head", "AttentionViewer#2"),  # a position grid has no heads
        ("AttentionViewer#0", "token", "PatchingHeatmap#1"),
        ("AttentionViewer#0", "token", "AttentionViewer#2"),
    ]
    assert all(type(x).__name__ == "Link" for x in d._jslinks) and len(d._jslinks) == 5
    first = d._jslinks[0]
    assert first.source == (a, "layer") and first.target == (b, "layer")
    assert list(d.children) == [a, b, c] and d.views == [a, b, c]


def test_linked_views_start_in_agreement():
    a, b = viewer(), heatmap()
    a.layer, a.token, b.layer = 1, 2, 0
    Dashboard(a, b)
    assert (b.layer, b.token) == (1, 2)


def test_link_chooses_the_traits():
    d = Dashboard(viewer(), heatmap(), link=["layer"])
    assert {t for _, t, _ in d.links} == {"layer"}
    with pytest.raises(ValueError, match="link takes some of"):
        Dashboard(viewer(), heatmap(), link=["neuron"])


def test_views_that_disagree_on_a_range_are_refused_with_a_way_out():
    with pytest.raises(ValueError, match=r"cannot link 'token'.*0\.\.3.*0\.\.2.*link=\['layer', 'head', 'step'\]"):
        Dashboard(viewer(), viewer(words=WORDS[:3]))
    d = Dashboard(viewer(), viewer(words=WORDS[:3]), link=["layer", "head"])
    assert len(d.links) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        Dashboard()
    with pytest.raises(TypeError, match="kit widgets"):
        Dashboard(viewer(), ipywidgets.Button())
    v = viewer()
    with pytest.raises(ValueError, match="twice"):
        Dashboard(v, v)
    with pytest.raises(ValueError, match="columns"):
        Dashboard(v, columns=0)
    with pytest.raises(TypeError, match="Did you mean 'columns'"):
        Dashboard(v, colums=2)


def test_a_list_of_views_is_accepted_and_repr_reads_well():
    d = Dashboard([viewer(), heatmap()], columns=1)
    assert repr(d) == "Dashboard(AttentionViewer, PatchingHeatmap; linked: layer, token)"
    assert d.layout.grid_template_columns == grid_columns(1)


def test_the_static_page_carries_the_links():
    a, b = viewer(), heatmap()
    page = Dashboard(a, b).to_html()
    ids = re.findall(r'<div id="(tmk-[0-9a-f]+-\d)-view"', page)
    links = json.loads(re.search(r'<script type="application/vnd.tmk.links\+json">(.*?)</script>', page).group(1))
    assert links == [[ids[0], "layer", ids[1]], [ids[0], "token", ids[1]]]
    assert grid_columns(2) in page and d_columns_differ()


def d_columns_differ() -> bool:
    return grid_columns(1) != grid_columns(2)


def test_columns_wrap_instead_of_growing_wider_than_the_page():
    two = grid_columns(2)
    assert "max-content" not in two and "auto-fit" in two and "420px" in two
