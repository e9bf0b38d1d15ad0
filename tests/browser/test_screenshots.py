"""A screenshot of each widget, taken by the browser harness (for the README).

Each test renders a widget from its to_html() page (network cut off), sets up an interaction
that shows what the widget is for, and saves a PNG of the widget alone. With
``TMK_SCREENSHOTS=docs/screenshots`` (``make screenshots``) the PNGs land in the repository;
otherwise in a temp folder, so the harness itself is tested on every run. The pictures come
from a shipped teaching model when one is installed (``facts-4l``), else from the tiny random
GPT-2 of the test fixtures.
"""

from __future__ import annotations

import struct

import pytest
from browser_helpers import grid_cell_point, save_screenshot

import kit
from kit.analysis import causal_trace, induction_scores, prev_token_scores
from kit.widgets import (
    AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens, TrainingScrubber,
)

PROMPT = "The capital of Veloria is"
SUBJECT = "Veloria"
TEXTS = [
    "The capital of Veloria is Mistport.",
    "Once upon a time there was a model.",
    "Attention heads move information between positions.",
    "Induction heads copy what came after.",
]


@pytest.fixture(scope="module")
def model(tiny_models):
    return kit.load("facts-4l", device="cpu") if "facts-4l" in kit.models() else tiny_models["gpt2"]


@pytest.fixture(scope="module")
def trace(model):
    return model.trace(PROMPT)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    return struct.unpack(">II", data[16:24])


def shoot(offline, tmp_path, widget, name, prepare=None, min_size=(300, 150)):
    o = offline()
    root = o.open(widget.to_html())
    if prepare:
        prepare(o, root)
    o.page.mouse.move(1, 1)  # no hover effects in the picture
    path = save_screenshot(root, name, tmp_path)
    width, height = png_size(path)
    assert width >= min_size[0] and height >= min_size[1], f"{name}: {width}x{height} looks empty"
    assert o.errors == [] and o.remote_requests == []
    return path


def test_attention_viewer(offline, tmp_path, model, trace):
    scores = {"induction": induction_scores(model), "prev_token": prev_token_scores(model)}
    w = AttentionViewer(trace, scores=scores, layer=min(1, model.n_layers - 1), head=1, token=len(trace.tokens[0]) - 1)
    shoot(offline, tmp_path, w, "attention_viewer")


def test_residual_lens(offline, tmp_path, model, trace):
    target = model.to_str_tokens(trace.logits[0, -1].argmax()[None])[0]
    w = ResidualLens(trace, target=target)

    def prepare(o, root):
        grid = root.locator(".tmk-cellgrid")
        last = len(w.tokens) - 1
        grid.click(position=grid_cell_point(grid, w.n_layers - 1, last))
        root.and_(o.page.locator(f'[data-wf-pos="{last}"]')).wait_for()
        root.locator('.tmk-wf-attn[data-layer="1"]').click()

    shoot(offline, tmp_path, w, "residual_lens", prepare)


def test_patching_heatmap(offline, tmp_path, model):
    traces = {k: causal_trace(model, PROMPT, SUBJECT, kind=k, samples=3) for k in ("resid", "mlp", "attn")}
    w = PatchingHeatmap(traces)
    layer, pos = traces["resid"].peak()

    def prepare(o, root):
        grid = root.locator(".tmk-cellgrid")
        grid.click(position=grid_cell_point(grid, layer, pos))
        root.and_(o.page.locator(f'[data-layer="{layer}"][data-token="{pos}"]')).wait_for()

    shoot(offline, tmp_path, w, "patching_heatmap", prepare)


def test_neuron_probe(offline, tmp_path, model):
    probe = NeuronProbe(model, TEXTS, layer=model.n_layers - 1, neuron=0)
    probe.neuron = int(probe._layer_acts(probe.layer).acts.abs().max(0).values.argmax())  # the most active one
    probe.clamp = 3.0

    def prepare(o, root):
        root.and_(o.page.locator('[data-clamp-shown^="clamp/"]')).wait_for()

    shoot(offline, tmp_path, probe, "neuron_probe", prepare)


def test_circuit_diagram(offline, tmp_path, trace):
    w = CircuitDiagram(trace, threshold=0.05)
    layer, head = divmod(int(w.heads.abs().argmax()), w.heads.shape[1])
    w.node = f"L{layer}.H{head}"

    def prepare(o, root):
        root.locator(f'.tmk-details[data-pattern="{layer}/{head}"]').wait_for()

    shoot(offline, tmp_path, w, "circuit_diagram", prepare)


def test_dashboard(offline, tmp_path, model, trace):
    traces = causal_trace(model, PROMPT, SUBJECT, samples=3)
    d = Dashboard(PatchingHeatmap(traces), ResidualLens(trace), columns=1)
    o = offline()
    roots = o.open(d.to_html(), count=2)
    grid = roots.nth(0).locator(".tmk-cellgrid")
    grid.click(position=grid_cell_point(grid, 1, len(trace.tokens[0]) - 1))
    roots.nth(1).and_(o.page.locator(f'[data-wf-pos="{len(trace.tokens[0]) - 1}"][data-layer="1"]')).wait_for()
    o.page.mouse.move(1, 1)
    path = save_screenshot(o.page.locator(".tmk-page"), "dashboard", tmp_path)
    assert png_size(path)[1] > png_size(path)[0] / 3


def test_training_scrubber(offline, tmp_path):
    from kit.train import TrainingHistory
    from tests.zoo import ZOO

    history = TrainingHistory.load(ZOO / "induction-2l" / "training_history.safetensors")
    best = [float(s[1].max()) for s in history.induction]
    at = next(i for i, v in enumerate(best) if v >= 0.5)  # the phase change: the induction head appears
    head = int(history.induction[at][1].argmax())
    w = TrainingScrubber(history, step=history.steps[at], layer=1, head=head)
    shoot(offline, tmp_path, w, "training_scrubber", min_size=(600, 300))
