"""kit.analysis on tiny random models of every family: shapes, definitions and exact invariants."""

from __future__ import annotations

import pytest
import torch

import kit
from kit import analysis as A

PROMPT = "The cat sat on the mat."


def test_head_scores_have_layer_by_head_shape_and_range(tiny_model):
    m = tiny_model
    for fn in (A.prev_token_scores, A.induction_scores):
        s = fn(m, batch=2)
        assert s.shape == (m.n_layers, m.n_heads)
        assert (s >= 0).all() and (s <= 1).all()
    c = A.copying_scores(m)
    assert c.shape == (m.n_layers, m.n_heads) and (c.abs() <= 1 + 1e-5).all()


def test_prev_token_score_matches_its_definition(tiny_models):
    m = tiny_models["gpt2"]
    s = A.prev_token_scores(m, seq_len=10, batch=3, seed=1)
    special = set(m.tokenizer.all_special_ids)
    ids = kit.head_scores.random_tokens([i for i in range(m.vocab_size) if i not in special], 3, 10, 1)
    p = m.trace(ids, capture=["pattern"])["pattern", 1]  # [batch, head, q, k]
    manual = torch.stack([p[:, :, i, i - 1] for i in range(1, 10)], -1).mean((0, 2))
    torch.testing.assert_close(s[1], manual, atol=1e-6, rtol=0)


def test_induction_score_reads_the_token_after_the_first_occurrence(tiny_models):
    m = tiny_models["gpt2"]
    T = 7
    s = A.induction_scores(m, seq_len=T, batch=2, seed=3)
    ids = A.repeated_tokens(m, T, 2, 3)
    assert torch.equal(ids[:, :T], ids[:, T:])
    p = m.trace(ids, capture=["pattern"])["pattern", 0]
    manual = torch.stack([p[:, :, i, i - T + 1] for i in range(T, 2 * T)], -1).mean((0, 2))
    torch.testing.assert_close(s[0], manual, atol=1e-6, rtol=0)


@torch.no_grad()
def test_copying_score_equals_that_of_the_full_vocab_by_vocab_circuit(tiny_models):
    """The small [d_head, d_head] product has the same non-zero eigenvalues as W_E W_V W_O W_U."""
    m = tiny_models["gpt2"]
    W_E, W_U = m.adapter.embed.weight.double(), m.adapter.W_U.double()
    W_V = m.adapter.W_QKV(0)[2][0].double()  # [d_model, d_head]
    W_O = m.adapter.W_O(0)[0].double()
    eig = torch.linalg.eigvals(W_E @ W_V @ W_O @ W_U)  # [vocab] eigenvalues, most of them zero
    expected = float(eig.real.sum() / eig.abs().sum())
    assert A.copying_scores(m)[0, 0].item() == pytest.approx(expected, abs=1e-4)


def test_logit_lens_last_layer_is_the_model_output(tiny_model):
    tr = tiny_model.trace([PROMPT, "Hi there"], capture=["resid_post"])
    lens = A.logit_lens(tr, k=3, target=" the")
    L = tiny_model.n_layers
    assert lens.top_ids.shape == (L, 2, tr.n_pos, 3)
    assert lens.target_rank.shape == (L, 2, tr.n_pos)
    torch.testing.assert_close(lens.top_ids[-1], tr.logits.topk(3, -1).indices)
    probs = tr.logits.float().softmax(-1)
    tid = int(lens.target_ids[0])
    torch.testing.assert_close(lens.target_prob[-1], probs[..., tid], atol=1e-5, rtol=0)
    ranks = (probs > probs[..., tid:tid + 1]).sum(-1)
    assert torch.equal(lens.target_rank[-1], ranks)
    assert len(lens.top_tokens[0][0][0]) == 3


def test_logit_lens_needs_resid_post(tiny_model):
    with pytest.raises(ValueError, match="resid_post"):
        A.logit_lens(tiny_model.trace(PROMPT, capture=["pattern"]))


@pytest.mark.parametrize("contrast", [None, 7])
def test_direct_logit_attribution_parts_sum_to_the_logit(tiny_model, contrast):
    tr = tiny_model.trace([PROMPT, "Hi there"])
    att = A.direct_logit_attribution(tr, token=5, contrast=contrast)
    rows = torch.arange(2)
    last = torch.tensor(tr.lengths) - 1
    logit = tr.logits[rows, last, 5] - (0 if contrast is None else tr.logits[rows, last, contrast])
    torch.testing.assert_close(att.total, logit.float())
    torch.testing.assert_close(att.parts_sum(), att.total, atol=1e-3, rtol=0)
    # neurons plus the MLP bias make up each MLP's effect
    torch.testing.assert_close(att.neurons.sum(-1) + att.mlp_bias, att.mlps, atol=1e-3, rtol=0)
    assert att.heads.shape == (2, tiny_model.n_layers, tiny_model.n_heads)


def test_activation_patching_grid_matches_single_patches(tiny_models):
    m = tiny_models["gpt2"]
    clean = m.to_tokens("The cat sat on the mat.")
    corrupt = clean.clone()
    corrupt[1:3] = torch.tensor([40, 41])
    for kind in ("resid", "mlp", "heads"):
        res = A.activation_patching(m, clean, corrupt, answer=5, contrast=9, kind=kind, batch_size=5)
        width = m.n_heads if kind == "heads" else len(clean)
        assert res.scores.shape == (m.n_layers, width)
        point = {"resid": "resid_pre", "mlp": "mlp_out", "heads": "head_out"}[kind]
        src = m.trace(clean, capture=[point])
        l, j = 1, 2
        iv = kit.Patch(point, l, src, head=j) if kind == "heads" else kit.Patch(point, l, src, pos=j)
        lg = m.trace(corrupt, capture=[], interventions=[iv]).logits[0, -1]
        assert res.scores[l, j].item() == pytest.approx(float(lg[5] - lg[9]), abs=1e-4)
    # at layer 0 the residual differs only where the tokens differ: patching elsewhere changes nothing
    res = A.activation_patching(m, clean, corrupt, answer=5, kind="resid")
    for p in (0, 3, 4, len(clean) - 1):
        assert res.scores[0, p].item() == pytest.approx(res.corrupted, abs=1e-6)
        assert res.normalized[0, p].item() == pytest.approx(0.0, abs=1e-3)
    assert res.scores[0, 1].item() != pytest.approx(res.corrupted, abs=1e-6)
    assert res.clean == pytest.approx(float(m.trace(clean, capture=[]).logits[0, -1].softmax(-1)[5]), abs=1e-6)


def test_causal_trace_batched_grid_equals_a_cell_by_cell_loop(tiny_models):
    m = tiny_models["gpt2"]
    prompt = "The cat sat on the mat."
    for kind in ("resid", "mlp"):
        ct = A.causal_trace(m, prompt, subject=" cat", kind=kind, samples=3, window=2, batch_size=20)
        T = len(m.to_tokens(prompt))
        subj = A.subject_positions(m, prompt, " cat")
        assert ct.scores.shape == (m.n_layers, T) and ct.subject == subj
        # one cell by hand: same noise, restore one state
        std = float(m.adapter.embed.weight.detach().std())
        g = torch.Generator().manual_seed(0)
        eps = torch.randn(3, len(subj), m.d_model, generator=g) * 3.0 * std
        point = {"resid": "resid_post", "mlp": "mlp_out"}[kind]
        clean = m.trace(prompt, capture=[point])
        l, p = 1, 1
        layers = [l] if kind == "resid" else [x for x in range(l - 1, l + 1) if 0 <= x < m.n_layers]

        def noise(x):
            x = x.clone()
            x[:, subj] += eps
            return x

        ivs = [kit.Edit("resid_pre", 0, noise)] + [kit.Patch(point, x, clean, pos=p) for x in layers]
        out = m.trace(m.to_tokens(prompt).expand(3, -1), capture=[], interventions=ivs)
        expected = out.logits[:, -1].softmax(-1)[:, ct.answer].mean()
        assert ct.scores[l, p].item() == pytest.approx(float(expected), abs=1e-5)
    # restoring the whole residual at the last position of the last layer gives back the clean p
    ct = A.causal_trace(m, prompt, subject=" cat", samples=2)
    assert ct.scores[-1, -1].item() == pytest.approx(ct.clean, abs=1e-5)


def test_subject_positions_find_the_subject_tokens(tiny_models):
    m = tiny_models["gpt2"]
    toks = m.to_str_tokens("The capital of Veloria is")
    pos = A.subject_positions(m, "The capital of Veloria is", "Veloria")
    assert "".join(toks[i] for i in pos).strip() == "Veloria"
    with pytest.raises(ValueError, match="does not occur"):
        A.subject_positions(m, "The capital", "Paris")


def test_attention_knockout_of_everything_changes_the_prediction(tiny_models):
    m = tiny_models["gpt2"]
    res = A.attention_knockout(m, ["The cat sat on the mat.", "Hi there"], key=[[0, 1, 2], [0]], answer=5)
    assert res["before"].shape == (2,)
    tr = m.trace("Hi there", capture=[], interventions=[kit.Knockout(list(range(m.n_layers)), -1, [0])])
    assert res["after"][1].item() == pytest.approx(float(tr.logits[0, -1].softmax(-1)[5]), abs=1e-6)


def test_decode_neurons_matches_a_single_neuron_by_hand(tiny_model):
    dec = A.decode_neurons(tiny_model, k=4, chunk=7)
    assert dec.promoted.shape == (tiny_model.n_layers, tiny_model.d_mlp, 4)
    a = tiny_model.adapter
    w = getattr(a.final_norm, "weight", None)
    direction = a.W_out(1)[3] * (w if w is not None else 1)
    logits = direction @ a.W_U
    assert dec.promoted[1, 3].tolist() == logits.topk(4).indices.tolist()
    assert dec.suppressed[1, 3].tolist() == logits.topk(4, largest=False).indices.tolist()
    assert len(dec.tokens(1, 3)) == 4


def test_top_activating_finds_the_maximum(tiny_models):
    m = tiny_models["gpt2"]
    texts = ["The cat sat on the mat.", "Hi there", "Attention heads move information."]
    top = A.top_activating(m, texts, layer=1, neuron=2, k=3, batch_size=2)
    tr = m.trace(texts, capture=["mlp_post"])
    acts = tr["mlp_post", 1][..., 2].masked_fill(~tr.mask, -1e9)
    assert top[0]["activation"] == pytest.approx(float(acts.max()), abs=1e-5)
    assert [t["activation"] for t in top] == sorted([t["activation"] for t in top], reverse=True)


def test_clamp_effect_reports_a_distribution_change(tiny_models):
    m = tiny_models["gpt2"]
    res = A.clamp_effect(m, PROMPT, layer=0, neuron=1, value=20.0, k=3)
    assert res["kl"] > 0 and len(res["promoted"]) == 3
    torch.testing.assert_close(res["before"].sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_voids_skipping_off_reproduces_the_output_exactly(tiny_model):
    prompts = [PROMPT, "Hi there"]
    tr, active = A.skip_voids(tiny_model, prompts, alpha=0.8, skip=False)
    assert torch.equal(tr.logits, tiny_model.trace(prompts, capture=[]).logits)
    assert active.shape == (2, tr.n_pos, tiny_model.n_layers)
    assert active[..., 0][tr.mask].all()


def test_voids_follow_the_definition_and_skipping_passes_residual_through(tiny_models):
    m = tiny_models["gpt2"]
    full = m.trace(PROMPT, capture=["resid_pre", "resid_post"])
    active = A.active_layers(full, alpha=0.5)
    n = torch.stack([full["resid_pre", 0].norm(dim=-1)] + [full["resid_post", l].norm(dim=-1) for l in range(3)], -1)
    d = n.diff(dim=-1)[0]  # [pos, layer]
    for p in range(full.n_pos):
        for l in range(1, 3):
            assert bool(active[0, p, l]) == bool(d[p, l] >= 0.5 * (d[p, :l].max() - d[p, :l].min()))
    tr, act = A.skip_voids(m, PROMPT, alpha=0.5, capture=["resid_pre", "resid_post"])
    void = ~act[0]
    if void.any():
        p, l = void.nonzero()[0].tolist()
        torch.testing.assert_close(tr["resid_post", l][0, p], tr["resid_pre", l][0, p])


@torch.no_grad()
@pytest.mark.parametrize("kind", ["q", "k", "v"])
def test_composition_scores_match_the_full_matrix_definition(tiny_models, kind):
    m = tiny_models["llama"]  # grouped-query attention too
    s = A.composition_scores(m, kind)
    assert s.shape == (m.n_layers, m.n_heads, m.n_layers, m.n_heads)
    assert s[1, :, 0].abs().max() == 0 and s[0, :, 0].abs().max() == 0
    a = m.adapter
    Q, K, V = a.W_QKV(2)
    W_A = a.W_QKV(0)[2][1] @ a.W_O(0)[1]  # OV of head (0, 1), [d_model, d_model]
    W_B = {"q": Q[3] @ K[3].T, "k": (Q[3] @ K[3].T).T, "v": V[3] @ a.W_O(2)[3]}[kind]
    expected = (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())
    assert s[0, 1, 2, 3].item() == pytest.approx(float(expected), rel=1e-4)


def test_recall_summary_measures_attention_to_subject_and_direct_effects(tiny_models):
    m = tiny_models["gpt2"]
    prompts = ["The capital of Veloria is", "The cat sat on the"]
    subjects = ["Veloria", "cat"]
    res = A.recall_summary(m, prompts, subjects, answers=[5, 7], batch_size=1)
    assert res.subject_attention.shape == (m.n_layers, m.n_heads) and res.n_prompts == 2
    # by hand for one head: attention from the last token to the subject tokens, averaged
    expected = 0.0
    for p, s in zip(prompts, subjects):
        tr = m.trace(p, capture=["pattern"])
        expected += float(tr["pattern", 1][0, 2, -1, A.subject_positions(m, p, s)].sum()) / 2
    assert res.subject_attention[1, 2].item() == pytest.approx(expected, abs=1e-5)
    dla = A.direct_logit_attribution(m.trace(prompts[0]), token=5, neurons=False)
    last = m.n_layers - 1
    own = float(dla.heads[0, last].sum() + dla.attn_bias[0, last] + dla.mlps[0, last])
    res1 = A.recall_summary(m, prompts[:1], subjects[:1], answers=[5])
    assert res1.final_block_effect == pytest.approx(own, abs=1e-4)
    assert len(res.top_subject_heads(2)) == 2
