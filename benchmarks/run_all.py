"""Every benchmark in one command, each printing medians and its ratio to a baseline measured in the same run.

    python benchmarks/run_all.py            # full runs (tens of minutes on a 2-core CPU)
    python benchmarks/run_all.py --quick    # each once, small sizes: what CI runs to keep them working

Comparisons with other tools (TransformerLens, CircuitsVis, BertViz) run in the separate environment
that ``make bench-env`` builds (``.bench-venv``, plus BertViz's CDN files in ``.bench-assets``); without
it those comparisons are skipped and say so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
PEERS = ROOT / ".bench-venv" / "bin" / "python"
ASSETS = ROOT / ".bench-assets"


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def commands(quick: bool, use_peers: bool = True) -> list[tuple[str, list[str]]]:
    """(title, argv) of each benchmark."""
    q = ["--quick"] if quick else []
    py = sys.executable
    peers = [str(PEERS)] if use_peers and PEERS.exists() else []
    payload = [py, str(HERE / "widget_payload.py"), *q]
    if peers:
        payload += ["--peers", peers[0]] + (["--bertviz-assets", str(ASSETS)] if ASSETS.exists() else [])
    runs = [("trace overhead vs a plain HF forward", [py, str(HERE / "trace_overhead.py"), *q])]
    if peers:  # TransformerLens lives only in the peers' environment
        runs.append(("trace vs TransformerLens run_with_cache", [*peers, str(HERE / "trace_vs_transformerlens.py"), *q]))
    runs += [
        ("attention payload and render vs JSON, CircuitsVis, BertViz", payload),
        ("causal tracing: batched grid vs one forward per cell", [py, str(HERE / "causal_tracing.py"), *q]),
        ("SNMF vs scikit-learn NMF", [py, str(HERE / "snmf.py"), *q]),
        ("lesson wall times under nbval", [py, str(HERE / "lesson_times.py"), *q]),
    ]
    if _has_cuda():
        runs.append(("GPU: trace, causal tracing and SNMF throughput", [py, str(HERE / "gpu.py"), *q]))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-peers", action="store_true", help="skip the comparisons with other tools")
    args = ap.parse_args()
    failed = []
    if args.no_peers or not PEERS.exists():
        why = "--no-peers" if args.no_peers else f"{PEERS.relative_to(ROOT)} missing: run `make bench-env`"
        print(f"== comparisons with TransformerLens, CircuitsVis and BertViz: skipped ({why})")
    for title, argv in commands(args.quick, not args.no_peers):
        print(f"\n== {title}\n$ {' '.join(Path(a).name if a.endswith('python') else a for a in argv)}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT)
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if done.returncode != 0:
            failed.append(title)
    if failed:
        print("\nfailed: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
