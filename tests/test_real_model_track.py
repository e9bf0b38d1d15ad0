"""The real-model track: hub models load when online, skip cleanly offline, and every lesson's optional
section runs end to end on random-weight stand-ins of GPT-2 small (and Pythia-70M where the cells are
model-agnostic), with no download."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from kit.lessons import real
from tests.real_track import optional_cells, run_optional

ROOT = Path(__file__).resolve().parents[1]
WITH_OPTIONAL = [p for p in sorted((ROOT / "lessons" / "src").glob("[0-9][0-9]_*.py")) if optional_cells(p)[1]]
# Lessons whose optional cells name nothing GPT-2-specific (no layer or head index beyond Pythia-70M's 6 x 8)
PYTHIA_READY = ["01_attention_and_the_residual_stream"]


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


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_a_standin_has_the_real_models_shape(name):
    shape = real.REAL_MODELS[name]
    model = real.standin(name, words=["The Eiffel Tower is in", " Paris", " Rome"])
    assert (model.n_layers, model.n_heads, model.d_model, model.d_mlp, model.vocab_size, model.n_ctx) == (
        shape.n_layers, shape.n_heads, shape.d_model, shape.d_mlp, shape.vocab_size, shape.n_ctx)
    assert type(model.hf).__name__ == {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM"}[shape.family]
    tok = model.tokenizer
    assert len(tok) == shape.vocab_size
    assert len(tok(" Paris", add_special_tokens=False)["input_ids"]) == 1  # an answer word is one token
    assert tok.convert_ids_to_tokens([shape.vocab_size - 1])[0] is not None  # every id decodes
    tr = model.trace("The Eiffel Tower is in")
    assert tr.tokens[0] == ["The", " Eiffel", " Tower", " is", " in"]
    assert tr.logits.shape == (1, 5, shape.vocab_size)


def test_the_random_environment_gives_standins(monkeypatch):
    monkeypatch.setenv(real.ENV_REAL_MODEL, "random")
    model = real.real_model("EleutherAI/pythia-70m")
    assert "stand-in" in model.name and model.n_layers == 6
    with pytest.raises(ValueError, match="known real models"):
        real.standin("gpt2-xl")


@pytest.mark.real_track
@pytest.mark.parametrize("src", WITH_OPTIONAL, ids=lambda p: p.stem)
def test_optional_section_runs_on_a_gpt2_standin(src):
    ns = run_optional(src)
    standins = [v for v in ns.values() if type(v).__name__ == "Model" and "stand-in" in v.name]
    assert standins and all(m.n_layers == 12 and m.n_heads == 12 for m in standins)  # GPT-2 small's shape


@pytest.mark.real_track
@pytest.mark.parametrize("stem", PYTHIA_READY)
def test_optional_section_runs_on_a_pythia_standin(stem):
    ns = run_optional(ROOT / "lessons" / "src" / f"{stem}.py", model="EleutherAI/pythia-70m")
    standins = [v for v in ns.values() if type(v).__name__ == "Model" and "stand-in" in v.name]
    assert standins and all(m.n_layers == 6 and m.n_heads == 8 for m in standins)  # Pythia-70M's shape


def test_words_of_string_literals_keep_their_leading_space():
    words = real.words_in('prompt = "The Eiffel Tower is in"; answers = [" Paris", " Rome"]')
    assert words == ["The", " Eiffel", " Tower", " is", " in", " Paris", " Rome"]
