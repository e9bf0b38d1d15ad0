"""The whole trace contract on a tiny random-weight model of every supported family."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import torch
import transformers as T

import kit
import kit.analysis as A
from kit.names import ALL, MODEL_NAMES
from kit.trace import available_names
from tests import families as F
from tests.fixtures_teeth import sharpen
from tests.test_causal_tracing import loop_grid
from tests import tiny

ATOL = 2e-5
PROMPTS = ["The cat sat on the mat.", "Induction heads copy", "A B C A B"]
VARIANTS = list(F.VARIANTS)


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return T.PreTrainedTokenizerFast.from_pretrained(tiny.save_tokenizer(Path(tempfile.mkdtemp())))


@functools.lru_cache(maxsize=None)
def model_of(variant: str) -> kit.Model:
    return kit.Model(F.build(variant), _tokenizer(), name=variant)


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def _sliding_layers(model: kit.Model) -> dict[int, int]:
    """{layer: window} of the layers whose attention only sees the last ``window`` keys."""
    cfg = model.hf.config
    window = getattr(cfg, "sliding_window", None)
    if not window:
        return {}
    types = getattr(cfg, "layer_types", None)
    if types is None:  # Mistral: every layer
        return {l: window for l in range(model.n_layers)}
    return {l: window for l, t in enumerate(types) if t == "sliding_attention"}


def test_the_family_is_detected_and_its_block_kind_declared(variant):
    model = model_of(variant)
    family, kind = F.VARIANTS[variant]
    assert model.family == family
    assert model.adapter.parallel == (kind == "parallel")
    assert model.adapter.family.post_norms == (kind == "post_norm")


def test_logits_equal_the_plain_forward(variant):
    model = model_of(variant)
    for capture in (None, [], available_names(model.adapter)):
        tr = model.trace(PROMPTS, capture=capture)
        with torch.no_grad():
            plain = model.hf(input_ids=tr.input_ids, attention_mask=tr.mask.long()).logits
        torch.testing.assert_close(tr.logits[tr.mask], plain[tr.mask], atol=ATOL, rtol=0)


def test_the_residual_stream_is_the_sum_of_its_parts(variant):
    model = model_of(variant)
    sequential = F.VARIANTS[variant][1] != "parallel"
    capture = kit.names.NAMES + (("resid_mid",) if sequential else ()) + ("embed", "resid_final")
    tr = model.trace(PROMPTS, capture=capture)
    if model.adapter.pos_embed is None:
        torch.testing.assert_close(tr["resid_pre", 0], tr["embed"], atol=0, rtol=0)
    for l in range(model.n_layers):
        pre, attn, mlp, post = tr["resid_pre", l], tr["attn_out", l], tr["mlp_out", l], tr["resid_post", l]
        torch.testing.assert_close(post, pre + attn + mlp, atol=ATOL, rtol=0)
        if sequential:
            torch.testing.assert_close(tr["resid_mid", l], pre + attn, atol=ATOL, rtol=0)
            torch.testing.assert_close(post, tr["resid_mid", l] + mlp, atol=ATOL, rtol=0)
        if l + 1 < model.n_layers:
            torch.testing.assert_close(tr["resid_pre", l + 1], post, atol=0, rtol=0)
        assert attn.abs().max() > 1e-3 and mlp.abs().max() > 1e-3  # the identity is not 0 = 0
    torch.testing.assert_close(tr["resid_final"], tr["resid_post", -1], atol=0, rtol=0)
    torch.testing.assert_close(model.unembed(tr["resid_post", -1]), tr.logits, atol=ATOL, rtol=0)


def test_head_outputs_sum_to_the_attention_output(variant):
    model = model_of(variant)
    tr = model.trace(PROMPTS)
    for l in range(model.n_layers):
        bias = model.adapter.b_O(l)
        total = tr["head_out", l].sum(2) + (0 if bias is None else bias)
        torch.testing.assert_close(total, tr["attn_out", l], atol=ATOL, rtol=0)
        assert tr["head_out", l].shape == (tr.batch, tr.n_pos, model.n_heads, model.d_model)


def test_patterns_are_causal_probabilities_that_respect_sliding_windows(variant):
    model = model_of(variant)
    ids = torch.arange(5, 17)[None]  # 12 tokens: longer than the test windows
    tr = model.trace(ids, capture=["pattern"])
    T_ = ids.shape[1]
    q, k = torch.arange(T_)[:, None], torch.arange(T_)[None]
    windows = _sliding_layers(model)
    assert not windows or variant in ("mistral", "gemma2", "gemma3")
    for l in range(model.n_layers):
        p = tr["pattern", l][0]
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5, rtol=0)
        assert p[:, k > q].abs().max() == 0
        if l in windows:
            assert p[:, k <= q - windows[l]].abs().max() == 0
            assert p[:, (k > q - windows[l]) & (k <= q)].min() > 0
        else:
            assert p[:, k <= q].min() > 0  # full attention: every earlier key gets some weight


def test_patterns_equal_the_models_own_eager_attention(variant):
    model = model_of(variant)
    tr = model.trace(PROMPTS, capture=["pattern"])
    before = model.hf.config._attn_implementation
    model.hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model.hf(input_ids=tr.input_ids, attention_mask=tr.mask.long(), output_attentions=True)
    finally:
        model.hf.set_attn_implementation(before)
    for l, eager in enumerate(out.attentions):
        for b, n in enumerate(tr.lengths):  # rows of real queries
            torch.testing.assert_close(tr["pattern", l][b, :, :n], eager[b, :, :n], atol=1e-6, rtol=0)


def test_batched_traces_equal_single_ones(variant):
    model = model_of(variant)
    batched = model.trace(PROMPTS)
    for b, prompt in enumerate(PROMPTS):
        single = model.trace(prompt)
        n = single.n_pos
        torch.testing.assert_close(batched.logits[b, :n], single.logits[0], atol=ATOL, rtol=0)
        for l in range(model.n_layers):
            for name in ("resid_post", "head_out"):
                torch.testing.assert_close(batched[name, l][b, :n], single[name, l][0], atol=ATOL, rtol=0)
            torch.testing.assert_close(batched["pattern", l][b, :, :n, :n], single["pattern", l][0], atol=1e-6, rtol=0)


def test_every_intervention_applies(variant):
    model = model_of(variant)
    clean = model.trace(PROMPTS[0])
    ids = clean.input_ids.flip(1)
    base = model.trace(ids, capture=["z", "mlp_post", "pattern"])
    ablated = model.trace(ids, capture=["z"], interventions=[kit.Ablate(0, [0, 1])])
    assert ablated["z", 0][0, :, :2].abs().max() == 0 and ablated["z", 0][0, :, 2:].abs().max() > 0
    assert not torch.allclose(ablated.logits, base.logits, atol=1e-5)
    ref = model.trace(PROMPTS[1:], capture=["z"])
    mean = model.trace(ids, capture=["z"], interventions=[kit.Ablate(0, 1, how="mean", reference=ref)])
    torch.testing.assert_close(mean["z", 0][0, :, 1], ref["z", 0][ref.mask][:, 1].mean(0).expand(ids.shape[1], -1),
                               atol=1e-5, rtol=0)
    patches = [kit.Patch(name, l, clean) for l in range(model.n_layers) for name in kit.names.NAMES]
    torch.testing.assert_close(model.trace(ids, capture=[], interventions=patches).logits, clean.logits,
                               atol=ATOL, rtol=0)
    clamped = model.trace(ids, capture=["mlp_post"], interventions=[kit.Clamp(0, [1, 2], 3.0, pos=-1)])
    assert (clamped["mlp_post", 0][0, -1, [1, 2]] == 3.0).all()
    torch.testing.assert_close(clamped.logits[0, :-1], base.logits[0, :-1], atol=ATOL, rtol=0)
    vec = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    steered = model.trace(ids, capture=["resid_pre"], interventions=[kit.Steer(vec, 1, pos=0)])
    assert not torch.allclose(steered.logits[0, 0], base.logits[0, 0], atol=1e-5)
    ko = model.trace(ids, capture=["pattern"], interventions=[kit.Knockout(0, query=-1, key=[0, 1])])
    assert ko["pattern", 0][0, :, -1, :2].abs().max() == 0
    torch.testing.assert_close(ko["pattern", 0][0, :, :-1], base["pattern", 0][0, :, :-1], atol=1e-6, rtol=0)
    edited = model.trace(ids, capture=["mlp_out"], interventions=[kit.Edit("mlp_out", 0, lambda x: 0 * x)])
    assert edited["mlp_out", 0].abs().max() == 0


def test_an_intervention_never_lets_a_position_see_the_future(variant):
    model = model_of(variant)
    ids = torch.arange(5, 13)[None]
    later = ids.clone()
    later[0, 4:] = torch.arange(40, 44)
    ivs = [kit.Knockout(0, query=None, key=0), kit.Ablate(1, 0, pos=[0, 1])]
    a, b = model.trace(ids, capture=[], interventions=ivs), model.trace(later, capture=[], interventions=ivs)
    torch.testing.assert_close(a.logits[0, :4], b.logits[0, :4], atol=1e-5, rtol=0)


def test_every_analysis_function_runs(variant):
    model = model_of(variant)
    L, H = model.n_layers, model.n_heads
    for scores in (A.prev_token_scores(model, seq_len=8, batch=2), A.induction_scores(model, seq_len=8, batch=2),
                   A.copying_scores(model), A.composition_scores(model)):
        assert scores.shape[-2:] == (L, H) or scores.shape[0] == L
        assert torch.isfinite(scores).all()
    tr = model.trace(PROMPTS)
    lens = A.logit_lens(tr, k=3)
    assert lens is not None
    dla = A.direct_logit_attribution(tr, token=5, contrast=7)
    parts = (dla.embed + dla.heads.sum((1, 2)) + dla.attn_bias.sum(1) + dla.neurons.sum((1, 2)) + dla.mlp_bias.sum(1)
             + dla.bias)
    torch.testing.assert_close(parts, dla.total, atol=1e-3, rtol=0)  # neurons and biases rebuild the logit
    torch.testing.assert_close(dla.embed + dla.heads.sum((1, 2)) + dla.attn_bias.sum(1) + dla.mlps.sum(1) + dla.bias,
                               dla.total, atol=1e-3, rtol=0)
    patching = A.activation_patching(model, torch.arange(5, 11), torch.arange(20, 26), answer=5, contrast=7)
    assert patching is not None
    assert A.causal_trace(model, PROMPTS[0], subject=[1, 2], answer=5, samples=2) is not None
    assert A.attention_knockout(model, PROMPTS[0], key=[1, 2], answer=5) is not None
    assert A.decode_neurons(model, k=2) is not None
    assert A.top_activating(model, PROMPTS, layer=0, neuron=1, k=2)
    assert A.clamp_effect(model, PROMPTS[0], layer=0, neuron=1, value=2.0)
    traced, active = A.skip_voids(model, PROMPTS[0])
    assert active.shape[-1] == L or active.shape[0] == L or active.numel() > 0
    acts = A.mlp_activations(model, PROMPTS, layer=0)
    assert acts is not None


def test_an_unknown_architecture_is_refused_naming_the_supported_families():
    cfg = T.BloomConfig(n_layer=1, n_head=2, hidden_size=8, vocab_size=300)
    with pytest.raises(ValueError) as info:
        kit.Model(T.AutoModelForCausalLM.from_config(cfg), _tokenizer())
    msg = str(info.value)
    assert "'bloom'" in msg and "docs/families.md" in msg
    for family in ("gpt2", "gpt_neox", "llama", "gemma2", "gemma3", "olmo2", "phi3", "gptj", "opt", "falcon"):
        assert f"  {family}:" in msg


@pytest.mark.parametrize("cfg,match", [
    (T.OPTConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=8, ffn_dim=16, vocab_size=300,
                 do_layer_norm_before=False, word_embed_proj_dim=8), "do_layer_norm_before"),
    (T.OPTConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=8, ffn_dim=16, vocab_size=300,
                 word_embed_proj_dim=4), "project_in"),
    (T.FalconConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=8, vocab_size=300, alibi=True), "ALiBi"),
    (T.Olmo2Config(num_hidden_layers=1, num_attention_heads=2, hidden_size=8, intermediate_size=8, vocab_size=300,
                   attention_bias=True, pad_token_id=0), "attention_bias"),
])
def test_variants_the_kit_cannot_trace_exactly_are_refused(cfg, match):
    with pytest.raises(ValueError, match=match):
        kit.Model(T.AutoModelForCausalLM.from_config(cfg), _tokenizer())


def test_names_a_family_lacks_are_refused_before_tracing():
    with pytest.raises(ValueError, match="parallel"):
        model_of("gptj").trace("Hi", capture=["resid_mid"])
    with pytest.raises(ValueError, match="no learned position"):
        model_of("llama").trace("Hi", capture=["pos_embed"])
    with pytest.raises(ValueError, match="no norm before"):
        model_of("olmo2").trace("Hi", capture=["attn_scale"])
    assert set(MODEL_NAMES) <= set(ALL)


def test_gradients_flow_through_observed_and_edited_attention(variant):
    model = model_of(variant)
    model.hf.zero_grad()
    tr = model.trace(PROMPTS[0], grad=True, interventions=[kit.Knockout(0, query=-1, key=0)])
    tr.logits[0, -1, 5].backward()
    grad = model.adapter.attn(0)
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in grad.parameters())
    model.hf.zero_grad()


CT_SEED = {"gptj": 3}  # the sharpening seed per variant (default 2): each gives every kind a spread >= 0.025
CT_SPREAD = 0.02  # measured: the smallest max |score - corrupted| over the kinds is 0.025 (gpt_neox) to 0.41
CT_ATOL = 1e-5  # measured: a batched grid differs from one forward pass per cell by at most 5e-7


@pytest.mark.parametrize("kind", ["resid", "mlp", "attn"])
def test_causal_traces_equal_one_forward_pass_per_cell_in_every_family(variant, kind):
    """Every cell of the fanned-out, delta-shortcut grid against the plain loop, on a sharpened model of each
    family: post-norm blocks (Gemma 2/3, OLMo 2) add the *normed* sublayer difference to the residual, OPT's
    MLP runs on flattened states, Falcon's and GPT-J's blocks are parallel, Mistral's window is 3 tokens."""
    hf = F.build(variant)
    sharpen(hf, CT_SEED.get(variant, 2))
    if getattr(hf.config, "final_logit_softcapping", None):
        hf.config.final_logit_softcapping = 30.0  # the tiny config's 3.0 keeps every probability near uniform
    m = kit.Model(hf, _tokenizer(), name=variant)
    prompt, subject = "The cat sat on the mat.", "mat"  # a subject inside the sliding windows of the last token
    ct = A.causal_traces(m, prompt, subject, kinds=(kind,), samples=2, window=2, batch_size=11)[kind]
    ref = loop_grid(m, prompt, subject, kind, samples=2, window=2, answer=ct.answer)
    assert float((ct.scores - ct.corrupted).abs().max()) > CT_SPREAD
    torch.testing.assert_close(ct.scores, ref, atol=CT_ATOL, rtol=0)


def test_direct_logit_attribution_parts_sum_to_the_logit_difference_in_every_family(variant):
    """On a sharpened model (logit differences of O(1) to O(10)): embeddings, heads, biases and MLPs sum to
    the logit difference of the forward pass (before Gemma's final soft-cap), and neurons to their MLP."""
    hf = F.build(variant)
    sharpen(hf, 2)
    m = kit.Model(hf, _tokenizer(), name=variant)
    tr = m.trace("The cat sat on the mat.")
    at = A.direct_logit_attribution(tr, token=5, contrast=7)
    diff = tr.logits[:, -1, 5] - tr.logits[:, -1, 7]
    cap = getattr(hf.config, "final_logit_softcapping", None)
    if cap:  # the parts sum to the logits before the soft-cap
        pre = tr.logits[:, -1].double().div(cap).atanh().mul(cap)
        diff = (pre[:, 5] - pre[:, 7]).float()
    assert max(float(at.heads.abs().max()), float(at.mlps.abs().max())) > 0.3  # the parts are O(1) or more
    torch.testing.assert_close(at.total, diff, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(at.parts_sum(), at.total, atol=2e-4, rtol=0)  # measured: at most 6.3e-5
    torch.testing.assert_close(at.neurons.sum(-1) + at.mlp_bias, at.mlps, atol=1e-5, rtol=0)


# The module whose output's first part is the MLP's pre-activation (its gate in gated MLPs), by hand.
MLP_IN = {"gpt2": "mlp.c_fc", "gpt_neox": "mlp.dense_h_to_4h", "gpt_neox_seq": "mlp.dense_h_to_4h",
          "gptj": "mlp.fc_in", "opt": "fc1", "falcon": "mlp.dense_h_to_4h", "falcon_new": "mlp.dense_h_to_4h",
          "phi3": "mlp.gate_up_proj"}  # Phi-3: one fused [gate | up] projection; the others: mlp.gate_proj


def test_mlp_pre_is_the_first_projection_or_the_gate_half_of_a_fused_one(variant):
    model = model_of(variant)
    if "mlp_pre" not in available_names(model.adapter):
        pytest.skip(f"{variant} has no mlp_pre")
    outs = {}
    hooks = [block.get_submodule(MLP_IN.get(variant, "mlp.gate_proj")).register_forward_hook(
        lambda mod, args, out, l=l: outs.__setitem__(l, out)) for l, block in enumerate(model.adapter.blocks)]
    try:
        tr = model.trace(PROMPTS[0], capture=["mlp_pre", "mlp_post"])
    finally:
        for h in hooks:
            h.remove()
    for l, out in outs.items():
        out = out.reshape(1, tr.n_pos, -1)  # OPT's MLP runs on flattened [batch * pos, width] states
        want = out.chunk(2, dim=-1)[0] if variant == "phi3" else out
        assert tr["mlp_pre", l].shape == want.shape == tr["mlp_post", l].shape
        torch.testing.assert_close(tr["mlp_pre", l], want, atol=0, rtol=0)


def _norm_reference(norm: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, normalized) by the definitions in kit.names: RMSNorm divides by sqrt(mean x² + eps),
    LayerNorm centres and divides by sqrt(var + eps)."""
    eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", None))
    x = x.double()
    if "RMS" in type(norm).__name__:
        scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
        return scale, x / scale
    centred = x - x.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return scale, centred / scale


def test_norm_scales_and_normalized_inputs_follow_their_definitions(variant):
    model = model_of(variant)
    a, names = model.adapter, available_names(model.adapter)
    norms = {("final", None): a.final_norm}
    for l in range(model.n_layers):
        norms.update({("attn", l): a.attn_norm(l), ("mlp", l): a.mlp_norm(l)})
    norms = {k: v for k, v in norms.items() if v is not None and f"{k[0]}_scale" in names}
    inputs = {}
    hooks = [norm.register_forward_pre_hook(lambda mod, args, k=k: inputs.setdefault(k, args[0]))
             for k, norm in norms.items()]
    try:
        tr = model.trace(PROMPTS[0], capture=sorted({f"{p}_{w}" for p, _ in norms for w in ("scale", "normalized")}))
    finally:
        for h in hooks:
            h.remove()
    # not vacuous: every family has its final norm, and an MLP input norm but Falcon-7B (one norm shared by
    # attention and MLP) and OLMo 2 (norms after the sublayers only)
    assert ("final", None) in norms and (("mlp", 0) in norms or variant in ("falcon", "olmo2"))
    for (prefix, layer), norm in norms.items():
        x = inputs[prefix, layer].reshape(1, tr.n_pos, -1)  # OPT's MLP norm sees flattened states
        scale, normalized = _norm_reference(norm, x)
        key = (f"{prefix}_scale", layer) if layer is not None else f"{prefix}_scale"
        got_scale = tr[key]
        got_norm = tr[(f"{prefix}_normalized", layer) if layer is not None else f"{prefix}_normalized"]
        assert got_scale.shape == (1, tr.n_pos, 1) and got_norm.shape == x.shape
        torch.testing.assert_close(got_scale.double(), scale, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got_norm.double(), normalized, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant_name", ["gpt2", "llama", "opt"])
def test_every_capture_of_a_bfloat16_model_is_bfloat16(variant_name):
    """Norm scales and normalized inputs are computed in float32 for accuracy, then stored in the model's
    dtype like every other capture (a mix would make sums of captures change dtype)."""
    model = kit.Model(F.build(variant_name, dtype=torch.bfloat16), _tokenizer(), name=variant_name)
    names = available_names(model.adapter)
    assert {"attn_scale", "mlp_normalized", "final_scale"} <= set(names)
    tr = model.trace(PROMPTS[0], capture=list(names))
    stored = [key for key in tr._store if not str(key[0]).startswith("_")]  # the public captures
    assert len(stored) > 10 * model.n_layers
    for key in stored:
        assert tr._store[key].dtype == torch.bfloat16, key


@pytest.mark.parametrize("variant_name", ["gpt2", "llama", "opt"])
def test_a_norm_scale_or_normalized_input_can_be_captured_alone(variant_name):
    model = model_of(variant_name)
    both = model.trace(PROMPTS[0], capture=["attn_scale", "attn_normalized", "mlp_scale", "mlp_normalized",
                                            "final_scale", "final_normalized"])
    for name in ("attn_scale", "attn_normalized", "mlp_scale", "mlp_normalized"):
        alone = model.trace(PROMPTS[0], capture=[name])
        for l in range(model.n_layers):
            torch.testing.assert_close(alone[name, l], both[name, l], atol=0, rtol=0)
    for name in ("final_scale", "final_normalized"):
        torch.testing.assert_close(model.trace(PROMPTS[0], capture=[name])[name], both[name], atol=0, rtol=0)
