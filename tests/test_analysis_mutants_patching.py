"""Activation patching and attention knockout against one forward pass per cell, with teeth (issue 16).

On the sharpened ``teeth`` models (``tests/fixtures_teeth.py``) patching one cell moves the metric by
O(1), so "every cell equals the loop" (tolerance 1e-4 on logit differences, 1e-5 on probabilities; the
batched grid and the loop run the same operations on different batch sizes) cannot pass by accident.
"""

from __future__ import annotations

import pytest
import torch

import kit
import kit.analysis as A
from kit.analysis.patching import PatchingResult

CLEAN, CORRUPT = "The capital of Veloria is", "The capital of Tarsen is"
POINT = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out", "heads": "z"}


def _ids(m):
    c, x = m.to_tokens(CLEAN), m.to_tokens(CORRUPT)
    if len(c) != len(x):  # keep the lengths equal whatever the tokenizer: corrupt two tokens of the clean prompt
        x = c.clone()
        x[2:4] = torch.tensor([40, 41])
    return c, x


def _metric(logits, answer, contrast):
    last = logits[0, -1].float()
    return float(last[answer] - last[contrast]) if contrast is not None else float(last.softmax(-1)[answer])


def _loop(m, c, x, kind, answer, contrast):
    """``grid[layer, pos | head]``: one forward pass of the corrupted prompt per patched cell."""
    src = m.trace(c, capture=[POINT[kind]])
    width = m.n_heads if kind == "heads" else len(c)
    grid = torch.empty(m.n_layers, width)
    for l in range(m.n_layers):
        for j in range(width):
            iv = kit.Patch("z", l, src, head=j) if kind == "heads" else kit.Patch(POINT[kind], l, src, pos=j)
            grid[l, j] = _metric(m.trace(x, capture=[], interventions=[iv]).logits, answer, contrast)
    return grid


@pytest.mark.parametrize("which", ["gpt2", "llama"])
@pytest.mark.parametrize("kind", ["resid", "attn", "mlp", "heads"])
def test_every_patched_cell_equals_one_forward_pass_with_that_patch(teeth, which, kind):
    m = teeth[which]
    c, x = _ids(m)
    top = m.trace(c, capture=[]).logits[0, -1].argsort()
    answer, contrast = int(top[-1]), int(top[-2])
    for con, atol in ((contrast, 1e-4), (None, 1e-5)):
        res = A.activation_patching(m, c, x, answer=answer, contrast=con, kind=kind, batch_size=5)  # chunks cut layers
        ref = _loop(m, c, x, kind, answer, con)
        assert res.scores.shape == ref.shape
        torch.testing.assert_close(res.scores, ref, atol=atol, rtol=0)
        assert float(ref.max() - ref.min()) > 100 * atol  # the grid has teeth
        assert res.clean == pytest.approx(_metric(m.trace(c, capture=[]).logits, answer, con), abs=atol)
        assert res.corrupted == pytest.approx(_metric(m.trace(x, capture=[]).logits, answer, con), abs=atol)
        assert res.metric == ("logit_diff" if con is not None else "prob") and res.kind == kind
    assert res.clean_tokens == m.to_str_tokens(c) and res.corrupted_tokens == m.to_str_tokens(x)
    assert res.clean_tokens != res.corrupted_tokens


def test_the_batch_size_changes_only_the_speed(teeth):
    m = teeth["gpt2"]
    c, x = _ids(m)
    grids = [A.activation_patching(m, c, x, answer=7, contrast=9, kind="resid", batch_size=b).scores
             for b in (1, 4, 64)]
    torch.testing.assert_close(grids[0], grids[2], atol=1e-4, rtol=0)
    torch.testing.assert_close(grids[1], grids[2], atol=1e-4, rtol=0)
    assert A.activation_patching(m, c, x, answer=" of", contrast=7, kind="mlp", batch_size=3).scores.shape == (
        m.n_layers, len(c))


def test_answers_and_contrasts_given_as_text_are_their_first_token(teeth):
    m = teeth["gpt2"]
    c, x = _ids(m)
    a, b = m.tokenizer(" capital", add_special_tokens=False)["input_ids"][0], m.tokenizer(
        " is", add_special_tokens=False)["input_ids"][0]
    by_text = A.activation_patching(m, c, x, answer=" capital", contrast=" is", kind="mlp")
    by_id = A.activation_patching(m, c, x, answer=a, contrast=b, kind="mlp")
    assert torch.equal(by_text.scores, by_id.scores) and by_text.clean == by_id.clean


def test_patching_result_repr_and_normalized():
    res = PatchingResult(torch.tensor([[1.0, 3.0], [2.0, 5.0]]), clean=5.0, corrupted=1.0, kind="mlp",
                         metric="logit_diff")
    assert repr(res) == "PatchingResult(kind='mlp', grid=[2, 2], metric='logit_diff', clean=5, corrupted=1)"
    torch.testing.assert_close(res.normalized, torch.tensor([[0.0, 0.5], [0.25, 1.0]]), atol=0, rtol=0)


@pytest.mark.parametrize("call, match", [
    (lambda m, c, x: A.activation_patching(m, c, x, answer=5, kind="neurons"),
     r"^kind='neurons'; valid kinds: resid, attn, mlp, heads$"),
    (lambda m, c, x: A.activation_patching(m, c, x[:-1], answer=5),
     r"^clean and corrupted prompts must have the same token length \(\d+ vs \d+\)$"),
    (lambda m, c, x: A.activation_patching(m, c, x, answer=5, batch_size=0), "batch_size must be"),
    (lambda m, c, x: A.activation_patching(m, [c.tolist(), x.tolist()], x, answer=5), "one prompt"),
], ids=["bad-kind", "length-mismatch", "batch-size-0", "two-prompts"])
def test_activation_patching_refusals_name_what_is_valid(teeth, call, match):
    m = teeth["gpt2"]
    c, x = _ids(m)
    with pytest.raises(ValueError, match=match):
        call(m, c, x)


def test_a_length_mismatch_names_both_lengths(teeth):
    m = teeth["gpt2"]
    c, x = _ids(m)
    with pytest.raises(ValueError, match=rf"\({len(c)} vs {len(c) - 1}\)"):
        A.activation_patching(m, c, x[:-1], answer=5)


# --- attention knockout ----------------------------------------------------------------------------

PROMPTS = ["The cat sat on the mat.", "Hi", "The capital of Veloria is"]


def _p_last(m, prompt, answer, ivs=()):
    return float(m.trace(prompt, capture=[], interventions=list(ivs)).logits[0, -1].softmax(-1)[answer])


def test_knockout_of_each_prompts_own_keys_equals_knocking_out_each_prompt_alone(teeth):
    m = teeth["gpt2"]
    keys = [[1, 2], [0], [3]]
    res = A.attention_knockout(m, PROMPTS, key=keys)
    L = list(range(m.n_layers))
    moved = 0.0
    for b, (p, ks) in enumerate(zip(PROMPTS, keys)):
        top = int(m.trace(p, capture=[]).logits[0, -1].argmax())
        assert int(res["answer"][b]) == top  # default answer: the prediction before
        assert res["before"][b].item() == pytest.approx(_p_last(m, p, top), abs=1e-5)
        after = _p_last(m, p, top, [kit.Knockout(L, query=-1, key=ks)])
        assert res["after"][b].item() == pytest.approx(after, abs=1e-5)
        moved = max(moved, abs(after - res["before"][b].item()))
    assert moved > 0.05  # the knockout matters (each prompt keeps its own last position under padding)


def test_knockout_in_chosen_layers_from_a_chosen_query_with_given_answers(teeth):
    m = teeth["gpt2"]
    prompts = PROMPTS[::2]
    tops = [int(m.trace(p, capture=[]).logits[0, -1].argmax()) for p in prompts]
    res = A.attention_knockout(m, prompts, key=[1], answer=tops, layers=[0, 2], query=-2)
    assert res["answer"].tolist() == tops
    for b, (p, a) in enumerate(zip(prompts, tops)):
        assert res["before"][b].item() == pytest.approx(_p_last(m, p, a), abs=1e-5)
        want = _p_last(m, p, a, [kit.Knockout([0, 2], query=-2, key=[1])])
        assert res["after"][b].item() == pytest.approx(want, abs=1e-5)
        every = _p_last(m, p, a, [kit.Knockout(list(range(3)), query=-2, key=[1])])
        last = _p_last(m, p, a, [kit.Knockout([0, 2], query=-1, key=[1])])
        assert abs(want - every) > 1e-3 and abs(want - last) > 1e-3  # the layers and the query matter
    text = m.tokenizer.decode([tops[0]])
    one = A.attention_knockout(m, prompts[0], key=[0], answer=text)  # one prompt, an answer as text
    assert one["before"].shape == (1,) and one["answer"].tolist() == [m.tokenizer(text, add_special_tokens=False)[
        "input_ids"][0]]


@pytest.mark.parametrize("key, match", [
    ([], r"^no key positions given: pass the positions to block, e\.g\. key=\[1, 2\] \(or one list per prompt\)$"),
    ([[1], [0]], r"^2 key position lists given for 3 prompts"),
    ([[1], [], [0]], r"^no key positions given for prompt 1; give positions in 0\.\.1$"),
    ([[1], [2], [0]], r"^key position 2 is out of range for prompt 1: valid positions are 0\.\.1$"),
    ([[1], [-1], [0]], r"^key position -1 is out of range for prompt 1"),
], ids=["none", "too-few-lists", "empty-list", "past-the-end", "negative"])
def test_knockout_refusals_name_the_prompt_and_the_valid_positions(teeth, key, match):
    m = teeth["gpt2"]
    assert len(m.to_tokens(PROMPTS[1])) == 2
    with pytest.raises(ValueError, match=match):
        A.attention_knockout(m, PROMPTS, key=key)
    A.attention_knockout(m, PROMPTS, key=[[1], [1], [0]])  # the last position of the short prompt is valid
