"""Logit lens and the analysis helpers: exact values and refusals that name what is valid (issue 16)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

import kit.analysis as A
from kit.analysis import _common as C
from tests.fixtures_teeth import BOS, PROMPT, SUBJECT

PROMPTS = ["The cat sat on the mat.", "The capital of Veloria is"]


# --- logit lens -------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_every_layers_top_k_rank_and_probability_equal_the_unembedded_residual(teeth, which):
    m = teeth[which]
    tr = m.trace(PROMPTS, capture=["resid_post"])
    targets = [7, " mat"]
    lens = A.logit_lens(tr, k=4, target=targets)
    mat = m.tokenizer(" mat", add_special_tokens=False)["input_ids"][0]
    assert lens.target_ids.tolist() == [7, mat]
    L, B, T = m.n_layers, 2, tr.n_pos
    assert lens.top_ids.shape == lens.top_probs.shape == (L, B, T, 4)
    assert lens.target_rank.shape == lens.target_prob.shape == (L, B, T)
    for l in range(L):
        probs = m.unembed(tr["resid_post", l]).float().softmax(-1)  # [batch, pos, vocab]
        top = probs.topk(4, -1)
        assert torch.equal(lens.top_ids[l], top.indices)
        torch.testing.assert_close(lens.top_probs[l], top.values, atol=1e-6, rtol=1e-5)
        for b, t in enumerate([7, mat]):
            p_t = probs[b, :, t]
            torch.testing.assert_close(lens.target_prob[l, b], p_t, atol=1e-6, rtol=1e-5)
            assert torch.equal(lens.target_rank[l, b], (probs[b] > p_t[:, None]).sum(-1))
        assert lens.top_tokens[l][1][2] == m.to_str_tokens(top.indices[1, 2])
    assert int(lens.target_rank.max() - lens.target_rank.min()) > 100  # measured 272 and 290: ranks far apart
    assert repr(lens) == f"LogitLens(layers={L}, batch=2, pos={T}, k=4, target=yes)"


def test_without_a_target_there_are_no_ranks_and_k_is_bounded_by_the_vocabulary(teeth):
    m = teeth["gpt2"]
    tr = m.trace(PROMPTS[0], capture=["resid_post"], layers=[0, 2])
    lens = A.logit_lens(tr, k=m.vocab_size)  # every token, sorted
    assert lens.target_ids is None and lens.target_rank is None and lens.target_prob is None
    assert lens.top_ids.shape[0] == 2  # the captured layers only
    torch.testing.assert_close(lens.top_probs.sum(-1), torch.ones(lens.top_probs.shape[:-1]), atol=1e-5, rtol=0)
    assert repr(lens).endswith("k=300, target=no)")
    assert A.logit_lens(tr).top_ids.shape[-1] == 5  # the default k
    for k in (0, m.vocab_size + 1):
        with pytest.raises(ValueError, match=rf"^k must be an integer in 1\.\.{m.vocab_size}; got {k}$"):
            A.logit_lens(tr, k=k)


def test_logit_lens_refuses_traces_it_cannot_read(teeth):
    m = teeth["gpt2"]
    with pytest.raises(ValueError, match=r"^logit_lens needs a trace that captured 'resid_post'$"):
        A.logit_lens(m.trace(PROMPTS[0], capture=["pattern"]))
    tr = m.trace(PROMPTS, capture=["resid_post"])
    with pytest.raises(ValueError, match=r"^1 targets given for 2 prompts$"):
        A.logit_lens(tr, target=[3])
    tr["resid_post", 1][0, 2, 5] = float("nan")
    with pytest.raises(ValueError, match="resid_post"):
        A.logit_lens(tr)


def test_logit_lens_needs_a_trace():
    with pytest.raises(TypeError, match="logit_lens"):
        A.logit_lens("The cat")


# --- helpers ----------------------------------------------------------------------------------------

def test_bos_prefix_only_for_a_tokenizer_that_adds_one(teeth):
    assert C.bos_prefix(teeth["bos"]) == [teeth["bos"].tokenizer.convert_tokens_to_ids(BOS)]
    assert teeth["gpt2"].tokenizer.bos_token_id is None and C.bos_prefix(teeth["gpt2"]) == []
    # GPT-2's own tokenizer: a BOS token (<|endoftext|>, id 0) that prompts do not start with
    tok = AutoTokenizer.from_pretrained(teeth.root / "gpt2", bos_token="<|endoftext|>")
    assert tok.bos_token_id == 0
    assert C.bos_prefix(SimpleNamespace(tokenizer=tok, vocab_size=teeth["gpt2"].vocab_size)) == []


def test_head_list_checks_every_pair(teeth):
    m = teeth["gpt2"]  # 3 layers, 4 heads
    assert C.head_list(m, [(0, 1), [2, 3], (-1, -1)]) == [(0, 1), (2, 3), (2, 3)]
    for items, match in [([(0, 1, 2)], r"^each head is a \(layer, head\) pair, got \(0, 1, 2\)$"),
                         ([3], r"^each head is a \(layer, head\) pair, got 3$"),
                         ([], r"^no heads given$"),
                         ([(3, 0)], r"^layer 3 is out of range: valid layers are 0\.\.2$"),
                         ([(0, 4)], r"^head 4 is out of range: valid heads are 0\.\.3$")]:
        with pytest.raises(ValueError, match=match):
            C.head_list(m, items)
    with pytest.raises(ValueError, match=r"^no movers given$"):
        C.head_list(m, [], what="mover")
    with pytest.raises(ValueError, match=r"^each mover is a \(layer, head\) pair, got 'x'$"):
        C.head_list(m, ["x"], what="mover")


def test_token_ids_from_ids_texts_and_lists(teeth):
    m = teeth["gpt2"]
    V = m.vocab_size
    assert C.token_id(m, 0) == 0 and C.token_id(m, V - 1) == V - 1 and C.token_id(m, torch.tensor(5)) == 5
    assert C.token_id(m, " mat") == m.tokenizer(" mat", add_special_tokens=False)["input_ids"][0]
    for bad in (V, -1):
        with pytest.raises(ValueError, match=rf"^token id {bad} is out of range: valid ids are 0\.\.{V - 1}$"):
            C.token_id(m, bad)
    with pytest.raises(ValueError, match=r"^token text '' produced no tokens$"):
        C.token_id(m, "")
    assert C.token_id(teeth["bos"], " mat") == C.token_id(m, " mat")  # the text's own token, not the BOS
    assert C.token_ids_per_prompt(m, [3, " mat"], 2).tolist() == [3, C.token_id(m, " mat")]
    assert C.token_ids_per_prompt(m, (3, 4, 5), 3).tolist() == [3, 4, 5]
    got = C.token_ids_per_prompt(m, 9, 3)
    assert got.tolist() == [9, 9, 9] and got.dtype == torch.long
    with pytest.raises(ValueError, match=r"^3 targets given for 2 prompts$"):
        C.token_ids_per_prompt(m, [1, 2, 3], 2)


def test_last_positions_count_back_from_each_prompts_own_end(teeth):
    m = teeth["gpt2"]
    tr = m.trace(["Hi", "The cat sat on the mat."], capture=[])
    n0, n1 = tr.lengths
    assert C.last_positions(tr).tolist() == [n0 - 1, n1 - 1]
    assert C.last_positions(tr, -2).tolist() == [n0 - 2, n1 - 2]
    assert C.last_positions(tr, [0, -n1]).tolist() == [0, 0]
    assert C.last_positions(tr, [n0 - 1, 3]).tolist() == [n0 - 1, 3]
    with pytest.raises(ValueError, match=rf"^position {n0} is out of range for a prompt of {n0} tokens$"):
        C.last_positions(tr, [n0, 0])
    with pytest.raises(ValueError, match=rf"^position {-n0 - 1} is out of range for a prompt of {n0} tokens$"):
        C.last_positions(tr, -n0 - 1)
    with pytest.raises(ValueError, match=r"^1 positions given for 2 prompts$"):
        C.last_positions(tr, [0])


def test_one_prompt_only(teeth):
    m = teeth["gpt2"]
    assert C.one_prompt(m, "Hi").shape == (1, 2)
    assert C.one_prompt(m, [[5, 6, 7]]).tolist() == [[5, 6, 7]]
    with pytest.raises(ValueError, match=r"^pass one prompt \(a string or one id sequence\)$"):
        C.one_prompt(m, ["Hi", "Hi there"])


def test_subject_positions_are_the_tokens_overlapping_the_first_occurrence(teeth):
    for which in ("gpt2", "bos"):
        m = teeth[which]
        toks = m.to_str_tokens(PROMPT)
        pos = C.subject_positions(m, PROMPT, SUBJECT)
        assert "".join(toks[i] for i in pos) == SUBJECT
        assert pos == list(range(pos[0], pos[-1] + 1)) and len(pos) > 1
    m = teeth["gpt2"]
    prompt = "The cat saw the cat."  # ['The', ' c', 'at', ' ', 's', 'a', 'w', ' the', ' c', 'at', '.']
    assert m.to_str_tokens(prompt)[1:3] == m.to_str_tokens(prompt)[8:10] == [" c", "at"]
    assert C.subject_positions(m, prompt, "cat") == [1, 2]  # the first occurrence, not the second
    # inside a word: the tokens that overlap it (' ca', 'p', 'i', 't'), and not ' ' or 'al' beside them
    assert C.subject_positions(m, PROMPT, "apit") == [1, 2, 3, 4]
    assert C.subject_positions(m, PROMPT, "The") == [0]  # at the very start
    assert C.subject_positions(m, PROMPT, " is") == [13, 14]  # at the very end: ' ', 'is'
    for subject, match in [(" ", r"^subject is empty; give the text of the subject as it appears in the prompt"),
                           ("", r"^subject is empty"), (3, r"^subject is empty"),
                           ("Paris", r"^subject 'Paris' does not occur in the prompt 'The capital of Veloria is'$")]:
        with pytest.raises(ValueError, match=match):
            C.subject_positions(m, PROMPT, subject)


# --- every public function names itself when given the wrong thing ------------------------------------

@pytest.mark.parametrize("name, call", [
    ("activation_patching", lambda tr: A.activation_patching(tr, "a", "b", answer=1)),
    ("attention_knockout", lambda tr: A.attention_knockout(tr, "a", key=[0])),
    ("causal_trace", lambda tr: A.causal_trace(tr, "a", "a")),
    ("causal_trace", lambda tr: A.causal_traces(tr, "a", "a")),
    ("prev_token_scores", lambda tr: A.prev_token_scores(tr)),
    ("induction_scores", lambda tr: A.induction_scores(tr)),
    ("repeated_tokens", lambda tr: A.repeated_tokens(tr)),
    ("copying_scores", lambda tr: A.copying_scores(tr)),
    ("composition_scores", lambda tr: A.composition_scores(tr)),
])
def test_a_trace_given_for_a_model_is_refused_by_the_functions_name(teeth, name, call):
    tr = teeth["gpt2"].trace("Hi", capture=[])
    with pytest.raises(TypeError, match=rf"^{name} takes a kit model from kit\.load\(\.\.\.\); got Trace \(this is a "
                                        rf"Trace: pass tr\.model\)$"):
        call(tr)


def test_logit_lens_names_itself_when_given_a_model(teeth):
    with pytest.raises(TypeError, match=r"^logit_lens takes a Trace from model\.trace\(\.\.\.\); got Model"):
        A.logit_lens(teeth["gpt2"])
    tr = teeth["gpt2"].trace(PROMPTS, capture=["resid_post"])
    tr["resid_post", 1][0, 2, 5] = float("inf")
    with pytest.raises(ValueError, match=r"^logit_lens: the trace's 'resid_post' at layer 1 holds NaN"):
        A.logit_lens(tr)


def test_patching_shows_a_progress_bar_only_when_asked(teeth, capsys):
    m = teeth["gpt2"]
    c = m.to_tokens(PROMPTS[1])
    x = c.clone()
    x[3] = 40
    A.activation_patching(m, c, x, answer=5, kind="mlp")
    assert capsys.readouterr().err == ""
    A.activation_patching(m, c, x, answer=5, kind="mlp", progress=True)
    assert "patching mlp" in capsys.readouterr().err


def test_knockout_answers_given_as_a_tuple_are_one_per_prompt(teeth):
    m = teeth["gpt2"]
    res = A.attention_knockout(m, PROMPTS, key=[0], answer=(5, " mat"))
    assert res["answer"].tolist() == [5, C.token_id(m, " mat")]


def test_composition_scores_default_to_k_composition(teeth):
    m = teeth["gpt2"]
    k = A.composition_scores(m, "k")
    assert torch.equal(A.composition_scores(m), k)
    assert not torch.allclose(k, A.composition_scores(m, "q"))  # the default is not a kind that happens to agree


def test_repeated_tokens_default_to_seed_0(teeth):
    m = teeth["bos"]
    ids = A.repeated_tokens(m, 6)
    assert torch.equal(ids, A.repeated_tokens(m, 6, seed=0))
    assert not torch.equal(ids, A.repeated_tokens(m, 6, seed=1))
