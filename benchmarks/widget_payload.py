"""Payload size and render time of AttentionViewer against JSON nested lists, CircuitsVis and BertViz.

    python benchmarks/widget_payload.py                       # GPT-2-small shape, 128, 512 and 1024 tokens
    python benchmarks/widget_payload.py --quick               # 128 tokens, one load each (CI smoke run)
    python benchmarks/widget_payload.py --peers .bench-venv/bin/python --bertviz-assets .bench-assets

The attention is synthetic with GPT-2-like structure (benchmarks/synthetic_attention.py; no
weights can be downloaded here); ``--kind random`` uses random causal softmax instead (harder
to compress). Render times are measured in the same headless Chromium run, network cut off,
from navigation start to the first paint of the whole view (median of ``--repeat`` loads).

CircuitsVis is never a kit dependency: install it in a separate virtualenv, e.g.
    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install circuitsvis
and pass that interpreter (``make bench-env`` builds ``.bench-venv`` with both peers). Two
comparisons per length: one layer (12 heads, what ``circuitsvis.attention.attention_heads`` shows)
and the whole model (all layers x heads). BertViz's ``head_view`` HTML loads require.js, d3 and
jQuery from cdnjs, so offline it never draws; it is loaded twice: offline as it is, and with those
three files served from local copies (``--bertviz-assets``, fetched from npm by ``make bench-env``),
to time its render when it can draw at all.
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
from tests.browser.browser_helpers import CHROMIUM_ARGS, chromium_path  # noqa: E402  (the browser tests' launch flags)

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

# Runs in the peers' virtualenv: the same attention as BertViz's head_view HTML (its own page, as returned).
BERTVIZ_SCRIPT = """
import json, sys, numpy as np, torch, bertviz
from importlib.metadata import version
from bertviz import head_view
attention = torch.from_numpy(np.load(sys.argv[1]))  # [layer, head, query, key]
tokens = json.load(open(sys.argv[2], encoding="utf-8"))
html = head_view(attention=[a[None] for a in attention], tokens=tokens, html_action="return").data
page = "<!doctype html><html><head><meta charset='utf-8'></head><body>" + html + "</body></html>"
open(sys.argv[3], "w", encoding="utf-8").write(page)
print(version("bertviz"))
"""
# BertViz has drawn when its SVG holds both token columns.
BERTVIZ_DRAWN = "n => document.querySelectorAll('svg text').length >= 2 * n"
BERTVIZ_CDN = {  # the URLs its page asks for -> file inside --bertviz-assets
    "require.min.js": "node_modules/requirejs/require.js",
    "d3.min.js": "node_modules/d3/dist/d3.min.js",
    "jquery.min.js": "node_modules/jquery/dist/jquery.min.js",
}

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


def render_ms(
    browser, path: Path, drawn: tuple[str, int] | None, repeat: int, timeout_s: float, assets: Path | None = None
) -> float | None:
    """Median milliseconds from navigation start to the view's first paint, network cut off.

    ``drawn`` is (JS predicate, its argument) for a peer's page, None for ours (its ready marker).
    ``assets``: serve BertViz's CDN files from this folder instead of failing them.
    """
    times: list[float] = []
    for _ in range(repeat):
        if times and times[0] > 10_000:
            break  # one slow load says enough
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.route("**/*", lambda r: _offline(r, assets))
        try:
            page.goto(path.as_uri(), timeout=timeout_s * 1000, wait_until="commit")
            if drawn is None:
                root = page.locator('.tmk-root[data-ready="1"]')
                root.wait_for(timeout=timeout_s * 1000)
                times.append(float(root.get_attribute("data-ready-ms")))
            else:
                page.wait_for_function(drawn[0], arg=drawn[1], timeout=timeout_s * 1000, polling=20)
                times.append(float(page.evaluate(AFTER_PAINT)))
        except Exception as error:  # a view that never finishes is reported, not fatal
            print(f"    ({path.name}: no render within {timeout_s:.0f} s: {str(error).splitlines()[0][:100]})")
            context.close()
            return None
        context.close()
    return statistics.median(times)


def _offline(route, assets: Path | None) -> None:
    """Allow local URLs; serve BertViz's CDN files from `assets` when given; abort everything else."""
    url = route.request.url
    if url.startswith(("file:", "blob:", "data:")):
        return route.continue_()
    name = url.rsplit("/", 1)[-1]
    if assets is not None and name in BERTVIZ_CDN:
        return route.fulfill(path=str(assets / BERTVIZ_CDN[name]), content_type="application/javascript")
    return route.abort()


def peer_html(python: str, script: str, attention: torch.Tensor, tokens: list[str], out: Path) -> str:
    """Run a peer's `script` on `attention` in its own interpreter, writing `out`; returns its version."""
    npy, tok = out.with_suffix(".npy"), out.with_suffix(".tokens.json")
    np.save(npy, attention.numpy())
    tok.write_text(json.dumps(tokens), encoding="utf-8")
    done = subprocess.run(
        [python, "-c", script, str(npy), str(tok), str(out)], capture_output=True, text=True, timeout=1800
    )
    npy.unlink()
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "peer failed")
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


def one_length(args, browser, n_tokens: int, workdir: Path) -> list[dict]:
    """Rows (one layer, whole model) at one prompt length."""
    make = synthetic_trace if args.kind == "synthetic" else random_trace
    trace = make(args.layers, args.heads, n_tokens)
    one_layer = make(1, args.heads, n_tokens)  # what attention_heads shows: one layer's heads
    if args.kind == "synthetic":
        one_layer._patterns = [trace["pattern", args.layers - 1]]
        one_layer.kinds = [trace.kinds[-1]]
    else:
        one_layer.p = [trace["pattern", args.layers - 1]]
    rows = []
    for label, tr, n_layers in [("one layer", one_layer, 1), ("whole model", trace, args.layers)]:
        ours_out = workdir / f"ours_{n_tokens}_{n_layers}l.html"
        mine = ours(tr, ours_out)
        mine["render"] = render_ms(browser, ours_out, None, args.repeat, args.timeout)
        patterns = mine["viewer"]._attention.patterns  # per layer [head, query, key]
        row = {"tokens": n_tokens, "label": label, "ours": mine, "json": json_size(patterns), "peers": {}}
        if args.peers:
            tokens = tr.tokens[0]
            estimated = row["json"] + 1_400_000  # the nested list plus a bundle: is the page loadable at all?
            cv_out = workdir / f"circuitsvis_{n_tokens}_{n_layers}l.html"
            bv_out = workdir / f"bertviz_{n_tokens}_{n_layers}l.html"
            if estimated > min(V8_MAX_STRING, args.max_peer_bytes):
                why = "above V8's string limit" if estimated > V8_MAX_STRING else "above --max-peer-bytes"
                note = f"not built: about {fmt_bytes(estimated)}, {why}"
                row["peers"]["CircuitsVis"] = {"html": estimated, "note": note}
                row["peers"]["BertViz"] = {"html": estimated, "note": note}
            else:
                version = peer_html(args.peers, CIRCUITSVIS_SCRIPT, torch.cat(patterns), tokens, cv_out)
                row["peers"]["CircuitsVis"] = {
                    "version": version,
                    "html": cv_out.stat().st_size,
                    "render": render_ms(browser, cv_out, (CIRCUITSVIS_DRAWN, len(patterns) * args.heads), args.repeat, args.timeout),
                }
                stack = torch.stack(patterns)  # [layer, head, query, key]
                version = peer_html(args.peers, BERTVIZ_SCRIPT, stack, tokens, bv_out)
                drawn = (BERTVIZ_DRAWN, n_tokens)
                bertviz = {"version": version, "html": bv_out.stat().st_size}
                bertviz["offline"] = render_ms(browser, bv_out, drawn, 1, min(args.timeout, 20.0))
                if args.bertviz_assets:
                    bertviz["render"] = render_ms(browser, bv_out, drawn, args.repeat, args.timeout, args.bertviz_assets)
                row["peers"]["BertViz"] = bertviz
        rows.append(row)
    return rows


def report(row: dict, timeout: float) -> None:
    m = row["ours"]
    print(f"== {row['tokens']} tokens, {row['label']}: {m['entries']:,} causal attention entries")
    render = f"render {m['render']:.0f} ms" if m["render"] is not None else "render failed"
    print(
        f"  ours         payload {fmt_bytes(m['payload']):>10} ({m['payload'] / m['entries']:.3f} B/entry; "
        f"{m['payload_uncompressed'] / m['entries']:.3f} B/entry before deflate)  html {fmt_bytes(m['html'])}  {render}"
    )
    print(
        f"  JSON list    payload {fmt_bytes(row['json']):>10} ({row['json'] / m['entries']:.1f} B/entry)"
        f"  = {row['json'] / m['payload']:.0f}x ours"
    )
    for name, peer in row["peers"].items():
        tag = f"{name} {peer.get('version', '')}".strip()
        if "note" in peer:
            print(f"  {tag:<12} html {fmt_bytes(peer['html']):>10} (estimated) {peer['note']}")
            continue
        parts = [f"html {fmt_bytes(peer['html']):>10} = {peer['html'] / m['html']:.0f}x our html"]
        if "offline" in peer:
            parts.append("offline: " + ("drew" if peer["offline"] else "never drew (CDN scripts blocked)"))
        if "render" in peer:
            if peer["render"] and m["render"]:
                parts.append(f"render {peer['render']:.0f} ms = {peer['render'] / m['render']:.1f}x ours")
            else:
                parts.append(f"no render within {timeout:.0f} s")
        print(f"  {tag:<12} " + "  ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--kind", choices=["synthetic", "random"], default="synthetic")
    parser.add_argument(
        "--peers",
        "--circuitsvis-python",
        default=os.environ.get("TMK_PEERS_PYTHON"),
        help="python of a virtualenv with circuitsvis and bertviz (make bench-env: .bench-venv/bin/python)",
    )
    parser.add_argument("--bertviz-assets", type=Path, help="folder with BertViz's CDN files (make bench-env: .bench-assets)")
    parser.add_argument("--max-peer-bytes", type=float, default=200e6, help="skip building peer pages larger than this")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128 tokens, one load each: keeps the script working in CI")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a render counts as failed")
    parser.add_argument("--chromium", default=chromium_path() or "/usr/bin/chromium")
    parser.add_argument("--keep", type=Path, help="keep the generated HTML files in this folder")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.repeat = [128], 1

    from playwright.sync_api import sync_playwright

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="tmk-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"attention: {args.kind}, {args.layers} layers x {args.heads} heads x {args.tokens} tokens; files in {workdir}")
    if not args.peers:
        print("peers skipped: pass --peers PYTHON (a virtualenv with circuitsvis and bertviz)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for n in args.tokens:
            for row in one_length(args, browser, n, workdir):
                report(row, args.timeout)
        browser.close()
    if not args.keep:
        for f in workdir.glob("*"):
            f.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
