"""kit/arch exactly: the family table's variants and refusals, the adapter's dimensions and weights
(checked against what the model itself computes), and the norms.

Written against the mutants of the `models` group (benchmarks/mutation.py). Tiny random models built
in-process (tests/families.py), never the network.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace as NS

import pytest
import torch
import transformers as T
from torch import nn

import kit
from kit.arch import _norms
from kit.arch._adapter import Adapter, _first, _get, adapter_for
from kit.arch._families import FAMILIES, HOW_TO_ADD, family_for_config, supported_text
from tests import families as F
from tests.test_families import _tokenizer


@functools.lru_cache(maxsize=None)
def _hf(variant: str):
    return F.build(variant)


def _adapter(variant: str) -> Adapter:
    return adapter_for(_hf(variant))


def _refused(exc, call):
    with pytest.raises(exc) as err:
        call()
    return str(err.value)


# --- the family table -----------------------------------------------------------------------------

def test_supported_text_is_one_line_per_family_with_its_model_types():
    lines = supported_text().split("\n")
    assert len(lines) == len(FAMILIES)
    assert lines[0] == "  gpt2: GPT-2 (and the kit's teaching models) (model_type gpt2)"
    assert "  llama: Llama 1/2/3, Mistral, Qwen2/2.5, Qwen3 (model_type llama, mistral, qwen2, qwen3)" in lines


def test_an_unknown_model_type_is_refused_with_the_table_and_how_to_add_one():
    msg = _refused(ValueError, lambda: family_for_config(NS(model_type="bloom")))
    assert msg == (f"unsupported architecture 'bloom': the kit traces these families exactly:\n{supported_text()}\n"
                   f"{HOW_TO_ADD}")
    assert "unsupported architecture None" in _refused(ValueError, lambda: family_for_config(NS()))


@pytest.mark.parametrize("model_type, name", [
    ("gpt2", "gpt2"), ("mistral", "llama"), ("qwen3", "llama"), ("gemma", "gemma"), ("gemma3_text", "gemma3"),
    ("phi3", "phi3"), ("gptj", "gptj"),
], ids=["gpt2", "mistral", "qwen3", "gemma", "gemma3", "phi3", "gptj"])
def test_model_types_map_to_their_rows(model_type, name):
    assert family_for_config(NS(model_type=model_type)).name == name


@pytest.mark.parametrize("flag", ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"])
def test_gpt2_options_that_change_attention_are_refused(flag):
    msg = _refused(ValueError, lambda: family_for_config(NS(model_type="gpt2", **{flag: True})))
    assert msg == ("GPT-2 configs with scale_attn_by_inverse_layer_idx or reorder_and_upcast_attn are not supported; "
                   "the kit refuses what it cannot trace exactly.")
    assert family_for_config(NS(model_type="gpt2", **{flag: False})) is FAMILIES["gpt2"]


def test_neox_is_parallel_unless_told_otherwise():
    par = family_for_config(NS(model_type="gpt_neox"))
    assert par.parallel and par.resid_mid_at is None
    seq = family_for_config(NS(model_type="gpt_neox", use_parallel_residual=False))
    assert seq is FAMILIES["gpt_neox"] and not seq.parallel and seq.resid_mid_at == "post_attention_layernorm"


def test_opt_refusals_and_the_supported_sizes():
    msg = _refused(ValueError, lambda: family_for_config(NS(model_type="opt", hidden_size=8, do_layer_norm_before=False)))
    assert msg.startswith("OPT with do_layer_norm_before=False (opt-350m: norms after attention and MLP) is not supported;")
    msg = _refused(ValueError, lambda: family_for_config(NS(model_type="opt", hidden_size=8, word_embed_proj_dim=4)))
    assert msg.startswith("OPT with word_embed_proj_dim != hidden_size (project_in/project_out, opt-350m) is not supported;")
    assert family_for_config(NS(model_type="opt", hidden_size=8)) is FAMILIES["opt"]
    assert family_for_config(NS(model_type="opt", hidden_size=8, word_embed_proj_dim=8, do_layer_norm_before=True)
                             ) is FAMILIES["opt"]


def test_falcon_variants():
    assert _refused(ValueError, lambda: family_for_config(NS(model_type="falcon", alibi=True))).startswith(
        "Falcon with ALiBi position biases (falcon-rw) is not supported;")
    base = FAMILIES["falcon"]
    assert family_for_config(NS(model_type="falcon")) is base  # 7b: parallel, one norm
    two = family_for_config(NS(model_type="falcon", new_decoder_architecture=True))
    assert (two.attn_norm, two.mlp_norm, two.parallel) == ("ln_attn", "ln_mlp", True)
    two = family_for_config(NS(model_type="falcon", new_decoder_architecture=True, num_ln_in_parallel_attn=2))
    assert (two.attn_norm, two.mlp_norm) == ("ln_attn", "ln_mlp")
    one = family_for_config(NS(model_type="falcon", new_decoder_architecture=True, num_ln_in_parallel_attn=1))
    assert one is base
    seq = family_for_config(NS(model_type="falcon", new_decoder_architecture=False, parallel_attn=False))
    assert (seq.parallel, seq.mlp_norm, seq.resid_mid_at, seq.attn_norm) == (
        False, "post_attention_layernorm", "post_attention_layernorm", "input_layernorm")
    assert family_for_config(NS(model_type="falcon", parallel_attn=True)) is base


@pytest.mark.parametrize("model_type, label", [("gemma2", "Gemma 2"), ("gemma3_text", "Gemma 3 (text)"),
                                               ("olmo2", "OLMo 2")], ids=["gemma2", "gemma3", "olmo2"])
def test_an_attention_bias_under_a_post_norm_is_refused(model_type, label):
    msg = _refused(ValueError, lambda: family_for_config(NS(model_type=model_type, attention_bias=True)))
    assert msg == (f"{label} with attention_bias=True is not supported (the bias's share through the norm after "
                   f"attention is not decomposed); the kit refuses what it cannot trace exactly.")
    row = family_for_config(NS(model_type=model_type, attention_bias=False))
    assert row.post_norms and row is FAMILIES[row.name]


def test_post_norms_means_either_norm_after_a_sublayer():
    assert not FAMILIES["llama"].post_norms
    from dataclasses import replace

    assert replace(FAMILIES["llama"], attn_post_norm="x").post_norms
    assert replace(FAMILIES["llama"], mlp_post_norm="x").post_norms


# --- the adapter ----------------------------------------------------------------------------------

def test_get_follows_a_dotted_path_and_first_takes_the_first_set_name():
    hf = _hf("gpt2")
    assert _get(hf, "transformer.h") is hf.transformer.h and _get(hf, "lm_head") is hf.lm_head
    cfg = NS(a=None, b=0, c=3)
    assert _first(cfg, "a", "b", "c") == 0  # 0 is a value, not a missing one
    assert _first(cfg, "a", "c") == 3 and _first(cfg, "a", "z", default=7) == 7
    assert _refused(ValueError, lambda: _first(cfg, "a", "z")) == "config of type SimpleNamespace has none of ('a', 'z')"


@pytest.mark.parametrize("variant, dims", [
    ("gpt2", (2, 4, 4, 8, 32, 64, 64, 300, False, False)),
    ("gpt_neox", (2, 4, 4, 8, 32, 64, 64, 300, True, True)),
    ("gpt_neox_seq", (2, 4, 4, 8, 32, 64, 64, 300, False, True)),
    ("llama", (2, 4, 2, 8, 32, 48, 64, 300, False, True)),
    ("qwen2", (2, 4, 1, 8, 32, 48, 64, 300, False, True)),
    ("qwen3", (2, 4, 2, 12, 32, 48, 64, 300, False, True)),
    ("falcon", (2, 4, 1, 8, 32, 128, 64, 300, True, True)),
    ("falcon_new", (2, 4, 2, 8, 32, 128, 64, 300, True, True)),
    ("opt", (2, 4, 4, 8, 32, 64, 64, 300, False, False)),
    ("gemma3", (3, 4, 2, 8, 32, 48, 64, 300, False, True)),
], ids=lambda v: v if isinstance(v, str) else "dims")
def test_dimensions_of_each_family(variant, dims):
    a = _adapter(variant)
    got = (a.n_layers, a.n_heads, a.n_kv_heads, a.d_head, a.d_model, a.d_mlp, a.n_ctx, a.vocab_size, a.parallel,
           a.rotary)
    assert got == dims
    assert a.final_softcap == (3.0 if variant == "gemma3" else None)
    assert repr(a) == f"Adapter({a.family.name}, n_layers={dims[0]}, parallel={dims[8]})"


def test_falcon_multi_query_counts_one_key_value_head_only_on_the_old_architecture():
    cfg = F.config("falcon_new")
    cfg.multi_query = True  # ignored by the new architecture: num_kv_heads holds
    assert adapter_for(T.AutoModelForCausalLM.from_config(cfg)).n_kv_heads == 2
    assert adapter_for(T.AutoModelForCausalLM.from_config(_falcon_interleaved_config())).n_kv_heads == 4


def test_module_accessors_point_at_the_models_modules():
    a = _adapter("gemma3")
    blk = a.blocks[1]
    assert a.attn(1) is blk.self_attn and a.mlp(1) is blk.mlp and a.o_proj(1) is blk.self_attn.o_proj
    assert a.down_proj(1) is blk.mlp.down_proj and a.mlp_in(1) is blk.mlp.gate_proj
    assert a.attn_norm(1) is blk.input_layernorm and a.mlp_norm(1) is blk.pre_feedforward_layernorm
    assert a.attn_post_norm(1) is blk.post_attention_layernorm and a.mlp_post_norm(1) is blk.post_feedforward_layernorm
    assert a.resid_mid_at(1) is blk.pre_feedforward_layernorm
    assert a.attn_out_at(1) is blk.post_attention_layernorm and a.mlp_out_at(1) is blk.post_feedforward_layernorm
    assert a.final_norm is a.hf.model.norm and a.embed is a.hf.model.embed_tokens and a.pos_embed is None
    assert a.norm_offset == 1.0
    g = _adapter("gpt2")
    assert g.attn_out_at(0) is g.blocks[0].attn and g.mlp_out_at(0) is g.blocks[0].mlp
    assert g.attn_post_norm(0) is None and g.pos_embed is g.hf.transformer.wpe and g.norm_offset == 0.0
    assert g.resid_mid_at(0) is g.blocks[0].ln_2 and _adapter("gpt_neox").resid_mid_at(0) is None


def test_norm_gains_add_gemmas_offset_to_rms_norms_only():
    a = _adapter("gemma3")
    torch.testing.assert_close(a.norm_gain(a.final_norm), a.final_norm.weight.detach().float() + 1, atol=0, rtol=0)
    ln = nn.LayerNorm(32)
    with torch.no_grad():
        ln.weight.copy_(torch.linspace(-1, 1, 32))
    torch.testing.assert_close(a.norm_gain(ln), ln.weight.detach(), atol=0, rtol=0)  # a LayerNorm has no offset
    x = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))
    linear, bias = a.frozen_final_norm(x)
    torch.testing.assert_close(linear(x) + bias, a.final_norm(x).float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["gemma2", "gpt2", "llama"])
def test_logits_are_the_final_norm_unembedding_and_soft_cap(variant):
    a = _adapter(variant)
    x = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        raw = a.unembed(a.final_norm(x))
        want = torch.tanh(raw / 3.0) * 3.0 if variant == "gemma2" else raw
        torch.testing.assert_close(a.logits(x), want, atol=1e-6, rtol=0)
        ids = torch.tensor([[5, 9, 17, 2]])
        torch.testing.assert_close(a.hf(ids).logits, a.logits(_final_resid(a, ids)), atol=1e-5, rtol=0)


def _final_resid(a: Adapter, ids: torch.Tensor) -> torch.Tensor:
    seen = {}
    h = a.final_norm.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        a.hf(ids)
    finally:
        h.remove()
    return seen["x"]


@pytest.mark.parametrize("variant", ["gpt2", "llama", "opt"])
def test_output_weights_in_canonical_orientation(variant):
    a = _adapter(variant)
    o, down = a.o_proj(1), a.down_proj(1)
    z = torch.randn(3, a.n_heads * a.d_head, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = o(z) - (o.bias if o.bias is not None else 0)
        got = torch.einsum("bhd,hdm->bm", z.reshape(3, a.n_heads, a.d_head), a.W_O(1))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        m = torch.randn(3, a.d_mlp, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(m @ a.W_out(1), down(m) - (down.bias if down.bias is not None else 0),
                                   atol=1e-5, rtol=0)
    assert a.b_O(1) is getattr(o, "bias", None) and a.b_out(1) is getattr(down, "bias", None)
    assert (a.b_O(1) is None) == (variant == "llama") and (a.b_out(1) is None) == (variant == "llama")
    assert a.W_U.shape == (32, 300) and torch.equal(a.W_U, a.unembed.weight.T)
    assert (a.b_U is None) and a.W_O(1).shape == (a.n_heads, a.d_head, a.d_model)


def test_head_out_needs_the_post_norms_scale_and_refuses_offloaded_weights():
    a = _adapter("gemma2")
    z = torch.randn(1, 2, 4, 8)
    assert _refused(ValueError, lambda: a.head_out(z, 0)) == (
        "head_out of a block with a norm after attention needs that norm's scale")
    scale = torch.full((1, 2, 1), 2.0)  # [batch, pos, 1]
    out = a.head_out(z, 0, scale)
    plain = torch.einsum("bphd,hdm->bphm", z, a.W_O(0).detach())
    gain = a.attn_post_norm(0).weight.detach().float() + 1.0
    torch.testing.assert_close(out, plain * gain / 2.0, atol=1e-6, rtol=0)
    g = _adapter("gpt2")
    torch.testing.assert_close(g.head_out(z, 0), torch.einsum("bphd,hdm->bphm", z, g.W_O(0).detach()), atol=0, rtol=0)
    meta = adapter_for(_meta_gpt2())
    assert _refused(ValueError, lambda: meta.head_out(z, 1)).startswith(
        "head_out of layer 1 needs that layer's output projection, which device_map offloaded")


def test_head_out_of_a_post_norm_without_a_gain_uses_ones():
    a = adapter_for(F.build("olmo2"))
    norm = a.attn_post_norm(0)
    norm.weight = None
    z = torch.randn(1, 2, 4, 8)
    out = a.head_out(z, 0, torch.full((1, 2, 1), 4.0))
    torch.testing.assert_close(out, torch.einsum("bphd,hdm->bphm", z, a.W_O(0).detach()) / 4.0, atol=1e-6, rtol=0)


def _falcon_interleaved_config():
    return T.FalconConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, alibi=False,
                          new_decoder_architecture=False, parallel_attn=True, multi_query=False, bias=True,
                          max_position_embeddings=64, **F.COMMON)


def _meta_gpt2():
    with torch.device("meta"):
        return T.AutoModelForCausalLM.from_config(F.config("gpt2"))


def _attn_input(a: Adapter, layer: int, resid: torch.Tensor) -> torch.Tensor:
    norm = a.attn_norm(layer)
    with torch.no_grad():
        return resid if norm is None else norm(resid)


FALCON_INTERLEAVED = "falcon_interleaved"
FALCON_NEW_MQ = "falcon_new_one_kv"  # the new architecture with 4 query heads per key/value head (not 2)


@functools.lru_cache(maxsize=None)
def _model(variant: str) -> kit.Model:
    if variant == FALCON_INTERLEAVED:  # the old architecture with one key/value head per query head
        torch.manual_seed(0)
        hf = T.AutoModelForCausalLM.from_config(_falcon_interleaved_config()).eval()
        return kit.Model(hf, _tokenizer(), name=variant)
    if variant == FALCON_NEW_MQ:  # each group holds 4 queries, k, v: g[:, :-2] and g[:, -2] are not g[:, :2], g[:, 2]
        torch.manual_seed(0)
        cfg = T.FalconConfig(num_hidden_layers=2, num_attention_heads=4, num_kv_heads=1, hidden_size=32,
                             alibi=False, new_decoder_architecture=True, max_position_embeddings=64, **F.COMMON)
        return kit.Model(T.AutoModelForCausalLM.from_config(cfg).eval(), _tokenizer(), name=variant)
    return kit.Model(_hf(variant), _tokenizer(), name=variant)


QKV_VARIANTS = [v for v in F.VARIANTS] + [FALCON_INTERLEAVED, FALCON_NEW_MQ]
QK_NORMED = {"qwen3", "olmo2", "gemma3"}  # queries and keys normed after the projection: W_Q/W_K are not linear maps


@pytest.mark.parametrize("variant", QKV_VARIANTS)
def test_w_qkv_reproduce_the_models_queries_keys_and_values(variant):
    """Differences remove the biases: v[p] - v[0] == (x[p] - x[0]) @ W_V[h]; at position 0 rotary is the
    identity, so q[prompt 1, 0] - q[prompt 0, 0] == (x1[0] - x0[0]) @ W_Q[h] (and keys likewise)."""
    model = _model(variant)
    a = model.adapter
    tr = model.trace(["The cat sat on the mat.", "A B C A B C D E"], capture=["resid_pre", "q", "k", "v"], layers=[1])
    x = _attn_input(a, 1, tr["resid_pre", 1]).float()  # [batch, pos, d_model]
    W_Q, W_K, W_V = (w.detach().float() for w in a.W_QKV(1))  # [head, d_model, d_head]
    rep = a.n_heads // a.n_kv_heads
    v = tr["v", 1].float()  # [batch, pos, kv_head, d_head]
    dx = x[0, 1:5] - x[0, :1]
    for h in range(a.n_heads):
        torch.testing.assert_close(dx @ W_V[h], v[0, 1:5, h // rep] - v[0, :1, h // rep], atol=2e-4, rtol=1e-4)
    if variant in QK_NORMED:
        return
    d0 = x[1, 0] - x[0, 0]
    q, k = tr["q", 1].float(), tr["k", 1].float()
    q_scale = a.attn(1).scaling if variant == "opt" else 1.0  # OPT scales its queries in the projection's output
    for h in range(a.n_heads):
        torch.testing.assert_close(d0 @ W_Q[h] * q_scale, q[1, 0, h] - q[0, 0, h], atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(d0 @ W_K[h], k[1, 0, h // rep] - k[0, 0, h // rep], atol=2e-4, rtol=1e-4)


# --- the norms ------------------------------------------------------------------------------------

class _RMS(nn.Module):
    def __init__(self, attr: str, weight: bool = True):
        super().__init__()
        setattr(self, attr, 1e-2)
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, 6)) if weight else None


@pytest.mark.parametrize("attr", ["eps", "variance_epsilon", "epsilon"])
def test_the_epsilon_is_found_under_each_name(attr):
    assert _norms.norm_eps(_RMS(attr)) == 1e-2


def test_a_norm_without_an_epsilon_is_refused_by_type():
    assert _refused(ValueError, lambda: _norms.norm_eps(nn.Identity())) == "cannot find the epsilon of norm Identity"
    holder = _RMS("eps")
    holder.eps = None
    holder.epsilon = 0.5  # None is "not there": the next name is tried
    assert _norms.norm_eps(holder) == 0.5


def test_gain_bias_scale_and_normalized_of_rms_and_layer_norms():
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5, -1.0, 2.0]])
    x = torch.stack([x, 2 * x + 1, -x + 3])  # [3, 1, 6]: each row normed on its own, over its last axis
    x = torch.cat([x, x.flip(0) * 0.5], dim=1)  # [3, 2, 6]
    rms = _RMS("eps")
    scale = torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-2)
    torch.testing.assert_close(_norms.norm_scale(rms, x), scale, atol=1e-7, rtol=0)
    torch.testing.assert_close(_norms.normalized(rms, x), x / scale, atol=1e-7, rtol=0)
    torch.testing.assert_close(_norms.normalized(rms, x, torch.tensor([[[2.0]]])), x / 2, atol=0, rtol=0)
    torch.testing.assert_close(_norms.norm_gain(rms, 1.0), torch.linspace(0.5, 1.5, 6) + 1, atol=0, rtol=0)
    assert _norms.norm_gain(_RMS("eps", weight=False)) is None and _norms.norm_bias(rms) is None
    torch.testing.assert_close(_norms.norm_gain(rms), torch.linspace(0.5, 1.5, 6), atol=0, rtol=0)  # no offset
    bare = nn.Module()  # a norm with no weight attribute at all
    bare.eps = 1e-5
    assert _norms.norm_gain(bare) is None and _norms.norm_bias(bare) is None
    ln = nn.LayerNorm(6, eps=1e-2)
    with torch.no_grad():
        ln.bias.copy_(torch.arange(6.0))
    assert _norms.is_layernorm(ln) and not _norms.is_layernorm(rms)
    centred = x - x.mean(-1, keepdim=True)
    lscale = torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-2)
    torch.testing.assert_close(_norms.norm_scale(ln, x), lscale, atol=1e-7, rtol=0)
    torch.testing.assert_close(_norms.normalized(ln, x), centred / lscale, atol=1e-6, rtol=0)
    torch.testing.assert_close(_norms.norm_bias(ln), torch.arange(6.0), atol=0, rtol=0)
    assert _norms.norm_scale(ln, x.half()).dtype == torch.float32


@pytest.mark.parametrize("kind", ["layer", "rms", "rms-no-gain"])
def test_a_frozen_norm_is_the_norm_and_linear_in_its_input(kind):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 6, generator=g) * 2 + 1
    part = torch.randn(2, 3, 6, generator=g)
    if kind == "layer":
        norm = nn.LayerNorm(6, eps=1e-2)
        with torch.no_grad():
            norm.weight.copy_(torch.linspace(0.5, 2, 6))
            norm.bias.copy_(torch.linspace(-1, 1, 6))
        want = norm(x)
        scale = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-2)
        want_part = norm.weight * (part - part.mean(-1, keepdim=True)) / scale
    else:
        norm = _RMS("eps", weight=kind == "rms")
        gain = torch.linspace(0.5, 1.5, 6) if kind == "rms" else torch.ones(6)
        scale = torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-2)
        want = gain * x / scale
        want_part = gain * part / scale
    linear, bias = _norms.frozen_norm(norm, x)
    with torch.no_grad():
        torch.testing.assert_close(linear(x) + bias, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(linear(part), want_part, atol=1e-5, rtol=0)
    if kind != "layer":
        assert torch.equal(bias, torch.zeros(6))
    offset_linear, _ = _norms.frozen_norm(norm, x, offset=1.0)
    if kind == "rms":
        torch.testing.assert_close(offset_linear(part), (gain + 1) * part / scale, atol=1e-5, rtol=0)


def test_the_frozen_final_norm_adds_gemmas_offset_to_rms_norms_only():
    """A LayerNorm in a family whose RMS norms add 1 to their weight: its own weight is its gain."""
    hf = F.build("gemma3", seed=1)
    a = adapter_for(hf)
    ln = nn.LayerNorm(32)
    with torch.no_grad():
        ln.weight.copy_(torch.linspace(-1, 1, 32))
        ln.bias.copy_(torch.linspace(0, 2, 32))
    hf.model.norm = ln
    x = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(5))
    linear, bias = a.frozen_final_norm(x)
    with torch.no_grad():
        torch.testing.assert_close(linear(x) + bias, ln(x), atol=1e-5, rtol=0)  # an offset of 1 would add x / scale


class _NoBiasProj(nn.Module):
    """A projection that holds a weight and no ``bias`` attribute at all (as some wrapping layers do)."""

    def __init__(self, proj: nn.Linear):
        super().__init__()
        self.weight = proj.weight

    def forward(self, x):
        return x @ self.weight.T


def test_projections_without_a_bias_attribute_have_no_bias():
    hf = F.build("llama", seed=1)
    a = adapter_for(hf)
    blk = a.blocks[1]
    blk.self_attn.o_proj = _NoBiasProj(blk.self_attn.o_proj)
    blk.mlp.down_proj = _NoBiasProj(blk.mlp.down_proj)
    assert a.b_O(1) is None and a.b_out(1) is None
    assert torch.equal(a.W_O(1).reshape(32, 32), blk.self_attn.o_proj.weight.T)


def test_a_one_layer_model_reads_its_dimensions_from_layer_0():
    cfg = T.LlamaConfig(**{**F.LLAMA_LIKE, "num_hidden_layers": 1})
    a = adapter_for(T.AutoModelForCausalLM.from_config(cfg))
    assert (a.n_layers, a.n_heads, a.n_kv_heads, a.d_head, a.d_model, a.d_mlp) == (1, 4, 2, 8, 32, 48)


def _with_config(hf, cfg) -> Adapter:
    """The adapter of ``hf`` read through ``cfg``: a config that names its dimensions its own way (remote code)."""
    hf.config = cfg
    return Adapter(hf, family_for_config(cfg))


def test_dimensions_under_the_older_config_names():
    """GPT-2's own names (n_head, n_embd, n_positions) when the config has no attribute map to the usual ones."""
    a = _with_config(F.build("gpt2"), NS(model_type="gpt2", n_head=4, n_embd=32, n_positions=48))
    assert (a.n_heads, a.n_kv_heads, a.d_head, a.d_model, a.n_ctx) == (4, 4, 8, 32, 48)


@pytest.mark.parametrize("extra, kv", [
    ({"multi_query": True}, 1),  # the old architecture's multi-query: one key/value head, whatever else is said
    ({"multi_query": True, "num_kv_heads": 4}, 1),
    ({}, 4),  # no multi_query at all: one key/value head per query head
    ({"num_kv_heads": 2}, 2),  # named num_kv_heads only (no num_key_value_heads)
], ids=["multi-query", "multi-query-over-num_kv_heads", "no-multi-query", "num_kv_heads"])
def test_falcon_key_value_heads_from_multi_query_or_num_kv_heads(extra, kv):
    cfg = NS(model_type="falcon", num_attention_heads=4, hidden_size=32, max_position_embeddings=64,
             new_decoder_architecture=False, parallel_attn=True, **extra)
    assert _with_config(F.build("falcon"), cfg).n_kv_heads == kv


@pytest.mark.parametrize("variant", ["gpt2", "gemma2"])
def test_head_out_is_in_the_dtype_of_z(variant):
    a = _adapter(variant)
    z = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    scale = torch.full((1, 2, 1), 2.0)
    out = a.head_out(z, 0, scale if variant == "gemma2" else None)
    assert out.dtype == torch.float64
    want = a.head_out(z.float(), 0, scale if variant == "gemma2" else None)
    torch.testing.assert_close(out.float(), want, atol=1e-5, rtol=0)


def test_a_model_without_a_head_or_with_another_layout_is_refused_by_its_class():
    base = T.GPT2Model(F.config("gpt2"))
    assert _refused(ValueError, lambda: adapter_for(base)) == "GPT2Model has no output embedding: load a *ForCausalLM model"
    hf = F.build("gpt2")
    hf.config = T.LlamaConfig(**F.LLAMA_LIKE)  # a llama config on a GPT-2 module tree
    msg = _refused(ValueError, lambda: adapter_for(hf))
    assert msg.startswith("GPT2LMHeadModel does not have the llama layout (model.layers): ") and msg.endswith(
        ". Load it with AutoModelForCausalLM.")
