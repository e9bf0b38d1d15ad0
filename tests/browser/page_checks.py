"""Checks run inside a page for the host tests: accessibility (axe-core), focus rings, overflow.

axe-core comes from npm (widgets/package.json's devDependencies, installed by ``npm ci``) and is
injected into the page from disk, never from a CDN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "widgets" / "node_modules" / "axe-core" / "axe.min.js"


def axe_source() -> str:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci` in widgets/")
    return AXE.read_text(encoding="utf-8")


def serious_violations(frame: Any, selector: str = ".tmk-root") -> list[str]:
    """axe-core's serious and critical violations inside `selector` (every match), as readable lines."""
    frame.evaluate(axe_source())
    result = frame.evaluate(
        """async (selector) => {
          const r = await axe.run({ include: [[selector]] }, { resultTypes: ["violations"] });
          return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")) }));
        }""",
        selector,
    )
    return [json.dumps(v) for v in result]


# For the focused element: its outline, and whether a clipping ancestor (overflow other than
# visible) cuts the ring off. The ring spans outline-offset + outline-width beyond the border box.
FOCUS_RING = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  const st = getComputedStyle(el);
  const width = parseFloat(st.outlineWidth) || 0;
  const reach = st.outlineStyle === "none" ? 0 : width + (parseFloat(st.outlineOffset) || 0);
  const r = el.getBoundingClientRect();
  const ring = { left: r.left - reach, top: r.top - reach, right: r.right + reach, bottom: r.bottom + reach };
  const clipped = [];
  const up = (n) => n.parentElement || (n.getRootNode && n.getRootNode().host) || null;
  for (let p = up(el); p && p !== document.documentElement; p = up(p)) {
    const ps = getComputedStyle(p);
    if (ps.overflowX === "visible" && ps.overflowY === "visible") continue;
    const b = p.getBoundingClientRect();
    const left = b.left + p.clientLeft, top = b.top + p.clientTop;
    const box = { left, top, right: left + p.clientWidth, bottom: top + p.clientHeight };
    if (ring.left < box.left - 0.5 || ring.top < box.top - 0.5 || ring.right > box.right + 0.5 || ring.bottom > box.bottom + 0.5)
      clipped.push(p.className || p.tagName);
  }
  return {
    tag: el.tagName.toLowerCase(), cls: String(el.className?.baseVal ?? el.className ?? ""),
    inRoot: !!el.closest(".tmk-root"), style: st.outlineStyle, width,
    stroke: getComputedStyle(el.querySelector?.("circle,rect") ?? el).strokeDasharray,
    clipped,
  };
}"""


def focus_rings(page: Any, root: Any, max_stops: int = 40) -> list[dict]:
    """Tab from just before `root` through every focusable part of it; the ring of each stop."""
    page.evaluate(
        """(el) => { const b = document.createElement("button"); b.id = "tmk-before"; b.textContent = "before";
                     el.parentElement.insertBefore(b, el); b.focus(); }""",
        root.element_handle(),
    )
    stops = []
    for _ in range(max_stops):
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING)
        if not ring["inRoot"]:
            break
        stops.append(ring)
    return stops


NO_OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  roots: [...document.querySelectorAll(".tmk-root")].map(r => {
    const b = r.getBoundingClientRect();
    return { clipped: r.scrollWidth - r.clientWidth, left: Math.round(b.left), top: Math.round(b.top),
             right: Math.round(b.right), width: Math.round(b.width) };
  }),
})"""
