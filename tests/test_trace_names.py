"""The new capture names and the TransformerLens hook names, against values computed by hand
from the weights on GPT-2, Llama and Gemma 2 (tiny random models)."""

from __future__ import annotations

import math

import pytest
import torch

import kit
from kit.names import ALL, TL_HOOKS, from_transformerlens
from kit.trace import available_names
from tests.test_families import model_of

ATOL = 2e-5
IDS = torch.tensor([[5, 9, 17, 33, 8, 2, 71]])


def _rms(x, gain, eps):
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return x / scale * gain, scale


def _ln(x, w, b, eps):
    xc = x - x.mean(-1, keepdim=True)
    scale = (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return xc / scale * w + b, xc / scale, scale


def _rotate(x, cos, sin):  # rotary as transformers applies it: [pos, d_head] cos/sin
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), -1)
    return x * cos + rot * sin


def _cos_sin(model, T):
    pos = torch.arange(T)[None]
    dummy = torch.zeros(1, T, model.d_model)
    cos, sin = model.hf.model.rotary_emb(dummy, pos)
    return cos[0], sin[0]  # [pos, d_head]


def test_gpt2_names_by_hand():
    model = model_of("gpt2")
    tr = model.trace(IDS, capture=available_names(model.adapter))
    hf, T = model.hf.transformer, IDS.shape[1]
    embed = hf.wte.weight[IDS[0]]
    pos = hf.wpe.weight[:T]
    torch.testing.assert_close(tr["hook_embed"][0], embed, atol=0, rtol=0)
    torch.testing.assert_close(tr["hook_pos_embed"][0], pos, atol=0, rtol=0)
    torch.testing.assert_close(tr["blocks.0.hook_resid_pre"][0], embed + pos, atol=ATOL, rtol=0)
    blk = hf.h[0]
    x = tr["resid_pre", 0][0]
    ln1, norm1, scale1 = _ln(x, blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
    torch.testing.assert_close(tr["blocks.0.ln1.hook_normalized"][0], norm1, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.ln1.hook_scale"][0], scale1, atol=ATOL, rtol=0)
    qkv = ln1 @ blk.attn.c_attn.weight + blk.attn.c_attn.bias
    q, k, v = (t.view(T, model.n_heads, model.d_head) for t in qkv.split(model.d_model, -1))
    for name, want in (("hook_q", q), ("hook_k", k), ("hook_v", v)):
        torch.testing.assert_close(tr[f"blocks.0.attn.{name}"][0], want, atol=ATOL, rtol=0)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(model.d_head)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    got = tr["blocks.0.attn.hook_attn_scores"][0]
    torch.testing.assert_close(got[:, causal], scores[:, causal], atol=ATOL, rtol=0)
    assert (got[:, ~causal] < -1e30).all()
    pattern = scores.masked_fill(~causal, -math.inf).softmax(-1)
    torch.testing.assert_close(tr["blocks.0.attn.hook_pattern"][0], pattern, atol=ATOL, rtol=0)
    z = torch.einsum("hqk,khd->qhd", pattern, v)
    torch.testing.assert_close(tr["blocks.0.attn.hook_z"][0], z, atol=ATOL, rtol=0)
    result = torch.einsum("qhd,hdm->qhm", z, blk.attn.c_proj.weight.view(model.n_heads, model.d_head, -1))
    torch.testing.assert_close(tr["blocks.0.attn.hook_result"][0], result, atol=ATOL, rtol=0)
    attn_out = result.sum(1) + blk.attn.c_proj.bias
    torch.testing.assert_close(tr["blocks.0.hook_attn_out"][0], attn_out, atol=ATOL, rtol=0)
    mid = x + attn_out
    torch.testing.assert_close(tr["blocks.0.hook_resid_mid"][0], mid, atol=ATOL, rtol=0)
    ln2, norm2, scale2 = _ln(mid, blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
    torch.testing.assert_close(tr["blocks.0.ln2.hook_normalized"][0], norm2, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.ln2.hook_scale"][0], scale2, atol=ATOL, rtol=0)
    pre = ln2 @ blk.mlp.c_fc.weight + blk.mlp.c_fc.bias
    torch.testing.assert_close(tr["blocks.0.mlp.hook_pre"][0], pre, atol=ATOL, rtol=0)
    post = blk.mlp.act(pre)
    torch.testing.assert_close(tr["blocks.0.mlp.hook_post"][0], post, atol=ATOL, rtol=0)
    mlp_out = post @ blk.mlp.c_proj.weight + blk.mlp.c_proj.bias
    torch.testing.assert_close(tr["blocks.0.hook_mlp_out"][0], mlp_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.hook_resid_post"][0], mid + mlp_out, atol=ATOL, rtol=0)
    final = tr["resid_post", -1][0]
    _, normf, scalef = _ln(final, hf.ln_f.weight, hf.ln_f.bias, hf.ln_f.eps)
    torch.testing.assert_close(tr["ln_final.hook_normalized"][0], normf, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["ln_final.hook_scale"][0], scalef, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="does not rotate.*hook_q"):
        tr["blocks.0.attn.hook_rot_q"]


def test_llama_names_by_hand():
    """Grouped-query attention (2 key/value heads for 4 query heads), rotary, RMSNorm, gated MLP."""
    model = model_of("llama")
    tr = model.trace(IDS, capture=available_names(model.adapter))
    hf, T, H, KV, D = model.hf.model, IDS.shape[1], model.n_heads, model.n_kv_heads, model.d_head
    blk = hf.layers[0]
    x = hf.embed_tokens.weight[IDS[0]]
    torch.testing.assert_close(tr["embed"][0], x, atol=0, rtol=0)
    h, scale = _rms(x, blk.input_layernorm.weight, blk.input_layernorm.variance_epsilon)
    torch.testing.assert_close(tr["attn_scale", 0][0], scale, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["attn_normalized", 0][0], x / scale, atol=ATOL, rtol=0)
    cos, sin = _cos_sin(model, T)
    q = _rotate((h @ blk.self_attn.q_proj.weight.T).view(T, H, D).transpose(0, 1), cos, sin)  # [head, pos, d]
    k = _rotate((h @ blk.self_attn.k_proj.weight.T).view(T, KV, D).transpose(0, 1), cos, sin)
    v = (h @ blk.self_attn.v_proj.weight.T).view(T, KV, D)
    assert tr["k", 0].shape == (1, T, KV, D) and tr["q", 0].shape == (1, T, H, D)
    torch.testing.assert_close(tr["blocks.0.attn.hook_rot_q"][0], q.transpose(0, 1), atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.attn.hook_rot_k"][0], k.transpose(0, 1), atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.attn.hook_v"][0], v, atol=ATOL, rtol=0)
    k_rep = k.repeat_interleave(H // KV, 0)  # query head h reads key head h // (H / KV)
    scores = q @ k_rep.transpose(-1, -2) / math.sqrt(D)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    torch.testing.assert_close(tr["attn_scores", 0][0][:, causal], scores[:, causal], atol=ATOL, rtol=0)
    pattern = scores.masked_fill(~causal, -math.inf).softmax(-1)
    torch.testing.assert_close(tr["blocks.0.attn.hook_pattern"][0], pattern, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="rotates.*hook_rot_q"):
        tr["blocks.0.attn.hook_q"]
    mid = tr["resid_mid", 0][0]
    h2, scale2 = _rms(mid, blk.post_attention_layernorm.weight, blk.post_attention_layernorm.variance_epsilon)
    torch.testing.assert_close(tr["blocks.0.ln2.hook_scale"][0], scale2, atol=ATOL, rtol=0)
    gate = h2 @ blk.mlp.gate_proj.weight.T
    torch.testing.assert_close(tr["blocks.0.mlp.hook_pre"][0], gate, atol=ATOL, rtol=0)
    post = torch.nn.functional.silu(gate) * (h2 @ blk.mlp.up_proj.weight.T)
    torch.testing.assert_close(tr["blocks.0.mlp.hook_post"][0], post, atol=ATOL, rtol=0)


def test_gemma2_names_by_hand():
    """Scaled embeddings, 1 + weight gains, soft-capped scores, norms after attention and MLP."""
    model = model_of("gemma2")
    tr = model.trace(IDS, capture=available_names(model.adapter))
    hf, cfg, T, H, KV, D = model.hf.model, model.hf.config, IDS.shape[1], model.n_heads, model.n_kv_heads, model.d_head
    blk = hf.layers[0]
    x = hf.embed_tokens.weight[IDS[0]] * torch.tensor(model.d_model ** 0.5)
    torch.testing.assert_close(tr["hook_embed"][0], x, atol=ATOL, rtol=0)
    eps = blk.input_layernorm.eps
    h, scale = _rms(x, 1 + blk.input_layernorm.weight, eps)
    torch.testing.assert_close(tr["blocks.0.ln1.hook_scale"][0], scale, atol=ATOL, rtol=0)
    cos, sin = _cos_sin(model, T)
    q = _rotate((h @ blk.self_attn.q_proj.weight.T).view(T, H, D).transpose(0, 1), cos, sin)
    k = _rotate((h @ blk.self_attn.k_proj.weight.T).view(T, KV, D).transpose(0, 1), cos, sin)
    raw = q @ k.repeat_interleave(H // KV, 0).transpose(-1, -2) * cfg.query_pre_attn_scalar ** -0.5
    capped = torch.tanh(raw / cfg.attn_logit_softcapping) * cfg.attn_logit_softcapping
    window = cfg.sliding_window if cfg.layer_types[0] == "sliding_attention" else T
    qi, ki = torch.arange(T)[:, None], torch.arange(T)[None]
    visible = (ki <= qi) & (ki > qi - window)
    torch.testing.assert_close(tr["attn_scores", 0][0][:, visible], capped[:, visible], atol=ATOL, rtol=0)
    pattern = capped.masked_fill(~visible, -math.inf).softmax(-1)
    torch.testing.assert_close(tr["pattern", 0][0], pattern, atol=ATOL, rtol=0)
    # attn_out is what the block adds: the post-attention norm of the output projection
    o = tr["z", 0][0].reshape(T, H * D) @ blk.self_attn.o_proj.weight.T
    attn_out, post_scale = _rms(o, 1 + blk.post_attention_layernorm.weight, eps)
    torch.testing.assert_close(tr["blocks.0.hook_attn_out"][0], attn_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(tr["blocks.0.hook_resid_mid"][0], x + attn_out, atol=ATOL, rtol=0)
    factor = tr.post_norm_factor("attn", 0)[0]
    torch.testing.assert_close(factor, (1 + blk.post_attention_layernorm.weight) / post_scale, atol=ATOL, rtol=0)
    W_O = blk.self_attn.o_proj.weight.T.view(H, D, -1)
    result = torch.einsum("qhd,hdm->qhm", tr["z", 0][0], W_O) * factor[:, None]
    torch.testing.assert_close(tr["blocks.0.attn.hook_result"][0], result, atol=ATOL, rtol=0)
    # final soft-capping: logits = cap * tanh(unembed(norm(resid)) / cap)
    final = tr["resid_final"][0]
    normed, fscale = _rms(final, 1 + hf.norm.weight, hf.norm.eps)
    torch.testing.assert_close(tr["ln_final.hook_normalized"][0], final / fscale, atol=ATOL, rtol=0)
    cap = cfg.final_logit_softcapping
    logits = torch.tanh(normed @ model.hf.lm_head.weight.T / cap) * cap
    torch.testing.assert_close(tr.logits[0], logits, atol=ATOL, rtol=0)


def test_every_transformerlens_name_maps_to_a_kit_name():
    for hook, name in TL_HOOKS.items():
        got, layer = from_transformerlens(hook.replace("{l}", "3"))
        assert got == name and got in ALL
        assert layer == (3 if "{l}" in hook else None)
    with pytest.raises(ValueError, match="Did you mean 'blocks.0.attn.hook_pattern'"):
        from_transformerlens("blocks.0.attn.hook_patern")


def test_capture_accepts_transformerlens_names_and_cache_style_indexing():
    model = model_of("gpt2")
    tr = model.trace("Hello there", capture=["blocks.{l}.attn.hook_pattern", "hook_embed"])
    assert set(tr.names) == {"pattern", "embed"}
    assert torch.equal(tr["pattern", 1], tr["blocks.1.attn.hook_pattern"])
    assert ("blocks.1.attn.hook_pattern" in tr) and ("blocks.1.hook_resid_pre" not in tr)
    with pytest.raises(ValueError, match="has no layer"):
        tr["embed", 0]
    with pytest.raises(ValueError, match="not captured"):
        tr["blocks.0.hook_resid_pre"]


def test_extra_names_are_not_captured_by_default():
    tr = model_of("gpt2").trace("Hello there")
    assert tr.names == kit.names.NAMES
