"""Shared by the lesson exercise tests: load a lesson's solution file by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SOLUTIONS = Path(__file__).resolve().parents[1] / "lessons" / "solutions"


def load_solution(path: Path) -> ModuleType:
    """Import a lesson's solution file by path (its name starts with a digit, so no plain import)."""
    spec = importlib.util.spec_from_file_location(f"solution_{path.stem[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
