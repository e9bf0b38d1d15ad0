"""Shared fixtures: tiny random models of each supported family, saved and loaded through kit.load."""

from __future__ import annotations

import os

# Tests never touch the network: hub look-ups fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests import tiny  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A small byte-level BPE tokenizer saved in Hugging Face format."""
    return tiny.save_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session", params=tiny.FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, tokenizer_dir):
    """{family: directory} of tiny random models, one per family config in ``tests/tiny.py``."""
    return {fam: tiny.save_model(fam, tmp_path_factory.mktemp(fam), tokenizer_dir) for fam in tiny.FAMILIES}


@pytest.fixture(scope="session")
def tiny_models(tiny_dirs):
    import kit

    return {fam: kit.load(path, device="cpu") for fam, path in tiny_dirs.items()}


@pytest.fixture()
def tiny_model(tiny_models, family):
    return tiny_models[family]


from tests.fixtures_teeth import teeth  # noqa: E402,F401  (sharpened tiny models: signals far above tolerances)
