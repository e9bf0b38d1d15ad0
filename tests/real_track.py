"""Run a lesson's optional real-model section offline, on random-weight stand-ins of the same shapes.

``optional_cells(src)`` splits a lesson source (``lessons/src/NN_*.py``) into its setup code (the
first code cell: imports and seeds) and the code cells of its ``## Optional`` section.
``run_optional(src, model)`` executes them (the stand-in's tokenizer knows, as single tokens, the words of
the string literals of the lesson and of ``kit/lessons/*.py``) with ``$KIT_REAL_MODEL=random`` and ``kit.load`` of a
known hub id (``kit.lessons.real.REAL_MODELS``) answered by :func:`kit.lessons.real.standin`, so
neither the network nor a download is needed; ``model`` replaces the hub id the cells name (to run
GPT-2 cells on the Pythia shape, say). It returns the namespace the cells left.
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


@contextmanager
def standins(words, model: str | None = None):
    """``kit.load`` answers known hub ids with random-weight stand-ins (``model`` for every one of them)."""
    real_load, cache = kit.load, {}

    def load(name, *args, **kwargs):
        name = str(name)
        if name in real.REAL_MODELS:
            name = model or name
            if name not in cache:
                cache[name] = real.standin(name, words=words)
            return cache[name]
        return real_load(name, *args, **kwargs)

    saved = os.environ.get(real.ENV_REAL_MODEL)
    os.environ[real.ENV_REAL_MODEL] = "random"
    kit.load = load
    try:
        yield
    finally:
        kit.load = real_load
        if saved is None:
            os.environ.pop(real.ENV_REAL_MODEL, None)
        else:
            os.environ[real.ENV_REAL_MODEL] = saved


def run_optional(src: Path, model: str | None = None) -> dict:
    setup, cells = optional_cells(src)
    # every word a string literal of the lesson or of a check module names (prompts, answers, name lists)
    words = [w for f in [src, *sorted((ROOT / "kit" / "lessons").glob("*.py"))] for w in real.words_in(f.read_text())]
    namespace: dict = {"__name__": "__lesson__"}
    cwd = os.getcwd()
    os.chdir(src.parents[1])  # the notebook's folder
    try:
        with standins(words, model):
            exec(compile(setup, f"{src.name}:setup", "exec"), namespace)
            for i, code in enumerate(cells):
                code = "\n".join(l for l in code.splitlines() if not l.startswith("%"))
                exec(compile(code, f"{src.name}:optional[{i}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace
