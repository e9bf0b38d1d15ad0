"""Every claim lesson 05 makes about ioi-3l, asserted on the shipped weights with the lesson's own helpers
(prompts: ``ioi_batch(32)``; the single pair for attribution patching: its first prompt)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import kit
import kit.analysis as A
from kit.lessons.circuit import GPT2_NAMES, gpt2_ioi, ioi_batch, patching_by_head
from kit.train.ioi import IOIRecipe

ZOO_MODEL = "ioi-3l"  # the conftest `model` fixture loads it


@pytest.fixture(scope="module")
def batch():
    return ioi_batch(32)


@pytest.fixture(scope="module")
def restored(model, batch):
    return patching_by_head(model, batch)


def test_the_metric_separates_clean_from_corrupted(model, batch):
    last = lambda p: model.trace(p, capture=[]).logits[:, -1]  # noqa: E731
    io = torch.tensor([A.token_id(model, t) for t in batch.io])
    s = torch.tensor([A.token_id(model, t) for t in batch.s])
    rows = torch.arange(len(batch))
    clean = float((last(batch.clean)[rows, io] - last(batch.clean)[rows, s]).mean())
    corrupted = float((last(batch.corrupted)[rows, io] - last(batch.corrupted)[rows, s]).mean())
    assert round(clean, 1) == 10.9 and round(corrupted, 1) == 0.1


def test_two_heads_stand_out_in_patching(restored):
    flat = sorted(((float(restored[l, h]), (l, h)) for l in range(3) for h in range(4)), reverse=True)
    assert [h for _, h in flat[:2]] == [(1, 1), (2, 2)]
    assert flat[1][0] >= 2 * flat[2][0]
    assert round(float(restored[1, 1]), 2) == 0.72


def test_patching_by_head_equals_a_patch_per_head(model, batch, restored):
    """The helper is the plain definition: one kit.Patch of one head, ratio of mean logit differences."""
    clean = model.trace(batch.clean, capture=["z"])
    io = torch.tensor([[A.token_id(model, t)] for t in batch.io])
    s = torch.tensor([[A.token_id(model, t)] for t in batch.s])
    diff = lambda lg: float((lg[:, -1].gather(-1, io) - lg[:, -1].gather(-1, s)).mean())  # noqa: E731
    c, x = diff(clean.logits), diff(model.trace(batch.corrupted, capture=[]).logits)
    patched = diff(model.trace(batch.corrupted, capture=[], interventions=[kit.Patch("z", 2, clean, head=2)]).logits)
    assert float(restored[2, 2]) == pytest.approx((patched - x) / (c - x), abs=1e-5)


def test_attribution_patching_agrees_on_heads_and_fails_on_the_residual_at_s2(model, batch):
    pair = (batch.clean[0], batch.corrupted[0], batch.io[0], batch.s[0])
    heads = A.agreement(A.attribution_patching(model, *pair, kind="heads"),
                        A.activation_patching(model, *pair, kind="heads"))
    resid = A.agreement(A.attribution_patching(model, *pair, kind="resid"),
                        A.activation_patching(model, *pair, kind="resid"))
    assert heads.correlation >= 0.98
    assert resid.correlation < 0.5
    tokens = model.trace(batch.clean[0], capture=[]).tokens[0]
    s2 = len(tokens) - 1 - tokens[::-1].index(batch.s[0])
    assert resid.worst(1)[0][0][1] == s2 == 10
    assert abs(resid.worst(1)[0][1]) > 5 * abs(heads.worst(1)[0][1])  # far off, where the patch is large


def test_path_patching_claims(model, batch):
    direct = A.path_patching(model, *batch.args(), receivers="logits")
    (first, e1), (second, e2), _ = direct.top(3)
    assert (first, second) == ((1, 1), (2, 2)) and round(e1, 2) == -0.39
    into = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1)
    assert into.top(1)[0][0] == (1, 1)
    pattern = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1, receiver_input="pattern")
    values = A.path_patching(model, *batch.args(), receivers=[(2, 2)], receiver_pos=-1, receiver_input="values")
    assert float(pattern.effect[1, 1]) <= -0.1  # where L2H2 looks ...
    assert abs(float(values.effect[1, 1])) < 0.01  # ... not what it reads
    assert float(pattern.effect[1, 1]) <= 0.8 * float(into.effect[1, 1])  # most of the whole path


def test_attention_claims(model, batch):
    tr = model.trace(batch.clean, capture=["pattern"])
    rows = torch.arange(len(batch))
    pos = {"IO": [], "S1": [], "S2": []}
    for b, toks in enumerate(tr.tokens):
        pos["IO"].append(toks.index(batch.io[b]))
        pos["S1"].append(toks.index(batch.s[b]))
        pos["S2"].append(len(toks) - 1 - toks[::-1].index(batch.s[b]))
    share = {(l, h): {k: float(tr["pattern", l][rows, h, -1][rows, torch.tensor(v)].mean()) for k, v in pos.items()}
             for l, h in [(1, 1), (2, 2)]}
    assert share[1, 1]["S2"] > 0.4 and share[1, 1]["IO"] > 0.3 and share[1, 1]["S1"] < 0.05
    assert max(share[2, 2], key=share[2, 2].get) == "IO"


def test_weight_claims(model):
    names = IOIRecipe().names()
    assert A.ov_circuit(model, 2, 2, tokens=names).diagonal_share >= 5 / len(names)
    comp = {k: float(A.composition_scores(model, k)[1, 1, 2, 2]) for k in "qkv"}
    mean, std = A.composition_baseline(model, "q")
    assert comp["q"] > max(comp["k"], comp["v"]) and comp["q"] > mean + 10 * std


def test_ablation_claims(model, batch, restored):
    cmp = A.compare_ablations(model, batch.clean, batch.io, batch.s)
    for method in cmp.methods:
        e = cmp.of(method)
        order = sorted((float(e[l, h]), (l, h)) for l in range(3) for h in range(4))
        assert {h for _, h in order[:2]} == {(1, 1), (2, 2)}, method
        assert float(e[0, 3]) <= -1.5, method  # L0H3: about 2 logits by every method
    assert float(restored[0, 3]) < 0.1  # ... while patching it restores under a tenth


def test_backup_claims(model, batch):
    mean = A.backup_heads(model, batch.clean, batch.io, batch.s, ablate=[(2, 2)], method="mean")
    gains = mean.change.nan_to_num(-1.0)
    risers = {(l, h) for l in range(3) for h in range(4) if gains[l, h] >= 0.2}
    assert risers == {(1, 1), (2, 3)}
    assert all(0.25 <= round(float(gains[h]), 2) <= 0.32 for h in risers)
    assert float(mean.before[2, 2]) == pytest.approx(3.0, abs=0.5)
    resample = A.backup_heads(model, batch.clean, batch.io, batch.s, ablate=[(2, 2)], method="resample")
    assert float(resample.change.nan_to_num(-1.0).max()) < 0.2


def test_the_gpt2_section_runs_on_a_random_gpt2_shape_model():
    """The optional GPT-2 section (``gpt2_ioi``) on a random-weight model of GPT-2's shape (12 layers of 12
    heads, smaller width) with a word-level tokenizer: no download."""
    words = sorted({w for n in GPT2_NAMES for w in [n.strip()]} |
                   set("When and went to the store, gave a drink to".split()))
    vocab = {w: i for i, w in enumerate(["<|endoftext|>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_layer=12, n_head=12, n_embd=96, n_positions=32,
                                    initializer_range=0.2))
    m = kit.Model(hf, fast, name="random-gpt2-shape")
    report = gpt2_ioi(m, n=4)
    assert report["patching"].shape == (12, 12)
    assert len(report["top_heads"]) == 5 and len(report["direct_paths"]) == 5
    assert report["senders_into_top"] is None or len(report["senders_into_top"]) == 5
    assert torch.isfinite(torch.tensor([report["clean"], report["corrupted"]])).all()
    assert report["clean"] != report["corrupted"]
    assert report["prompts"][0].startswith("When ") and report["prompts"][0].endswith(" gave a drink to")
