"""kit/models.py exactly: devices, dtypes, names, tokenizing and its refusals, loading and its messages.

Written against the mutants of the `models` group (benchmarks/mutation.py): each test pins a value or a
whole message a user relies on, and the near miss beside it (n_ctx tokens pass, n_ctx + 1 do not).
Only tiny random models built in-process and the shipped zoo; never the network.
"""

from __future__ import annotations

import importlib
import socket
import types

import pytest
import torch
import transformers as T

import kit
from tests import tiny

M = importlib.import_module("kit.models")  # the module (kit.models is also the function models())


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, tokenizer_dir):
    return tiny.save_model("gpt2", tmp_path_factory.mktemp("gpt2_models_mutants"), tokenizer_dir)


@pytest.fixture(scope="module")
def gpt2(gpt2_dir):
    return kit.load(gpt2_dir, device="cpu")


def _refused(exc, call):
    with pytest.raises(exc) as err:
        call()
    return str(err.value)


# --- models() and devices -------------------------------------------------------------------------

def test_models_lists_only_folders_with_a_config_sorted(tmp_path, monkeypatch):
    for name in ("zeta", "alpha", "noconfig"):
        (tmp_path / name).mkdir()
    (tmp_path / "zeta" / "config.json").write_text("{}")
    (tmp_path / "alpha" / "config.json").write_text("{}")
    (tmp_path / "file.json").write_text("{}")
    monkeypatch.setattr(M, "ZOO_DIR", tmp_path)
    assert M.models() == ["alpha", "zeta"]
    monkeypatch.setattr(M, "ZOO_DIR", tmp_path / "missing")
    assert M.models() == []


def test_the_shipped_models_are_listed():
    assert {"induction-2l", "facts-4l"} <= set(kit.models())


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    mps = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setattr(torch.backends, "mps", mps)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert M.pick_device() == torch.device("cpu") and M.pick_device("auto") == torch.device("cpu")
    mps.is_available = lambda: True
    assert M.pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert M.pick_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch, "backends", types.SimpleNamespace())  # (deleting .mps would only re-import it)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert M.pick_device("auto") == torch.device("cpu")  # a torch without an mps backend


def test_an_explicit_device_is_taken_as_it_is_and_a_missing_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert M.pick_device("cpu") == torch.device("cpu")
    assert M.pick_device(torch.device("meta")) == torch.device("meta")
    msg = _refused(ValueError, lambda: M.pick_device("cuda:1"))
    assert msg == "device 'cuda:1' was asked for but CUDA is not available here; use 'cpu' or 'auto'"
    msg = _refused(ValueError, lambda: M.pick_device("toaster"))
    assert msg == "unknown device 'toaster'; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    assert _refused(ValueError, lambda: M.pick_device(3.5)).startswith("unknown device 3.5;")  # a TypeError inside
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert M.pick_device("cuda:1") == torch.device("cuda", 1)


# --- dtypes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, want", [
    (None, torch.float32), ("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16),
    ("torch.bfloat16", torch.bfloat16), ("torch.float16", torch.float16), (torch.float16, torch.float16),
    (torch.float32, torch.float32),
], ids=["none", "f32", "f16", "bf16", "torch-bf16", "torch-f16", "dtype-f16", "dtype-f32"])
def test_dtypes_by_name_or_object(given, want):
    assert M._dtype(given) is want


def test_other_dtypes_are_refused_naming_the_valid_ones():
    assert _refused(ValueError, lambda: M._dtype("float64")) == (
        "unknown dtype 'float64'; valid: float32, float16, bfloat16 (or torch.float32, ...)")
    assert _refused(ValueError, lambda: M._dtype("torch.int8")).startswith("unknown dtype 'torch.int8'; valid:")
    assert _refused(ValueError, lambda: M._dtype(torch.float64)) == (
        "dtype torch.float64 is not supported; valid: torch.float32, torch.float16, torch.bfloat16")


# --- the Model wrapper ----------------------------------------------------------------------------

def test_dimensions_name_and_repr(gpt2, gpt2_dir):
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.n_kv_heads, gpt2.d_head) == (3, 4, 4, 8)
    assert (gpt2.d_model, gpt2.d_mlp, gpt2.n_ctx, gpt2.vocab_size) == (32, 64, 64, 300)
    assert gpt2.family == "gpt2" and gpt2.capture_device is None and gpt2.tokenizer.padding_side == "right"
    assert repr(gpt2) == (f"Model({str(gpt2_dir)!r}, family=gpt2, n_layers=3, n_heads=4, d_model=32, d_mlp=64, "
                          "n_ctx=64, vocab_size=300, device=cpu)")


def test_a_model_is_named_by_its_argument_then_its_config_then_its_class(gpt2_dir):
    hf = T.AutoModelForCausalLM.from_pretrained(gpt2_dir)
    tok = T.PreTrainedTokenizerFast.from_pretrained(gpt2_dir)
    assert kit.Model(hf, tok, name="mine").name == "mine"
    assert kit.Model(hf, tok).name == str(gpt2_dir)
    hf.config._name_or_path = ""
    assert kit.Model(hf, tok).name == "GPT2LMHeadModel"
    assert not hf.training  # put in eval mode


def test_a_missing_pad_token_becomes_eos_then_unk_then_token_0(gpt2_dir):
    hf = T.AutoModelForCausalLM.from_pretrained(gpt2_dir)
    tok = T.PreTrainedTokenizerFast.from_pretrained(gpt2_dir)
    tok.pad_token = None
    tok.padding_side = "left"
    kit.Model(hf, tok)
    assert tok.pad_token == "<|endoftext|>" and tok.padding_side == "right"
    tok = T.PreTrainedTokenizerFast.from_pretrained(gpt2_dir)
    tok.add_special_tokens({"unk_token": "Ġthe"})
    tok.pad_token, tok.eos_token = None, None
    kit.Model(hf, tok)
    assert tok.pad_token == "Ġthe"
    tok.pad_token, tok.unk_token = None, None
    kit.Model(hf, tok)
    assert tok.pad_token == tok.convert_ids_to_tokens(0)
    tok.pad_token = "Ġthe"
    kit.Model(hf, tok)
    assert tok.pad_token == "Ġthe"  # a pad token already there is kept


def test_captures_of_a_model_over_several_devices_land_on_the_cpu(gpt2_dir):
    hf = T.AutoModelForCausalLM.from_pretrained(gpt2_dir)
    tok = T.PreTrainedTokenizerFast.from_pretrained(gpt2_dir)
    hf.hf_device_map = {"transformer.h.0": "cpu", "lm_head": "cpu"}
    assert kit.Model(hf, tok).capture_device is None  # one device: where computed
    hf.hf_device_map = {"transformer.h.0": "cpu", "lm_head": "meta"}
    assert kit.Model(hf, tok).capture_device == torch.device("cpu")
    assert kit.Model(hf, tok, capture_device="meta").capture_device == torch.device("meta")
    del hf.hf_device_map
    assert kit.Model(hf, tok, capture_device="cpu").capture_device == torch.device("cpu")


# --- tokenizing -----------------------------------------------------------------------------------

def test_strings_are_padded_on_the_right_with_a_mask(gpt2):
    ids, mask = gpt2.tokenize(["The cat sat on the mat.", "Hi"])
    one = gpt2.tokenizer("Hi")["input_ids"]
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask[1].tolist() == [True] * len(one) + [False] * (ids.shape[1] - len(one))
    assert ids[1, : len(one)].tolist() == one and mask[0].all()
    single, m1 = gpt2.tokenize("Hi")
    assert single.tolist() == [one] and m1.all()


def test_token_ids_as_a_tensor_or_lists(gpt2):
    ids, mask = gpt2.tokenize(torch.tensor([5, 6, 7]))
    assert ids.tolist() == [[5, 6, 7]] and mask.tolist() == [[True] * 3]
    ids, mask = gpt2.tokenize(torch.tensor([[5, 6], [7, 8]], dtype=torch.int32))
    assert ids.dtype == torch.long and ids.tolist() == [[5, 6], [7, 8]] and bool(mask.all())
    pad = gpt2.tokenizer.pad_token_id
    ids, mask = gpt2.tokenize([[5, 6, 7], (9,)])
    assert ids.tolist() == [[5, 6, 7], [9, pad, pad]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize("prompts, message", [
    (torch.zeros(1, 2, 3, dtype=torch.long), "token ids must be a non-empty tensor [pos] or [batch, pos], got shape [1, 2, 3]"),
    (torch.zeros(0, dtype=torch.long), "token ids must be a non-empty tensor [pos] or [batch, pos], got shape [0]"),
    (torch.zeros(1, 0, dtype=torch.long), "token ids must be a non-empty tensor [pos] or [batch, pos], got shape [1, 0]"),
    ([], "no prompts given: pass a string or a non-empty list of strings"),
    (["ok", " \t"], "prompt 1 is empty or only whitespace; give some text to trace"),
    ([[1, 2], []], "an id list is empty; each prompt needs at least one token"),
    (["ok", [1, 2]], "prompts must be a string, a list of strings, a tensor of ids or a list of id lists"),
    ([[1], [2, 300]], "token ids must lie in 0..299"),
    (torch.tensor([[-1, 2]]), "token ids must lie in 0..299"),
], ids=["3d", "empty-1d", "empty-2d", "no-prompts", "blank", "empty-ids", "mixed", "id-too-big", "id-negative"])
def test_bad_prompts_are_refused_with_the_whole_message(gpt2, prompts, message):
    assert _refused(ValueError, lambda: gpt2.tokenize(prompts)) == message


def test_the_context_length_is_the_limit_exactly(gpt2):
    ids, _ = gpt2.tokenize(torch.zeros(64, dtype=torch.long))  # n_ctx tokens: fine
    assert ids.shape == (1, 64)
    assert gpt2.tokenize(torch.full((1, 64), 299))[0].max() == 299  # the last id is valid
    msg = _refused(ValueError, lambda: gpt2.tokenize(torch.zeros(65, dtype=torch.long)))
    assert msg == "prompt is 65 tokens long, but this model's context is n_ctx=64 tokens"
    msg = _refused(ValueError, lambda: gpt2.tokenize([[1] * 65, [2]]))  # the longest prompt counts, not padding
    assert msg.startswith("prompt is 65 tokens long")


def test_a_tokenizer_that_produces_no_tokens_is_refused(gpt2, monkeypatch):
    def nothing(prompts, **kw):
        return {"input_ids": torch.zeros(len(prompts), 0, dtype=torch.long),
                "attention_mask": torch.zeros(len(prompts), 0, dtype=torch.long)}

    monkeypatch.setattr(gpt2, "tokenizer", nothing)
    assert _refused(ValueError, lambda: gpt2.tokenize("Hi")) == "a prompt produced no tokens; give some text to trace"

    def one_empty(prompts, **kw):
        return {"input_ids": torch.ones(2, 3, dtype=torch.long),
                "attention_mask": torch.tensor([[1, 1, 1], [0, 0, 0]])}

    monkeypatch.setattr(gpt2, "tokenizer", one_empty)
    assert _refused(ValueError, lambda: gpt2.tokenize(["a", "b"])) == "a prompt produced no tokens; give some text to trace"


def test_tokens_as_ids_and_as_text(gpt2):
    ids = gpt2.to_tokens("The cat")
    assert ids.ndim == 1 and ids.tolist() == gpt2.tokenizer("The cat")["input_ids"]
    text = gpt2.to_str_tokens("The cat")
    assert "".join(text) == "The cat" and len(text) == len(ids)
    assert gpt2.to_str_tokens(ids) == text == gpt2.to_str_tokens(ids.tolist())


def test_unembed_of_the_last_residual_is_the_logits(gpt2):
    tr = gpt2.trace("The cat sat", capture=["resid_post"])
    torch.testing.assert_close(gpt2.unembed(tr["resid_post", -1]), tr.logits, atol=1e-5, rtol=0)
    assert not gpt2.unembed(tr["resid_post", -1]).requires_grad


# --- unencodable prompts --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def induction():
    return kit.load("induction-2l", device="cpu")


def test_an_unencodable_prompt_names_the_word_and_the_first_known_tokens(induction):
    tok = induction.tokenizer
    special = set(tok.all_special_tokens)
    ordered = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]) if t not in special][:8]
    msg = _refused(ValueError, lambda: induction.tokenize("ba Zq ke"))
    head, tail = msg.split(" (", 1)
    assert head == "this model's tokenizer cannot encode 'Zq'"
    assert tail.endswith(f"); its vocabulary has {len(tok.get_vocab())} tokens, for example "
                         f"{', '.join(map(repr, ordered))}: pass text made of its tokens, or token ids")
    msg = _refused(ValueError, lambda: induction.tokenize(["ba", "ke Zq", "Zz"]))
    assert msg.startswith("this model's tokenizer cannot encode 'Zq' in prompt 1 (")  # the first one only


def test_when_no_single_word_fails_the_prompt_as_a_whole_is_named(induction):
    from kit.models import _cannot_encode

    msg = _cannot_encode(induction.tokenizer, ["ba ke"], RuntimeError("boom"))
    assert msg.startswith("this model's tokenizer cannot encode the prompt (boom); its vocabulary has ")


# --- local directories ----------------------------------------------------------------------------

def test_local_directory_refusals_name_the_path_and_the_shipped_models(tmp_path):
    shipped = kit.models()
    f = tmp_path / "weights.txt"
    f.write_text("x")
    assert _refused(FileNotFoundError, lambda: M._check_local_dir(f)) == (
        f"{str(f)!r} is not a directory; pass a Hugging Face model directory, a hub id, or a shipped model: {shipped}")
    assert _refused(FileNotFoundError, lambda: M._check_local_dir(tmp_path)) == (
        f"{str(tmp_path)!r} is not a Hugging Face model directory: it has no config.json (shipped models: {shipped})")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "b.pt").write_bytes(b"x")
    (tmp_path / "a.bin").write_bytes(b"x")
    assert _refused(ValueError, lambda: M._check_local_dir(tmp_path)) == (
        f"{str(tmp_path)!r} holds only pickle checkpoints (a.bin, b.pt); the kit loads safetensors only, since "
        "unpickling can run arbitrary code. Convert it with model.save_pretrained(dir, safe_serialization=True).")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    M._check_local_dir(tmp_path)  # weights there: accepted (pickles beside them are ignored)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl"])
def test_every_pickle_suffix_is_refused(tmp_path, suffix):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / f"w{suffix}").write_bytes(b"x")
    assert "holds only pickle checkpoints" in _refused(ValueError, lambda: M._check_local_dir(tmp_path))


def test_a_directory_with_neither_weights_nor_pickles(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    assert _refused(FileNotFoundError, lambda: M._check_local_dir(tmp_path)) == (
        f"{str(tmp_path)!r} has no *.safetensors weights file")


def test_a_shipped_model_loads_by_name_and_is_named_by_it():
    model = kit.load("induction-2l", device="cpu")
    assert model.name == "induction-2l" and model.family == "gpt2"
    assert next(model.hf.parameters()).dtype == torch.float32 and not model.hf.training


def test_a_local_directory_loads_in_the_dtype_asked_for(gpt2_dir):
    model = kit.load(str(gpt2_dir), device="cpu", dtype="float16")
    assert {p.dtype for p in model.hf.parameters()} == {torch.float16}
    assert model.hf.config._attn_implementation == "sdpa" and model.name == str(gpt2_dir)


def test_a_corrupt_directory_is_refused_with_its_path(gpt2_dir, tmp_path):
    import shutil

    d = tmp_path / "corrupt"
    shutil.copytree(gpt2_dir, d)
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    msg = _refused(ValueError, lambda: kit.load(d, device="cpu"))
    assert msg.startswith(f"could not load the model directory {str(d)!r}: ")


@pytest.mark.parametrize("name", ["", "   "], ids=["empty", "blank"])
def test_an_empty_name_is_refused(name):
    assert _refused(ValueError, lambda: kit.load(name, device="cpu")) == f"empty model name; shipped models: {kit.models()}"


@pytest.mark.parametrize("name", ["/no/such/dir", "./nope", "../nope", "~/nope-kit-xyz", "a/b/c"],
                         ids=["absolute", "dot", "dotdot", "home", "two-slashes"])
def test_a_name_that_looks_like_a_path_and_is_not_there_is_not_sent_to_the_hub(name, monkeypatch):
    monkeypatch.setattr(M, "_from_pretrained", lambda *a, **k: pytest.fail("the hub was asked"))
    msg = _refused(FileNotFoundError, lambda: kit.load(name, device="cpu"))
    assert msg.startswith(f"no such model directory {name!r}; shipped models: {kit.models()}")


def test_a_near_miss_of_a_shipped_name_gets_a_hint(monkeypatch):
    monkeypatch.setattr(M, "hub_unreachable", lambda: "HF_HUB_OFFLINE is set")
    msg = _refused(FileNotFoundError, lambda: kit.load("induction-2", device="cpu"))
    assert "Did you mean 'induction-2l'" in msg
    assert "not in the local cache, and HF_HUB_OFFLINE is set" in msg


def test_a_hub_id_is_tried_in_the_local_cache_first_then_on_the_hub(gpt2_dir, monkeypatch):
    calls = []

    def fake(source, device, dtype, trust, revision, device_map=None, local_only=False):
        calls.append((source, local_only, dtype, trust, revision))
        if local_only:
            raise OSError("not cached")
        return real(str(gpt2_dir), device, dtype, False, None)

    real = M._from_pretrained
    monkeypatch.setattr(M, "_from_pretrained", fake)
    monkeypatch.setattr(M, "hub_unreachable", lambda: None)
    model = kit.load("someone/tiny", device="cpu", dtype=torch.float16, revision="v1")
    assert calls == [("someone/tiny", True, torch.float16, False, "v1"), ("someone/tiny", False, torch.float16, False, "v1")]
    assert model.name == "someone/tiny" and next(model.hf.parameters()).dtype == torch.float16


def test_a_cached_hub_id_loads_without_asking_the_hub(gpt2_dir, monkeypatch):
    real = M._from_pretrained
    asked = []

    def cached(source, device, dtype, trust, revision, device_map=None, local_only=False):
        asked.append(local_only)
        return real(str(gpt2_dir), device, dtype, trust, revision, device_map)

    monkeypatch.setattr(M, "_from_pretrained", cached)
    monkeypatch.setattr(M, "hub_unreachable", lambda: pytest.fail("the hub was asked"))
    model = kit.load("someone/cached", device="cpu")
    assert asked == [True] and model.name == "someone/cached"


def test_a_hub_failure_is_reported_with_its_first_line(monkeypatch):
    def fail(source, device, dtype, trust, revision, device_map=None, local_only=False):
        raise OSError("not cached" if local_only else "404 no such repo\nsecond line")

    monkeypatch.setattr(M, "_from_pretrained", fail)
    monkeypatch.setattr(M, "hub_unreachable", lambda: None)
    msg = _refused(FileNotFoundError, lambda: kit.load("someone/missing", device="cpu"))
    assert msg == ("could not load 'someone/missing': it is not a shipped teaching model, not a local directory, "
                   "and the Hugging Face Hub could not provide it (offline and not cached, or no such repository: "
                   f"404 no such repo). Shipped models, which work offline: {kit.models()}.")

    def silent(*a, **k):
        raise ValueError("")

    monkeypatch.setattr(M, "_from_pretrained", silent)
    assert "no such repository: ValueError). Shipped" in _refused(FileNotFoundError, lambda: kit.load("a/b", device="cpu"))


def test_from_pretrained_asks_for_safetensors_sdpa_and_the_cache_when_told(monkeypatch, gpt2_dir):
    seen = {}

    class Auto:
        @staticmethod
        def from_pretrained(source, **kw):
            seen["model"] = kw
            return torch.nn.Linear(1, 1)

    class Tok:
        @staticmethod
        def from_pretrained(source, **kw):
            seen["tok"] = kw
            return "tok"

    monkeypatch.setattr(M, "AutoModelForCausalLM", Auto)
    monkeypatch.setattr(M, "AutoTokenizer", Tok)
    hf, tok = M._from_pretrained("x", torch.device("meta"), torch.float16, True, "r1", local_only=True)
    assert tok == "tok" and hf.weight.device.type == "meta"
    assert seen["tok"] == dict(trust_remote_code=True, revision="r1", local_files_only=True)
    assert seen["model"] == dict(use_safetensors=True, dtype=torch.float16, attn_implementation="sdpa",
                                 trust_remote_code=True, revision="r1", local_files_only=True)
    hf, _ = M._from_pretrained("x", None, torch.float32, False, None, device_map={"": "cpu"})
    assert seen["tok"] == dict(trust_remote_code=False, revision=None)
    assert seen["model"]["device_map"] == {"": "cpu"} and hf.weight.device.type == "cpu"  # not moved


def test_a_device_map_skips_the_device_choice(gpt2_dir, monkeypatch):
    monkeypatch.setattr(M, "pick_device", lambda d: pytest.fail("device picked"))
    model = kit.load(gpt2_dir, device="toaster", device_map={"": "cpu"})
    assert model.device.type == "cpu"


def test_a_device_map_without_accelerate_says_how_to_install_it(gpt2_dir, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_accelerate(name, *a, **k):
        if name == "accelerate":
            raise ImportError("no accelerate")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_accelerate)
    assert _refused(ValueError, lambda: kit.load(gpt2_dir, device_map="auto")) == (
        "device_map needs the accelerate package: pip install accelerate (or pip install 'kit[scale]')")
    kit.load(gpt2_dir, device="cpu")  # no device_map: accelerate is not needed


def test_hub_unreachable_says_offline_or_which_endpoint_fails(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert M.hub_unreachable() == "HF_HUB_OFFLINE is set"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    asked = []

    class Conn:
        def close(self):
            asked.append("closed")

    def connect(addr, timeout):
        asked.append((addr, timeout))
        if addr[0] == "down.example":
            raise OSError("refused")
        return Conn()

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example")
    assert M.hub_unreachable(timeout=1.5) is None
    assert asked == [(("hub.example", 443), 1.5), "closed"]
    asked.clear()
    monkeypatch.setattr(constants, "ENDPOINT", "http://down.example")
    assert M.hub_unreachable() == "http://down.example cannot be reached (refused)"
    assert asked == [(("down.example", 80), 3.0)]
    asked.clear()
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.example:8080")
    assert M.hub_unreachable() is None and asked[0] == (("hub.example", 8080), 3.0)


def test_the_known_tokens_are_listed_in_id_order_not_alphabetically():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<s>": 0, "zu": 1, "ka": 2, "mo": 3, "be": 4}
    tok = Tokenizer(models.WordLevel(vocab))  # no unknown token: an unknown word cannot be encoded
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>")
    with pytest.raises(Exception) as err:
        fast(["zu qq"])
    msg = M._cannot_encode(fast, ["zu qq"], err.value)
    assert msg.startswith("this model's tokenizer cannot encode 'qq' (")
    assert msg.endswith("its vocabulary has 5 tokens, for example 'zu', 'ka', 'mo', 'be': pass text made of its "
                        "tokens, or token ids")


def test_a_missing_directory_near_a_shipped_name_gets_a_hint():
    msg = _refused(FileNotFoundError, lambda: kit.load("./induction-2l", device="cpu"))
    assert msg.startswith(f"no such model directory './induction-2l'; shipped models: {kit.models()}")
    assert "'induction-2l'" in msg[len(f"no such model directory './induction-2l'; shipped models: {kit.models()}"):]


def test_a_local_directory_is_loaded_with_every_option_passed_on(gpt2_dir, monkeypatch):
    real, seen = M._from_pretrained, []

    def spy(source, device, dtype, trust, revision, device_map=None, local_only=False):
        seen.append((source, device, dtype, trust, revision, device_map, local_only))
        return real(source, device, dtype, False, None, device_map)

    monkeypatch.setattr(M, "_from_pretrained", spy)
    kit.load(gpt2_dir, device="cpu", dtype="bfloat16", trust_remote_code=True, revision="v2")
    assert seen == [(str(gpt2_dir), torch.device("cpu"), torch.bfloat16, True, "v2", None, False)]
    seen.clear()
    kit.load(gpt2_dir, device_map={"": "cpu"})
    assert seen == [(str(gpt2_dir), None, torch.float32, False, None, {"": "cpu"}, False)]


def test_a_local_load_keeps_capture_device_and_names_the_expanded_path(gpt2_dir, monkeypatch):
    assert kit.load(gpt2_dir, device="cpu", capture_device="meta").capture_device == torch.device("meta")
    monkeypatch.setenv("HOME", str(gpt2_dir.parent))
    model = kit.load(f"~/{gpt2_dir.name}", device="cpu")
    assert model.name == str(gpt2_dir)  # the path, not the '~' spelling


def test_a_cached_hub_id_gets_the_device_dtype_and_device_map(gpt2_dir, monkeypatch):
    real, seen = M._from_pretrained, []

    def cached(source, device, dtype, trust, revision, device_map=None, local_only=False):
        seen.append((device, dtype, device_map, local_only))
        return real(str(gpt2_dir), device, dtype, False, None, device_map)

    monkeypatch.setattr(M, "_from_pretrained", cached)
    model = kit.load("someone/cached", device="cpu", capture_device="meta")
    assert seen == [(torch.device("cpu"), torch.float32, None, True)] and model.capture_device == torch.device("meta")
    seen.clear()
    kit.load("someone/cached", device_map={"": "cpu"})
    assert seen == [(None, torch.float32, {"": "cpu"}, True)]


def test_token_texts_are_not_cleaned_up_even_when_the_tokenizer_would(gpt2):
    """A word-level tokenizer that cleans up by default (' .' -> '.'): each token keeps its own text."""
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers

    vocab = {"<unk>": 0, "It": 1, " .": 2, " n't": 3, " ,": 4}
    backend = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = T.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<unk>",
                                    clean_up_tokenization_spaces=True)
    assert tok.decode([2]) == "."  # what the cleanup would give
    model = kit.Model(gpt2.hf, tok)
    assert model.to_str_tokens([1, 2, 3, 4]) == ["It", " .", " n't", " ,"]
    assert model.to_str_tokens(torch.tensor([2, 4])) == [" .", " ,"]


def test_unembed_moves_the_residual_to_the_models_device(gpt2):
    """The meta device stands in for a GPU: weights there, a residual given on the CPU."""
    import copy

    model = kit.Model(copy.deepcopy(gpt2.hf).to("meta"), gpt2.tokenizer)
    out = model.unembed(torch.randn(2, 3, 32))
    assert out.device == torch.device("meta") and out.shape == (2, 3, 300)


def test_a_hub_id_fetched_from_the_hub_gets_every_option(gpt2_dir, monkeypatch):
    real, seen = M._from_pretrained, []

    def hub(source, device, dtype, trust, revision, device_map=None, local_only=False):
        seen.append((source, device, dtype, trust, revision, device_map, local_only))
        if local_only:
            raise OSError("not cached")
        return real(str(gpt2_dir), device, dtype, False, None, device_map)

    monkeypatch.setattr(M, "_from_pretrained", hub)
    monkeypatch.setattr(M, "hub_unreachable", lambda: None)
    model = kit.load("someone/remote", device="cpu", dtype="float16", trust_remote_code=True, revision="v3",
                     capture_device="meta")
    assert seen[1] == ("someone/remote", torch.device("cpu"), torch.float16, True, "v3", None, False)
    assert model.capture_device == torch.device("meta") and model.name == "someone/remote"
    seen.clear()
    model = kit.load("someone/remote", device_map={"": "cpu"})
    assert seen[1] == ("someone/remote", None, torch.float32, False, None, {"": "cpu"}, False)
    assert model.capture_device is None


def test_ids_get_a_boolean_mask_and_a_one_token_prompt_is_accepted(gpt2):
    _, mask = gpt2.tokenize(torch.tensor([5, 6, 7]))
    assert mask.dtype == torch.bool and bool(mask.all())
    ids, mask = gpt2.tokenize([[5, 6], [7]])  # id lists: padded ids, a boolean mask
    assert ids.dtype == torch.long and mask.dtype == torch.bool and mask.tolist() == [[True, True], [True, False]]
    assert gpt2.tokenizer("The")["input_ids"] == [267]  # one token
    ids, mask = gpt2.tokenize("The")
    assert ids.tolist() == [[267]] and mask.tolist() == [[True]]
    ids, mask = gpt2.tokenize(["The", "The cat"])
    assert ids.shape == (2, 3) and mask.sum(1).tolist() == [1, 3]


def test_an_unencodable_prompt_quotes_the_tokenizers_own_error(induction):
    with pytest.raises(ValueError) as err:
        induction.tokenize("ba Zq ke")
    cause = err.value.__cause__
    assert cause is not None and str(cause)
    assert str(err.value).startswith(f"this model's tokenizer cannot encode 'Zq' ({cause}); its vocabulary has ")


def test_trace_passes_on_capture_device_and_heads_and_keeps_no_graph_by_default(gpt2_dir):
    model = kit.load(gpt2_dir, device="cpu", capture_device="meta")  # meta stands in for another device
    tr = model.trace("The cat", capture=["resid_post", "pattern"], heads=[1])
    assert tr["resid_post", 0].device == torch.device("meta") and tr.logits.device == torch.device("meta")
    assert tr["pattern", 0].shape == (1, 1, 3, 3) and tuple(tr.pattern_heads) == (1,)
    plain = kit.load(gpt2_dir, device="cpu").trace("The cat", capture=["resid_post"])
    assert not plain.logits.requires_grad and not plain["resid_post", 0].requires_grad
    assert plain.logits.device == torch.device("cpu")


def test_token_ids_and_mask_go_to_the_device_of_the_models_embedding(gpt2):
    import copy

    model = kit.Model(copy.deepcopy(gpt2.hf).to("meta"), gpt2.tokenizer)  # meta stands in for a GPU
    ids, mask = model.tokenize("The cat")
    assert ids.device == mask.device == torch.device("meta") and ids.shape == mask.shape == (1, 3)
