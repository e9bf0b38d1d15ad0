"""The memory a trace will need: the estimate equals the bytes captured, and a trace that does not fit
is refused with the sizes named (found by mutation testing of ``kit/trace.py``, docs/mutation.md).

The device check is exercised without a GPU: ``free_memory`` (the only call that reads an accelerator)
is replaced by a fake that reports chosen free bytes per device; the dimensions are those of a
GPT-2-small-like model so that the sizes in the messages are GiB, not 0.00.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import kit.trace as kt
from kit.names import MODEL_NAMES
from kit.trace import available_names, capture_bytes, free_memory

PROMPTS = ["The cat sat on the mat.", "Hi"]
GiB = 2**30
# a GPT-2-small-like shape: 12 heads of 64, d_model 768, d_mlp 3072 (no model is built: only the sizes)
SMALL = SimpleNamespace(n_heads=12, n_kv_heads=12, d_head=64, d_model=768, d_mlp=3072)
CUDA0, CUDA1 = torch.device("cuda", 0), torch.device("cuda", 1)


@pytest.fixture(params=["gpt2", "llama"])  # llama: 4 query heads share 2 key/value heads
def traced(request, tiny_models):
    return tiny_models[request.param]


def test_capture_bytes_of_each_name_equals_the_bytes_that_name_holds_in_the_trace(traced):
    model = traced
    names = available_names(model.adapter)
    tr = model.trace(PROMPTS, capture=names)
    B, T, L = tr.batch, tr.n_pos, len(tr.layers)
    for name in names:
        if name == "head_out":  # computed on access from z: it holds nothing itself
            assert capture_bytes(model, B, T, [name], L) == 0
            continue
        held = tr[name] if name in MODEL_NAMES else torch.stack([tr[name, l] for l in tr.layers])
        assert capture_bytes(model, B, T, [name], L) == held.numel() * 4, name
        assert capture_bytes(model, B, T, [name], L, itemsize=2) == held.numel() * 2, name
    total = sum(t.numel() * 4 for t in tr._store.values()) + 4 * (B - 1) * T * model.d_model * ("pos_embed" in names)
    assert capture_bytes(model, B, T, names, L) == total  # pos_embed is stored once and read as [batch, ...]


def test_capture_bytes_counts_key_value_heads_and_takes_any_object_with_the_dimensions():
    gqa = SimpleNamespace(n_heads=8, n_kv_heads=2, d_head=16, d_model=128, d_mlp=512)
    assert capture_bytes(gqa, 3, 10, ["k"], 4) == 4 * 3 * 4 * 10 * 2 * 16
    assert capture_bytes(gqa, 3, 10, ["v", "q"], 4) == 4 * 3 * 4 * 10 * (2 + 8) * 16
    plain = SimpleNamespace(n_heads=8, d_head=16, d_model=128, d_mlp=512)  # no n_kv_heads: every head has its own
    assert capture_bytes(plain, 3, 10, ["k", "v"], 4) == 4 * 3 * 4 * 10 * 2 * 8 * 16
    assert capture_bytes(plain, 1, 10, ["attn_scores"], 1, itemsize=2) == 2 * 8 * 10 * 10
    assert capture_bytes(plain, 1, 10, ["mlp_pre", "attn_scale", "mlp_scale"], 2) == 4 * 2 * (10 * 512 + 10 + 10)
    assert capture_bytes(plain, 2, 10, ["final_scale", "embed"], 5) == 4 * 2 * (10 + 10 * 128)  # once, not per layer
    wide = SimpleNamespace(n_heads=4, n_kv_heads=2, d_head=12, d_model=32, d_mlp=48)  # heads x d_head != d_model
    assert capture_bytes(wide, 1, 10, ["z"], 2) == capture_bytes(wide, 1, 10, ["q"], 2) == 4 * 2 * 10 * 4 * 12
    assert capture_bytes(wide, 1, 10, ["resid_post"], 2) == 4 * 2 * 10 * 32


def test_free_memory_asks_cuda_for_the_free_bytes_of_that_device(monkeypatch):
    asked = []

    def mem_get_info(device):
        asked.append(device)
        return 123_456_789, 999_999_999_999

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert free_memory(CUDA1) == 123_456_789 and asked == [CUDA1]
    assert free_memory(torch.device("cpu")) is None and free_memory(torch.device("meta")) is None
    assert asked == [CUDA1]


def _expected(names, batch, n_pos, n_layers, itemsize):
    """(capture bytes, working bytes) as the check documents them: captures, plus one layer's float32 scores
    and pattern (and the pattern in the model's dtype) when patterns are computed, plus activations."""
    capture = capture_bytes(SMALL, batch, n_pos, names, n_layers, itemsize)
    eager = "pattern" in names or "attn_scores" in names
    work = batch * SMALL.n_heads * n_pos * n_pos * (8 + itemsize) * eager
    return capture, work + batch * n_pos * (4 * SMALL.d_model + 2 * SMALL.d_mlp) * 4


def _fake_free(monkeypatch, free: dict):
    asked = []
    monkeypatch.setattr(kt, "free_memory", lambda d: asked.append(d) or free.get(d))
    return asked


@pytest.mark.parametrize("names", [("pattern", "resid_post"), ("attn_scores",), ("resid_post", "mlp_post")],
                         ids=["pattern", "scores", "no-pattern"])
@pytest.mark.parametrize("itemsize", [2, 4])
def test_the_device_check_refuses_exactly_what_does_not_fit_and_names_the_sizes(monkeypatch, names, itemsize):
    batch, n_pos, layers = 16, 512, [0, 3, 5]
    capture, work = _expected(names, batch, n_pos, len(layers), itemsize)
    total = capture + work
    assert total > GiB // 4  # sizes that print as more than 0.00 GiB
    _fake_free(monkeypatch, {CUDA0: total})
    kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA0, CUDA0, itemsize)  # fits exactly
    asked = _fake_free(monkeypatch, {CUDA0: total - 1})
    with pytest.raises(MemoryError) as info:
        kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA0, CUDA0, itemsize)
    assert asked == [CUDA0]
    assert str(info.value) == (
        f"this trace needs about {total / GiB:.2f} GiB on cuda:0 ({capture / GiB:.2f} GiB of captures for 16 "
        f"prompt(s) x 512 tokens, 3 layers of {', '.join(names)}, plus working memory), but only "
        f"{(total - 1) / GiB:.2f} GiB is free there. Ways out: capture fewer names or layers (capture=[...], "
        f"layers=[...]), leave out 'pattern' (the largest, [batch, head, pos, pos] per layer), keep captures on "
        f"the CPU (kit.load(..., capture_device='cpu')), or trace fewer or shorter prompts.")


def test_captures_and_working_memory_are_checked_each_on_its_own_device(monkeypatch):
    names, batch, n_pos, layers = ("pattern", "z"), 8, 1024, list(range(12))
    capture, work = _expected(names, batch, n_pos, len(layers), 4)
    assert capture > 2 * work > 0
    # captures on cuda:1, computation on cuda:0: each device needs only its share
    asked = _fake_free(monkeypatch, {CUDA1: capture, CUDA0: work})
    kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA1, CUDA0, 4)
    assert sorted(map(str, asked)) == ["cuda:0", "cuda:1"]
    _fake_free(monkeypatch, {CUDA1: capture, CUDA0: work - 1})
    with pytest.raises(MemoryError, match=rf"^this trace needs about {work / GiB:.2f} GiB on cuda:0 "):
        kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA1, CUDA0, 4)
    _fake_free(monkeypatch, {CUDA1: capture - 1, CUDA0: work})
    with pytest.raises(MemoryError, match=rf"^this trace needs about {capture / GiB:.2f} GiB on cuda:1 "):
        kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA1, CUDA0, 4)
    # both on one device: the sum must fit there
    _fake_free(monkeypatch, {CUDA0: capture + work - 1})
    with pytest.raises(MemoryError, match=rf"^this trace needs about {(capture + work) / GiB:.2f} GiB on cuda:0 "):
        kt._check_device_memory(SMALL, batch, n_pos, names, layers, CUDA0, CUDA0, 4)


def test_a_trace_checks_the_memory_it_needs_before_running_the_model(monkeypatch, tiny_models):
    model = tiny_models["llama"]
    names = ("pattern", "resid_post")
    B, T = 2, len(model.to_str_tokens(PROMPTS[0]))
    a = model.adapter
    need = capture_bytes(a, B, T, names, 2) + B * a.n_heads * T * T * 12 + B * T * (4 * a.d_model + 2 * a.d_mlp) * 4
    cpu = torch.device("cpu")
    asked = _fake_free(monkeypatch, {cpu: need})
    tr = model.trace(PROMPTS, capture=list(names), layers=[0, 1])  # fits exactly
    assert asked == [cpu] and tr.n_pos == T
    _fake_free(monkeypatch, {cpu: need - 1})
    with pytest.raises(MemoryError, match=r"for 2 prompt\(s\) x \d+ tokens, 2 layers of pattern, resid_post"):
        model.trace(PROMPTS, capture=list(names), layers=[0, 1])


def test_the_budget_comes_from_kit_max_trace_bytes_when_max_bytes_is_not_given(monkeypatch, tiny_models):
    model = tiny_models["gpt2"]
    need = capture_bytes(model, 1, 2, ["resid_post"], 1)
    monkeypatch.setenv("KIT_MAX_TRACE_BYTES", str(need - 1))
    with pytest.raises(MemoryError, match=r"over the budget of 0\.00 GiB"):
        model.trace("Hi", capture=["resid_post"], layers=[0])
    monkeypatch.setenv("KIT_MAX_TRACE_BYTES", str(need))
    assert model.trace("Hi", capture=["resid_post"], layers=[0]).n_pos == 2
    assert model.trace("Hi", capture=["resid_post"], layers=[0], max_bytes=need).n_pos == 2  # max_bytes wins
    with pytest.raises(MemoryError, match="over the budget"):
        model.trace("Hi", capture=["resid_post"], layers=[0], max_bytes=need - 1)


@pytest.mark.parametrize("names, biggest", [(("resid_post", "pattern", "z"), "pattern"), (("z", "resid_post"), "z")])
def test_the_budget_refusal_names_the_sizes_and_the_biggest_capture_to_leave_out(names, biggest):
    batch, n_pos, layers, budget = 16, 512, [0, 3, 5], GiB // 10
    need = capture_bytes(SMALL, batch, n_pos, names, len(layers))
    assert need > budget
    kt._check_budget(SMALL, batch, n_pos, names, layers, need)  # exactly at the budget: fits
    with pytest.raises(MemoryError) as info:
        kt._check_budget(SMALL, batch, n_pos, names, layers, budget)
    assert str(info.value) == (
        f"this trace would capture {need / GiB:.2f} GiB (16 prompt(s) x 512 tokens, 3 layers of {', '.join(names)}), "
        f"over the budget of 0.10 GiB. Capture less: fewer names (e.g. capture=[n for n in kit.names.NAMES if n != "
        f"{biggest!r}]), fewer layers (layers=[...]), fewer or shorter prompts; or raise the budget with "
        f"max_bytes=... or the KIT_MAX_TRACE_BYTES environment variable.")
