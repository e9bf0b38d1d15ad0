"""What the recipes of ``kit.train`` share: the recipe base class and the GPT-2 they build.

A recipe (``InductionRecipe``, ``FactsRecipe``, ``IOIRecipe``) is a frozen dataclass of plain values with a
``train: TrainConfig`` field; :class:`Recipe` gives it ``with_train``, ``to_dict`` and ``fit`` (the seeded
training loop, with the recipe written into the log). :func:`gpt2_model` builds the freshly initialised
``GPT2LMHeadModel`` of every recipe: no dropout, special tokens ``0 <|bos|>``, ``1 <|eos|>``, ``2 <|pad|>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from kit.train.batch import Batch
from kit.train.checkpoint import Checkpointer
from kit.train.history import HistoryRecorder
from kit.train.loop import TrainConfig, train
from kit.train.result import TrainResult

__all__ = ["Recipe", "gpt2_model"]


class Recipe:
    """Base of the recipe dataclasses (each declares its own fields, ``train: TrainConfig`` among them)."""

    train: TrainConfig

    def with_train(self, **changes):
        """A copy with some ``TrainConfig`` fields changed (e.g. ``steps``, ``seed``)."""
        return replace(self, train=replace(self.train, **changes))

    def to_dict(self) -> dict:
        """Every field as plain values (what ``figures.json`` and the training log record)."""
        return asdict(self)

    def fit(self, model: torch.nn.Module, data: Callable[[int, torch.Generator], Batch],
            tokenizer: PreTrainedTokenizerFast, description: str, probes: Mapping | None = None,
            progress: bool | None = None, checkpoint: Checkpointer | None = None,
            history: HistoryRecorder | None = None) -> TrainResult:
        """Train ``model`` in place on ``data`` by ``self.train`` (``progress``: override its progress bar);
        the log's ``meta["recipe"]`` is :meth:`to_dict`; the model comes back on the CPU in eval mode."""
        config = self.train if progress is None else replace(self.train, progress=progress)
        log = train(model, data, config, probes=probes, description=description, checkpoint=checkpoint,
                    history=history)
        log.meta["recipe"] = self.to_dict()
        return TrainResult(model=model.cpu().eval(), tokenizer=tokenizer, log=log,
                           history=history.history if history else None)


def gpt2_model(*, vocab_size: int, n_ctx: int, d_model: int, n_layers: int, n_heads: int, d_mlp: int,
               init_std: float, seed: int, tied: bool, embed_std: float | None = None,
               positions: torch.Tensor | None = None) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 (no dropout), seeded by ``seed``. With ``embed_std``, the token embeddings
    are redrawn from N(0, embed_std) and the position embeddings too, unless ``positions[n_ctx, d_model]``
    gives them."""
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=n_ctx, n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_inner=d_mlp,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=init_std, tie_word_embeddings=tied,
        bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if embed_std is not None:
        with torch.no_grad():
            model.transformer.wte.weight.normal_(0.0, embed_std)
            if positions is not None:
                model.transformer.wpe.weight.copy_(positions)
            else:
                model.transformer.wpe.weight.normal_(0.0, embed_std)
    return model
