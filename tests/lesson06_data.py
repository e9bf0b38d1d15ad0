"""Lesson 06's data and dictionaries, with the notebook's own settings, built once per test session (the claims
and the exercises tests both read them; training the SAE and the transcoder twice would only cost time)."""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def lesson06_data() -> dict:
    """facts-4l, the world, the lesson's prompts (60 per relation) and held-out prompts (20), MLP 0's
    inputs/neurons/outputs on them, each token column's label, and the SAE and transcoder (256 latents,
    300 steps, seed 0) the lesson trains."""
    import kit
    from kit.analysis import mlp_io, train_sae, train_transcoder
    from kit.lessons import mlp as words
    from kit.train import load_world

    torch.set_num_threads(1)
    model = kit.load("facts-4l", device="cpu")
    world = load_world()
    prompts = words.world_sentences(world, per_relation=60)
    held = words.world_sentences(world, per_relation=20, split="held_out")
    io = mlp_io(model, [p.sentence for p in prompts], 0)
    held_io = mlp_io(model, [p.sentence for p in held], 0)
    per = words.token_labels(model, world, prompts)
    labels = torch.tensor([per[b][q] for b, q in zip(io.col.prompt.tolist(), io.col.pos.tolist())])
    return {"model": model, "world": world, "prompts": prompts, "held": held, "io": io, "held_io": held_io,
            "labels": labels, "sae": train_sae(io.hidden, 256, steps=300, seed=0),
            "tc": train_transcoder(io.inputs, io.outputs, 256, steps=300, seed=0)}
