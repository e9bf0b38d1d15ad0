"""AttentionViewer at 2048 tokens stays responsive: only what is on screen travels.

A trace of 2048 tokens with 12 heads per layer (two layers, random causal attention). The live
widget runs in headless Chromium with Python answering its requests (the Jupyter widget protocol,
relayed by ``Bridge``). Up front the view gets the thumbnails (max-pooled to 64 x 64); zooming a
head fetches that one head (2048 * 2049 / 2 = 2.1 MB before compression), never a layer
(12 heads, 25 MB). Time bounds are generous (a shared 2-core machine); raise them with
``TMK_2048_BUDGET_MS``. Measured figures are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import time

import pytest
from browser_helpers import Bridge
from widget_fakes import FakeTrace

from kit.widgets import AttentionViewer

N, LAYERS, HEADS = 2048, 2, 12
HEAD_BYTES = N * (N + 1) // 2  # one head's causal entries, one byte each, before compression
BUDGET_MS = float(os.environ.get("TMK_2048_BUDGET_MS", "20000"))


@pytest.fixture(scope="module")
def viewer():
    return AttentionViewer(FakeTrace([[f" t{i % 97}" for i in range(N)]], n_layers=LAYERS, n_heads=HEADS, seed=7))


def thumb(root, layer, head):
    return root.locator(f'.tmk-thumb[data-layer="{layer}"][data-head="{head}"]')


def test_2048_tokens_first_paint_and_switches_send_one_head_at_a_time(offline, viewer, monkeypatch):
    monkeypatch.setattr(viewer, "_blob_keys", lambda: [])  # a live view: the page inlines no head
    o = offline()
    sent: list[tuple[str, int]] = []
    bridge = Bridge(o, viewer)
    relay = viewer.comm.send

    def counting_send(data=None, buffers=None, **kw):
        key = (data or {}).get("content", {}).get("key", "") if (data or {}).get("method") == "custom" else "update"
        sent.append((key, sum(len(bytes(b)) for b in buffers or [])))
        return relay(data, buffers, **kw)

    viewer.comm.send = counting_send
    assert len(bridge.html) < 1_000_000  # code, tokens and thumbnails: no pattern data up front

    start = time.monotonic()
    root = bridge.open()
    bridge.pump(lambda: root.get_attribute("data-ready") == "1", timeout=BUDGET_MS / 1000)
    first_paint = (time.monotonic() - start) * 1000
    assert [key for key, _ in sent if key != "update"] == ["head/0/0"]
    assert sum(n for _, n in sent) <= HEAD_BYTES

    timings = {}
    for label, (layer, head) in {"head switch": (0, 7), "layer and head switch": (1, 3)}.items():
        sent.clear()
        start = time.monotonic()
        thumb(root, layer, head).click()
        bridge.pump(lambda: root.get_attribute("data-painted") == f"{layer}/{head}", timeout=BUDGET_MS / 1000)
        timings[label] = (time.monotonic() - start) * 1000
        assert [key for key, _ in sent if key != "update"] == [f"head/{layer}/{head}"]  # never a whole layer
        assert sum(n for _, n in sent) <= HEAD_BYTES

    start = time.monotonic()
    root.locator('.tmk-chip[data-pos="2000"]').hover()
    root.and_(o.page.locator('[data-token="2000"]')).wait_for(timeout=BUDGET_MS)
    timings["hover"] = (time.monotonic() - start) * 1000
    got = float(root.locator('.tmk-chip[data-pos="1999"]').get_attribute("data-to"))
    expected = viewer.pattern(1, 3)[2000, 1999]
    assert got == pytest.approx(float(expected), abs=float(viewer.pattern(1, 3).max()) / 510 + 6e-4)

    print(f"\n2048 tokens, {HEADS} heads: first paint {first_paint:.0f} ms; "
          + "; ".join(f"{k} {v:.0f} ms" for k, v in timings.items())
          + f"; last switch sent {sum(n for _, n in sent)} bytes")
    assert first_paint < BUDGET_MS and all(t < BUDGET_MS for t in timings.values()), timings
    assert o.errors == [] and o.remote_requests == []


def test_2048_tokens_static_page_with_chosen_heads_says_what_is_missing(offline, viewer, tmp_path):
    o = offline()
    page = viewer.to_html(heads=[(0, 0), (1, 5)])
    assert len(page) < 2 * 4 / 3 * HEAD_BYTES + 1_000_000  # two heads (base64) plus code and thumbnails
    root = o.open(page, timeout_ms=BUDGET_MS)
    thumb(root, 1, 5).click()
    root.and_(o.page.locator('[data-painted="1/5"]')).wait_for(timeout=BUDGET_MS)
    thumb(root, 1, 6).click()
    root.and_(o.page.locator('[data-painted="missing:1/6"]')).wait_for(timeout=BUDGET_MS)
    assert "to_html(heads=[(1, 6)" in root.locator(".tmk-readout").inner_text()
    assert o.errors == [] and o.remote_requests == []
