"""Browser fixtures: headless Chromium through Playwright, with the network cut off.

Skips cleanly when Playwright or a Chromium binary is missing. Chromium is looked up in
$TMK_CHROMIUM, /usr/bin/chromium, then PATH (`playwright install` is not needed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))  # widget_fakes

from browser_helpers import CHROMIUM_ARGS, Offline, chromium_path  # noqa: E402


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set TMK_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def offline(browser: Any, tmp_path: Path) -> Iterator[Callable[..., Offline]]:
    """offline(color_scheme="light") -> Offline page; closed after the test."""
    made: list[Offline] = []

    def make(color_scheme: str = "light") -> Offline:
        made.append(Offline(browser, tmp_path, color_scheme))
        return made[-1]

    yield make
    for o in made:
        o.context.close()
