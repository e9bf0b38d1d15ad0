"""AttentionViewer's Python side, exactly: refusals with their whole messages, what is left alone, edges.

Written against the mutants of the `widgets` group (benchmarks/mutation.py) that the older tests let
survive: kit/widgets/_patterns.py, attention.py, _source.py, _options.py and _tokens.py.
"""

from __future__ import annotations

import re

import pytest
import torch
from widget_fakes import FakeModel, FakeTrace

from kit.widgets import AttentionViewer
from kit.widgets._options import keywords_of, refuse_unknown
from kit.widgets._source import resolve_source

WORDS = ["The", " cat", " sat", " on", " the", " mat"]


# --- _options: refusing unknown keywords -----------------------------------------------------------

def test_an_unknown_keyword_is_refused_with_the_closest_name_and_every_valid_one():
    with pytest.raises(TypeError) as err:
        refuse_unknown("View", {"haed": 1}, valid=["layer", "head", "token"])
    assert str(err.value) == ("View() got an unexpected keyword argument 'haed'. Did you mean 'head'? "
                              "Valid keyword arguments: head, layer, token.")


def test_each_unknown_keyword_gets_its_own_line_and_no_hint_when_nothing_is_close():
    with pytest.raises(TypeError) as err:
        refuse_unknown("View", {"zzz": 1, "tokn": 2}, valid=["token"])
    assert str(err.value) == ("View() got an unexpected keyword argument 'zzz'. "
                              "View() got an unexpected keyword argument 'tokn'. Did you mean 'token'? "
                              "Valid keyword arguments: token.")


def test_a_class_gives_its_keyword_parameters_and_not_self_or_catch_alls():
    class View:
        def __init__(self, source, prompt=None, *args, layer=0, **unknown):
            pass

    assert keywords_of(View.__init__) == ["source", "prompt", "layer"]
    with pytest.raises(TypeError) as err:
        refuse_unknown(View, {"lyer": 1})
    assert str(err.value) == ("View() got an unexpected keyword argument 'lyer'. Did you mean 'layer'? "
                              "Valid keyword arguments: layer, prompt, source.")
    with pytest.raises(TypeError, match=r"^View\(\) got .*Valid keyword arguments: a, b\.$"):
        refuse_unknown(View, {"lyer": 1}, valid=["b", "a"])  # valid given: the class names only the owner
    refuse_unknown(View, {})  # nothing unknown: no error


def test_the_hint_needs_a_close_match_at_cutoff_six_tenths():
    with pytest.raises(TypeError) as err:  # 'hx' vs 'head': ratio 2*1/6 = 0.33 < 0.6: no hint
        refuse_unknown("V", {"hx": 1}, valid=["head"])
    assert "Did you mean" not in str(err.value)
    with pytest.raises(TypeError) as err:  # 'heax' vs 'head': 2*3/8 = 0.75
        refuse_unknown("V", {"heax": 1}, valid=["head"])
    assert "Did you mean 'head'?" in str(err.value)


# --- _source: what a view accepts -----------------------------------------------------------------

def test_a_model_and_a_prompt_are_traced_with_the_views_names():
    model = FakeModel()
    src = resolve_source("V", model, "a b", ("pattern", "resid_post"))
    assert model.calls == [("a b", ["pattern", "resid_post"])]
    assert src.model is model and src.trace.tokens == [["a", " b"]]


def test_a_prompt_with_something_that_is_not_a_model_is_refused_by_name():
    with pytest.raises(TypeError) as err:
        resolve_source("V", FakeTrace([WORDS]), "a b", ["pattern"])
    assert str(err.value) == ("V(model, prompt) needs a kit model (something with .trace(), from kit.load(...)) "
                              "as its first argument; got FakeTrace")


def test_a_trace_is_taken_as_it_is_with_its_model():
    tr = FakeTrace([WORDS])
    assert resolve_source("V", tr, None, ["pattern"]).trace is tr
    assert resolve_source("V", tr, None, ["pattern"]).model is None
    tr.model = FakeModel()
    assert resolve_source("V", tr, None, ["pattern"]).model is tr.model


def test_a_trace_of_chosen_heads_only_is_refused_where_every_head_is_shown():
    tr = FakeTrace([WORDS])
    tr.pattern_heads = [(0, 1)]
    with pytest.raises(ValueError) as err:
        resolve_source("V", tr, None, ["pattern"])
    assert str(err.value) == ("V shows every head, but this trace computed the patterns of heads [(0, 1)] only: "
                              "trace without heads= for this view")
    assert resolve_source("V", tr, None, ["resid_post"]).trace is tr  # a view without patterns takes it


def test_a_bare_model_is_refused_unless_the_view_draws_from_weights():
    model = FakeModel()
    with pytest.raises(TypeError) as err:
        resolve_source("V", model, None, ["pattern"])
    assert str(err.value) == 'V(model) needs a prompt too: V(model, "some text")'
    src = resolve_source("V", model, None, ["pattern"], model_alone="weights=")
    assert src.trace is None and src.model is model and model.calls == []


@pytest.mark.parametrize("alone, forms", [
    (None, "a trace (from model.trace(...)) or a model and a prompt"),
    ("weights=", "a trace (from model.trace(...)) or a model and a prompt, or a model with weights="),
], ids=["traces-only", "weights-too"])
def test_anything_else_is_refused_naming_every_form(alone, forms):
    with pytest.raises(TypeError) as err:
        resolve_source("V", 3.5, None, ["pattern"], model_alone=alone)
    assert str(err.value) == f"V takes {forms}; got float"


# --- _patterns: reading the patterns --------------------------------------------------------------

def test_batch_index_refusals_name_the_range_and_the_count():
    tr = FakeTrace([WORDS, WORDS[:3]])
    for bad in (2, -1):
        with pytest.raises(ValueError) as err:
            AttentionViewer(tr, batch_index=bad)
        assert str(err.value) == f"batch_index must be in 0..1 (the trace holds 2 prompts); got {bad}"
    assert AttentionViewer(tr, batch_index=1).tokens == WORDS[:3]  # the last one is valid


def test_non_finite_patterns_are_refused_naming_the_layer():
    tr = FakeTrace([WORDS], n_layers=3)
    tr._patterns[2][0, 1, 3, 0] = float("nan")
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr)
    assert str(err.value) == ("the attention pattern of layer 2 holds NaN or infinite values; the model overflowed "
                              "or its weights are broken (trace it in float32)")
    tr._patterns[2][0, 1, 3, 0] = float("inf")
    with pytest.raises(ValueError, match="layer 2 holds NaN or infinite"):
        AttentionViewer(tr)


def test_a_mask_that_disagrees_with_the_tokens_is_refused():
    tr = FakeTrace([WORDS, WORDS[:4]])
    tr.mask[1, 4] = True
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr, batch_index=1)
    assert str(err.value) == "trace.mask marks 5 real tokens for prompt 1 but trace.tokens has 4"


def test_the_thumbnails_are_the_patterns_themselves_up_to_64_tokens_and_max_pooled_above():
    from kit.widgets._patterns import thumbnails

    g = torch.Generator().manual_seed(0)
    short = [torch.rand(2, 64, 64, generator=g) for _ in range(3)]
    assert torch.equal(thumbnails(short), torch.stack(short))  # exactly 64: not pooled
    long = [torch.rand(2, 65, 65, generator=g)]
    out = thumbnails(long)
    assert out.shape == (1, 2, 64, 64)
    assert torch.equal(out[0], torch.nn.functional.adaptive_max_pool2d(long[0], 64))
    assert torch.equal(thumbnails(long, size=65)[0], long[0])
    assert thumbnails(long, size=10).shape == (1, 2, 10, 10)


def test_repr_names_layers_heads_tokens_scores_and_selection_exactly():
    tr = FakeTrace([["a", " b\n"]], n_layers=1, n_heads=1)
    assert repr(AttentionViewer(tr)) == "AttentionViewer(1 layer x 1 head, 2 tokens: a ·b↵; layer=0, head=0, token=-1)"
    words = [f" w{i}" for i in range(9)]
    v = AttentionViewer(FakeTrace([words], n_layers=2, n_heads=3), head=2, token=4,
                        scores={"induction": torch.zeros(2, 3), "prev_token": torch.ones(2, 3)})
    shown = " ".join("·" + w[1:] for w in words[:8])
    assert repr(v) == (f"AttentionViewer(2 layers x 3 heads, 9 tokens: {shown} …, scores: induction, prev_token; "
                       "layer=0, head=2, token=4)")
    one = AttentionViewer(FakeTrace([words[:8]], n_layers=2, n_heads=3))
    assert re.search(r"8 tokens: [^;]*·w7; layer", repr(one))  # exactly 8: no ellipsis


# --- AttentionViewer: the selected head, lazy blobs, export -----------------------------------------

def test_pattern_defaults_to_the_selected_layer_and_head():
    tr = FakeTrace([WORDS], n_layers=3, n_heads=4)
    v = AttentionViewer(tr, layer=2, head=1)
    assert torch.equal(v.pattern(), tr["pattern", 2][0, 1])
    v.layer, v.head = 1, 3
    assert torch.equal(v.pattern(), tr["pattern", 1][0, 3])
    assert torch.equal(v.pattern(head=0), tr["pattern", 1][0, 0]) and torch.equal(v.pattern(0), tr["pattern", 0][0, 3])


def _long_viewer(n_layers: int = 2, n_heads: int = 3) -> AttentionViewer:
    return AttentionViewer(FakeTrace([[f" t{i}" for i in range(70)]], n_layers=n_layers, n_heads=n_heads))


@pytest.mark.parametrize("key", ["head/2/0", "head/0/3", "heads/0/1", "head/0/1/2", "head/0", "head/-1/0",
                                 "head/a/0", "head/0/b"],
                         ids=["layer-past-end", "head-past-end", "wrong-kind", "too-long", "too-short", "negative",
                              "layer-not-a-number", "head-not-a-number"])
def test_blob_keys_that_name_no_head_are_a_key_error_naming_the_key(key):
    v = _long_viewer()
    with pytest.raises(KeyError) as err:
        v.blob(key)
    assert err.value.args == (key,)


def test_the_last_layer_and_head_have_blobs_of_one_byte_per_causal_entry():
    v = _long_viewer()
    enc = v.blob("head/1/2")
    assert enc.meta["dtype"] == "uint8" and enc.meta["layout"] == "tril" and enc.meta["shape"] == [70, 70]


def test_export_refuses_a_layer_or_head_out_of_range_by_name():
    v = _long_viewer()
    with pytest.raises(ValueError) as err:
        v.to_html(heads=[(2, 0)])
    assert "layer" in str(err.value) and "valid layers are 0..1" in str(err.value)
    with pytest.raises(ValueError) as err:
        v.to_html(heads=[(0, 3)])
    assert "valid heads are 0..2" in str(err.value)
    with pytest.raises(ValueError) as err:
        v.to_html(heads=[(0, 1, 2)])
    assert str(err.value) == "heads takes (layer, head) pairs, e.g. heads=[(0, 1), (2, 3)]; got (0, 1, 2)"


# --- how many layers a trace holds -------------------------------------------------------------------

def test_the_layer_count_comes_from_the_trace_or_its_model_before_probing():
    from kit.widgets._patterns import _count_layers

    tr = FakeTrace([WORDS], n_layers=2)
    assert _count_layers(tr) == 2  # probed
    tr.model = FakeModel(n_layers=5)
    assert _count_layers(tr) == 5  # the model says so: not probed
    tr.n_layers = 4
    assert _count_layers(tr) == 4  # the trace's own count first
    tr.n_layers = "4"
    assert _count_layers(tr) == 5  # not an int: the model's


def test_a_trace_whose_model_has_more_layers_than_captured_is_refused_not_cut_short():
    tr = FakeTrace([WORDS], n_layers=2)
    tr.model = FakeModel(n_layers=3)
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.1, got 2"):
        AttentionViewer(tr)


def test_a_trace_without_patterns_is_refused_saying_how_to_capture_them():
    class NoPatterns(FakeTrace):
        def __getitem__(self, key):
            raise ValueError("'pattern' was not captured")

    with pytest.raises(ValueError) as err:
        AttentionViewer(NoPatterns([WORDS]))
    assert str(err.value) == 'the trace holds no attention patterns: trace with capture=["pattern"]'


def test_probing_a_trace_that_answers_every_layer_stops_at_10000():
    from kit.widgets._patterns import _count_layers

    class Endless:
        def __getitem__(self, key):
            return torch.zeros(1)

    assert _count_layers(Endless()) == 10_000


# --- the mask, head scores and the view's name in messages -------------------------------------------

def test_a_trace_without_a_mask_is_read_as_unpadded():
    tr = FakeTrace([WORDS], n_layers=1, n_heads=2)
    del tr.mask
    v = AttentionViewer(tr)
    assert v.tokens == WORDS and torch.equal(v.pattern(0, 1), tr["pattern", 0][0, 1])


def test_from_source_reads_the_first_prompt_by_default():
    from kit.widgets._patterns import from_source

    tr = FakeTrace([WORDS, WORDS[:3]], n_layers=1, n_heads=2)
    attention = from_source(tr)
    assert attention.tokens == WORDS and attention.n_layers == 1 and attention.n_heads == 2


def test_a_model_without_a_prompt_is_refused_in_the_viewers_name():
    with pytest.raises(TypeError) as err:
        AttentionViewer(FakeModel())
    assert str(err.value) == 'AttentionViewer(model) needs a prompt too: AttentionViewer(model, "some text")'


def test_a_trace_given_with_a_prompt_is_not_taken_for_a_model():
    class TraceWithMethod(FakeTrace):
        def trace(self, *a, **k):  # a trace with a callable .trace is still a trace
            raise AssertionError("traced")

    with pytest.raises(TypeError, match=r"^AttentionViewer\(model, prompt\) needs a kit model .*got TraceWithMethod$"):
        AttentionViewer(TraceWithMethod([WORDS]), "a b")


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.float16], ids=["f64", "i64", "f16"])
def test_head_scores_are_kept_as_float32_on_the_cpu(dtype):
    tr = FakeTrace([WORDS], n_layers=2, n_heads=3)
    given = torch.arange(6).reshape(2, 3).to(dtype)
    scores = AttentionViewer(tr, scores={"induction": given}).scores
    assert scores["induction"].dtype == torch.float32 and scores["induction"].device.type == "cpu"
    assert torch.equal(scores["induction"], torch.arange(6.0).reshape(2, 3))


def test_head_score_refusals_name_the_score():
    tr = FakeTrace([WORDS], n_layers=2, n_heads=3)
    with pytest.raises(TypeError) as err:
        AttentionViewer(tr, scores=[torch.zeros(2, 3)])
    assert str(err.value) == ('scores must be a dict such as {"induction": Tensor[layer, head], '
                              '"prev_token": Tensor[layer, head]}')
    with pytest.raises(TypeError) as err:
        AttentionViewer(tr, scores={"induction": object()})
    assert str(err.value) == "scores['induction'] must be a tensor; got object"
    bad = torch.zeros(2, 3)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr, scores={"induction": bad})
    assert str(err.value) == "scores['induction'] holds 1 NaN or infinite value(s); every entry must be a finite number"
    with pytest.raises(ValueError) as err:  # the shape is checked before the values
        AttentionViewer(tr, scores={"induction": torch.full((3, 2), float("nan"))})
    assert str(err.value) == "scores['induction'] must have shape [layer, head] = (2, 3); got (3, 2)"
    with pytest.raises(ValueError) as err:  # finite in float64, infinite in float32
        AttentionViewer(tr, scores={"induction": torch.full((2, 3), 1e300, dtype=torch.float64)})
    assert str(err.value).startswith("scores['induction'] holds 6 NaN or infinite value(s)")
    assert AttentionViewer(tr, scores=None).scores == {}


def test_a_model_without_n_layers_has_its_traces_layers_probed():
    class NoCount:
        def trace(self, prompt, capture=None):
            return FakeModel(n_layers=2, n_heads=3).trace(prompt, capture)

    v = AttentionViewer(NoCount(), "a b c")
    assert v.n_layers == 2 and v.tokens == ["a", " b", " c"]


def test_the_height_is_natural_by_default_and_taken_when_given():
    tr = FakeTrace([WORDS], n_layers=1, n_heads=2)
    assert AttentionViewer(tr).height == 0
    assert AttentionViewer(tr, height=320).height == 320


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["f64", "bf16"])
def test_patterns_are_read_as_float32(dtype):
    tr = FakeTrace([WORDS], n_layers=1, n_heads=2)
    tr._patterns[0] = tr._patterns[0].to(dtype)
    v = AttentionViewer(tr)
    assert v.pattern(0, 1).dtype == torch.float32
    assert torch.equal(v.pattern(0, 1), tr._patterns[0][0, 1].float())


def test_a_pattern_that_is_not_four_dimensional_is_refused_with_its_shape():
    tr = FakeTrace([WORDS], n_layers=2, n_heads=2)
    tr._patterns[1] = tr._patterns[1][0]
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr)
    assert str(err.value) == 'tr["pattern", 1] should be [batch, head, query, key]; got shape (2, 6, 6)'


def test_patterns_shorter_than_the_tokens_are_refused_with_the_shapes():
    tr = FakeTrace([WORDS], n_layers=2, n_heads=3)
    del tr.mask
    tr.tokens = [WORDS + [" again"]]
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr)
    assert str(err.value) == "attention patterns do not match the 7 tokens: shapes [(3, 6, 6)]"
    tr = FakeTrace([WORDS], n_layers=2, n_heads=3)
    tr._patterns[1] = tr._patterns[1][:, :2]  # layers that disagree
    with pytest.raises(ValueError) as err:
        AttentionViewer(tr)
    assert str(err.value) == "attention patterns do not match the 6 tokens: shapes [(2, 6, 6), (3, 6, 6)]"
