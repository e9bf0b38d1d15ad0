"""Voids, factual recall and toy models, with teeth (the survivors of ``benchmarks/mutation.py --group analysis3``).

The ``deep`` teeth model (12 sharpened layers) has voids at every alpha a user would try: at alpha 0.8 about 70 % of
(token, layer) pairs are void, at 0.3 about 45 %, so each definition below is checked on both outcomes.
"""

from __future__ import annotations

import pytest
import torch

import kit.analysis as A
from tests.fixtures_teeth import PROMPT

PROMPTS = [PROMPT, "Hi there friend"]  # the second is shorter: right padding in the batch


def _active_by_definition(tr, alpha: float) -> torch.Tensor:
    """``active[batch, pos, layer]`` straight from the definition, in float64, one token at a time."""
    L = tr.model.n_layers
    out = torch.zeros(tr.batch, tr.n_pos, L, dtype=torch.bool)
    for b in range(tr.batch):
        for p in range(tr.lengths[b]):
            n = [float(tr["resid_pre", 0][b, p].double().norm())]
            n += [float(tr["resid_post", l][b, p].double().norm()) for l in range(L)]
            d = [n[i + 1] - n[i] for i in range(L)]
            out[b, p, 0] = True
            for l in range(1, L):
                out[b, p, l] = d[l] >= alpha * (max(d[:l]) - min(d[:l]))
    return out


@pytest.fixture(scope="module")
def deep(teeth):
    return teeth["deep"]


@pytest.fixture(scope="module")
def full(deep):
    return deep.trace(PROMPTS, capture=["resid_pre", "resid_post"])


@pytest.mark.parametrize("alpha", [0.3, 0.8])
def test_active_layers_follow_the_definition_token_by_token_and_padding_is_never_active(full, alpha):
    active = A.active_layers(full, alpha)
    assert active.shape == (2, full.n_pos, 12) and active.dtype == torch.bool
    expected = _active_by_definition(full, alpha)
    assert torch.equal(active, expected)
    real = full.mask
    assert not active[~real].any()  # padding positions
    share = float(active[real][:, 1:].float().mean())
    assert 0.1 < share < 0.9  # both outcomes occur: the test sees a flipped comparison either way


def test_a_larger_alpha_marks_fewer_layers_active(full):
    low, high = A.active_layers(full, 0.3), A.active_layers(full, 0.8)
    assert bool((high <= low).all()) and int(low.sum()) > int(high.sum()) + 20
    assert torch.equal(A.active_layers(full), high)  # the default alpha is 0.8


def test_skipping_a_void_passes_its_residual_through_and_leaves_active_layers_working(deep, full):
    tr, active = A.skip_voids(deep, PROMPTS, alpha=0.8, capture=["resid_pre", "resid_post"])
    assert torch.equal(active, A.active_layers(full, 0.8))  # the mask comes from the unskipped pass
    torch.testing.assert_close(tr["resid_pre", 0], full["resid_pre", 0], atol=0, rtol=0)  # embeddings untouched
    voids = actives = 0
    for l in range(deep.n_layers):
        change = (tr["resid_post", l] - tr["resid_pre", l]).norm(dim=-1)  # [batch, pos]
        void, act = ~active[..., l] & full.mask, active[..., l]
        assert not bool(change[void].any())  # exactly passed through
        assert bool((change[act] > 1e-3).all())  # an active layer still writes
        voids, actives = voids + int(void.sum()), actives + int(act.sum())
    assert voids > 50 and actives > 50
    clean = deep.trace(PROMPTS, capture=[])
    assert float((tr.logits - clean.logits)[full.mask].abs().max()) > 0.1  # skipping changed the output


def test_voids_refuse_a_trace_without_every_layer_or_without_both_residuals(deep):
    msg = "active_layers needs a trace of every layer with 'resid_pre' and 'resid_post'"
    for capture, layers in ((["resid_post"], None), (["resid_pre"], None), (["resid_pre", "resid_post"], [0, 1])):
        tr = deep.trace(PROMPT, capture=capture, layers=layers)
        with pytest.raises(ValueError) as err:
            A.active_layers(tr)
        assert str(err.value) == msg
    with pytest.raises((TypeError, ValueError), match="alpha"):
        A.skip_voids(deep, PROMPT, alpha="high")


# ---------------------------------------------------------------------------------------------------------------
# voids: the default alpha, the capture of the returned trace, ties at the threshold, refusals word for word


def test_skip_voids_default_alpha_is_0_8_and_a_given_alpha_reaches_the_mask(deep, full):
    tr, active = A.skip_voids(deep, PROMPTS)
    assert torch.equal(active, A.active_layers(full, 0.8))
    low_tr, low = A.skip_voids(deep, PROMPTS, alpha=0.3, capture=["resid_post"])
    assert torch.equal(low, A.active_layers(full, 0.3)) and not torch.equal(low, active)
    # what is returned is captured as asked: nothing by default, only resid_post when asked for it
    assert tuple(tr.names) == () and tuple(low_tr.names) == ("resid_post",)


def test_a_layer_that_leaves_the_norm_unchanged_is_active_at_alpha_0(deep):
    # a skipped void leaves its token's norm exactly unchanged (delta == 0): the definition's ">=" makes it active
    # at alpha 0 (0 >= 0 * spread); ">" would call it void
    tr, active = A.skip_voids(deep, PROMPTS, alpha=0.8, capture=["resid_pre", "resid_post"])
    void = ~active & tr.mask[..., None]
    void[..., 0] = False
    assert int(void.sum()) > 50
    again = A.active_layers(tr, alpha=0.0)
    assert bool(again[void].all())


def test_voids_refuse_what_is_not_a_model_or_a_trace_naming_the_function(deep, full):
    with pytest.raises(TypeError) as err:
        A.active_layers(deep)
    assert str(err.value).startswith("active_layers takes a Trace from model.trace(...); got Model")
    with pytest.raises(TypeError) as err:
        A.skip_voids(full, PROMPTS)
    assert str(err.value).startswith("skip_voids takes a kit model from kit.load(...); got Trace")
    with pytest.raises(TypeError) as err:
        A.skip_voids(deep, PROMPTS, alpha="high")
    assert str(err.value).startswith("alpha ")


# ---------------------------------------------------------------------------------------------------------------
# factual recall: exact definitions on the sharpened GPT-2 (unembedding bias, LayerNorm biases, 3 layers)

TEXTS = [("The capital of Veloria is", " Veloria"), ("The city of Mistport is", " Mistport"), ("Theis", "The")]


@pytest.fixture(scope="module")
def gpt2(teeth):
    return teeth["gpt2"]


@pytest.fixture(scope="module")
def facts(gpt2):
    """``(prompt, subject, answer id)``: the answer is each prompt's second most likely token (p 0.10 to 0.16), so a
    figure measured on the model's own top prediction instead (answer=None) differs."""
    out = []
    for p, s in TEXTS:
        probs = gpt2.trace(p, capture=[]).logits[0, -1].softmax(-1)
        second = int(probs.topk(2).indices[1])
        assert 0.05 < float(probs[second]) < float(probs.max()) - 0.1
        out.append((p, s, second))
    return out


def _dla_row(tr, b, tok, **kw):
    """Direct logit attribution of prompt ``b`` onto ``tok`` (a whole-batch call, row ``b`` kept)."""
    from kit.analysis import direct_logit_attribution
    return direct_logit_attribution(tr, [tok] * tr.batch, **kw)


def test_contrast_attribution_is_the_answer_minus_the_mean_of_each_prompts_own_competitors(gpt2):
    prompts = [TEXTS[0][0], TEXTS[1][0]]
    tr = gpt2.trace(prompts)
    answers, competitors, pos = [" M", " V"], [[" V", "is", "The"], [" M"]], [3, -2]  # uneven lists
    got = A.contrast_attribution(tr, answers, competitors, pos=pos, neurons=True)
    for field in ("embed", "heads", "attn_bias", "mlps", "neurons", "mlp_bias", "bias", "total"):
        for b in range(2):
            want = getattr(_dla_row(tr, b, answers[b], pos=pos, neurons=True), field)[b]
            comp = [getattr(_dla_row(tr, b, c, pos=pos, neurons=True), field)[b] for c in competitors[b]]
            want = want - sum(comp) / len(comp)
            torch.testing.assert_close(getattr(got, field)[b], want, atol=1e-5, rtol=1e-5, msg=field)
    assert float(got.total.abs().min()) > 0.05 and float(got.neurons.abs().max()) > 0.05  # far above atol
    last = A.contrast_attribution(tr, answers, competitors, neurons=True)  # another position: other figures
    assert float((last.total - got.total).abs().max()) > 0.1


def _frozen_logits(model, final, x):
    """GPT-2's final LayerNorm with the statistics of ``final`` frozen, then the unembedding (with its bias)."""
    ln, head = model.hf.transformer.ln_f, model.hf.lm_head
    sigma = (final.var(-1, unbiased=False, keepdim=True) + ln.eps).sqrt()
    return ((x - x.mean(-1, keepdim=True)) / sigma * ln.weight + ln.bias) @ head.weight.T + head.bias


@torch.no_grad()
def test_final_block_measures_follow_their_definitions(gpt2):
    from kit.analysis import direct_logit_attribution
    prompts = [TEXTS[0][0], TEXTS[1][0]]
    tr = gpt2.trace(prompts)
    L, rows, last = 3, torch.arange(2), torch.tensor(tr.lengths) - 1
    ids = tr.logits[rows, last].argmax(-1)  # the model's own answers: p(answer) far from 0 at both lenses
    answers, competitors = ids.tolist(), [[" V", "is"], [" M", "The", "."]]
    got = A.final_block_measures(gpt2, prompts, answers, competitors)

    def block(a):  # the last block's direct effect, from its parts
        return a.heads[:, L - 1].sum(-1) + a.attn_bias[:, L - 1] + a.mlps[:, L - 1]

    raw = block(direct_logit_attribution(tr, answers, neurons=False))
    diff = block(A.contrast_attribution(tr, answers, competitors))
    final = tr["resid_post", L - 1][rows, last]
    full = _frozen_logits(gpt2, final, final)
    torch.testing.assert_close(full, tr.logits[rows, last], atol=1e-4, rtol=1e-4)  # the reference is the model
    without = final - tr["attn_out", L - 1][rows, last] - tr["mlp_out", L - 1][rows, last]
    delta = full.log_softmax(-1)[rows, ids] - _frozen_logits(gpt2, final, without).log_softmax(-1)[rows, ids]
    before = gpt2.unembed(tr["resid_post", L - 2][rows, last]).softmax(-1)[rows, ids]
    after = tr.logits[rows, last].softmax(-1)[rows, ids]
    assert got.n_prompts == 2
    for name, value in (("raw_logit", raw), ("logit_diff", diff), ("delta_logprob", delta), ("lens_before", before),
                        ("lens_after", after)):
        assert getattr(got, name) == pytest.approx(float(value.mean()), abs=1e-5, rel=1e-4), name
    assert abs(got.raw_logit - got.logit_diff) > 0.05 and abs(got.delta_logprob) > 0.05
    assert got.lens_after > 0.05 and abs(got.lens_after - got.lens_before) > 0.01


def test_final_block_measures_refuse_a_trace_and_uneven_lists_naming_each(gpt2):
    with pytest.raises(TypeError) as err:
        A.final_block_measures(gpt2.trace("Hi"), ["Hi"], [" M"], [[" V"]])
    assert str(err.value).startswith("final_block_measures takes a kit model from kit.load(...); got Trace")
    for n_prompts, n_answers, n_comp in ((3, 2, 2), (2, 2, 1)):
        with pytest.raises(ValueError) as err:
            A.final_block_measures(gpt2, ["Hi"] * n_prompts, [" M"] * n_answers, [[" V"]] * n_comp)
        assert str(err.value) == (f"final_block_measures needs the same, non-zero number of prompts, answers, "
                                  f"competitors; got {n_prompts} prompts, {n_answers} answers, {n_comp} competitors")


def test_final_block_rows_say_suppresses_only_for_strictly_negative_measures():
    zero = A.FinalBlockMeasures(0.0, 0.0, 0.0, 0.3, 0.3, 2)
    assert zero.rows() == [
        ("direct effect on the answer's raw logit", 0.0, False),
        ("direct effect on the logit difference vs the other answers", 0.0, False),
        ("change in log p(answer) from the final block's direct path", 0.0, False),
        ("logit-lens p(answer): after the last layer minus before it", 0.0, False)]
    small = A.FinalBlockMeasures(0.5, 0.5, -0.5, 0.4, 0.25, 2)
    assert [(v, s) for _, v, s in small.rows()] == [(0.5, False), (0.5, False), (-0.5, True),
                                                    (pytest.approx(-0.15), True)]


def _recall_reference(model, facts):
    """Per-prompt (one prompt per trace) figures of recall_summary, averaged by hand."""
    from kit.analysis import direct_logit_attribution
    from kit.analysis.patching import subject_positions
    L, H = model.n_layers, model.n_heads
    att, heads, mlps, final, prob = torch.zeros(L, H), torch.zeros(L, H), torch.zeros(L), 0.0, 0.0
    for p, s, a in facts:
        tr = model.trace(p)
        pos = subject_positions(model, p, s)
        att += torch.stack([tr["pattern", l][0, :, -1, pos].sum(-1) for l in range(L)])
        d = direct_logit_attribution(tr, a, neurons=False)
        heads, mlps = heads + d.heads[0], mlps + d.mlps[0]
        final += float(d.heads[0, -1].sum() + d.attn_bias[0, -1] + d.mlps[0, -1])
        prob += float(tr.logits[0, -1].softmax(-1)[a])
    n = len(facts)
    return att / n, heads / n, mlps / n, final / n, prob / n


def test_recall_summary_is_the_mean_over_prompts_whatever_the_batches(gpt2, facts):
    att, heads, mlps, final, prob = _recall_reference(gpt2, facts)
    p, s, a = zip(*facts)
    for batch_size in (2, 3):  # batches of 2 + 1 prompts, and one batch
        got = A.recall_summary(gpt2, list(p), list(s), list(a), batch_size=batch_size)
        assert got.n_prompts == 3
        torch.testing.assert_close(got.subject_attention, att, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.head_effect, heads, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got.mlp_effect, mlps, atol=1e-4, rtol=1e-4)
        assert got.final_block_effect == pytest.approx(final, abs=1e-4)
        assert got.answer_prob == pytest.approx(prob, abs=1e-6)
    assert float(heads.abs().max()) > 0.5 and float(mlps.abs().max()) > 0.5 and abs(final) > 0.05
    assert 0.1 < prob < 0.2


def test_recall_summary_and_story_refuse_bad_input_naming_themselves(gpt2):
    p, s, a = ["Hi", "Ho"], ["H", "H"], [" M", " V"]
    for fn in (A.recall_summary, A.recall_story):
        name = fn.__name__
        with pytest.raises(TypeError) as err:
            fn(gpt2.trace("Hi"), p, s, a)
        assert str(err.value).startswith(f"{name} takes a kit model from kit.load(...); got Trace")
        with pytest.raises(ValueError) as err:
            fn(gpt2, p, s[:1], a)
        assert str(err.value) == (f"{name} needs the same, non-zero number of prompts, subjects, answers; "
                                  f"got 2 prompts, 1 subjects, 2 answers")
    with pytest.raises(ValueError) as err:
        A.recall_summary(gpt2, p, s, a, batch_size=0)
    assert str(err.value) == "batch_size must be an integer >= 1; got 0"


def _summary(att):
    return A.RecallSummary(att, torch.tensor([[0.1, -0.23456], [0.7, 0.2]]), torch.zeros(2), -0.12345, 0.45678, 3)


def test_recall_summary_top_heads_and_repr():
    s = _summary(torch.tensor([[0.1, 0.9], [0.3, 0.6]]))
    assert s.top_subject_heads() == [(0, 1, pytest.approx(0.9)), (1, 1, pytest.approx(0.6)),
                                     (1, 0, pytest.approx(0.3))]  # three by default
    assert repr(s) == ("RecallSummary(n_prompts=3, answer_prob=0.457, final_block_effect=-0.123, "
                       "top_subject_heads=[(0, 1, 0.8999999761581421), (1, 1, 0.6000000238418579)])")


def test_recall_story_rows_and_table_round_to_three_decimals():
    story = A.RecallStory(3, 0.12345, 0.23456, 0.34567, 0.45678, 0.56789, 0.67891, 0.78912,
                          _summary(torch.tensor([[0.1, 0.6789], [0.3, 0.2]])))
    rows = story.rows()
    assert [v for _, v in rows] == [3, 0.457, 0.123, 0.235, 0.346, 0.457, 0.568, 0.679, 0.789, 0.679, -0.235, -0.123]
    assert rows[9][0] == "attention from the last token to the subject, top head L0H1"
    assert story.table().split("\n")[:3] == ["| figure | value |", "| --- | --- |", "| facts measured | 3 |"]
    assert story.table().split("\n")[-1] == "| final block's direct effect on the answer logit | -0.123 |"
    assert len(story.table().split("\n")) == 14


def _story_reference(model, facts, samples, seed):
    from kit.analysis.patching import attention_knockout, causal_trace
    figs, keys = [], []
    for p, s, a in facts:
        mlp = causal_trace(model, p, s, answer=a, kind="mlp", samples=samples, seed=seed)
        res = causal_trace(model, p, s, answer=a, kind="resid", samples=samples, seed=seed)
        eff, last = mlp.effect.max(0).values, mlp.subject[-1]
        other = [float(eff[i]) for i in range(len(eff) - 1) if i != last]
        figs.append([float(eff[last]), max(other) if other else 0.0, float(eff[-1]), float(res.effect[0, last]),
                     float(res.effect[0, -1]), float(res.effect[-1, -1])])
        keys.append(mlp.subject)
    ko = attention_knockout(model, [f[0] for f in facts], key=keys, answer=[f[2] for f in facts])
    return [sum(col) / len(facts) for col in zip(*figs)], float(ko["after"].mean() / ko["before"].mean()), figs


@pytest.mark.parametrize("samples,seed", [(None, None), (3, 7)], ids=["defaults", "samples3-seed7"])
def test_recall_story_figures_follow_their_definitions(gpt2, facts, samples, seed):
    # the third fact's subject is its first token and it has no other earlier token
    kw = {} if samples is None else dict(samples=samples, seed=seed)
    got = A.recall_story(gpt2, *map(list, zip(*facts)), **kw)
    means, ratio, figs = _story_reference(gpt2, facts, samples or 5, seed or 0)
    assert figs[2][1] == 0.0  # no other position: 0.0
    names = ["mlp_subject_last", "mlp_other", "mlp_last", "resid_early_subject", "resid_early_last",
             "resid_late_last"]
    assert got.n == 3
    for name, want in zip(names, means):
        assert getattr(got, name) == pytest.approx(want, abs=1e-6), name
    assert got.knockout_ratio == pytest.approx(ratio, abs=1e-6)
    summary = A.recall_summary(gpt2, *map(list, zip(*facts)))
    torch.testing.assert_close(got.summary.head_effect, summary.head_effect)
    assert got.summary.answer_prob == pytest.approx(summary.answer_prob)
    spread = [abs(x) for x in means] + [abs(1 - ratio)]
    assert min(spread) > 1e-3, spread  # every figure is non-trivial: a wrong index or a dropped answer shows


def test_recall_story_default_samples_and_seed_are_5_and_0(gpt2, facts):
    facts = facts[:1]
    got = A.recall_story(gpt2, *map(list, zip(*facts)))
    other = A.recall_story(gpt2, *map(list, zip(*facts)), samples=6, seed=1)
    assert abs(got.mlp_subject_last - other.mlp_subject_last) + abs(got.resid_early_subject
                                                                    - other.resid_early_subject) > 1e-4


# ---------------------------------------------------------------------------------------------------------------
# toy models of superposition: the training loop's definition, its defaults, its refusals, repr


def _toy_reference(n_features, d_hidden, sparsities, steps, batch_size, lr, seed, decay=0.9):
    """The documented training, written out: x uniform in [0, 1] kept with probability 1 - S, AdamW without decay."""
    g = torch.Generator().manual_seed(seed)
    M = len(sparsities)
    W = (torch.randn(M, d_hidden, n_features, generator=g) * (2 / (d_hidden + n_features)) ** 0.5).requires_grad_()
    b = torch.zeros(M, n_features, requires_grad=True)
    imp = decay ** torch.arange(n_features, dtype=torch.float32)
    opt = torch.optim.AdamW([W, b], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        x = torch.rand(M, batch_size, n_features, generator=g)
        x = x * (torch.rand(M, batch_size, n_features, generator=g) < 1 - torch.tensor(sparsities)[:, None, None])
        out = torch.relu(torch.einsum("mbf,mdf,mdg->mbg", x, W, W) + b[:, None])
        per_model = torch.stack([(imp * (x[m] - out[m]) ** 2).sum(-1).mean() for m in range(M)])
        opt.zero_grad()
        per_model.sum().backward()
        opt.step()
    return W.detach(), b.detach(), imp, per_model.detach()


def test_toy_models_follow_the_documented_training():
    kw = dict(n_features=6, d_hidden=2, sparsities=(0.0, 0.8), steps=20, batch_size=16, lr=3e-2, seed=3)
    got = A.train_toy_models(**kw)
    W, b, imp, losses = _toy_reference(**kw)
    torch.testing.assert_close(got.W, W, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.b, b, atol=1e-6, rtol=1e-5)
    assert got.sparsities == [0.0, 0.8] and torch.equal(got.importance, imp)
    assert got.losses.shape == (2,)
    torch.testing.assert_close(got.losses, losses, atol=1e-6, rtol=1e-5)
    assert float(b.abs().max()) > 0.05  # the bias moved: its sign is seen


def test_toy_models_defaults_and_their_progress_bar(monkeypatch, capsys):
    shapes = []
    rand = torch.rand

    def counting(*args, **kw):
        shapes.append(tuple(args))
        return rand(*args, **kw)

    monkeypatch.setattr(torch, "rand", counting)
    default = A.train_toy_models()
    monkeypatch.setattr(torch, "rand", rand)
    assert len(shapes) == 2 * 1500 and set(shapes) == {(4, 512, 20)}  # 1500 steps of 512 inputs, per model
    assert default.W.shape == (4, 5, 20) and default.sparsities == [0.0, 0.7, 0.9, 0.97]
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    seeded = A.train_toy_models(n_features=4, d_hidden=2, sparsities=(0.5,), steps=2, batch_size=4, seed=0)
    other = A.train_toy_models(n_features=4, d_hidden=2, sparsities=(0.5,), steps=2, batch_size=4, seed=1)
    same = A.train_toy_models(n_features=4, d_hidden=2, sparsities=(0.5,), steps=2, batch_size=4)
    assert torch.equal(same.W, seeded.W) and not torch.equal(same.W, other.W)  # the default seed is 0
    capsys.readouterr()
    A.train_toy_models(n_features=4, d_hidden=2, sparsities=(0.5,), steps=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "toy models" in err and "2/2" in err


@pytest.mark.parametrize("kw,message", [
    (dict(n_features=1), "n_features must be an integer >= 2; got 1"),
    (dict(n_features=4, d_hidden=0), "d_hidden must be an integer in 1..4; got 0"),
    (dict(steps=0), "steps must be an integer >= 1; got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1; got 0"),
], ids=["n_features", "d_hidden", "steps", "batch_size"])
def test_toy_models_refuse_sizes_below_their_minimum_naming_them(kw, message):
    with pytest.raises(ValueError) as err:
        A.train_toy_models(**kw)
    assert str(err.value) == message


def test_toy_models_accept_the_smallest_sizes():
    toy = A.train_toy_models(n_features=2, d_hidden=1, sparsities=(0.0,), steps=1, batch_size=1)
    assert toy.W.shape == (1, 1, 2) and toy.losses.shape == (1,)


def test_toy_models_count_a_feature_only_above_the_threshold_and_say_so():
    W = torch.tensor([[[0.5, 1.0, 0.0], [0.0, 0.0, 0.2]]])  # column norms 0.5, 1.0, 0.2
    toy = A.ToyModels(W, torch.zeros(1, 3), [0.9], torch.ones(3), torch.zeros(1))
    assert toy.represented().tolist() == [1]  # 0.5 is not above 0.5
    assert toy.represented(0.1).tolist() == [3]
    assert repr(toy) == "ToyModels(3 features -> 2 dimensions; features represented (norm > 0.5): S=0.9: 1)"


def test_toy_models_repr_lists_every_sparsity_with_its_count():
    W = torch.tensor([[[0.6, 1.0, 0.0]], [[0.0, 0.0, 0.2]]])  # two models of 1 dimension: 2 and 0 features kept
    toy = A.ToyModels(W, torch.zeros(2, 3), [0.0, 0.97], torch.ones(3), torch.zeros(2))
    assert repr(toy) == ("ToyModels(3 features -> 1 dimensions; features represented (norm > 0.5): S=0: 2, "
                         "S=0.97: 0)")
