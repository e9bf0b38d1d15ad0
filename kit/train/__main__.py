"""``python -m kit.train facts-4l --out DIR [--seed N] [--steps N]``: train a teaching model into DIR."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kit.train", description=__doc__)
    ap.add_argument("model", choices=["facts-4l"])
    ap.add_argument("--out", required=True, help="directory to write (replaced atomically when complete)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args(argv)
    from dataclasses import replace

    from .facts import FactsConfig
    from .facts_build import build_facts_4l, write_story

    cfg = FactsConfig(seed=args.seed)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    figures = build_facts_4l(args.out, cfg)
    write_story(args.out)
    print(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
