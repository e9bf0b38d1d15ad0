"""Run a lesson's optional real-model section offline, on random-weight stand-ins of the real models' shapes.

``optional_cells(src)`` splits a lesson source (``lessons/src/NN_*.py``) into its setup code (the
first code cell: imports and seeds) and the code cells of its ``## Optional`` section.
``run_optional(src, tiny=...)`` executes them with ``$KIT_REAL_MODEL`` set, so that
:func:`kit.lessons.real.real_models` answers each hub id with :func:`kit.lessons.real.standin` (no
network, no download): full-shape stand-ins (``tiny=False``: GPT-2 small's and Pythia-160M's layers, heads,
widths and vocabulary) or narrow ones (``tiny=True``: the same families, layers and heads, 8 dimensions
per head). The stand-ins' tokenizers know, as single tokens, the words of the string literals of the
lesson and of ``kit/lessons/*.py``. It returns the namespace the cells left.
"""

from __future__ import annotations

import importlib.util
import os
import re
from contextlib import contextmanager
from pathlib import Path

import kit
from kit.lessons import real

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "lessons" / "src").glob("[0-9][0-9]_*.py"))


def lesson_source(number: str) -> Path:
    """``lessons/src/NN_*.py`` for ``number`` ``"NN"``."""
    return next(p for p in SOURCES if p.name.startswith(number + "_"))


def _build():
    spec = importlib.util.spec_from_file_location("_lesson_build_rt", ROOT / "lessons" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def optional_cells(src: Path) -> tuple[str, list[str]]:
    """``(setup code, [code of each optional cell])``; no optional cells when the lesson has no such section."""
    cells = _build().parse(src.read_text()).cells
    setup = next(c.source for c in cells if c.cell_type == "code")
    out, inside = [], False
    for c in cells:
        if c.cell_type == "markdown" and re.match(r"#{2} ", c.source):
            inside = c.source[3:].strip().lower().startswith("optional")
        elif inside and c.cell_type == "code":
            out.append(c.source)
    return setup, out


def lesson_words(src: Path) -> list[str]:
    """Every word a string literal of the lesson or of a check module names (prompts, answers, name lists)."""
    return [w for f in [src, *sorted((ROOT / "kit" / "lessons").glob("*.py"))] for w in real.words_in(f.read_text())]


@contextmanager
def standins(words, tiny: bool = False):
    """Hub ids answered by random-weight stand-ins whose tokenizers know ``words`` (built once per id)."""
    real_standin, real_load, cache = real.standin, kit.load, {}

    def standin(name, **kwargs):  # the cells' own words and size are replaced by the lesson's and ``tiny``
        if name not in cache:
            cache[name] = real_standin(name, words=words, tiny=tiny)
        return cache[name]

    def load(name, *args, **kwargs):  # a cell that calls kit.load("gpt2") directly gets the stand-in too
        return standin(str(name)) if str(name) in real.REAL_MODELS else real_load(name, *args, **kwargs)

    saved = os.environ.get(real.ENV_REAL_MODEL)
    os.environ[real.ENV_REAL_MODEL] = "tiny" if tiny else "random"
    real.standin, kit.load = standin, load
    try:
        yield
    finally:
        real.standin, kit.load = real_standin, real_load
        if saved is None:
            os.environ.pop(real.ENV_REAL_MODEL, None)
        else:
            os.environ[real.ENV_REAL_MODEL] = saved


def run_cells(src: Path) -> dict:
    """Execute the lesson's setup cell and its optional cells (IPython ``%`` lines dropped) in one namespace."""
    setup, cells = optional_cells(src)
    namespace: dict = {"__name__": "__lesson__"}
    cwd = os.getcwd()
    os.chdir(src.parents[1])  # the notebook's folder
    try:
        exec(compile(setup, f"{src.name}:setup", "exec"), namespace)
        for i, code in enumerate(cells):
            code = "\n".join(l for l in code.splitlines() if not l.startswith("%"))
            exec(compile(code, f"{src.name}:optional[{i}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def run_optional(src: Path, tiny: bool = False) -> dict:
    """The optional section of ``src`` on stand-ins (narrow ones when ``tiny``); the namespace it left."""
    with standins(lesson_words(src), tiny=tiny):
        return run_cells(src)
