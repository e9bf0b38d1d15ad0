"""The optional GPT-2 cells of lessons 01, 03 and 04 are complete, correct code: they run, offline, on a
random-weight model of GPT-2 small's shape (12 layers, 12 heads) that ``kit.load("gpt2")`` is pointed at."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, GPT2Config

import kit
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ("01_attention_and_the_residual_stream.py", "03_factual_recall.py", "04_mlp_decomposition.py")
VOCAB = 600
sys.path.insert(0, str(ROOT / "lessons"))
from build import parse  # noqa: E402  (the lesson builder's own cell splitter)


@pytest.fixture(scope="module")
def gpt2_shaped(tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("gpt2-shaped")
    # a byte-level BPE, as GPT-2's, that knows the cells' words (GPT-2's own vocabulary has each city as one token)
    corpus = [c for lesson in LESSONS for c in online_cells(lesson)[1]] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                            pad_token="<|endoftext|>").save_pretrained(out)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_head=12, n_embd=48, n_inner=96, n_positions=64, vocab_size=VOCAB,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def online_cells(lesson: str) -> tuple[str, list[str]]:
    """``(the lesson's first code cell, its NBVAL_SKIP cells)``, as the notebook holds them."""
    nb = parse((ROOT / "lessons" / "src" / lesson).read_text())
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    return code[0], [c for c in code if "NBVAL_SKIP" in c]


def run_online_cells(lesson: str, local: Path, monkeypatch) -> dict:
    real_load = kit.load

    def load(name, *args, **kwargs):
        return real_load(str(local) if name == "gpt2" else name, *args, **kwargs)

    monkeypatch.setattr(kit, "load", load)
    monkeypatch.chdir(ROOT / "lessons")
    setup, cells = online_cells(lesson)
    assert cells, f"{lesson} has no optional online cells"
    ns: dict = {}
    exec(compile(setup, f"{lesson}:setup", "exec"), ns)
    for i, cell in enumerate(cells):
        exec(compile(cell, f"{lesson}:online cell {i}", "exec"), ns)
    return ns


def test_lesson03_gpt2_cells_run_and_measure_all_four_final_block_measures(gpt2_shaped, monkeypatch, capsys):
    ns = run_online_cells("03_factual_recall.py", gpt2_shaped, monkeypatch)
    out = capsys.readouterr().out
    assert ns["gpt2"].n_layers == 12 and ns["gpt2"].n_heads == 12
    assert set(ns["g_traces"]) == {"resid", "mlp", "attn"}
    assert all(len(o) == len(ns["g_answers"]) - 1 for o in ns["g_others"])
    final = ns["g_final"]
    assert final.n_prompts == len(ns["g_prompts"]) == 5
    assert len(final.rows()) == 4 and out.count("GPT-2's final block") == 4
    assert "logit-lens p(answer)" in out


def test_lesson01_gpt2_cells_run(gpt2_shaped, monkeypatch, capsys):
    ns = run_online_cells("01_attention_and_the_residual_stream.py", gpt2_shaped, monkeypatch)
    out = capsys.readouterr().out
    att = ns["att_gpt2"]
    assert abs(float(att.parts_sum()[0]) - float(att.total[0])) < 1e-3
    assert "heads adding most" in out


def test_lesson04_gpt2_cells_run(gpt2_shaped, monkeypatch, capsys):
    ns = run_online_cells("04_mlp_decomposition.py", gpt2_shaped, monkeypatch)
    out = capsys.readouterr().out
    assert ns["g_res"].k == 8 and ns["g_col"].acts.shape[0] == ns["gpt2"].d_mlp
    assert out.count("GPT-2 layer 6, neuron") == 5
