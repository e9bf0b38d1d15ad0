"""Loading at research scale: half precision, device_map (sharded / offloaded), kit.Model around a
loaded model, memory refused before allocating, and a fast error when the hub cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers as T

import kit
from tests import families as F


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tokenizer_dir):
    out = tmp_path_factory.mktemp("llama_load")
    F.build("llama").save_pretrained(out)
    T.PreTrainedTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(out)
    return out


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def test_an_unreachable_hub_fails_within_seconds_with_the_good_error(tmp_path):
    """Offline flags unset, no cache, and a hub endpoint that refuses connections."""
    code = textwrap.dedent("""
        import time, kit
        t = time.perf_counter()
        try:
            kit.load("gpt2", device="cpu")
        except FileNotFoundError as err:
            print(f"{time.perf_counter() - t:.2f}")
            print(err)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    lines = out.stdout.splitlines()
    assert len(lines) >= 2, out.stderr[-2000:]
    assert float(lines[0]) < 10.0  # was 53 s of retries; generous bound for a loaded machine
    assert "cannot be reached" in lines[1] and "induction-2l" in lines[1]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, "bfloat16"])
def test_half_precision_loads_straight_in_that_dtype_and_traces(llama_dir, dtype):
    model = kit.load(llama_dir, device="cpu", dtype=dtype)
    want = dtype if isinstance(dtype, torch.dtype) else torch.bfloat16
    assert {p.dtype for p in model.hf.parameters()} == {want}
    tr = model.trace(["The cat sat on the mat.", "Hi"])
    with torch.no_grad():
        plain = model.hf(input_ids=tr.input_ids, attention_mask=tr.mask.long()).logits
    torch.testing.assert_close(tr.logits[tr.mask], plain[tr.mask], atol=5e-2, rtol=0)  # same model: SDPA vs eager
    assert tr["resid_post", 0].dtype == want and tr["pattern", 0].dtype == want
    ref = kit.load(llama_dir, device="cpu").trace(["The cat sat on the mat.", "Hi"])
    assert (tr.logits.float() - ref.logits).abs().max() < 0.1  # half precision of the same weights
    for l in range(model.n_layers):
        got = (tr["resid_pre", l] + tr["attn_out", l] + tr["mlp_out", l]).float()
        torch.testing.assert_close(tr["resid_post", l].float(), got, atol=5e-2, rtol=0)


def test_a_bad_dtype_is_refused(llama_dir):
    with pytest.raises(ValueError, match="bfloat16"):
        kit.load(llama_dir, device="cpu", dtype="float8")


def test_device_map_with_disk_offload_traces_and_captures_land_on_the_chosen_device(llama_dir, tmp_path):
    ref = kit.load(llama_dir, device="cpu")
    dm = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
          "model.norm": "cpu", "lm_head": "cpu"}
    hf = T.AutoModelForCausalLM.from_pretrained(llama_dir, device_map=dm, offload_folder=str(tmp_path / "off"))
    model = kit.Model(hf, ref.tokenizer, capture_device="cpu")
    assert model.hf.hf_device_map["model.layers.1"] == "disk"
    tr = model.trace("The cat sat on the mat.", capture=["resid_post", "pattern", "head_out"],
                     interventions=[kit.Ablate(1, 0)])
    base = ref.trace("The cat sat on the mat.", capture=["resid_post", "pattern", "head_out"],
                     interventions=[kit.Ablate(1, 0)])
    torch.testing.assert_close(tr.logits, base.logits, atol=1e-5, rtol=0)
    for l in (0, 1):
        assert tr["resid_post", l].device.type == "cpu"
        torch.testing.assert_close(tr["resid_post", l], base["resid_post", l], atol=1e-5, rtol=0)
        torch.testing.assert_close(tr["pattern", l], base["pattern", l], atol=1e-6, rtol=0)
    assert tr["z", 1][0, :, 0].abs().max() == 0  # the intervention applied inside the offloaded layer
    torch.testing.assert_close(tr["head_out", 0], base["head_out", 0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="offloaded"):
        tr["head_out", 1]


def test_load_passes_device_map_to_transformers(llama_dir):
    dm = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu",
          "model.norm": "cpu", "lm_head": "cpu"}
    model = kit.load(llama_dir, device_map=dm, dtype=torch.bfloat16)
    assert model.device.type == "cpu" and next(model.hf.parameters()).dtype == torch.bfloat16
    assert model.trace("Hi", capture=[]).logits.shape[-1] == model.vocab_size


def test_model_wraps_an_already_loaded_transformers_model(llama_dir):
    """kit.Model(hf, tokenizer): any loaded model of a supported family, its tokenizer without a pad token."""
    hf = T.AutoModelForCausalLM.from_pretrained(llama_dir)
    tok = T.PreTrainedTokenizerFast.from_pretrained(llama_dir)
    tok.pad_token = None
    model = kit.Model(hf, tok, name="my-llama")
    assert model.name == "my-llama" and model.family == "llama" and model.hf is hf
    tr = model.trace(["The cat sat", "Hi"])
    assert tr.tokens[1] == model.to_str_tokens("Hi")
    with torch.no_grad():
        plain = hf(input_ids=tr.input_ids, attention_mask=tr.mask.long()).logits
    torch.testing.assert_close(tr.logits[tr.mask], plain[tr.mask], atol=1e-5, rtol=0)


def test_a_trace_over_free_gpu_memory_is_refused_before_allocating(tiny_models, monkeypatch):
    import kit.trace as kt

    model = tiny_models["gpt2"]
    asked = []

    def tiny_gpu(device):
        asked.append(device)
        return 50_000  # bytes free

    monkeypatch.setattr(kt, "free_memory", tiny_gpu)
    before = _hooks(model)
    with pytest.raises(MemoryError, match="only 0.00 GiB is free.*capture_device='cpu'") as info:
        model.trace(["The cat sat on the mat."] * 8)
    assert "leave out 'pattern'" in str(info.value)
    assert _hooks(model) == before and asked
    assert model.trace("Hi", capture=["resid_post"], layers=[0]).logits.shape[0] == 1  # a small one fits


def test_free_memory_is_only_checked_on_cuda():
    from kit.trace import free_memory

    assert free_memory(torch.device("cpu")) is None
