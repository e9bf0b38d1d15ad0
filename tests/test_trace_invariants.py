"""The tracer's invariants on tiny random models of every family (GPT-2, GPT-NeoX, Llama-like)."""

from __future__ import annotations

import pytest
import torch

import kit

PROMPTS = ["The cat sat on the mat.", "Induction heads copy", "A B C A B"]
ATOL = 1e-4


def test_every_contract_name_has_its_documented_shape(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    m = tiny_model
    B, T = tr.input_ids.shape
    assert tr.logits.shape == (B, T, m.vocab_size)
    assert len(tr.tokens) == B and [len(t) for t in tr.tokens] == tr.lengths
    for l in range(m.n_layers):
        assert tr["pattern", l].shape == (B, m.n_heads, T, T)
        for name in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
            assert tr[name, l].shape == (B, T, m.d_model)
        assert tr["head_out", l].shape == (B, T, m.n_heads, m.d_model)
        assert tr["z", l].shape == (B, T, m.n_heads, m.d_head)
        assert tr["mlp_post", l].shape == (B, T, m.d_mlp)


def test_residual_stream_is_the_sum_of_its_parts(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    for l in range(tiny_model.n_layers):
        # sequential blocks and GPT-NeoX's parallel form alike: resid_post = resid_pre + attn + mlp
        expected = tr["resid_pre", l] + tr["attn_out", l] + tr["mlp_out", l]
        torch.testing.assert_close(tr["resid_post", l], expected, atol=ATOL, rtol=0)
        if l + 1 < tiny_model.n_layers:
            torch.testing.assert_close(tr["resid_pre", l + 1], tr["resid_post", l], atol=0, rtol=0)


def test_heads_sum_to_attention_output_minus_bias(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    for l in range(tiny_model.n_layers):
        bias = tiny_model.adapter.b_O(l)
        total = tr["head_out", l].sum(2) + (0 if bias is None else bias)
        torch.testing.assert_close(total, tr["attn_out", l], atol=ATOL, rtol=0)


def test_final_norm_and_unembedding_reproduce_logits(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    torch.testing.assert_close(tiny_model.unembed(tr["resid_post", -1]), tr.logits, atol=ATOL, rtol=0)


def test_trace_logits_equal_a_plain_forward(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    with torch.no_grad():
        plain = tiny_model.hf(input_ids=tr.input_ids, attention_mask=tr.mask.long()).logits
    real = tr.mask
    torch.testing.assert_close(tr.logits[real], plain[real], atol=ATOL, rtol=0)


def test_patterns_are_probabilities_and_causal(tiny_model):
    tr = tiny_model.trace(PROMPTS)
    T = tr.n_pos
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(tiny_model.n_layers):
        p = tr["pattern", l]
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5, rtol=0)
        assert p[..., future].abs().max() == 0


def test_pattern_mixes_values_into_z(tiny_model):
    """The recorded pattern is the one the model used: capturing patterns changes no output."""
    with_patterns = tiny_model.trace(PROMPTS, capture=["pattern", "resid_post"])
    without = tiny_model.trace(PROMPTS, capture=["resid_post"])
    torch.testing.assert_close(with_patterns.logits, without.logits, atol=ATOL, rtol=0)


def test_batched_and_single_traces_agree_on_real_tokens(tiny_model):
    batched = tiny_model.trace(PROMPTS)
    for b, prompt in enumerate(PROMPTS):
        single = tiny_model.trace(prompt)
        n = single.n_pos
        assert batched.lengths[b] == n
        assert batched.tokens[b] == single.tokens[0]
        torch.testing.assert_close(batched.logits[b, :n], single.logits[0], atol=ATOL, rtol=0)
        for l in range(tiny_model.n_layers):
            torch.testing.assert_close(batched["resid_post", l][b, :n], single["resid_post", l][0], atol=ATOL, rtol=0)
            torch.testing.assert_close(batched["pattern", l][b, :, :n, :n], single["pattern", l][0], atol=ATOL, rtol=0)


def test_capture_limits_what_is_kept(tiny_model):
    tr = tiny_model.trace(PROMPTS[0], capture=["resid_post"], layers=[0])
    assert tr.names == ("resid_post",)
    assert tr.layers == (0,)
    assert tr["resid_post", 0].shape[-1] == tiny_model.d_model
    with pytest.raises(ValueError, match="was not captured.*resid_post"):
        tr["pattern", 0]
    with pytest.raises(ValueError, match="layer 1 was not captured"):
        tr["resid_post", 1]
    only_logits = tiny_model.trace(PROMPTS[0], capture=[])
    assert only_logits.names == () and only_logits.logits.shape[-1] == tiny_model.vocab_size


def test_token_ids_can_be_traced_directly(tiny_model):
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    tr = tiny_model.trace(ids, capture=["resid_post"])
    assert tr.input_ids.tolist() == ids.tolist() and tr.mask.all()
    tr2 = tiny_model.trace([[5, 6, 7, 8], [9, 10]], capture=[])
    assert tr2.lengths == [4, 2]
    single = tiny_model.trace([[9, 10]], capture=[])
    torch.testing.assert_close(tr2.logits[1, :2], single.logits[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(tr2.logits[0], tr.logits[0], atol=ATOL, rtol=0)


def test_negative_layer_indexes_count_from_the_end(tiny_model):
    tr = tiny_model.trace(PROMPTS[0], capture=["resid_post"])
    assert torch.equal(tr["resid_post", -1], tr["resid_post", tiny_model.n_layers - 1])


def test_stack_gives_all_layers(tiny_model):
    tr = tiny_model.trace(PROMPTS[0], capture=["resid_post"])
    assert tr.stack("resid_post").shape == (tiny_model.n_layers, 1, tr.n_pos, tiny_model.d_model)


def test_grad_mode_keeps_the_graph(tiny_model):
    tr = tiny_model.trace(PROMPTS[0], capture=["resid_post"], grad=True)
    assert tr.logits.requires_grad
    assert not tiny_model.trace(PROMPTS[0], capture=[]).logits.requires_grad


def test_family_detection(tiny_models):
    assert tiny_models["gpt2"].family == "gpt2"
    assert tiny_models["gpt_neox"].family == "gpt_neox"
    for fam in ("llama", "qwen2", "mistral"):
        assert tiny_models[fam].family == "llama"
    assert tiny_models["llama"].n_kv_heads == 2 and tiny_models["llama"].n_heads == 4


def test_repr_is_informative(tiny_model):
    assert "family=" in repr(tiny_model) and "n_layers=" in repr(tiny_model)
    assert "captured=" in repr(tiny_model.trace("Hello", capture=["pattern"]))


def test_public_api_is_flat():
    for name in ("load", "models", "Model", "Trace", "Ablate", "Patch", "Clamp", "Steer", "Knockout", "Edit"):
        assert hasattr(kit, name) and name in kit.__all__
