"""``python -m kit.train RECIPE --out DIR``: train a teaching model and write its directory.

Recipes: ``induction-2l`` (the shipped induction model, plus its 1-layer
control for the card), ``induction-1l`` (the control alone), ``facts-4l``.
``--measure DIR`` re-measures an existing directory instead and prints the
figures as JSON. Ctrl-C leaves no output directory (it is written atomically).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace

import torch

from kit.train.build import build_facts, build_induction, measure_dir
from kit.train.facts import FactsRecipe
from kit.train.induction import InductionRecipe

__all__ = ["RECIPES", "main"]

RECIPES = ("induction-2l", "induction-1l", "facts-4l")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kit.train", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", choices=RECIPES)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="write the model directory here (written atomically)")
    where.add_argument("--measure", metavar="DIR", help="re-measure an existing directory; print JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order (default 0)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ... (default auto)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1: tiny models gain "
                                                          "nothing from more, and results repeat exactly)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--no-control", action="store_true", help="induction-2l: skip training the 1-layer control")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (130 after Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.measure:
        print(json.dumps(measure_dir(args.measure), indent=1, sort_keys=True))
        return 0
    torch.set_num_threads(args.threads)
    command = "python -m kit.train " + shlex.join(argv)
    changes = {"seed": args.seed, "device": args.device}
    if args.steps is not None:
        changes["steps"] = args.steps
    try:
        if args.recipe.startswith("induction"):
            recipe = replace(InductionRecipe(), n_layers=int(args.recipe[len("induction-")])).with_train(**changes)
            path = build_induction(args.out, recipe, command, overwrite=args.overwrite, progress=not args.quiet,
                                   control=not args.no_control)
        else:
            recipe = FactsRecipe().with_train(**changes)
            path = build_facts(args.out, recipe, command, overwrite=args.overwrite, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: nothing was written to {args.out}", file=sys.stderr)
        return 130
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
