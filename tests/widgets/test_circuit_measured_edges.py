"""CircuitDiagram(edges=...): measured head-to-head edges are drawn as given, not replaced by a heuristic."""

from __future__ import annotations

import pytest
import torch

import kit
from kit.widgets import CircuitDiagram
from kit.widgets._wire import decode_tensor


@pytest.fixture(scope="module")
def model():
    return kit.load("ioi-3l", device="cpu")


def test_measured_edges_are_drawn_as_given_strongest_first(model):
    heads = torch.zeros(model.n_layers, model.n_heads)
    heads[1, 1], heads[2, 2] = -0.4, -0.26
    edges = [((0, 1), (2, 2), -0.01), ((1, 1), (2, 2), -0.14)]
    w = CircuitDiagram(model, weights={"heads": heads}, edges=edges, edge_label="path patching effect")
    dec = lambda key: decode_tensor(w._edges[key], w._edges[key]["data"])  # noqa: E731
    pairs, weight = dec("pairs").reshape(-1, 2).tolist(), dec("weight").tolist()
    H = model.n_heads
    assert pairs == [[1 * H + 1, 2 * H + 2], [0 * H + 1, 2 * H + 2]]  # exactly these two, strongest first
    assert weight == pytest.approx([0.14, 0.01], abs=1e-3)
    assert w._graph["kinds"] == ["path"] and "path patching effect" in w._graph["edge_note"]
    default = CircuitDiagram(model, weights={"heads": heads})
    assert "edge_note" not in default._graph and default._graph["kinds"] == ["q", "k", "v"]


@pytest.mark.parametrize("bad,match", [
    ([((2, 2), (1, 1), 0.1)], "earlier layer"),
    ([((0, 9), (1, 1), 0.1)], "valid layers"),
    ([((0, 1), 0.1)], "each edge"),
])
def test_bad_edges_are_refused(model, bad, match):
    with pytest.raises(ValueError, match=match):
        CircuitDiagram(model, weights={"heads": torch.zeros(3, 4)}, edges=bad)
