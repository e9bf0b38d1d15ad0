"""``python -m kit.train RECIPE --out DIR``: train a teaching model and write its directory.

Recipes: ``induction-2l`` (the shipped induction model, plus its 1-layer
control for the card), ``induction-1l`` (the control alone), ``facts-4l``, ``ioi-3l``.
``--measure DIR`` re-measures an existing directory instead and prints the
figures as JSON. Ctrl-C leaves no output directory (it is written atomically).

Interrupted training loses at most ``--checkpoint-every`` steps (default 100):
checkpoints go to ``DIR.checkpoints/`` next to ``DIR`` (or ``--checkpoint-dir``),
each written atomically, and ``--resume`` continues from the latest one with the
same final weights as an uninterrupted run (on the CPU). They are deleted once
``DIR`` has been written. A killed run never touches an existing ``DIR``: it is
replaced (``--overwrite``) only by a complete new one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace

import torch

from kit.train.build import build_facts, build_induction, build_ioi, measure_dir
from kit.train.checkpoint import CheckpointMismatch, Checkpoints, default_root
from kit.train.facts import FactsRecipe
from kit.train.induction import InductionRecipe
from kit.train.ioi import IOIRecipe

__all__ = ["RECIPES", "main"]

RECIPES = ("induction-2l", "induction-1l", "facts-4l", "ioi-3l")


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
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                   help="save a checkpoint every N steps (default 100; 0: none)")
    p.add_argument("--checkpoint-dir", metavar="CKPT", default=None,
                   help="where checkpoints go (default: DIR.checkpoints next to DIR); deleted once DIR is written")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint (same options)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (130 after Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.measure:
        print(json.dumps(measure_dir(args.measure), indent=1, sort_keys=True))
        return 0
    torch.set_num_threads(args.threads)
    command = "python -m kit.train " + shlex.join([a for a in argv if a != "--resume"])  # how to remake it
    changes = {"seed": args.seed, "device": args.device}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.checkpoint_every < 0:
        print("error: --checkpoint-every must be 0 (no checkpoints) or a positive number of steps", file=sys.stderr)
        return 2
    checkpoints = None
    if args.checkpoint_every > 0:
        root = args.checkpoint_dir or default_root(args.out)
        checkpoints = Checkpoints(root, every=args.checkpoint_every, resume=args.resume)
        if args.resume and not checkpoints.existing():
            print(f"--resume: no checkpoint in {checkpoints.root}; starting from step 0", file=sys.stderr)
    elif args.resume:
        print("error: --resume needs checkpoints (--checkpoint-every N with N > 0)", file=sys.stderr)
        return 2
    try:
        if args.recipe.startswith("induction"):
            recipe = replace(InductionRecipe(), n_layers=int(args.recipe[len("induction-")])).with_train(**changes)
            path = build_induction(args.out, recipe, command, overwrite=args.overwrite, progress=not args.quiet,
                                   control=not args.no_control, checkpoints=checkpoints)
        elif args.recipe == "ioi-3l":
            path = build_ioi(args.out, IOIRecipe().with_train(**changes), command, overwrite=args.overwrite,
                             progress=not args.quiet, checkpoints=checkpoints)
        else:
            recipe = FactsRecipe().with_train(**changes)
            path = build_facts(args.out, recipe, command, overwrite=args.overwrite, progress=not args.quiet,
                               checkpoints=checkpoints)
    except KeyboardInterrupt:
        kept = f"; resume with --resume from {checkpoints.root}" if checkpoints and checkpoints.existing() else ""
        print(f"\ninterrupted: nothing was written to {args.out}{kept}", file=sys.stderr)
        return 130
    except (FileExistsError, CheckpointMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
