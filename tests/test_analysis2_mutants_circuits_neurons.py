"""QK/OV circuits, the composition baseline and MLP neurons against the Hugging Face weights (group analysis3).

Each circuit and each neuron decoding is computed here from the model's own ``nn.Linear`` / ``Conv1D`` weights
(not through the kit's adapter), on the sharpened models of ``tests/fixtures_teeth.py``: GPT-2 (Conv1D, an
unembedding bias that circuits and decodings leave out) and Llama (grouped-query attention: query heads 2 and 3
share key/value head 1). Entries are O(1) to O(100); tolerance 1e-4 relative.
"""

from __future__ import annotations

import re

import pytest
import torch

import kit
import kit.analysis as A
import kit.analysis.circuits as C
from kit.analysis.circuits import OVCircuit, QKCircuit


def _weights(m, layer: int, head: int):
    """``(E [vocab, d_model], W_Q, W_K, W_V [d_model, d_head], W_O [d_head, d_model], W_U [d_model, vocab])``."""
    d, D = m.d_head, m.d_model
    sl = slice(head * d, (head + 1) * d)
    if m.hf.config.model_type == "gpt2":
        attn = m.hf.transformer.h[layer].attn
        W = attn.c_attn.weight  # [d_model, 3 d_model], x @ W
        return (m.hf.transformer.wte.weight, W[:, sl], W[:, D:][:, sl], W[:, 2 * D:][:, sl],
                attn.c_proj.weight[sl], m.hf.lm_head.weight.T)
    attn = m.hf.model.layers[layer].self_attn
    kv = slice((head // 2) * d, (head // 2 + 1) * d)  # 4 query heads share 2 key/value heads
    return (m.hf.model.embed_tokens.weight, attn.q_proj.weight[sl].T, attn.k_proj.weight[kv].T,
            attn.v_proj.weight[kv].T, attn.o_proj.weight[:, sl].T, m.hf.lm_head.weight.T)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("layer,head", [(0, 0), (1, 3), (2, 2)], ids=["L0H0", "L1H3", "L2H2"])
def test_full_circuits_equal_the_products_of_the_models_own_weights(teeth, kind, layer, head):
    m = teeth[kind]
    E, W_Q, W_K, W_V, W_O, W_U = (w.detach().double() for w in _weights(m, layer, head))
    with torch.no_grad():
        qk = (E @ W_Q) @ (E @ W_K).T / m.d_head ** 0.5
        ov = E @ W_V @ W_O @ W_U
    got_qk, got_ov = A.qk_circuit(m, layer, head), A.ov_circuit(m, layer, head)
    torch.testing.assert_close(got_qk.matrix.double(), qk, rtol=1e-4, atol=1e-4 * float(qk.abs().max()))
    torch.testing.assert_close(got_ov.matrix.double(), ov, rtol=1e-4, atol=1e-4 * float(ov.abs().max()))
    assert float(qk.abs().max()) > 1.0 and float(ov.abs().max()) > 1.0
    assert (got_qk.layer, got_qk.head, got_ov.layer, got_ov.head) == (layer, head, layer, head)
    assert got_qk.labels == m.tokenizer.convert_ids_to_tokens(list(range(m.vocab_size)))
    assert got_qk.matrix.shape == got_ov.matrix.shape == (300, 300)


def test_negative_layers_and_heads_count_from_the_end(teeth):
    m = teeth["llama"]
    for fn in (A.qk_circuit, A.ov_circuit):
        a, b = fn(m, -1, -2, tokens=[5, 9]), fn(m, 2, 2, tokens=[5, 9])
        assert (a.layer, a.head) == (2, 2) and torch.equal(a.matrix, b.matrix)
    with pytest.raises(ValueError, match="^" + re.escape("layer 3 is out of range: valid layers are 0..2") + "$"):
        A.ov_circuit(m, 3, 0)
    with pytest.raises(ValueError, match="^" + re.escape("head -5 is out of range: valid heads are 0..3") + "$"):
        A.qk_circuit(m, 0, -5)


def test_tokens_may_be_texts_and_name_the_rows(teeth):
    m = teeth["gpt2"]
    first = lambda t: m.tokenizer(t, add_special_tokens=False)["input_ids"][0]  # noqa: E731
    ids = [first(" cat"), 17, first(" mat")]
    got = A.ov_circuit(m, 1, 2, tokens=[" cat", 17, " mat"])
    full = A.ov_circuit(m, 1, 2)
    torch.testing.assert_close(got.matrix, full.matrix[ids][:, ids], atol=1e-5, rtol=0)
    assert got.labels == m.tokenizer.convert_ids_to_tokens(ids)
    with pytest.raises(ValueError, match="^" + re.escape(
            "tokens is empty; give token ids or texts, or None for the whole vocabulary") + "$"):
        A.qk_circuit(m, 0, 0, tokens=[])
    with pytest.raises(ValueError, match="^" + re.escape("token id 300 is out of range: valid ids are 0..299") + "$"):
        A.qk_circuit(m, 0, 0, tokens=[300])


def test_the_full_vocabulary_is_refused_only_above_the_limit(teeth, monkeypatch):
    m = teeth["gpt2"]
    monkeypatch.setattr(C, "MAX_FULL_VOCAB", 300)
    assert A.qk_circuit(m, 0, 0).matrix.shape == (300, 300)  # exactly at the limit: allowed
    monkeypatch.setattr(C, "MAX_FULL_VOCAB", 299)
    msg = ("vocabulary of 300 tokens: a full [vocab, vocab] circuit would need 0.0 GiB; pass tokens=[...] (ids or "
           "texts) to restrict it (at most 299 in full)")
    for fn in (A.qk_circuit, A.ov_circuit):
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            fn(m, 0, 0)
    monkeypatch.setattr(m, "vocab_size", 2 ** 16)  # the memory it names: 2**32 floats of 4 bytes
    with pytest.raises(ValueError, match=re.escape("would need 16.0 GiB")):
        C._token_ids(m, None)


def _circuit(cls, matrix):
    return cls(1, 2, torch.tensor(matrix), ["a", "b", "c"][:len(matrix)])


def test_rows_and_top_entries_by_text_or_index():
    c = _circuit(QKCircuit, [[1.0, 5.0, 3.0], [0.0, -1.0, 2.0], [4.0, 4.5, 9.0]])
    assert torch.equal(c.row("b"), torch.tensor([0.0, -1.0, 2.0])) and torch.equal(c.row(-1), c.row("c"))
    assert c.top("a", k=2) == [("b", 5.0), ("c", 3.0)]
    assert c.top(2) == [("c", 9.0), ("b", 4.5), ("a", 4.0)]  # k larger than the row: every entry, in order
    assert c.top("b", k=1) == [("c", 2.0)]
    with pytest.raises(ValueError, match="^" + re.escape(
            "token 'd' is not among this circuit's tokens, e.g. ['a', 'b', 'c']") + "$"):
        c.row("d")
    with pytest.raises(ValueError, match="^" + re.escape(
            "token index 3 is out of range: valid token indexs are 0..2") + "$"):
        c.top(3)


def test_diagonal_share_and_reprs():
    qk = _circuit(QKCircuit, [[3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, 5.0]])  # rows 0 and 2 prefer themselves
    assert qk.diagonal_share == pytest.approx(2 / 3)
    assert repr(qk) == "QKCircuit(L1H2, 3x3 tokens, prefers the same token in 67% of rows)"
    ov = _circuit(OVCircuit, [[2.0, 0.0], [0.0, -1.0]])  # eigenvalues 2, -1: (2 - 1) / (2 + 1)
    assert ov.copying_score == pytest.approx(1 / 3) and ov.diagonal_share == pytest.approx(0.5)
    assert repr(ov) == "OVCircuit(L1H2, 2x2 tokens, copies (own logit largest) in 50% of rows, copying score +0.33)"


@pytest.mark.parametrize("matrix,score", [
    ([[1.0, 0.0], [0.0, 1.0]], 1.0),
    ([[-2.0, 0.0], [0.0, -1.0]], -1.0),
    ([[0.0, -1.0], [1.0, 0.0]], 0.0),  # a rotation: eigenvalues +i and -i
    ([[1.0, 2.0], [2.0, 1.0]], 2 / 4),  # eigenvalues 3 and -1
    ([[0.0, 0.0], [0.0, 0.0]], 0.0),  # no eigenvalue at all: 0, not NaN
], ids=["identity", "negative", "rotation", "symmetric", "zero"])
def test_the_copying_score_is_the_real_share_of_the_eigenvalues(matrix, score):
    assert _circuit(OVCircuit, matrix).copying_score == pytest.approx(score, abs=1e-9)


def _baseline(model, samples: int, seed: int) -> tuple[float, float]:
    """The composition score of random rank-``d_head`` products, sampled here with another generator."""
    g = torch.Generator().manual_seed(seed)
    D, d = model.d_model, model.d_head
    scores = []
    for _ in range(samples):
        a = torch.randn(D, d, generator=g, dtype=torch.float64) @ torch.randn(d, D, generator=g, dtype=torch.float64)
        b = torch.randn(D, d, generator=g, dtype=torch.float64) @ torch.randn(d, D, generator=g, dtype=torch.float64)
        scores.append(float((a @ b).norm() / (a.norm() * b.norm())))
    s = torch.tensor(scores)
    return float(s.mean()), float(s.std())


def test_the_composition_baseline_is_the_score_of_random_matrices_of_the_heads_shapes(teeth):
    """Sampled apart (2000 draws of another generator): the mean agrees within 4 standard errors of the kit's
    400 draws, the spread within 15 % (4 standard errors of a standard deviation). The mean is about
    1 / sqrt(d_model): 0.18 here, against 0.35 for [d_head, d_head] matrices (shapes swapped)."""
    m = teeth["gpt2"]  # d_model 32, d_head 8: products of rank 8
    mean, std = A.composition_baseline(m, "k", samples=400, seed=3)
    ref_mean, ref_std = _baseline(m, 2000, 7)
    assert mean == pytest.approx(ref_mean, abs=4 * ref_std / 400 ** 0.5)
    assert std == pytest.approx(ref_std, rel=0.15)
    assert 0.15 < ref_mean < 0.21


def test_the_composition_baseline_is_seeded_and_the_same_for_every_kind(teeth):
    m = teeth["gpt2"]
    assert A.composition_baseline(m) == A.composition_baseline(m, "k", samples=200, seed=0)
    assert A.composition_baseline(m, "q") == A.composition_baseline(m, "v") == A.composition_baseline(m, "k")
    assert A.composition_baseline(m, seed=1) != A.composition_baseline(m)
    assert A.composition_baseline(m, samples=2)[1] > 0
    with pytest.raises(ValueError, match="^" + re.escape("samples must be an integer >= 2; got 1") + "$"):
        A.composition_baseline(m, samples=1)
    with pytest.raises(ValueError, match="^" + re.escape("kind='x'; valid kinds: 'q', 'k', 'v'") + "$"):
        A.composition_baseline(m, "x")


# --- neurons ----------------------------------------------------------------------------------------------

def _neuron_logits(m, layer: int) -> torch.Tensor:
    """``[neuron, vocab]``: each neuron's output row times the final norm's weight, through the unembedding."""
    if m.hf.config.model_type == "gpt2":
        W_out, w = m.hf.transformer.h[layer].mlp.c_proj.weight, m.hf.transformer.ln_f.weight
    else:
        W_out, w = m.hf.model.layers[layer].mlp.down_proj.weight.T, m.hf.model.norm.weight
    return ((W_out * w) @ m.hf.lm_head.weight.T).detach()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_decode_neurons_equals_the_models_weights_with_the_final_norm_folded_in(teeth, kind):
    m = teeth[kind]
    dec = A.decode_neurons(m, k=5, layers=[2, -3], chunk=19)  # chunks that do not divide the neurons
    assert dec.promoted.shape == dec.suppressed.shape == dec.promoted_scores.shape == (2, m.d_mlp, 5)
    for i, layer in enumerate([2, 0]):
        logits = _neuron_logits(m, layer)
        top, bottom = logits.topk(5, -1), logits.topk(5, -1, largest=False)
        assert torch.equal(dec.promoted[i], top.indices) and torch.equal(dec.suppressed[i], bottom.indices)
        torch.testing.assert_close(dec.promoted_scores[i], top.values, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(dec.suppressed_scores[i], bottom.values, rtol=1e-4, atol=1e-4)
    assert dec.tokens(1, 7) == m.to_str_tokens(dec.promoted[1, 7])
    assert dec.tokens(0, 3, suppressed=True) == m.to_str_tokens(dec.suppressed[0, 3])
    assert dec.tokens(0, 3) != dec.tokens(0, 3, suppressed=True)
    assert repr(dec) == f"NeuronDecoding(layers=2, neurons={m.d_mlp}, k=5)"
    every = A.decode_neurons(m, k=1)
    assert every.promoted.shape == (3, m.d_mlp, 1)
    assert torch.equal(every.promoted[2, :, 0], dec.promoted[0, :, 0])


def test_the_final_norm_weight_changes_the_decoding(teeth):
    m = teeth["llama"]
    plain = (m.hf.model.layers[1].mlp.down_proj.weight.T @ m.hf.lm_head.weight.T).detach().topk(5, -1).indices
    assert not torch.equal(A.decode_neurons(m, k=5, layers=[1]).promoted[0], plain)


def test_decode_neurons_refuses_chunks_below_one(teeth):
    with pytest.raises(ValueError, match="^" + re.escape("chunk must be an integer >= 1; got 0") + "$"):
        A.decode_neurons(teeth["gpt2"], chunk=0)


TEXTS = ["The cat sat on the mat.", "Hi there", "Attention heads move information.", "The mat sat on the cat."]


def _occurrences(m, texts, layer, neuron):
    """Every real token of every text (traced alone): ``[(activation, text, pos, tokens)]``, highest first."""
    out = []
    for t, text in enumerate(texts):
        tr = m.trace(text, capture=["mlp_post"], layers=[layer])
        for p, v in enumerate(tr["mlp_post", layer][0, :, neuron].tolist()):
            out.append((v, t, p, tr.tokens[0]))
    return sorted(out, key=lambda x: -x[0])


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_top_activating_lists_the_highest_activations_of_every_text(teeth, batch_size):
    m = teeth["gpt2"]
    got = A.top_activating(m, TEXTS, layer=1, neuron=5, k=6, batch_size=batch_size, context=2)
    want = _occurrences(m, TEXTS, 1, 5)[:6]
    assert [(g["text"], g["pos"]) for g in got] == [(t, p) for _, t, p, _ in want]
    for g, (v, _t, p, toks) in zip(got, want):
        assert g["activation"] == pytest.approx(v, abs=1e-5)
        assert g["token"] == toks[p] and g["context"] == "".join(toks[max(0, p - 2):p + 1])
    assert len({g["text"] for g in got}) > 1  # the top spans several texts and batches
    assert want[0][0] - want[-1][0] > 0.1


def test_top_activating_takes_one_text_and_never_reports_padding(teeth):
    m = teeth["gpt2"]
    one = A.top_activating(m, "Hi there", layer=0, neuron=1, k=10)  # 5 tokens: all of them, no padding
    want = _occurrences(m, ["Hi there"], 0, 1)
    assert len(one) == len(want) == 5 and [g["pos"] for g in one] == [p for _, _, p, _ in want]
    assert one[0]["context"] == "".join(want[0][3][max(0, want[0][2] - 6):want[0][2] + 1])  # context=6 by default
    both = A.top_activating(m, ["Hi there", "Attention heads move information."], 0, 1, k=100)
    assert len(both) == 5 + 15 and all(g["pos"] < 5 for g in both if g["text"] == 0)
    for k, msg in [(0, "k must be an integer >= 1; got 0"), ("batch_size", "batch_size must be an integer >= 1; got 0")]:
        kwargs = {"k": 0} if k == 0 else {"batch_size": 0}
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            A.top_activating(m, TEXTS, 0, 1, **kwargs)


@pytest.mark.parametrize("layer,neuron,pos", [(1, 5, -1), (0, 11, 8)], ids=["last", "pos-8"])
def test_clamp_effect_equals_setting_the_neuron_by_hand(teeth, layer, neuron, pos):
    m = teeth["gpt2"]
    prompt, value = TEXTS[0], 6.0

    def set_neuron(x):
        x = x.clone()
        x[:, pos, neuron] = value
        return x
    before = m.trace(prompt, capture=[]).logits[0, -1].softmax(-1)
    after = m.trace(prompt, capture=[], interventions=[kit.Edit("mlp_post", layer, set_neuron)]).logits[0, -1].softmax(-1)
    res = A.clamp_effect(m, prompt, layer, neuron, value, k=4, pos=pos)
    torch.testing.assert_close(res["before"], before, atol=1e-6, rtol=0)
    torch.testing.assert_close(res["after"], after, atol=1e-6, rtol=0)
    kl = float((after * (after.log() - before.log())).sum())
    assert res["kl"] == pytest.approx(kl, abs=1e-5) and kl > 1e-3
    delta = after - before
    up, down = delta.topk(4), delta.topk(4, largest=False)
    assert [t for t, _ in res["promoted"]] == m.to_str_tokens(up.indices)
    assert [t for t, _ in res["demoted"]] == m.to_str_tokens(down.indices)
    assert [v for _, v in res["promoted"]] == pytest.approx(up.values.tolist(), abs=1e-6)
    assert [v for _, v in res["demoted"]] == pytest.approx(down.values.tolist(), abs=1e-6)
    assert res["promoted"][0][1] > 1e-3 > -1e-3 > res["demoted"][0][1]


def test_clamp_effect_is_at_the_last_position_by_default_and_zero_when_nothing_changes(teeth):
    m = teeth["gpt2"]
    prompt = TEXTS[0]
    value = float(m.trace(prompt, capture=["mlp_post"])["mlp_post", 0][0, -1, 2])  # the neuron's own value
    same = A.clamp_effect(m, prompt, 0, 2, value)
    assert same["kl"] == pytest.approx(0.0, abs=1e-6) and len(same["promoted"]) == 10
    assert torch.equal(A.clamp_effect(m, prompt, 0, 2, 9.0)["after"], A.clamp_effect(m, prompt, 0, 2, 9.0, pos=-1)["after"])
    with pytest.raises(ValueError, match="^" + re.escape("k must be an integer in 1..300; got 0") + "$"):
        A.clamp_effect(m, prompt, 0, 2, 1.0, k=0)


@pytest.mark.parametrize("name,call", [
    ("qk_circuit", lambda m: A.qk_circuit(m, 0, 0)),
    ("ov_circuit", lambda m: A.ov_circuit(m, 0, 0)),
    ("composition_baseline", lambda m: A.composition_baseline(m)),
    ("decode_neurons", lambda m: A.decode_neurons(m)),
    ("top_activating", lambda m: A.top_activating(m, ["a"], 0, 0)),
    ("clamp_effect", lambda m: A.clamp_effect(m, "a", 0, 0, 1.0)),
], ids=["qk_circuit", "ov_circuit", "composition_baseline", "decode_neurons", "top_activating", "clamp_effect"])
def test_a_model_name_instead_of_a_model_is_refused_naming_the_function(name, call):
    msg = f"{name} takes a kit model from kit.load(...); got str (a name: load it first, model = kit.load('gpt2'))"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        call("gpt2")


def test_an_unknown_token_names_the_first_five_tokens_and_a_full_diagonal_is_100_percent():
    labels = ["a", "b", "c", "d", "e", "f", "g"]
    c = OVCircuit(0, 1, torch.eye(7) * 2.0, labels)
    with pytest.raises(ValueError, match="^" + re.escape(
            "token 'z' is not among this circuit's tokens, e.g. ['a', 'b', 'c', 'd', 'e']") + "$"):
        c.row("z")
    assert repr(c) == "OVCircuit(L0H1, 7x7 tokens, copies (own logit largest) in 100% of rows, copying score +1.00)"
    assert repr(QKCircuit(0, 1, torch.eye(7), labels)).endswith("prefers the same token in 100% of rows)")


def test_a_final_norm_without_a_weight_decodes_through_the_unembedding_alone(teeth, monkeypatch):
    """A final norm without a gain (e.g. a non-parametric LayerNorm) leaves ``W_out @ W_U`` as it is."""
    m = teeth["llama"]
    monkeypatch.setattr(type(m.adapter), "final_norm", property(lambda self: torch.nn.Identity()))
    plain = (m.hf.model.layers[1].mlp.down_proj.weight.T @ m.hf.lm_head.weight.T).detach()
    dec = A.decode_neurons(m, k=3, layers=[1])
    assert torch.equal(dec.promoted[0], plain.topk(3, -1).indices)
    torch.testing.assert_close(dec.promoted_scores[0], plain.topk(3, -1).values, rtol=1e-4, atol=1e-4)


def test_the_defaults_of_top_entries_decodings_and_top_activations(teeth):
    m = teeth["gpt2"]
    c = _circuit(QKCircuit, [[float(i + j) for j in range(3)] for i in range(3)])
    wide = QKCircuit(0, 0, torch.arange(49.0).view(7, 7), list("abcdefg"))
    assert len(wide.top("a")) == 5 and len(c.top("a")) == 3  # k=5 by default
    assert A.decode_neurons(m, layers=[0]).promoted.shape == (1, m.d_mlp, 10)  # k=10 by default
    top = A.top_activating(m, TEXTS, 0, 1)
    assert len(top) == 10  # k=10 by default
    toks = _occurrences(m, TEXTS, 0, 1)
    for g in top:
        tokens = next(t for _, i, p, t in toks if i == g["text"] and p == g["pos"])
        assert g["context"] == "".join(tokens[max(0, g["pos"] - 6):g["pos"] + 1])  # 6 tokens before by default
    assert any(g["pos"] > 6 for g in top)  # some context is cut at 6
    with pytest.raises(ValueError, match="^texts is empty; give at least one text$"):
        A.top_activating(m, [], 0, 1)
