"""kit/_validate.py exactly: each check's whole message, both sides of every bound, what passes unchanged.

Written against the mutants of the `models` group (benchmarks/mutation.py).
"""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import torch

from kit import _validate as V


def _refused(exc, call):
    with pytest.raises(exc) as err:
        call()
    return str(err.value)


class _Model:
    adapter = None
    n_layers = 3

    def trace(self, *a, **k):
        return None


class _Trace:
    tokens = names = model = logits = None


# --- models and traces ----------------------------------------------------------------------------

def test_a_model_passes_and_anything_else_is_told_what_to_pass():
    m = _Model()
    assert V.check_model(m, "f()") is m
    assert _refused(TypeError, lambda: V.check_model(3, "f()")) == "f() takes a kit model from kit.load(...); got int"
    assert _refused(TypeError, lambda: V.check_model(_Trace(), "f()")) == (
        "f() takes a kit model from kit.load(...); got _Trace (this is a Trace: pass tr.model)")
    assert _refused(TypeError, lambda: V.check_model("gpt2", "f()")) == (
        "f() takes a kit model from kit.load(...); got str (a name: load it first, model = kit.load('gpt2'))")


@pytest.mark.parametrize("missing", ["trace", "adapter", "n_layers"])
def test_a_model_needs_a_callable_trace_an_adapter_and_n_layers(missing):
    attrs = {"trace": lambda self: None, "adapter": None, "n_layers": 3}
    if missing == "trace":
        attrs["trace"] = None  # there, but not callable
    else:
        del attrs[missing]
    m = type("M", (), attrs)()
    assert _refused(TypeError, lambda: V.check_model(m, "f()")) == "f() takes a kit model from kit.load(...); got M"


@pytest.mark.parametrize("missing", ["tokens", "names", "model", "logits"])
def test_a_trace_needs_tokens_names_model_and_logits(missing):
    tr = type("T", (), {k: None for k in ("tokens", "names", "model", "logits") if k != missing})()
    assert _refused(TypeError, lambda: V.check_trace(tr, "g()")) == "g() takes a Trace from model.trace(...); got T"
    assert "this is a Trace" not in _refused(TypeError, lambda: V.check_model(tr, "g()"))


def test_a_trace_passes_and_a_model_is_told_to_trace_first():
    tr = _Trace()
    assert V.check_trace(tr, "g()") is tr
    assert _refused(TypeError, lambda: V.check_trace(_Model(), "g()")) == (
        "g() takes a Trace from model.trace(...); got _Model (this is a model: trace a prompt first, "
        "tr = model.trace(prompt))")
    assert _refused(TypeError, lambda: V.check_trace([], "g()")) == "g() takes a Trace from model.trace(...); got list"


def test_check_layer_counts_from_the_end_and_names_the_range():
    m = NS(n_layers=3)
    assert V.check_layer(m, 2) == 2 and V.check_layer(m, -1) == 2 and V.check_layer(m, -3) == 0
    assert "valid layers are 0..2" in _refused(ValueError, lambda: V.check_layer(m, 3))
    assert "valid sources are 0..2" in _refused(ValueError, lambda: V.check_layer(m, 3, "source"))


# --- integers and numbers -------------------------------------------------------------------------

def test_integers_in_range_pass_both_bounds_inclusive():
    assert V.check_int(3, "k", 3, 5) == 3 and V.check_int(5, "k", 3, 5) == 5
    assert V.check_int(-7, "k") == -7 and V.check_int(10**9, "k", low=0) == 10**9
    assert V.check_int(2.0, "k", 0, 5) == 2 and type(V.check_int(2.0, "k")) is int
    assert V.check_int(torch.tensor(4), "k", 0, 5) == 4
    assert V.check_int(True, "k", 0, 5) == 1 and type(V.check_int(True, "k")) is int  # a bool comes back an int


@pytest.mark.parametrize("value, low, high, message", [
    (2, 3, 5, "k must be an integer in 3..5; got 2"),
    (6, 3, 5, "k must be an integer in 3..5; got 6"),
    (-1, 0, None, "k must be an integer >= 0; got -1"),
    (9, None, 8, "k must be an integer <= 8; got 9"),
], ids=["below", "above", "below-open", "above-open"])
def test_integers_out_of_range_are_a_value_error_naming_the_range(value, low, high, message):
    assert _refused(ValueError, lambda: V.check_int(value, "k", low, high)) == message


@pytest.mark.parametrize("value, message", [
    (2.5, "k must be an integer in 0..5; got 2.5"),
    ("3", "k must be an integer in 0..5; got '3'"),
    (None, "k must be an integer in 0..5; got None"),
    (float("nan"), "k must be an integer in 0..5; got nan"),
], ids=["fraction", "string", "none", "nan"])
def test_non_integers_are_a_type_error(value, message):
    assert _refused(TypeError, lambda: V.check_int(value, "k", 0, 5)) == message


def test_no_bounds_say_nothing_of_a_range():
    assert _refused(TypeError, lambda: V.check_int(0.5, "k")) == "k must be an integer; got 0.5"
    assert _refused(TypeError, lambda: V.check_int("", "k")) == "k must be an integer; got ''"


def test_numbers_pass_as_floats_at_their_bounds():
    assert V.check_number(1, "x", 0, 1) == 1.0 and type(V.check_number(1, "x")) is float
    assert V.check_number(0, "x", 0, 1) == 0.0
    assert V.check_number(torch.tensor(0.25), "x", 0, 1) == 0.25
    assert V.check_number("0.5", "x") == 0.5
    assert V.check_number(True, "x") == 1.0 and type(V.check_number(True, "x")) is float
    assert V.check_number(1e-9, "x", 0, open_low=True) == 1e-9


@pytest.mark.parametrize("call, exc, message", [
    (lambda: V.check_number("a", "x"), TypeError, "x must be a number; got 'a'"),
    (lambda: V.check_number(None, "x"), TypeError, "x must be a number; got None"),
    (lambda: V.check_number(torch.ones(2), "x"), TypeError, "x must be a number; got tensor([1., 1.])"),
    (lambda: V.check_number(float("inf"), "x"), ValueError, "x must be a finite number; got inf"),
    (lambda: V.check_number(float("nan"), "x"), ValueError, "x must be a finite number; got nan"),
    (lambda: V.check_number(-0.5, "x", 0, 1), ValueError, "x must be >= 0 and <= 1; got -0.5"),
    (lambda: V.check_number(1.5, "x", 0, 1), ValueError, "x must be >= 0 and <= 1; got 1.5"),
    (lambda: V.check_number(0, "x", 0, open_low=True), ValueError, "x must be > 0; got 0"),
    (lambda: V.check_number(-2, "x", 0.5), ValueError, "x must be >= 0.5; got -2"),
    (lambda: V.check_number(3, "x", high=2.5), ValueError, "x must be <= 2.5; got 3"),
], ids=["string", "none", "tensor-of-two", "inf", "nan", "below", "above", "open-low", "low-only",
        "high-only"])
def test_bad_numbers_are_refused_with_the_whole_message(call, exc, message):
    assert _refused(exc, call) == message


# --- tensors --------------------------------------------------------------------------------------

def test_tensors_pass_unchanged_and_lists_become_tensors():
    x = torch.randn(2, 3)
    assert V.check_tensor(x, "x", shape=[2, None]) is x
    assert torch.equal(V.check_tensor([[1, 2]], "x", shape=[1, 2]), torch.tensor([[1, 2]]))
    assert V.check_tensor(torch.tensor([float("nan")]), "x", finite=False).isnan().all()
    assert V.check_tensor(torch.tensor([1, 2]), "x").dtype == torch.int64  # integers are real numbers
    assert V.check_tensor(torch.zeros(0), "x").numel() == 0


def test_what_is_not_a_real_tensor_is_a_type_error():
    assert _refused(TypeError, lambda: V.check_tensor(object(), "x", desc="[d_model]")) == (
        "x must be a tensor [d_model]; got object")
    assert _refused(TypeError, lambda: V.check_tensor(object(), "x")) == "x must be a tensor; got object"
    assert _refused(TypeError, lambda: V.check_tensor(torch.ones(2, dtype=torch.bool), "x", desc="[d_model]")) == (
        "x must hold real numbers (a float tensor [d_model]); got dtype torch.bool")
    assert _refused(TypeError, lambda: V.check_tensor(torch.ones(2, dtype=torch.complex64), "x")) == (
        "x must hold real numbers (a float tensor); got dtype torch.complex64")


def test_a_wrong_shape_names_the_wanted_one_and_spots_a_transpose():
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(3, 2), "w", shape=[2, 3])) == (
        "w must have shape [2, 3]; got [3, 2] (it looks transposed: try .T)")
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(3, 5), "w", shape=[None, 3], desc="[n, d]")) == (
        "w must have shape [n, d]; got [3, 5] (it looks transposed: try .T)")
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(4, 2), "w", shape=[2, 3])) == (
        "w must have shape [2, 3]; got [4, 2]")
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(3), "w", shape=[3, None])) == (
        "w must have shape [3, *]; got [3]")
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(2, 3, 1), "w", shape=[2, 3])) == (
        "w must have shape [2, 3]; got [2, 3, 1]")
    assert _refused(ValueError, lambda: V.check_tensor(torch.zeros(2, 3, 2), "w", shape=[2, 2, 3])) == (
        "w must have shape [2, 2, 3]; got [2, 3, 2]")  # three axes: no transpose hint


def test_non_finite_entries_are_counted():
    x = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 2.0])
    assert _refused(ValueError, lambda: V.check_tensor(x, "x")) == (
        "x holds 3 NaN or infinite value(s); every entry must be a finite number")


# --- labels, lengths, traces ----------------------------------------------------------------------

def test_labels_are_integer_ids_from_minus_one_or_a_mask():
    assert torch.equal(V.check_labels([0, -1, 2]), torch.tensor([0, -1, 2]))
    mask = torch.tensor([True, False])
    assert V.check_labels(mask) is mask
    assert V.check_labels(torch.tensor([], dtype=torch.long)).numel() == 0
    assert _refused(ValueError, lambda: V.check_labels([0, -2], "y")) == (
        "y must be class ids 0, 1, ... (or -1 for none); got -2")
    assert _refused(TypeError, lambda: V.check_labels([0.0, 1.0])) == (
        "labels must be integer class ids (-1 for none) or a bool mask; got dtype torch.float32")
    assert _refused(TypeError, lambda: V.check_labels(torch.ones(2, dtype=torch.complex64))).endswith(
        "got dtype torch.complex64")


def test_same_length_returns_it_and_lists_every_length_when_not():
    assert V.check_same_length("f()", a=[1, 2], b="xy") == 2
    assert V.check_same_length("f()", a=[1]) == 1
    assert _refused(ValueError, lambda: V.check_same_length("f()", prompts=[1, 2], answers=[1])) == (
        "f() needs the same, non-zero number of prompts, answers; got 2 prompts, 1 answers")
    assert _refused(ValueError, lambda: V.check_same_length("f()", a=[], b=[])) == (
        "f() needs the same, non-zero number of a, b; got 0 a, 0 b")


class _Captured:
    def __init__(self, data):
        self.data = data
        self.names = sorted({n for n, _ in data})
        self.layers = sorted({l for _, l in data})

    def __getitem__(self, key):
        return self.data[key]


def test_finite_trace_names_the_first_bad_activation_and_layer():
    ok = torch.zeros(2)
    bad = torch.tensor([0.0, float("inf")])
    tr = _Captured({("resid_post", 0): ok, ("resid_post", 1): bad, ("mlp_out", 0): bad, ("mlp_out", 1): ok})
    assert _refused(ValueError, lambda: V.check_finite_trace(tr, ["resid_post", "mlp_out"], "lens()")) == (
        "lens(): the trace's 'resid_post' at layer 1 holds NaN or infinite values; the model overflowed or its "
        "weights are broken (trace it in float32: kit.load(..., dtype=torch.float32))")
    assert "'mlp_out' at layer 0" in _refused(ValueError, lambda: V.check_finite_trace(tr, ["mlp_out"], "f"))
    V.check_finite_trace(tr, ["attn_out"], "f")  # not captured: skipped
    assert "'mlp_out' at layer 0" in _refused(ValueError, lambda: V.check_finite_trace(tr, ["attn_out", "mlp_out"], "f"))
    ints = _Captured({("resid_post", 0): torch.tensor([1, 2])})
    V.check_finite_trace(ints, ["resid_post"], "f")  # integers cannot be NaN
    V.check_finite_trace(_Captured({("resid_post", 0): ok, ("resid_post", 1): ok}), ["resid_post"], "f")
