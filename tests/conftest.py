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


# --- lesson tests: one `model` and one `sol` fixture, parametrised by the test module --------------------

@pytest.fixture(scope="module")
def model(request):
    """The shipped model a lesson test module names in ``ZOO_MODEL`` (e.g. ``"facts-4l"``), on the CPU."""
    import kit

    name = getattr(request.module, "ZOO_MODEL", None)
    if not isinstance(name, str):
        pytest.fail(f"{request.module.__name__} asks for the `model` fixture: set ZOO_MODEL = '<zoo model name>'")
    torch.set_num_threads(1)  # as the lessons run: tiny models, and the printed numbers repeat exactly
    return kit.load(name, device="cpu")


@pytest.fixture(scope="module")
def sol(request):
    """The reference solutions of the lesson whose file a test module names in ``SOLUTION`` (loaded with no
    student set: the lesson's own instances)."""
    from tests.lesson_solutions import load_solution

    path = getattr(request.module, "SOLUTION", None)
    if path is None:
        pytest.fail(f"{request.module.__name__} asks for the `sol` fixture: set SOLUTION = <path of the solution file>")
    return load_solution(path)


@pytest.fixture
def no_student():
    """No student set (the lessons' own instances) and no progress recorded, before and after the test."""
    import kit.lessons as lessons

    with pytest.MonkeyPatch.context() as mp:
        for name in ("KIT_STUDENT", "JUPYTERHUB_USER"):
            mp.delenv(name, raising=False)
        mp.setenv("KIT_PROGRESS", "0")
        lessons.stop()
        yield
        lessons.stop()


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: small problems then do not wait on a busy second core (40x on a loaded CI box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
