"""Every intervention, with every option: what it must change, and what it must leave alone.

On the sharpened tiny models (``tests/fixtures_teeth.py``) an edit moves the logits by O(1) while
what it must leave alone is recomputed bit for bit, so "unchanged" is checked exactly (``atol=0``)
on the activation the edit acts on and on everything upstream of it, and within 1e-5 on logits
of earlier positions (measured: 0; causal attention means a later position cannot reach them).
"""

from __future__ import annotations

import pytest
import torch

import kit
from tests.fixtures_teeth import PROMPT

EXACT = dict(atol=0.0, rtol=0.0)
LOGIT_ATOL = 1e-5  # untouched logits; measured 0 (same ops on the same inputs)
MOVED = 0.01  # an edit must move the logits at or after its position by more than this (measured >= 0.05)


@pytest.fixture(params=["gpt2", "llama"])
def m(request, teeth):
    return teeth[request.param]


def _trace(m, ivs=(), prompt=PROMPT):
    return m.trace(prompt, capture=None, interventions=list(ivs))


def _mask(pos, T: int) -> torch.Tensor:
    """``[pos]`` bool of the positions a ``pos`` argument selects in a prompt of ``T`` tokens."""
    out = torch.zeros(T, dtype=torch.bool)
    if pos is None:
        out[:] = True
    elif isinstance(pos, slice):
        out[list(range(T))[pos]] = True
    else:
        out[[p % T for p in ([pos] if isinstance(pos, int) else pos)]] = True
    return out


def _heads(head, n: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.bool)
    out[[h % n for h in ([head] if isinstance(head, int) else head)]] = True
    return out


def _upstream_and_logits_unchanged(m, base, tr, layer: int, first_pos: int, pre: bool = True) -> None:
    """Everything before ``layer`` (and the stream entering it, with ``pre``) and every logit before
    ``first_pos`` is as in ``base``; some logit at or after ``first_pos`` moved."""
    for l in range(layer):
        torch.testing.assert_close(tr["resid_post", l], base["resid_post", l], **EXACT)
    if pre:
        torch.testing.assert_close(tr["resid_pre", layer], base["resid_pre", layer], **EXACT)
    torch.testing.assert_close(tr.logits[:, :first_pos], base.logits[:, :first_pos], atol=LOGIT_ATOL, rtol=0)
    assert (tr.logits[:, first_pos:] - base.logits[:, first_pos:]).abs().max() > MOVED


POSITIONS = [None, 4, -1, [2, 9], slice(6, None)]


# --- Ablate -------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", [2, [0, 3], -1])
@pytest.mark.parametrize("pos", POSITIONS)
def test_zero_ablation_silences_the_chosen_heads_at_the_chosen_positions_only(m, head, pos):
    base = _trace(m)
    tr = _trace(m, [kit.Ablate(1, head, pos=pos)])
    T = base.n_pos
    sel = _mask(pos, T)[:, None] & _heads(head, m.n_heads)[None, :]  # [pos, head]
    z, zb = tr["z", 1][0], base["z", 1][0]  # [pos, head, d_head]
    assert z[sel].abs().max() == 0
    torch.testing.assert_close(z[~sel], zb[~sel], **EXACT)
    assert zb[sel].abs().min() > 1e-3  # there was something to silence
    _upstream_and_logits_unchanged(m, base, tr, 1, int(_mask(pos, T).nonzero()[0]))


@pytest.mark.parametrize("with_reference", [False, True])
@pytest.mark.parametrize("pos", [None, -1, [3, 5]])
def test_mean_ablation_writes_the_mean_over_real_tokens_and_nothing_else(m, with_reference, pos):
    other = "Once upon a time there was a model."  # a longer second prompt: the batch is padded
    if with_reference:
        ref = m.trace([PROMPT[:12], other], capture=["z"])  # the reference's padding must not count
        z_ref = ref["z", 0][ref.mask]  # [real tokens, head, d_head]
        assert not ref.mask.all()
    base = _trace(m, prompt=[PROMPT, other])
    tr = _trace(m, [kit.Ablate(0, [1, 2], how="mean", pos=pos, reference=ref if with_reference else None)],
                prompt=[PROMPT, other])
    if not with_reference:
        z_ref = base["z", 0][base.mask]
    mean = z_ref.mean(0)  # [head, d_head]
    for b, n in enumerate(base.lengths):
        sel = _mask(pos, n)
        z, zb = tr["z", 0][b, :n], base["z", 0][b, :n]
        for h in range(m.n_heads):
            if h in (1, 2):
                torch.testing.assert_close(z[sel, h], mean[h].expand_as(z[sel, h]), atol=1e-5, rtol=0)
                torch.testing.assert_close(z[~sel, h], zb[~sel, h], **EXACT)
            else:
                torch.testing.assert_close(z[:, h], zb[:, h], **EXACT)
    assert (tr.logits - base.logits).abs().max() > MOVED


# --- Patch --------------------------------------------------------------------------------------

PATCH_NAMES = ["pattern", "resid_pre", "resid_post", "attn_out", "z", "head_out", "mlp_out", "mlp_post"]


def _pair(m):
    """A clean and a corrupted prompt of the same token length (the corrupted one reversed)."""
    clean_ids = m.to_tokens(PROMPT)
    return clean_ids, clean_ids.flip(0)


@pytest.mark.parametrize("name", PATCH_NAMES)
@pytest.mark.parametrize("pos", [None, 3, -2, [1, 6]])
def test_patch_copies_the_source_at_the_chosen_positions_and_leaves_the_rest(m, name, pos):
    clean_ids, bad_ids = _pair(m)
    src = m.trace(clean_ids)
    base = _trace(m, prompt=bad_ids)
    tr = _trace(m, [kit.Patch(name, 1, src, pos=pos)], prompt=bad_ids)
    T = base.n_pos
    sel = _mask(pos, T)
    x, xb, xs = tr[name, 1][0], base[name, 1][0], src[name, 1][0]
    if name == "pattern":  # [head, query, key]: the chosen positions are queries (rows), never keys
        x, xb, xs = x.transpose(0, 1), xb.transpose(0, 1), xs.transpose(0, 1)  # [query, head, key]
    tol = dict(atol=1e-5, rtol=0) if name == "head_out" else EXACT  # head_out is recomputed from z
    torch.testing.assert_close(x[sel], xs[sel], **tol)
    torch.testing.assert_close(x[~sel], xb[~sel], **tol)
    assert (xs[sel] - xb[sel]).abs().max() > MOVED  # the source differed there
    _upstream_and_logits_unchanged(m, base, tr, 1, int(sel.nonzero()[0]), pre=name != "resid_pre")


@pytest.mark.parametrize("name", ["pattern", "z", "head_out"])
@pytest.mark.parametrize("head", [1, [0, 3], -1])
def test_patch_with_heads_copies_only_those_heads(m, name, head):
    clean_ids, bad_ids = _pair(m)
    src = m.trace(clean_ids)
    base = _trace(m, prompt=bad_ids)
    tr = _trace(m, [kit.Patch(name, 2, src, pos=[2, -1], head=head)], prompt=bad_ids)
    pos_sel = _mask([2, -1], base.n_pos)
    heads = _heads(head, m.n_heads)
    x, xb, xs = tr[name, 2][0], base[name, 2][0], src[name, 2][0]
    if name == "pattern":  # [head, query, key] -> [query, head, key]
        x, xb, xs = x.transpose(0, 1), xb.transpose(0, 1), xs.transpose(0, 1)
    sel = pos_sel[:, None] & heads[None, :]  # [pos, head]
    tol = dict(atol=1e-5, rtol=0) if name == "head_out" else EXACT
    torch.testing.assert_close(x[sel], xs[sel], **tol)
    torch.testing.assert_close(x[~sel], xb[~sel], **tol)
    _upstream_and_logits_unchanged(m, base, tr, 2, 2)


def test_patch_from_a_tensor_broadcasts_a_batch_of_one(m):
    clean_ids, bad_ids = _pair(m)
    src = m.trace(clean_ids, capture=["mlp_post"])["mlp_post", 0]  # [1, pos, d_mlp]
    base = _trace(m, prompt=torch.stack([bad_ids, clean_ids.roll(3)]))
    tr = _trace(m, [kit.Patch("mlp_post", 0, src, pos=5)], prompt=torch.stack([bad_ids, clean_ids.roll(3)]))
    for b in range(2):
        torch.testing.assert_close(tr["mlp_post", 0][b, 5], src[0, 5], **EXACT)
        torch.testing.assert_close(tr["mlp_post", 0][b, :5], base["mlp_post", 0][b, :5], **EXACT)
        torch.testing.assert_close(tr["mlp_post", 0][b, 6:], base["mlp_post", 0][b, 6:], **EXACT)


# --- Clamp --------------------------------------------------------------------------------------

@pytest.mark.parametrize("neuron", [3, [1, 5], -1])
@pytest.mark.parametrize("value", [4.0, -2.5, 0.5])
@pytest.mark.parametrize("pos", [None, -1, [0, 7]])
def test_clamp_sets_only_the_chosen_neurons_at_the_chosen_positions(m, neuron, value, pos):
    base = _trace(m)
    tr = _trace(m, [kit.Clamp(1, neuron, value, pos=pos)])
    sel = _mask(pos, base.n_pos)[:, None] & _heads(neuron, m.d_mlp)[None, :]  # [pos, neuron]
    x, xb = tr["mlp_post", 1][0], base["mlp_post", 1][0]
    assert (x[sel] == value).all()
    torch.testing.assert_close(x[~sel], xb[~sel], **EXACT)  # the neurons not clamped keep their values
    _upstream_and_logits_unchanged(m, base, tr, 1, int(_mask(pos, base.n_pos).nonzero()[0]))


def test_clamp_takes_one_value_per_neuron(m):
    base = _trace(m)
    tr = _trace(m, [kit.Clamp(0, [2, 6, 7], torch.tensor([1.5, -3.0, 0.25]), pos=4)])
    assert tr["mlp_post", 0][0, 4, [2, 6, 7]].tolist() == [1.5, -3.0, 0.25]
    keep = torch.ones(m.d_mlp, dtype=torch.bool)
    keep[[2, 6, 7]] = False
    torch.testing.assert_close(tr["mlp_post", 0][0, 4, keep], base["mlp_post", 0][0, 4, keep], **EXACT)


# --- Steer --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2.0, -1.5, 0.25])
@pytest.mark.parametrize("name", ["resid_pre", "resid_post"])
@pytest.mark.parametrize("pos", [None, -1, [2, 5]])
def test_steer_adds_scale_times_the_vector_at_the_chosen_layer_and_positions(m, scale, name, pos):
    vec = torch.randn(m.d_model, generator=torch.Generator().manual_seed(1))
    base = _trace(m)
    tr = _trace(m, [kit.Steer(vec, 1, pos=pos, scale=scale, name=name)])
    sel = _mask(pos, base.n_pos)
    diff = (tr[name, 1] - base[name, 1])[0]  # [pos, d_model]
    torch.testing.assert_close(diff[sel], (scale * vec).expand(int(sel.sum()), -1), atol=1e-5, rtol=0)
    assert (diff[~sel] == 0).all()
    _upstream_and_logits_unchanged(m, base, tr, 1, int(sel.nonzero()[0]), pre=name != "resid_pre")


@pytest.mark.parametrize("scale", [-0.5, 3.0])
def test_steer_over_several_layers_adds_the_vector_at_each(m, scale):
    vec = torch.randn(m.d_model, generator=torch.Generator().manual_seed(2))
    first = _trace(m, [kit.Steer(vec, 0, scale=scale)])
    both = _trace(m, [kit.Steer(vec, [0, 2], scale=scale)])
    torch.testing.assert_close(both["resid_pre", 1], first["resid_pre", 1], **EXACT)
    diff = both["resid_pre", 2] - first["resid_pre", 2]
    torch.testing.assert_close(diff, (scale * vec).expand_as(diff), atol=1e-5, rtol=0)


def test_steers_at_one_point_add_up_and_edits_apply_in_order(m):
    vec = torch.randn(m.d_model, generator=torch.Generator().manual_seed(3))
    once = _trace(m, [kit.Steer(vec, 1, scale=2.0)])
    twice = _trace(m, [kit.Steer(vec, 1), kit.Steer(vec, 1)])
    torch.testing.assert_close(twice["resid_pre", 1], once["resid_pre", 1], atol=1e-5, rtol=0)
    tr = _trace(m, [kit.Clamp(0, 3, 2.0), kit.Edit("mlp_post", 0, lambda x: x * 3)])
    assert (tr["mlp_post", 0][0, :, 3] == 6.0).all()  # the edit saw the clamped value


# --- Knockout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("head", [None, 2, [0, 2], -1])  # (llama head 1.1 keeps 0.999 on itself at the end)
@pytest.mark.parametrize("query, key", [(-1, slice(0, -1)), ([5, 9], "top"), (slice(8, None), "top"), (-1, "top")])
def test_knockout_blocks_only_the_chosen_heads_queries_and_keys(m, head, query, key):
    base = _trace(m)
    T = base.n_pos
    q = _mask(query, T)
    heads = torch.ones(m.n_heads, dtype=torch.bool) if head is None else _heads(head, m.n_heads)
    pb = base["pattern", 1][0]  # [head, query, key]
    if key == "top":  # the keys these heads attend most from these queries (not themselves): a list
        off_diag = pb.masked_fill(torch.eye(T, dtype=torch.bool), -1)
        key = sorted({int(off_diag[h, i].argmax()) for h in heads.nonzero().flatten() for i in q.nonzero().flatten()
                      if i > 0})
    tr = _trace(m, [kit.Knockout(1, query, key, head=head)])
    k = _mask(key, T)
    p = tr["pattern", 1][0]
    blocked = heads[:, None, None] & q[None, :, None] & k[None, None, :]
    rows = heads[:, None] & q[None, :]  # [head, query]: the rows that were renormalised
    assert p[blocked].abs().max() == 0
    assert pb[blocked].max() > 0.05  # there was attention to block (measured >= 0.2)
    torch.testing.assert_close(p[~rows], pb[~rows], **EXACT)  # other heads, other queries
    # the rows knocked out share out their attention over the keys they still see, in proportion
    kept = pb * ~blocked
    torch.testing.assert_close(p[rows], (kept / kept.sum(-1, keepdim=True))[rows], atol=1e-5, rtol=0)
    _upstream_and_logits_unchanged(m, base, tr, 1, int(q.nonzero()[0]))


def test_knockout_over_several_layers_blocks_each(m):
    tr = _trace(m, [kit.Knockout([0, 2], -1, slice(0, -1), head=[1, 3])])
    base = _trace(m)
    for l in (0, 2):
        assert tr["pattern", l][0, [1, 3], -1, :-1].abs().max() == 0
        assert (tr["pattern", l][0, [1, 3], -1, -1] == 1).all()
    # layer 1 is not knocked out: its last row changes only through its inputs, rows before stay
    torch.testing.assert_close(tr["pattern", 1][0, :, :-1], base["pattern", 1][0, :, :-1], **EXACT)


# --- Edit ---------------------------------------------------------------------------------------

def test_edit_of_attention_scores_acts_before_the_softmax(m):
    base = _trace(m)

    def favour_key_0(scores):  # [batch, head, query, key]: + 3 on key 0 multiplies its weight by e^3
        out = scores.clone()
        out[..., 0] += 3.0
        return out

    tr = _trace(m, [kit.Edit("attn_scores", 0, favour_key_0)])
    weight = torch.ones(base.n_pos)
    weight[0] = torch.e ** 3
    expected = base["pattern", 0] * weight
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(tr["pattern", 0], expected, atol=1e-5, rtol=0)
    assert (tr.logits - base.logits).abs().max() > MOVED


# --- refusals name what is valid ----------------------------------------------------------------

def test_patch_refuses_a_source_that_is_neither_a_trace_nor_a_tensor(m):
    for bad, kind in ((3.0, "float"), ([1, 2], "list"), ("resid_pre", "str")):
        with pytest.raises(ValueError, match=rf"^Patch source must be a Trace .* or a tensor, got {kind}$"):
            m.trace(PROMPT, interventions=[kit.Patch("resid_pre", 0, bad)])


def test_patch_from_a_batch_of_sources_matches_prompt_by_prompt(m):
    clean_ids, bad_ids = _pair(m)
    ids = torch.stack([bad_ids, clean_ids])
    src = m.trace(torch.stack([clean_ids, bad_ids]), capture=["resid_pre"])["resid_pre", 1]  # [2, pos, d_model]
    tr = m.trace(ids, capture=["resid_pre"], interventions=[kit.Patch("resid_pre", 1, src, pos=4)])
    torch.testing.assert_close(tr["resid_pre", 1][:, 4], src[:, 4], **EXACT)
    with pytest.raises(ValueError, match=r"has shape \[3, .*batch needs \[2, "):
        m.trace(ids, interventions=[kit.Patch("resid_pre", 1, torch.cat([src, src[:1]]))])


def test_a_bool_position_mask_of_the_wrong_shape_is_refused_with_the_shapes(m):
    T = len(m.to_tokens(PROMPT))
    with pytest.raises(ValueError, match=rf"^pos as a bool tensor must have shape \[{T}\] or \[1, {T}\], got \[3\]$"):
        m.trace(PROMPT, interventions=[kit.Clamp(0, 1, pos=torch.ones(3, dtype=torch.bool))])
    with pytest.raises(ValueError, match=r"^layer 7 is out of range: valid layers are 0\.\.2"):
        m.trace(PROMPT, interventions=[kit.Steer(torch.zeros(m.d_model), [0, 7])])


def test_heads_neurons_and_positions_may_be_given_as_tensors(m):
    as_ints = _trace(m, [kit.Ablate(1, 2, pos=[2, 5]), kit.Clamp(0, [1, 5], 2.0)])
    as_tensors = _trace(m, [kit.Ablate(1, torch.tensor(2), pos=torch.tensor([2, 5])),
                            kit.Clamp(0, torch.tensor([1, 5]), 2.0)])
    torch.testing.assert_close(as_tensors.logits, as_ints.logits, **EXACT)
