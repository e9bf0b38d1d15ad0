"""What a Trace answers and what it refuses, word for word (found by mutation testing of ``kit/trace.py``
and ``kit/names.py``, docs/mutation.md): names a family lacks, indexing, ``in``, the repr,
``post_norm_factor`` on a model with norms after attention and MLP, and the messages of the name checks.
"""

from __future__ import annotations

import pytest
import torch

import kit

from kit.names import ALL, TL_HOOKS, check_index, check_name, from_transformerlens
from kit.trace import available_names
from tests.test_families import model_of

PARALLEL = "its blocks are parallel: attention and MLP both read resid_pre"
NO_ATTN_NORM = "its attention reads the raw residual stream (no norm before it)"
NO_MLP_NORM = "its MLP reads the raw residual stream (no norm before it)"
ROTARY = "it has no learned position embedding (positions are rotary)"
ABSENT = {  # variant: {name: why}
    "gpt2": {},
    "gpt_neox": {"resid_mid": PARALLEL, "pos_embed": ROTARY},
    "llama": {"pos_embed": ROTARY},
    "olmo2": {"attn_normalized": NO_ATTN_NORM, "attn_scale": NO_ATTN_NORM, "mlp_normalized": NO_MLP_NORM,
              "mlp_scale": NO_MLP_NORM, "pos_embed": ROTARY},
}


@pytest.mark.parametrize("variant", list(ABSENT))
def test_names_a_family_lacks_are_refused_with_the_reason_and_left_out_of_available_names(variant):
    model = model_of(variant)
    family = model.adapter.family.name
    assert available_names(model.adapter) == tuple(n for n in ALL if n not in ABSENT[variant])
    for name, why in ABSENT[variant].items():
        with pytest.raises(ValueError) as info:
            model.trace("Hi", capture=["resid_post", name])
        assert str(info.value) == f"{name!r} does not exist in a {family} model: {why}"
    model.trace("Hi", capture=available_names(model.adapter))  # everything else is there


@pytest.fixture(scope="module")
def gpt2():
    return model_of("gpt2")


def test_a_transformerlens_name_with_a_layer_placeholder_reads_the_layer_given_beside_it(gpt2):
    tr = gpt2.trace(["The cat sat", "Hi"], capture=["resid_post", "pattern"])
    assert torch.equal(tr["blocks.{l}.hook_resid_post", 1], tr["resid_post", 1])
    assert torch.equal(tr["blocks.{l}.attn.hook_pattern", 0], tr["pattern", 0])
    assert not torch.equal(tr["resid_post", 1], tr["resid_post", 0])
    # the placeholder name is checked against the model's rotary like a full hook name
    llama = model_of("llama")
    tr = llama.trace("Hi", capture=["q"])
    assert torch.equal(tr["blocks.{l}.attn.hook_rot_q", 1], tr["q", 1])
    with pytest.raises(ValueError, match=r"^'blocks\.0\.attn\.hook_q': this model rotates queries and keys"):
        tr["blocks.{l}.attn.hook_q", 1]


def test_indexing_refuses_anything_but_a_name_or_a_name_and_layer_pair(gpt2):
    tr = gpt2.trace("Hi", capture=["resid_post"])
    for key in (["resid_post", 0], ("resid_post", 0, 1), ("resid_post",)):
        with pytest.raises(ValueError) as info:
            tr[key]
        assert str(info.value) == f"index a trace as tr[name, layer], e.g. tr['resid_post', 0]; got {key!r}"


def test_reading_a_name_not_captured_says_what_was(gpt2):
    tr = gpt2.trace("Hi", capture=["resid_post", "mlp_out"])
    with pytest.raises(ValueError) as info:
        tr["pattern", 0]
    assert str(info.value) == ("'pattern' was not captured in this trace; captured: resid_post, mlp_out. Trace again "
                               "with capture=[..., 'pattern'] (capture=None: the defaults; kit.names.ALL: everything).")
    tr = gpt2.trace("Hi", capture=[])
    with pytest.raises(ValueError, match=r"^'resid_post' was not captured in this trace; captured: nothing but "
                                         r"logits\. Trace again"):
        tr["resid_post", 0]


def test_learned_position_embeddings_are_read_once_per_prompt(gpt2):
    tr = gpt2.trace(["The cat sat", "Hi", "A B"], capture=["pos_embed", "embed"])
    pos = tr["pos_embed"]
    assert pos.shape == (3, tr.n_pos, gpt2.d_model) == tr["embed"].shape
    wpe = gpt2.hf.transformer.wpe.weight[: tr.n_pos]
    for b in range(3):
        torch.testing.assert_close(pos[b], wpe, atol=0, rtol=0)


def test_in_says_whether_a_name_and_layer_were_captured(gpt2):
    tr = gpt2.trace("Hi", capture=["resid_post", "embed"], layers=[1])
    assert ("resid_post", 1) in tr and "embed" in tr and "hook_embed" in tr and "blocks.1.hook_resid_post" in tr
    assert ("resid_post", 0) not in tr and ("pattern", 1) not in tr and "resid_final" not in tr
    for bad in ("nonsense", ("resid_post", 99), ("resid_post",), "resid_post", "blocks.1.hook_nonsense"):
        assert bad not in tr


def test_a_trace_keeps_the_model_that_made_it(gpt2):
    assert gpt2.trace("Hi", capture=[]).model is gpt2


@pytest.mark.parametrize("prompts", [["The cat sat on the mat and the dog sat on the log too.", "Hi", "a", "b"],
                                     ["The cat", "Hi", "a"], ["Hi"]], ids=["4", "3", "1"])
def test_the_repr_shows_the_sizes_and_the_first_three_prompts(gpt2, prompts):
    tr = gpt2.trace(prompts, capture=["resid_post"], layers=[1])
    shown = ", ".join(repr(p)[:40] for p in prompts[:3]) + (", ..." if len(prompts) > 3 else "")
    assert repr(tr) == (f"Trace(batch={len(prompts)}, pos={tr.n_pos}, captured=['resid_post'], layers=1/2, "
                        f"interventions=0, prompts=[{shown}])")


# --- post_norm_factor: OLMo 2 normalises what attention and the MLP write before adding it -------------------

@pytest.fixture(scope="module")
def olmo2():
    return model_of("olmo2")


def test_post_norm_factor_turns_the_raw_attention_and_mlp_outputs_into_what_the_block_adds(olmo2):
    tr = olmo2.trace(["The cat sat on the mat.", "Hi"], capture=["z", "mlp_post", "attn_out", "mlp_out"])
    for l, blk in enumerate(olmo2.hf.model.layers):
        attn = tr["z", l].flatten(2) @ blk.self_attn.o_proj.weight.T
        mlp = tr["mlp_post", l] @ blk.mlp.down_proj.weight.T
        f_attn, f_mlp = tr.post_norm_factor("attn", l), tr.post_norm_factor("mlp", l)
        assert f_attn.shape == f_mlp.shape == (2, tr.n_pos, olmo2.d_model)
        torch.testing.assert_close(attn * f_attn, tr["attn_out", l], atol=2e-5, rtol=0)
        torch.testing.assert_close(mlp * f_mlp, tr["mlp_out", l], atol=2e-5, rtol=0)
        assert (f_attn - f_mlp).abs().max() > 0.1  # two different norms
    assert tr.post_norm_factor("mlp", -1).equal(tr.post_norm_factor("mlp", 1))


def test_post_norm_factor_is_none_without_post_norms_and_refuses_what_it_cannot_compute(olmo2, gpt2):
    tr = gpt2.trace("Hi", capture=["z", "mlp_post"])
    assert tr.post_norm_factor("attn", 0) is None and tr.post_norm_factor("mlp", 1) is None
    tr = olmo2.trace("Hi", capture=["resid_post"])
    for args, message in [(("attn", 1), "post_norm_factor('attn', 1) needs a trace that captured z at layer 1"),
                          (("mlp", 0), "post_norm_factor('mlp', 0) needs a trace that captured mlp_post at layer 0"),
                          (("mlpp", 0), "unknown kind 'mlpp'; valid names: attn, mlp. Did you mean 'mlp'?"),
                          (("attn", 2), "layer 2 is out of range: valid layers are 0..1")]:
        with pytest.raises(ValueError) as info:
            tr.post_norm_factor(*args)
        assert str(info.value) == message


# --- kit.names: the messages of the checks --------------------------------------------------------------------

def test_check_name_and_check_index_messages_name_what_is_valid():
    with pytest.raises(ValueError) as info:
        check_name("qwerty")
    assert str(info.value) == ("unknown activation name 'qwerty'; valid names: pattern, resid_pre, resid_post, "
                               "attn_out, z, head_out, mlp_out, mlp_post.")  # no close match: no hint
    with pytest.raises(ValueError) as info:
        check_index("two", 4, "head")
    assert str(info.value) == "head must be an integer in 0..3, got 'two'"
    with pytest.raises(ValueError) as info:
        check_index(None, 12, "layer")
    assert str(info.value) == "layer must be an integer in 0..11, got None"


def test_transformerlens_refusals_name_the_hook_to_use():
    with pytest.raises(ValueError) as info:
        from_transformerlens("blocks.7.attn.hook_q", rotary=True)
    assert str(info.value) == ("'blocks.7.attn.hook_q': this model rotates queries and keys, so the kit has no "
                               "equivalent of hook_q; use 'blocks.7.attn.hook_rot_q' (kit name 'q': q/k as "
                               "attention uses them)")
    with pytest.raises(ValueError) as info:
        from_transformerlens("blocks.12.attn.hook_rot_k", rotary=False)
    assert str(info.value) == ("'blocks.12.attn.hook_rot_k': this model does not rotate queries and keys, so the "
                               "kit has no equivalent of hook_rot_k; use 'blocks.12.attn.hook_k' (kit name 'k': "
                               "q/k as attention uses them)")
    with pytest.raises(ValueError) as info:
        from_transformerlens("zzz")
    assert str(info.value) == ("unknown hook name 'zzz'; TransformerLens names with a kit "
                               f"equivalent: {', '.join(TL_HOOKS)}.")


def test_heads_takes_one_head_or_a_list_with_either_pattern_or_attn_scores(gpt2):
    ids = torch.tensor([[5, 9, 17, 33, 8]])
    full = gpt2.trace(ids, capture=["attn_scores"])
    one = gpt2.trace(ids, capture=["attn_scores"], heads=2)
    assert one.pattern_heads == (2,)
    torch.testing.assert_close(one["attn_scores", 1], full["attn_scores", 1][:, [2]], atol=1e-6, rtol=0)
    assert torch.equal(gpt2.trace(ids, capture=["attn_scores"], heads=[2])["attn_scores", 0], one["attn_scores", 0])
    with pytest.raises(ValueError) as info:
        gpt2.trace(ids, capture=["z"], heads=[1])
    assert str(info.value) == ("heads= chooses the heads whose 'pattern' / 'attn_scores' are computed; "
                               "capture one of them")
    with pytest.raises(ValueError) as info:
        gpt2.trace(ids, capture=["pattern"], heads=[])
    assert str(info.value) == "heads= is empty; give at least one head, or None for all"


def test_capture_takes_one_name_logits_transformerlens_names_and_keeps_z_for_head_out(gpt2):
    ids = torch.tensor([[5, 9, 17, 33, 8]])
    assert gpt2.trace(ids, capture="resid_post").names == ("resid_post",)
    assert gpt2.trace(ids, capture=["logits", "mlp_out", "logits", "resid_pre"]).names == ("resid_pre", "mlp_out")
    tr = gpt2.trace(ids, capture=["head_out"], layers=1)
    assert tr.names == ("z", "head_out") and tr.layers == (1,)
    assert tr["head_out", 1].shape == (1, 5, gpt2.n_heads, gpt2.d_model)
    llama = model_of("llama")
    assert llama.trace(ids, capture=["blocks.{l}.attn.hook_rot_q"]).names == ("q",)
    with pytest.raises(ValueError, match=r"^'blocks\.0\.attn\.hook_q': this model rotates queries and keys"):
        llama.trace(ids, capture=["blocks.{l}.attn.hook_q"])


def test_opt_mlp_activations_computed_flat_are_read_back_per_prompt_and_position():
    opt = model_of("opt")  # OPT's MLP runs on [batch * pos, width]
    tr = opt.trace(["The cat sat on the mat.", "Hi"], capture=["mlp_post", "mlp_out", "resid_mid", "resid_post"])
    assert tr["mlp_post", 1].shape == (2, tr.n_pos, opt.d_mlp) and tr["mlp_out", 1].shape == (2, tr.n_pos, opt.d_model)
    for l in range(opt.n_layers):
        torch.testing.assert_close(tr["resid_mid", l] + tr["mlp_out", l], tr["resid_post", l], atol=2e-5, rtol=0)
        fc2 = opt.hf.model.decoder.layers[l].fc2
        torch.testing.assert_close(fc2(tr["mlp_post", l]), tr["mlp_out", l], atol=2e-5, rtol=0)


def test_a_model_with_a_capture_device_traces_the_same_and_keeps_the_interventions(gpt2):
    from kit.interventions import Ablate

    pinned = kit.Model(gpt2.hf, gpt2.tokenizer, name="gpt2-pinned", capture_device="cpu")
    assert pinned.capture_device == torch.device("cpu")
    iv = Ablate(0, head=1)
    tr, ref = pinned.trace(["The cat sat", "Hi"], interventions=iv), gpt2.trace(["The cat sat", "Hi"], interventions=iv)
    assert tr.interventions == (iv,) == ref.interventions
    assert torch.equal(tr.logits, ref.logits) and torch.equal(tr.mask, ref.mask) and torch.equal(tr.input_ids, ref.input_ids)
    assert torch.equal(tr["resid_post", 1], ref["resid_post", 1]) and tr.logits.device == torch.device("cpu")
