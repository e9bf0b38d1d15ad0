"""ResidualLens, Python side, on tiny random models of every family: the logit lens, target
ranks, norms and the attribution waterfall agree with kit.analysis."""

import pytest
import torch
import traitlets

from kit.analysis import direct_logit_attribution, logit_lens
from kit.widgets import ResidualLens
from kit.widgets._wire import decode_tensor

PROMPT = "The cat sat on the mat"


def test_cells_hold_the_logit_lens_top_tokens(tiny_model):
    tr = tiny_model.trace(PROMPT)
    w = ResidualLens(tr, k=3)
    lens = logit_lens(tr, k=3)
    env = w._lens["ids"]
    index = decode_tensor(env, env["data"])  # [layer, pos, k] into _vocab
    probs = decode_tensor(w._lens["probs"], w._lens["probs"]["data"])
    L, T = tiny_model.n_layers, len(tr.tokens[0])
    assert index.shape == (L, T, 3)
    texts = [[[w._vocab[i] for i in row] for row in layer] for layer in index.tolist()]
    assert texts == [[tiny_model.to_str_tokens(ids) for ids in layer] for layer in lens.top_ids[:, 0]]
    assert torch.allclose(probs, lens.top_probs[:, 0], atol=1e-3)
    assert w.top_tokens(1, 2)[0] == (texts[1][2][0], pytest.approx(float(lens.top_probs[1, 0, 2, 0])))


def test_waterfall_equals_direct_logit_attribution_at_every_position(tiny_model):
    tr = tiny_model.trace(PROMPT)
    w = ResidualLens(tr)
    top = tr.logits[0].argmax(-1)
    for pos in range(len(tr.tokens[0])):
        ours = w.attribution(pos)
        ref = direct_logit_attribution(tr, int(top[pos]), pos=pos, neurons=False)
        for name in ("embed", "heads", "attn_bias", "mlps", "bias", "total"):
            assert torch.allclose(ours[name], getattr(ref, name)[0], atol=1e-4), (pos, name)


def test_a_target_gives_ranks_probabilities_and_the_waterfall_target(tiny_model):
    tr = tiny_model.trace(PROMPT)
    w = ResidualLens(tr, target=" the")
    lens = logit_lens(tr, k=1, target=" the")
    rank = decode_tensor(w._target["rank"], w._target["rank"]["data"])
    prob = decode_tensor(w._target["prob"], w._target["prob"]["data"])
    assert torch.equal(rank, lens.target_rank[:, 0])
    assert torch.allclose(prob, lens.target_prob[:, 0], rtol=2e-3, atol=1e-6)
    ref = direct_logit_attribution(tr, " the", pos=2, neurons=False)
    assert torch.allclose(w.attribution(2)["heads"], ref.heads[0], atol=1e-4)
    assert w.target == " the" and w._target["text"] == " the"


def test_norms_are_the_residual_stream_norms(tiny_models):
    model = tiny_models["gpt2"]
    tr = model.trace(PROMPT)
    w = ResidualLens(tr)
    assert torch.allclose(w.norms[0], tr["resid_pre", 0][0].norm(dim=-1))
    assert torch.allclose(w.norms[-1], tr["resid_post", model.n_layers - 1][0].norm(dim=-1))
    assert w._info["norm_rows"] == ["embed"] + [f"L{i}" for i in range(model.n_layers)]


def test_waterfall_blobs_decode_to_parts_that_sum_to_the_logit(tiny_models):
    model = tiny_models["llama"]
    w = ResidualLens(model, PROMPT)
    L, H = model.n_layers, model.n_heads
    blob = w.blob("dla/3")
    flat = decode_tensor(blob.meta, blob.data)
    assert flat.shape == (2 + L * H + 2 * L + 1,)
    parts = flat[:-1]
    total = flat[-1]
    # embed + heads + attn biases + mlps + final bias == logit (float16 on the wire)
    assert float(parts.sum()) == pytest.approx(float(total), abs=2e-2 + 2e-3 * float(parts.abs().sum()))
    assert blob.meta["pos"] == 3 and blob.meta["target"] == model.to_str_tokens([blob.meta["target_id"]])[0]


def test_blob_keys_follow_the_target(tiny_models):
    model = tiny_models["gpt2"]
    w = ResidualLens(model, PROMPT)
    n = len(w.tokens)
    assert w._blob_keys() == [f"dla/{p}" for p in range(n)]
    w.target = " the"
    tid = w._target["id"]
    assert w._blob_keys()[0] == f"dla/0@{tid}"
    with pytest.raises(KeyError):
        w.blob("dla/0")  # a waterfall for the old target is not served
    w.target = None
    assert w._target == {} and w.target is None


def test_rank_colouring_needs_a_target(tiny_models):
    w = ResidualLens(tiny_models["gpt2"], PROMPT)
    with pytest.raises(traitlets.TraitError, match="target"):
        w.color = "rank"
    w.target = " the"
    w.color = "rank"
    w.target = None
    assert w.color == "prob"
    assert ResidualLens(tiny_models["gpt2"], PROMPT, target=" c", color="rank").color == "rank"


def test_a_padded_batch_uses_each_prompts_real_tokens(tiny_models):
    model = tiny_models["gpt2"]
    tr = model.trace([PROMPT, "The cat"])
    w = ResidualLens(tr, batch_index=1)
    assert w.tokens == model.to_str_tokens("The cat")
    assert w._info["n_tokens"] == len(w.tokens)
    alone = ResidualLens(model, "The cat")
    assert torch.allclose(w.attribution(-1 % len(w.tokens))["total"], alone.attribution()["total"], atol=1e-4)


def test_selection_limits_and_bad_inputs(tiny_models):
    model = tiny_models["gpt2"]
    w = ResidualLens(model, PROMPT)
    w.layer, w.head, w.token = model.n_layers - 1, model.n_heads - 1, 0
    with pytest.raises(traitlets.TraitError):
        w.layer = model.n_layers
    with pytest.raises(ValueError, match="resid_post"):
        ResidualLens(model.trace(PROMPT, capture=["pattern"]))
    with pytest.raises(TypeError, match="prompt"):
        ResidualLens(model)
    with pytest.raises(ValueError, match="batch_index"):
        ResidualLens(model.trace(PROMPT), batch_index=1)
    with pytest.raises(TypeError, match="Did you mean 'target'"):
        ResidualLens(model, PROMPT, targte=" the")


def test_a_trace_without_the_attribution_pieces_still_shows_the_lens(tiny_models):
    model = tiny_models["gpt2"]
    w = ResidualLens(model.trace(PROMPT, capture=["resid_post"]))
    assert w._info["dla"] is False and w._blob_keys() == []
    with pytest.raises(ValueError, match="capture"):
        w.attribution()


def test_export_inlines_every_position_of_the_waterfall(tiny_models):
    w = ResidualLens(tiny_models["gpt2"], PROMPT)
    page = w.to_html()
    assert page.count('"dla/') == len(w.tokens)
    assert repr(w).startswith(f"ResidualLens({tiny_models['gpt2'].n_layers} layers x {len(w.tokens)} tokens")
