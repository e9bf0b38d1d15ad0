"""Helpers for the browser tests: Chromium lookup, an offline page, a widget-protocol bridge."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "blob:", "data:")
READY = '.tmk-root[data-ready="1"]'


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("TMK_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class Offline:
    """A page with every non-local request aborted, and a record of what the page tried."""

    def __init__(self, browser: Any, tmp_path: Path, color_scheme: str = "light"):
        self.context = browser.new_context(viewport={"width": 1200, "height": 900}, color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.tmp_path = tmp_path
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES) else route.abort()
        )

    def open(self, html: str, name: str = "page.html", count: int = 1, timeout_ms: int = 15000) -> Any:
        """Write `html`, load it from disk, wait until `count` widgets are ready; returns the roots."""
        path = self.tmp_path / name
        path.write_text(html, encoding="utf-8")
        self.page.goto(path.as_uri())
        roots = self.page.locator(".tmk-root")
        for i in range(count):
            roots.nth(i).and_(self.page.locator(READY)).wait_for(timeout=timeout_ms)
        return roots

    @property
    def remote_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Bridge:
    """Connects a live Python widget to its view in the page, speaking the Jupyter widget
    protocol: the view's updates and custom messages go to widget._handle_msg; what Python
    sends (comm.send) is delivered back to the view."""

    def __init__(self, offline: Offline, widget: Any):
        self.offline, self.page, self.widget = offline, offline.page, widget
        self.outgoing: list[tuple[dict, list]] = []
        self.received: list[dict] = []  # what the view sent to Python
        widget.comm.send = lambda data=None, buffers=None, **kw: self.outgoing.append((data, list(buffers or [])))
        html = widget.to_html()
        boot = "<script>tmkHost.boot();</script>"
        assert boot in html
        self.html = html.replace(boot, "<script>window.tmkBridge = {outbox: []}; tmkHost.boot();</script>")

    def open(self) -> Any:
        path = self.offline.tmp_path / "bridge.html"
        path.write_text(self.html, encoding="utf-8")
        self.page.goto(path.as_uri())
        self.page.wait_for_function("() => window.tmkHost && Object.keys(tmkHost.models).length === 1")
        self.id = self.page.evaluate("() => Object.keys(tmkHost.models)[0]")
        return self.page.locator(".tmk-root")

    def _to_python(self, msg: dict) -> None:
        self.received.append(msg)
        if msg["method"] == "update":
            data = {"method": "update", "state": msg["state"], "buffer_paths": []}
            buffers: list[bytes] = []
        else:
            data = {"method": "custom", "content": msg["content"]}
            buffers = [base64.b64decode(b) for b in msg.get("buffers", [])]
        self.widget._handle_msg({"content": {"data": data}, "buffers": buffers})

    def _to_view(self) -> None:
        while self.outgoing:
            data, buffers = self.outgoing.pop(0)
            msg = {**data, "buffers": [base64.b64encode(bytes(b)).decode() for b in buffers]}
            self.page.evaluate("([id, msg]) => tmkBridge.deliver(id, msg)", [self.id, msg])

    def pump(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Relay messages both ways until `until()` holds."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        deadline = time.monotonic() + timeout
        while True:
            self._to_view()
            if until():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("bridge: condition not reached")
            try:
                self.page.wait_for_function("() => tmkBridge.outbox.length > 0", timeout=min(left, 0.25) * 1000)
            except PlaywrightTimeout:
                continue
            for msg in self.page.evaluate("() => tmkBridge.outbox.splice(0)"):
                self._to_python(msg)


def grid_cell_point(grid: Any, row: int, col: int) -> dict[str, float]:
    """Where to point at cell (row, col) of a shared cell grid (`.tmk-cellgrid`), scrolling it into view."""
    geo = grid.evaluate(
        """(e, [r, c]) => {
             const d = e.dataset, lw = +d.labelW, hh = +d.headerH, cw = +d.cellW, ch = +d.cellH;
             const x = c * cw, y = r * ch;
             if (x < e.scrollLeft || x + cw > e.scrollLeft + e.clientWidth - lw) e.scrollLeft = Math.max(0, x - 20);
             if (y < e.scrollTop || y + ch > e.scrollTop + e.clientHeight - hh) e.scrollTop = Math.max(0, y - 10);
             return {x: lw + x + cw / 2 - e.scrollLeft + e.clientLeft, y: hh + y + ch / 2 - e.scrollTop + e.clientTop};
           }""",
        [row, col],
    )
    return geo


def canvas_rgb(canvas: Any, x: float, y: float) -> list[int]:
    """The RGB of a canvas at CSS pixel (x, y) (device pixel ratio taken into account)."""
    return canvas.evaluate(
        """(c, [x, y]) => { const k = c.width / c.getBoundingClientRect().width;
             return Array.from(c.getContext('2d').getImageData(Math.floor(x * k), Math.floor(y * k), 1, 1).data.slice(0, 3)); }""",
        [x, y],
    )


def canvas_digest(root: Any, selector: str) -> int:
    """A cheap fingerprint of a canvas's pixels."""
    return root.locator(selector).first.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let s = 0; for (let i = 0; i < d.length; i += 7) s = (s + d[i] * (i % 9973)) % 2147483647; return s; }"""
    )


SCREENSHOT_MAX_BYTES = 200_000


def save_screenshot(root: Any, name: str, tmp_path: Path) -> Path:
    """Save a PNG of one widget: into $TMK_SCREENSHOTS (e.g. docs/screenshots) when set, else tmp_path.

    Returns the path; the PNG is checked to be a real, small image.
    """
    folder = Path(os.environ.get("TMK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    root.screenshot(path=str(path), animations="disabled")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert len(data) <= SCREENSHOT_MAX_BYTES, f"{path.name} is {len(data)} bytes; keep screenshots small"
    return path
