"""Bad input gets a clear error that names what is valid, and leaves no hook attached."""

from __future__ import annotations

import importlib
import shutil

import pytest
import torch

import kit

CLEAN = "The cat sat on the mat."


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


@pytest.fixture()
def gpt2(tiny_models):
    return tiny_models["gpt2"]


BAD_TRACES = [
    (dict(prompts=""), ValueError, "empty"),
    (dict(prompts="   \n"), ValueError, "whitespace"),
    (dict(prompts=[]), ValueError, "no prompts"),
    (dict(prompts=["ok", ""]), ValueError, "prompt 1 is empty"),
    (dict(prompts="word " * 200), ValueError, "n_ctx=64"),
    (dict(prompts=torch.tensor([[1, 2, 999]])), ValueError, "0..299"),
    (dict(prompts=CLEAN, capture=["patern"]), ValueError, "Did you mean 'pattern'"),
    (dict(prompts=CLEAN, layers=[3]), ValueError, "valid layers are 0..2"),
    (dict(prompts=CLEAN, interventions=[kit.Ablate(layer=5, head=0)]), ValueError, "valid layers are 0..2"),
    (dict(prompts=CLEAN, interventions=[kit.Ablate(layer=0, head=4)]), ValueError, "valid heads are 0..3"),
    (dict(prompts=CLEAN, interventions=[kit.Clamp(layer=0, neuron=64)]), ValueError, "valid neurons are 0..63"),
    (dict(prompts=CLEAN, interventions=[kit.Steer(torch.ones(5), layer=0)]), ValueError, r"\[d_model\] = \[32\]"),
    (dict(prompts=CLEAN, interventions=[kit.Steer(torch.full((32,), float("nan")), layer=0)]), ValueError, "NaN"),
    (dict(prompts=CLEAN, interventions=[kit.Steer(torch.ones(32), layer=0, pos=40)]), ValueError, "pos 40 is out of range"),
    (dict(prompts=CLEAN, interventions=[kit.Patch("resid_post", 0, torch.zeros(1, 3, 32))]), ValueError, "equal token length"),
    (dict(prompts=CLEAN, interventions=[kit.Patch("mlp_out", 0, torch.zeros(1, 3, 32), head=1)]), ValueError, "head= applies"),
    (dict(prompts=CLEAN, interventions=[kit.Edit("attn_scorez", 0, lambda x: x)]), ValueError, "attn_scores"),
    (dict(prompts=CLEAN, interventions=["ablate"]), ValueError, "kit.Ablate"),
    (dict(prompts=CLEAN, interventions=[kit.Ablate(0, 0, how="half")]), ValueError, "'zero', 'mean'"),
]


# ids without backslashes: pytest escapes them again on a second in-process collection, so a mutmut fork
# server (benchmarks/mutation.py) could no longer select the test by its id
@pytest.mark.parametrize("kwargs,exc,match", BAD_TRACES, ids=[m.replace("\\", "") for _, _, m in BAD_TRACES])
def test_bad_trace_arguments_raise_clearly_and_leave_no_hook(gpt2, kwargs, exc, match):
    before = _hooks(gpt2)
    with pytest.raises(exc, match=match):
        gpt2.trace(**kwargs)
    assert _hooks(gpt2) == before
    assert gpt2.hf.config._attn_implementation == "sdpa"


def test_bad_trace_index_names_what_is_valid(gpt2):
    tr = gpt2.trace(CLEAN, capture=["pattern"])
    with pytest.raises(ValueError, match="valid names: pattern, resid_pre"):
        tr["nope", 0]
    with pytest.raises(ValueError, match="valid layers are 0..2"):
        tr["pattern", 9]
    with pytest.raises(ValueError, match=r"tr\[name, layer\]"):
        tr["pattern"]


def test_unknown_model_name_lists_shipped_models():
    with pytest.raises(FileNotFoundError, match="Shipped models"):
        kit.load("no-such-model-anywhere", device="cpu")


def test_path_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        kit.load(str(tmp_path / "missing" / "dir"), device="cpu")


def test_directory_without_config_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        kit.load(tmp_path, device="cpu")


def test_file_is_not_a_model_directory(tmp_path):
    f = tmp_path / "weights.txt"
    f.write_text("hello")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        kit.load(f, device="cpu")


def test_pickle_checkpoint_is_refused(tiny_dirs, tmp_path):
    d = tmp_path / "pickled"
    shutil.copytree(tiny_dirs["gpt2"], d)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ValueError, match="safetensors only"):
        kit.load(d, device="cpu")


def test_missing_weights_are_a_clear_error(tiny_dirs, tmp_path):
    d = tmp_path / "noweights"
    shutil.copytree(tiny_dirs["gpt2"], d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        kit.load(d, device="cpu")


def test_corrupt_weights_are_a_clear_error(tiny_dirs, tmp_path):
    d = tmp_path / "corrupt"
    shutil.copytree(tiny_dirs["gpt2"], d)
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="could not load the model directory"):
        kit.load(d, device="cpu")


def test_unknown_device_is_a_clear_error(tiny_dirs):
    with pytest.raises(ValueError, match="unknown device"):
        kit.load(tiny_dirs["gpt2"], device="toaster")


def test_auto_device_is_cpu_without_accelerators(tiny_dirs):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert kit.load(tiny_dirs["gpt2"]).device.type in ("cpu", "mps")


def test_local_directory_loads_and_names_itself(tiny_dirs):
    m = kit.load(tiny_dirs["gpt2"], device="cpu")
    assert m.name == str(tiny_dirs["gpt2"])
    assert m.device.type == "cpu"


def test_models_lists_shipped_folders():
    names = kit.models()
    assert names == sorted(names)
    for name in names:
        assert (importlib.import_module("kit.models").ZOO_DIR / name / "config.json").is_file()


def test_hub_id_offline_and_not_cached_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="offline and not cached.*Shipped models"):
        kit.load("EleutherAI/pythia-14m-not-cached", device="cpu")


def test_a_trace_over_the_memory_budget_is_refused_before_allocating(gpt2):
    before = _hooks(gpt2)
    with pytest.raises(MemoryError, match="over the budget.*layers=") as info:
        gpt2.trace([CLEAN] * 4, max_bytes=10_000)
    assert "capture=" in str(info.value)
    assert _hooks(gpt2) == before
    # the way out it offers works: capturing less fits
    tr = gpt2.trace([CLEAN] * 4, capture=["resid_post"], layers=[2], max_bytes=10_000)
    assert tr["resid_post", 2].numel() * 4 <= 10_000


def test_capture_bytes_estimate_matches_what_is_stored(gpt2):
    from kit.trace import capture_bytes

    tr = gpt2.trace([CLEAN, "Hi"])
    stored = sum(t.numel() * t.element_size() for t in tr._store.values())
    assert capture_bytes(gpt2, tr.batch, tr.n_pos, tr.names, len(tr.layers)) == stored
