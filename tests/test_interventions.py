"""Interventions through model.trace: ablate, patch, clamp, steer, knockout, edit."""

from __future__ import annotations

import pytest
import torch

import kit

ATOL = 1e-4
CLEAN = "The cat sat on the mat."
CORRUPT = "The dog sat on the rug."


def _hooks_attached(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def test_zero_ablated_head_outputs_zero_and_changes_logits(tiny_model):
    base = tiny_model.trace(CLEAN)
    tr = tiny_model.trace(CLEAN, interventions=[kit.Ablate(layer=0, head=1)])
    assert tr["head_out", 0][:, :, 1].abs().max() == 0
    assert tr["head_out", 0][:, :, 0].abs().max() > 0
    assert not torch.allclose(tr.logits, base.logits, atol=1e-6)
    # the recorded attn_out is what the model used: the remaining heads plus the bias
    bias = tiny_model.adapter.b_O(0)
    torch.testing.assert_close(tr["head_out", 0].sum(2) + (0 if bias is None else bias), tr["attn_out", 0], atol=ATOL, rtol=0)


def test_mean_ablation_replaces_head_with_its_mean(tiny_model):
    ref = tiny_model.trace([CLEAN, CORRUPT], capture=["z"])
    tr = tiny_model.trace(CLEAN, capture=["z"], interventions=[kit.Ablate(0, [0, 2], how="mean", reference=ref)])
    z_ref = ref["z", 0][ref.mask]  # [tokens, head, d_head]
    expected = z_ref.mean(0)
    for h in (0, 2):
        torch.testing.assert_close(tr["z", 0][0, :, h], expected[h].expand_as(tr["z", 0][0, :, h]), atol=1e-5, rtol=0)
    base = tiny_model.trace(CLEAN, capture=["z"])
    torch.testing.assert_close(tr["z", 0][0, :, 1], base["z", 0][0, :, 1], atol=0, rtol=0)


def test_patching_everything_from_clean_reproduces_clean_logits(tiny_model):
    clean = tiny_model.trace(CLEAN)
    corrupt_ids = clean.input_ids.clone()
    corrupt_ids[0, 1:3] = (corrupt_ids[0, 1:3] + 7) % tiny_model.vocab_size
    corrupt = tiny_model.trace(corrupt_ids, capture=[])
    assert not torch.allclose(corrupt.logits, clean.logits, atol=1e-3)
    patches = [kit.Patch(name, l, clean) for l in range(tiny_model.n_layers)
               for name in ("resid_pre", "attn_out", "head_out", "mlp_post", "mlp_out", "resid_post", "pattern")]
    patched = tiny_model.trace(corrupt_ids, capture=[], interventions=patches)
    torch.testing.assert_close(patched.logits, clean.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
def test_patching_the_last_residual_layer_at_every_position_restores_clean(tiny_model, name):
    clean = tiny_model.trace(CLEAN, capture=[name])
    ids = clean.input_ids.flip(1)
    last = tiny_model.n_layers - 1
    if name in ("resid_post",):
        patched = tiny_model.trace(ids, capture=[], interventions=[kit.Patch(name, last, clean)])
        torch.testing.assert_close(patched.logits, clean.logits, atol=ATOL, rtol=0)
    else:
        patched = tiny_model.trace(ids, capture=[name], interventions=[kit.Patch(name, last, clean)])
        torch.testing.assert_close(patched[name, last], clean[name, last], atol=0, rtol=0)


def test_patch_one_position_and_head_changes_only_that(tiny_model):
    clean = tiny_model.trace(CLEAN, capture=["z"])
    ids = clean.input_ids.flip(1)
    base = tiny_model.trace(ids, capture=["z"])
    patched = tiny_model.trace(ids, capture=["z"], interventions=[kit.Patch("head_out", 0, clean, pos=2, head=3)])
    z, zb, zc = patched["z", 0], base["z", 0], clean["z", 0]
    torch.testing.assert_close(z[0, 2, 3], zc[0, 2, 3], atol=0, rtol=0)
    keep = torch.ones_like(z, dtype=torch.bool)
    keep[0, 2, 3] = False
    torch.testing.assert_close(z[keep], zb[keep], atol=0, rtol=0)


def test_clamp_sets_neuron_and_changes_logits(tiny_model):
    base = tiny_model.trace(CLEAN, capture=["mlp_post"])
    tr = tiny_model.trace(CLEAN, capture=["mlp_post"], interventions=[kit.Clamp(layer=0, neuron=[3, 5], value=4.0, pos=-1)])
    post = tr["mlp_post", 0]
    assert torch.all(post[0, -1, [3, 5]] == 4.0)
    torch.testing.assert_close(post[0, :-1], base["mlp_post", 0][0, :-1], atol=0, rtol=0)
    assert not torch.allclose(tr.logits[0, -1], base.logits[0, -1], atol=1e-6)
    torch.testing.assert_close(tr.logits[0, :-1], base.logits[0, :-1], atol=ATOL, rtol=0)


def test_steering_adds_the_vector_at_chosen_layer_and_positions(tiny_model):
    vec = torch.randn(tiny_model.d_model, generator=torch.Generator().manual_seed(0))
    base = tiny_model.trace(CLEAN, capture=["resid_pre"])
    tr = tiny_model.trace(CLEAN, capture=["resid_pre"], interventions=[kit.Steer(vec, layer=1, pos=[0, 1], scale=2.0)])
    diff = tr["resid_pre", 1] - base["resid_pre", 1]
    torch.testing.assert_close(diff[0, :2], (2.0 * vec).expand(2, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(tr["resid_pre", 0], base["resid_pre", 0], atol=0, rtol=0)
    assert not torch.allclose(tr.logits, base.logits, atol=1e-6)


def test_negative_positions_count_from_each_prompts_own_end(tiny_model):
    prompts = [CLEAN, "Hi"]
    vec = torch.ones(tiny_model.d_model)
    base = tiny_model.trace(prompts, capture=["resid_post"])
    tr = tiny_model.trace(prompts, capture=["resid_post"], interventions=[kit.Steer(vec, 0, pos=-1, name="resid_post")])
    diff = (tr["resid_post", 0] - base["resid_post", 0]).abs().sum(-1) > 1e-3  # [batch, pos]
    lengths = base.lengths
    for b, n in enumerate(lengths):
        assert diff[b].nonzero().flatten().tolist() == [n - 1]


def test_knockout_blocks_attention_to_chosen_keys(tiny_model):
    tr = tiny_model.trace(CLEAN, capture=["pattern"], interventions=[kit.Knockout(layer=[0, 1], query=-1, key=[0, 1])])
    for l in (0, 1):
        p = tr["pattern", l][0, :, -1]
        assert p[:, :2].max() < 1e-6
        torch.testing.assert_close(p.sum(-1), torch.ones(tiny_model.n_heads), atol=1e-5, rtol=0)
    base = tiny_model.trace(CLEAN, capture=["pattern"])
    torch.testing.assert_close(tr["pattern", 0][0, :, :-1], base["pattern", 0][0, :, :-1], atol=1e-6, rtol=0)


def test_edit_applies_any_function(tiny_model):
    tr = tiny_model.trace(CLEAN, capture=["mlp_out"], interventions=[kit.Edit("mlp_out", 0, lambda x: x * 0)])
    assert tr["mlp_out", 0].abs().max() == 0


def test_hooks_are_removed_after_a_trace_and_after_an_error(tiny_model):
    before = _hooks_attached(tiny_model)
    tiny_model.trace(CLEAN, interventions=[kit.Ablate(0, 0), kit.Knockout(0, -1, 0)])
    assert _hooks_attached(tiny_model) == before
    assert tiny_model.hf.config._attn_implementation == "sdpa"

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tiny_model.trace(CLEAN, interventions=[kit.Edit("pattern", 1, boom)])
    assert _hooks_attached(tiny_model) == before
    assert tiny_model.hf.config._attn_implementation == "sdpa"


def test_interventions_leave_later_traces_untouched(tiny_model):
    base = tiny_model.trace(CLEAN, capture=[])
    tiny_model.trace(CLEAN, interventions=[kit.Ablate(0, 0), kit.Clamp(0, 1, 9.0)])
    torch.testing.assert_close(tiny_model.trace(CLEAN, capture=[]).logits, base.logits, atol=0, rtol=0)
