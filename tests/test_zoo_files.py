"""The zoo as shipped: complete Hugging Face folders, safetensors only, small, listed by ``kit.models()``."""

from __future__ import annotations

import pytest

from tests.zoo import ZOO

NAMES = ["facts-4l", "induction-2l", "ioi-3l"]
REQUIRED = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md",
            "figures.json", "training_log.json"}
PICKLE = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pickle")


def test_zoo_holds_the_teaching_models():
    assert sorted(p.name for p in ZOO.iterdir() if (p / "config.json").is_file()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_folder_is_complete_and_pickle_free(name):
    files = {p.name for p in (ZOO / name).iterdir()}
    assert REQUIRED <= files
    assert not [f for f in files if f.endswith(PICKLE)]
    assert not [f for f in files if f.startswith(".")]  # no leftover temporary directories


def test_zoo_is_at_most_20_mb():
    total = sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024, total


@pytest.mark.parametrize("name", NAMES)
def test_kit_load_reads_the_folder(name):
    kit = pytest.importorskip("kit")
    if not hasattr(kit, "load"):
        pytest.skip("kit.load is not on this branch")
    assert name in kit.models()
    model = kit.load(name, device="cpu")
    assert model.n_layers == {"induction-2l": 2, "facts-4l": 4, "ioi-3l": 3}[name]
    prompt = {"induction-2l": "ba be bi ba be", "facts-4l": "The capital of Veloria is",
              "ioi-3l": "When Goumel and Kreka went to the park , Goumel gave a book to"}[name]
    tr = model.trace(prompt)
    assert tr.logits.shape[-1] == model.vocab_size
