"""PatchingHeatmap, Python side: inputs, values shown, selection limits, export."""

import json
import re

import pytest
import torch
import traitlets

from kit.analysis import CausalTrace, PatchingResult
from kit.widgets import PatchingHeatmap
from kit.widgets._wire import decode_tensor

CLEAN = ["The", " Eiffel", " Tower", " is", " in"]
CORRUPT = ["The", " Colosseum", " Tower", " is", " in"]


def patching(kind="resid", scores=None):
    scores = (
        scores
        if scores is not None
        else torch.tensor([[0.1, 0.9, 0.1, 0.1, 0.1], [0.1, 0.5, 0.1, 0.1, 0.6], [0.1, 0.1, 0.1, 0.1, 0.9]])
    )
    return PatchingResult(
        scores, clean=0.9, corrupted=0.1, kind=kind, metric="prob", clean_tokens=CLEAN, corrupted_tokens=CORRUPT
    )


def causal(kind="resid"):
    scores = torch.full((3, 5), 0.05)
    scores[0, 1] = 0.4
    return CausalTrace(scores, clean=0.5, corrupted=0.05, kind=kind, window=1, subject=[1, 2], tokens=CLEAN, answer=7)


def shown(widget, name=None):
    env = widget._grids[name or widget.view]["values"]
    return decode_tensor(env, env["data"])


def test_patching_shows_the_share_of_the_gap_restored():
    w = PatchingHeatmap(patching())
    assert torch.allclose(w.values, (patching().scores - 0.1) / 0.8)
    assert torch.allclose(shown(w), w.values, atol=2e-3)
    g = w._grids[""]
    assert g["label"] == "share of the clean-corrupted gap restored"
    assert (g["clean"], g["corrupted"], g["metric"]) == (0.9, 0.1, "p(answer)")
    assert w._labels["tokens"] == CLEAN and w._labels["corrupted"] == CORRUPT


def test_causal_tracing_shows_the_effect_and_marks_the_subject():
    w = PatchingHeatmap(causal())
    assert torch.allclose(w.values, causal().scores - 0.05)
    assert w._labels["subject"] == [1, 2]
    assert w._grids[""]["label"] == "change of the metric"


@pytest.mark.parametrize("value", ["normalized", "effect", "raw"])
def test_value_picks_what_a_cell_shows(value):
    r = patching()
    expected = {"normalized": (r.scores - 0.1) / 0.8, "effect": r.scores - 0.1, "raw": r.scores}[value]
    assert torch.allclose(PatchingHeatmap(r, value=value).values, expected)


def test_the_colour_scale_is_symmetric_up_to_the_largest_magnitude():
    r = patching(scores=torch.tensor([[0.1, -0.7], [0.3, 0.5]]))
    w = PatchingHeatmap(r, tokens=["a", "b"], corrupted_tokens=["a", "c"])
    assert w._grids[""]["vmax"] == pytest.approx(float(w.values.abs().max()))
    assert PatchingHeatmap(r, tokens=["a", "b"], corrupted_tokens=["a", "c"], vmax=2.0)._grids[""]["vmax"] == 2.0


def test_tiny_values_keep_their_precision_on_the_wire():
    grid = torch.tensor([[1e-7, -3e-7], [2.5e-7, 0.0]])
    w = PatchingHeatmap(grid, tokens=["a", "b"])
    assert torch.allclose(shown(w), grid, rtol=2e-3, atol=0)


def test_several_results_share_the_view_switch():
    w = PatchingHeatmap({"resid": causal("resid"), "mlp": causal("mlp"), "attn": causal("attn")})
    assert w.names == ["resid", "mlp", "attn"] and w.view == "resid"
    w.view = "mlp"
    with pytest.raises(traitlets.TraitError, match="resid"):
        w.view = "heads"
    with pytest.raises(ValueError, match="same shape"):
        PatchingHeatmap({"a": causal(), "b": torch.zeros(2, 5)})


def test_a_heads_grid_has_heads_as_columns():
    r = PatchingResult(
        torch.rand(3, 4),
        clean=1.0,
        corrupted=0.0,
        kind="heads",
        metric="logit_diff",
        clean_tokens=CLEAN,
        corrupted_tokens=CORRUPT,
    )
    w = PatchingHeatmap(r)
    assert w._labels["axis"] == "head" and w._labels["tokens"] == ["H0", "H1", "H2", "H3"]
    assert w._grids[""]["metric"] == "logit difference"
    w.head = 3
    with pytest.raises(traitlets.TraitError, match="0..3"):
        w.head = 4


def test_selection_is_validated_and_read_back():
    w = PatchingHeatmap(patching())
    w.layer, w.token = 2, 4
    assert w.selected_value() == pytest.approx(float(w.values[2, 4]))
    w.token = -1
    assert w.selected_value() is None
    with pytest.raises(traitlets.TraitError, match="0..4"):
        w.token = 5
    with pytest.raises(traitlets.TraitError, match="0..2"):
        w.layer = 3


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(TypeError, match="PatchingResult"):
        PatchingHeatmap("not a result")
    with pytest.raises(ValueError, match="3 tokens"):
        PatchingHeatmap(torch.zeros(2, 4), tokens=["a", "b", "c"])
    with pytest.raises(ValueError, match="value="):
        PatchingHeatmap(patching(), value="percent")
    with pytest.raises(ValueError, match="NaN"):
        PatchingHeatmap(torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError, match="Did you mean 'vmax'"):
        PatchingHeatmap(patching(), vmx=1)


def test_values_travel_as_bytes_and_export_inlines_them():
    w = PatchingHeatmap(patching())
    env = w._grids[""]["values"]
    assert isinstance(env["data"], bytes) and env["dtype"] == "float16"
    page = w.to_html()
    payload = json.loads(re.search(r'<script type="application/vnd.tmk.widget\+json">(.*?)</script>', page).group(1))
    assert payload["module"] == "patching_heatmap"
    assert ["_grids", "", "values", "data"] in payload["buffer_paths"]
    assert "0.9" not in json.dumps(payload["state"]["_grids"][""]["values"])  # no JSON numbers for the grid


def test_repr_reads_well():
    text = repr(PatchingHeatmap(patching()))
    assert text.startswith("PatchingHeatmap(Activation patching: 3 layers x 5 positions")
    assert "·Eiffel" in text


def test_on_a_real_model(tiny_models):
    from kit.analysis import activation_patching, causal_trace

    model = tiny_models["gpt2"]
    ids = model.to_tokens("The cat sat on the mat")
    other = ids.clone()
    other[1] = (other[1] + 1) % model.vocab_size
    r = activation_patching(model, ids, other, answer=int(ids[-1]))
    w = PatchingHeatmap(r)
    assert w.values.shape == (model.n_layers, len(ids)) and w._labels["tokens"] == model.to_str_tokens(ids)
    ct = causal_trace(model, "The cat sat on the mat", [1, 2], samples=2)
    assert PatchingHeatmap(ct)._labels["subject"] == [1, 2]
