"""The real-model track: hub models load when online and skip with one line offline; every lesson's optional
section runs its steps on GPT-2 small's and Pythia-160M's architectures, offline, on random-weight stand-ins
(narrow ones in the default run, full-shape ones under ``pytest -m real_track``). Random weights: the code
paths and shapes are checked, never the numbers."""

from __future__ import annotations

import time

import pytest
import torch

from kit.lessons import real
from tests.real_track import SOURCES, lesson_source, optional_cells, run_cells, run_optional

LESSONS = ["01", "02", "03", "04", "05", "06"]
HF_CLASS = {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM"}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_offline_a_hub_model_is_a_clean_skip(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(real.ENV_REAL_MODEL, raising=False)
    start = time.perf_counter()
    with pytest.raises(real.RealModelUnavailable, match=r"GPT-2 small \(gpt2\) could not be loaded") as err:
        real.real_model("gpt2")
    assert time.perf_counter() - start < 10  # no minute of download retries
    assert err.value._render_traceback_() == [f"Skipped: {err.value}"]  # one line in a notebook, no traceback
    assert "rest of the lesson runs offline" in str(err.value)


def test_offline_real_models_asks_the_hub_once_and_prints_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(real.ENV_REAL_MODEL, raising=False)
    asked = []
    unreachable = real._unreachable
    monkeypatch.setattr(real, "_unreachable", lambda name: asked.append(name) or unreachable(name))
    assert real.real_models() == {}
    assert asked == ["gpt2"]  # the second model is not tried once the hub is known to be out of reach
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Skipped: GPT-2 small (gpt2) and Pythia-160M (EleutherAI/pythia-160m) could not be loaded from "
                     "the Hugging Face hub (HF_HUB_OFFLINE is set and the model is not in the local cache). The optional "
                     "sections need the network once (the model is then cached); the rest of the lesson runs offline."]


@pytest.mark.parametrize("number", LESSONS)
def test_offline_each_optional_section_is_one_skip_line(number, monkeypatch, capsys):
    """No stand-ins, no network: the section's cells run without an error, print the one Skipped line and
    nothing about any model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(real.ENV_REAL_MODEL, raising=False)
    src = lesson_source(number)
    setup, cells = optional_cells(src)
    assert len(cells) >= 2 and "real_models()" in cells[0] and all("NBVAL_SKIP" in c for c in cells)
    ns = run_cells(src)
    out = capsys.readouterr().out
    assert ns["real"] == {}
    assert [line for line in out.splitlines() if line.startswith("Skipped:")] == [
        line for line in out.splitlines() if "could not be loaded" in line] and out.count("Skipped:") == 1
    assert "GPT-2 small:" not in out and "Pythia-160M:" not in out


def test_the_track_is_gpt2_small_and_pythia_160m():
    assert real.TRACK == ("gpt2", "EleutherAI/pythia-160m")
    assert [real.REAL_MODELS[n].family for n in real.TRACK] == ["gpt2", "gpt_neox"]
    assert real.label("gpt2") == "GPT-2 small" and real.label("some/other") == "some/other"


def _rotary_share(config) -> float:
    """Pythia's share of each head under rotary embedding (the config key moved across transformers versions)."""
    return getattr(config, "rotary_pct", None) or config.rope_parameters["partial_rotary_factor"]


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_a_shapes_config_builds_the_real_architecture(name):
    """Quick: the architecture on the meta device (no weights); the full-weight build is under ``real_track``."""
    from transformers import AutoModelForCausalLM

    shape = real.REAL_MODELS[name]
    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(shape.config())
    assert type(hf).__name__ == HF_CLASS[shape.family]
    c = hf.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.vocab_size, c.max_position_embeddings) == (
        shape.n_layers, shape.n_heads, shape.d_model, shape.vocab_size, shape.n_ctx)
    n_params = sum(p.numel() for p in hf.parameters())
    if shape.family == "gpt_neox":  # Pythia's block: parallel attention and MLP, rotary on a quarter of each head
        assert c.use_parallel_residual and _rotary_share(c) == 0.25 and not c.tie_word_embeddings
    expected = {"gpt2": 124_439_808, "EleutherAI/pythia-160m": 162_322_944, "EleutherAI/pythia-70m": 70_426_624}
    assert n_params == expected[name]  # the published models' parameter counts (GPT-2's unembedding is tied)


@pytest.mark.real_track
@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_a_standin_has_the_real_models_shape(name):
    shape = real.REAL_MODELS[name]
    model = real.standin(name, words=["The Eiffel Tower is in", " Paris", " Rome"])
    assert (model.n_layers, model.n_heads, model.d_model, model.d_mlp, model.vocab_size, model.n_ctx) == (
        shape.n_layers, shape.n_heads, shape.d_model, shape.d_mlp, shape.vocab_size, shape.n_ctx)
    assert type(model.hf).__name__ == HF_CLASS[shape.family]
    tok = model.tokenizer
    assert len(tok) == shape.vocab_size
    assert len(tok(" Paris", add_special_tokens=False)["input_ids"]) == 1  # an answer word is one token
    assert tok.convert_ids_to_tokens([shape.vocab_size - 1])[0] is not None  # every id decodes
    tr = model.trace("The Eiffel Tower is in")
    assert tr.tokens[0] == ["The", " Eiffel", " Tower", " is", " in"]
    assert tr.logits.shape == (1, 5, shape.vocab_size)


@pytest.mark.parametrize("name", real.TRACK)
def test_a_narrow_standin_keeps_the_family_layers_and_heads(name):
    shape = real.REAL_MODELS[name]
    model = real.standin(name, words=[" Paris", " Rome"], tiny=True)
    assert type(model.hf).__name__ == HF_CLASS[shape.family]
    assert (model.n_layers, model.n_heads) == (shape.n_layers, shape.n_heads)  # the cited heads exist
    assert model.d_model == 8 * shape.n_heads < shape.d_model and model.vocab_size < 1000
    assert model.hf.config.vocab_size == len(model.tokenizer) == model.vocab_size
    if shape.family == "gpt_neox":  # Pythia's block: parallel attention and MLP, rotary on a quarter of each head
        assert model.hf.config.use_parallel_residual and _rotary_share(model.hf.config) == 0.25


def test_the_environment_chooses_the_standins(monkeypatch):
    monkeypatch.setenv(real.ENV_REAL_MODEL, "random")
    assert real._mode() == "random"
    monkeypatch.setenv(real.ENV_REAL_MODEL, "tiny")
    models = real.real_models(words=[" Paris"])
    assert list(models) == list(real.TRACK)
    assert all("narrow" in m.name and m.n_layers == 12 and m.d_model == 96 for m in models.values())
    monkeypatch.setenv(real.ENV_REAL_MODEL, "randomm")
    with pytest.raises(ValueError, match="use 'random'"):
        real.real_models()
    with pytest.raises(ValueError, match="known real models"):
        real.standin("gpt2-xl")


def test_words_of_string_literals_keep_their_leading_space():
    words = real.words_in('prompt = "The Eiffel Tower is in"; answers = [" Paris", " Rome"]')
    assert words == ["The", " Eiffel", " Tower", " is", " in", " Paris", " Rome"]


# --- every lesson's optional section, end to end on stand-ins ------------------------------------------------

def _ran_on_both(ns: dict, out: str, tiny: bool) -> dict:
    models = ns["real"]
    assert list(models) == list(real.TRACK)  # both models, in order
    for name, m in models.items():
        shape = real.REAL_MODELS[name]
        assert type(m.hf).__name__ == HF_CLASS[shape.family]
        assert (m.n_layers, m.n_heads) == (shape.n_layers, shape.n_heads)
        assert (m.d_model == shape.d_model) != tiny  # narrow or the real width
        assert real.label(name) + ":" in out or real.label(name) + "," in out or real.label(name) + " " in out
    assert "Skipped" not in out
    return models


def check_01(ns, out):
    for name in real.TRACK:
        att = ns["g_att"][name]
        assert abs(float(att.parts_sum()[0]) - float(att.total[0])) < 1e-3  # the parts add up to the difference
        assert ns["g_lens"][name].target_rank.shape[0] == 12
    assert out.count("in every layer: True") == 2 and out.count("the trap: MLP") == 2


def check_02(ns, out):
    for name in real.TRACK:
        ind, prev = ns["g_ind"][name], ns["g_prev"][name]
        assert ind.shape == prev.shape == (12, 12) and bool(((ind >= 0) & (ind <= 1)).all())
    assert out.count("the published induction heads score") == 1  # GPT-2's, and no invented list for Pythia
    assert out.count("second copy, clean") == 2 and out.count("K-composition of previous-token head") == 2


def check_03(ns, out):
    for name in real.TRACK:
        traces = ns["g_traces"][name]
        assert set(traces) == {"resid", "mlp", "attn"} and all(t.scores.shape[0] == 12 for t in traces.values())
    assert out.count("\n  final block, ") == 8 and out.count("knockout: mean p(answer)") == 2


def check_04(ns, out):
    for name, m in ns["real"].items():
        layer, col, mask, res = ns["g_results"][name]
        assert layer == 6 and col.acts.shape[0] == m.d_mlp and res.k == 8
        assert 0 < int(mask.sum()) < col.n_tokens
    assert out.count("the money neuron") == 2 and out.count("log-prob of the money words") == 6


def check_05(ns, out):
    for name in real.TRACK:
        report = ns["g_reports"][name]
        assert report["patching"].shape == (12, 12) and len(report["batch"].clean) == 8
    assert "not one token" not in out  # every name is one token, so every prompt has one length
    assert out.count("published name movers") == 1 and out.count("published S-inhibition") == 1
    assert out.count("from END") >= 2 * 3 and out.count("ablation, change in logit difference") == 6


def check_06(ns, out):
    for name in real.TRACK:
        sae = ns["g_sae"][name]
        m = ns["real"][name]
        assert sae.k == 256 and tuple(sae.W_dec.shape) == (256, m.d_mlp)  # a dictionary of the layer-6 neurons
    assert out.count("Dictionary(sae") == 2


@pytest.mark.parametrize("number", LESSONS)
def test_optional_section_runs_on_narrow_gpt2_and_pythia_standins(number, capsys):
    ns = run_optional(lesson_source(number), tiny=True)
    out = capsys.readouterr().out
    _ran_on_both(ns, out, tiny=True)
    globals()[f"check_{number}"](ns, out)


@pytest.mark.real_track
@pytest.mark.parametrize("number", LESSONS)
def test_optional_section_runs_on_full_shape_gpt2_and_pythia_standins(number, capsys):
    ns = run_optional(lesson_source(number))
    out = capsys.readouterr().out
    models = _ran_on_both(ns, out, tiny=False)
    assert [m.vocab_size for m in models.values()] == [50257, 50304]
    globals()[f"check_{number}"](ns, out)


def test_every_lesson_with_an_optional_section_is_covered():
    with_optional = [p.name[:2] for p in SOURCES if optional_cells(p)[1]]
    assert set(LESSONS) <= set(with_optional)
