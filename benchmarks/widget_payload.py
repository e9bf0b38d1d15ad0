"""Payload size and render time of AttentionViewer against JSON nested lists and CircuitsVis.

    python benchmarks/widget_payload.py                        # GPT-2-small shape: 12 x 12 x 512
    python benchmarks/widget_payload.py --circuitsvis-python /tmp/bench-venv/bin/python

The attention is synthetic with GPT-2-like structure (benchmarks/synthetic_attention.py; no
weights can be downloaded here); ``--kind random`` uses random causal softmax instead (harder
to compress). Render times are measured in the same headless Chromium run, network cut off,
from navigation start to the first paint of the whole view (median of ``--repeat`` loads).

CircuitsVis is never a kit dependency: install it in a separate virtualenv, e.g.
    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install circuitsvis
and pass that interpreter. Two comparisons are printed: one layer (12 heads, what
``circuitsvis.attention.attention_heads`` shows) and the whole model (all layers x heads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from synthetic_attention import synthetic_trace  # noqa: E402

from kit.widgets import AttentionViewer  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
V8_MAX_STRING = (1 << 29) - 24  # characters; a page larger than this cannot even be parsed

# Runs in the CircuitsVis virtualenv: attention .npy + tokens .json -> HTML (offline bundle inlined).
CIRCUITSVIS_SCRIPT = """
import json, sys, numpy as np, circuitsvis
from circuitsvis.attention import attention_heads
attention = np.load(sys.argv[1]); tokens = json.load(open(sys.argv[2], encoding="utf-8"))
html = attention_heads(attention=attention, tokens=tokens).local_src
page = "<!doctype html><html><head><meta charset='utf-8'></head><body>" + html + "</body></html>"
open(sys.argv[3], "w", encoding="utf-8").write(page)
print(circuitsvis.__version__)
"""

# CircuitsVis is drawn when it has one canvas per head plus the large one.
CIRCUITSVIS_DRAWN = "heads => document.querySelectorAll('canvas').length >= heads + 1"
AFTER_PAINT = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))"


def random_trace(n_layers: int, n_heads: int, n: int, seed: int = 0):
    """Random causal softmax: a worst case for compression."""

    class RandomTrace:
        def __init__(self):
            g = torch.Generator().manual_seed(seed)
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            self.tokens = [[f" t{i}" for i in range(n)]]
            self.mask = torch.ones(1, n, dtype=torch.bool)
            self.n_layers = n_layers
            self.p = [
                (torch.randn(1, n_heads, n, n, generator=g) * 2).masked_fill(~causal, float("-inf")).softmax(-1)
                for _ in range(n_layers)
            ]

        def __getitem__(self, key):
            return self.p[key[1]]

    return RandomTrace()


def json_size(patterns: list[torch.Tensor]) -> int:
    """Bytes of json.dumps(nested list) of the stack, layer by layer (same float text as CircuitsVis)."""
    total = 2 + (len(patterns) - 1) * 2  # outer brackets and ", " separators
    for p in patterns:
        total += len(json.dumps(p.tolist()).encode("utf-8"))
    return total


def render_ms(browser, path: Path, circuitsvis_heads: int | None, repeat: int, timeout_s: float) -> float | None:
    """Median milliseconds from navigation start to the view's first paint, offline."""
    times: list[float] = []
    for _ in range(repeat):
        if times and times[0] > 10_000:
            break  # one slow load says enough
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "blob:", "data:")) else r.abort()
        )
        try:
            page.goto(path.as_uri(), timeout=timeout_s * 1000, wait_until="commit")
            if circuitsvis_heads is None:
                root = page.locator('.tmk-root[data-ready="1"]')
                root.wait_for(timeout=timeout_s * 1000)
                times.append(float(root.get_attribute("data-ready-ms")))
            else:
                page.wait_for_function(CIRCUITSVIS_DRAWN, arg=circuitsvis_heads, timeout=timeout_s * 1000, polling=20)
                times.append(float(page.evaluate(AFTER_PAINT)))
        except Exception as error:  # a view that never finishes is reported, not fatal
            print(f"    ({path.name}: no render within {timeout_s:.0f} s: {str(error).splitlines()[0][:100]})")
            context.close()
            return None
        context.close()
    return statistics.median(times)


def circuitsvis_html(python: str, attention: torch.Tensor, tokens: list[str], out: Path) -> str:
    """Write CircuitsVis's attention_heads HTML for `attention` [head, query, key]; returns its version."""
    npy, tok = out.with_suffix(".npy"), out.with_suffix(".tokens.json")
    np.save(npy, attention.numpy())
    tok.write_text(json.dumps(tokens), encoding="utf-8")
    done = subprocess.run(
        [python, "-c", CIRCUITSVIS_SCRIPT, str(npy), str(tok), str(out)], capture_output=True, text=True, timeout=1800
    )
    npy.unlink()
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "circuitsvis failed")
    return done.stdout.strip()


def raw_nbytes(meta: dict) -> int:
    """Bytes of an envelope before deflate."""
    shape = meta["shape"]
    count = (
        int(np.prod(shape[:-2])) * shape[-1] * (shape[-1] + 1) // 2 if meta["layout"] == "tril" else int(np.prod(shape))
    )
    return count * (1 if meta["dtype"] == "uint8" else 2)


def ours(trace, out: Path) -> dict:
    """Our payload and to_html file for `trace`."""
    viewer = AttentionViewer(trace)
    encoded = [viewer.blob(k) for k in viewer._blob_keys()]
    blobs = sum(e.nbytes for e in encoded)
    thumbs = len(viewer._thumbs["data"])
    n = len(viewer.tokens)
    entries = viewer.n_layers * viewer.n_heads * n * (n + 1) // 2
    page = viewer.to_html(out)
    return {
        "payload": blobs + thumbs,
        "payload_uncompressed": sum(raw_nbytes(e.meta) for e in encoded) + raw_nbytes(viewer._thumbs),
        "entries": entries,
        "html": len(page.encode("utf-8")),
        "viewer": viewer,
    }


def fmt_bytes(n: float) -> str:
    for unit in ["B", "KB", "MB", "GB"]:
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return str(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--kind", choices=["synthetic", "random"], default="synthetic")
    parser.add_argument(
        "--circuitsvis-python",
        default=os.environ.get("CIRCUITSVIS_PYTHON"),
        help="python of a virtualenv with circuitsvis",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a render counts as failed")
    parser.add_argument("--chromium", default=os.environ.get("TMK_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--keep", type=Path, help="keep the generated HTML files in this folder")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    make = synthetic_trace if args.kind == "synthetic" else random_trace
    trace = make(args.layers, args.heads, args.tokens)
    one_layer = make(1, args.heads, args.tokens)  # what attention_heads shows: one layer's heads
    if args.kind == "synthetic":
        one_layer._patterns = [trace["pattern", args.layers - 1]]
        one_layer.kinds = [trace.kinds[-1]]
    else:
        one_layer.p = [trace["pattern", args.layers - 1]]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="tmk-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"attention: {args.kind}, {args.layers} layers x {args.heads} heads x {args.tokens} tokens; files in {workdir}"
    )

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for label, tr, n_layers in [("one layer", one_layer, 1), ("whole model", trace, args.layers)]:
            ours_out = workdir / f"ours_{n_layers}l.html"
            mine = ours(tr, ours_out)
            mine["render"] = render_ms(browser, ours_out, None, args.repeat, args.timeout)
            patterns = mine["viewer"]._attention.patterns
            stack = torch.cat(patterns)  # [layer * head, query, key]
            row = {"label": label, "ours": mine, "json": json_size(patterns), "cv": None, "cv_note": ""}
            if args.circuitsvis_python:
                cv_out = workdir / f"circuitsvis_{n_layers}l.html"
                estimated = row["json"] + 1_400_000  # props JSON + inlined bundle, for the size check
                if estimated > V8_MAX_STRING:
                    row["cv_note"] = (
                        f"not built: about {fmt_bytes(estimated)}, above V8's string limit, so no browser can load it"
                    )
                    row["cv"] = {"html": estimated, "render": None, "estimated": True}
                else:
                    version = circuitsvis_html(args.circuitsvis_python, stack, tr.tokens[0], cv_out)
                    size = cv_out.stat().st_size
                    row["cv"] = {
                        "html": size,
                        "render": render_ms(browser, cv_out, stack.shape[0], args.repeat, args.timeout),
                        "version": version,
                    }
            else:
                row["cv_note"] = "skipped: pass --circuitsvis-python"
            rows.append(row)
        browser.close()

    print()
    for row in rows:
        m = row["ours"]
        print(f"== {row['label']}: {m['entries']:,} causal attention entries")
        render = f"render {m['render']:.0f} ms" if m["render"] is not None else "render failed"
        print(
            f"  ours         payload {fmt_bytes(m['payload']):>10} ({m['payload'] / m['entries']:.3f} B/entry; "
            f"{m['payload_uncompressed'] / m['entries']:.3f} B/entry before deflate)  html {fmt_bytes(m['html'])}  {render}"
        )
        print(
            f"  JSON list    payload {fmt_bytes(row['json']):>10} ({row['json'] / m['entries']:.1f} B/entry)"
            f"  = {row['json'] / m['payload']:.0f}x ours"
        )
        cv = row["cv"]
        if cv:
            ratio = f"= {cv['html'] / m['html']:.0f}x our html"
            render = (
                f"render {cv['render']:.0f} ms = {cv['render'] / m['render']:.0f}x ours"
                if cv.get("render") and m["render"]
                else f"no render within {args.timeout:.0f} s"
            )
            tag = f"CircuitsVis {cv.get('version', '')}".strip()
            print(
                f"  {tag:<12} html {fmt_bytes(cv['html']):>10} {'(estimated) ' if cv.get('estimated') else ''}{ratio}  {render}"
            )
        if row["cv_note"]:
            print(f"  CircuitsVis  {row['cv_note']}")
    if not args.keep:
        for f in workdir.glob("*"):
            f.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
