"""Dashboard's static page: linked views keep following each other with no kernel and no network."""

from __future__ import annotations

import pytest
from browser_helpers import grid_cell_point

from kit.analysis import activation_patching
from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens

PROMPT = "The cat sat on the mat"
CORRUPT = "The model sat on the mat"


@pytest.fixture(scope="module")
def views(tiny_models):
    model = tiny_models["gpt2"]
    tr = model.trace(PROMPT)
    ids = model.to_tokens(PROMPT)
    other = model.to_tokens(CORRUPT) if len(model.to_tokens(CORRUPT)) == len(ids) else ids.flip(0)
    result = activation_patching(model, ids, other, answer=int(ids[-1]))
    return {
        "lens": ResidualLens(tr),
        "heatmap": PatchingHeatmap(result),
        "viewer": AttentionViewer(tr),
        "circuit": CircuitDiagram(tr),
        "probe": NeuronProbe(model, [PROMPT], layer=0),
    }


def test_a_click_in_one_view_moves_the_others_offline(offline, views):
    v = views
    d = Dashboard(v["lens"], v["heatmap"], v["viewer"], v["circuit"], v["probe"])
    o = offline()
    roots = o.open(d.to_html(), count=5)
    lens, heat, viewer, circuit, probe = (roots.nth(i) for i in range(5))
    grid = lens.locator(".tmk-cellgrid")
    grid.click(position=grid_cell_point(grid, 2, 3))
    for root in (heat, viewer):
        root.and_(o.page.locator('[data-layer="2"]')).wait_for()
    assert heat.get_attribute("data-token") == "3" and viewer.get_attribute("data-locked") == "3"
    circuit.and_(o.page.locator('[data-node="L2.H0"]')).wait_for()
    assert probe.locator("select").input_value() == "2"
    # a head picked in the attention viewer reaches the lens and the circuit
    viewer.locator('.tmk-thumb[data-layer="1"][data-head="3"]').click()
    circuit.and_(o.page.locator('[data-node="L1.H3"]')).wait_for()
    lens.and_(o.page.locator('[data-layer="1"][data-head="3"]')).wait_for()
    # and a cell of the heatmap moves the lens's waterfall
    hg = heat.locator(".tmk-cellgrid")
    hg.click(position=grid_cell_point(hg, 0, 5))
    lens.and_(o.page.locator('[data-token="5"][data-wf-pos="5"]')).wait_for()
    assert o.errors == [] and o.remote_requests == []


def test_unlinked_views_on_one_page_stay_independent(offline, views):
    from kit.widgets import html_page

    o = offline()
    roots = o.open(html_page([views["lens"], views["heatmap"]]), count=2)
    grid = roots.nth(0).locator(".tmk-cellgrid")
    grid.click(position=grid_cell_point(grid, 2, 3))
    roots.nth(0).and_(o.page.locator('[data-token="3"]')).wait_for()
    assert roots.nth(1).get_attribute("data-token") == "-1"
