"""Paths of the shipped teaching models, for the zoo tests."""

from pathlib import Path

ZOO = Path(__file__).resolve().parents[1] / "kit" / "zoo"
