"""The unit of training data: a batch of token ids with loss masks.

Glossary (shared across ``kit.train``): ``batch`` indexes sequences, ``pos``
indexes token positions. A mask at ``[b, p]`` refers to the *target* token
``input_ids[b, p]``, predicted from positions ``< p``; position 0 is never a
target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Batch", "pack_rows"]


@dataclass
class Batch:
    """Token ids plus which target tokens count for the loss.

    Attributes:
        input_ids: ``[batch, pos]`` int64 token ids.
        loss_mask: ``[batch, pos]`` bool; targets that enter the training loss.
        groups: name -> ``[batch, pos]`` bool; subsets of targets whose mean
            loss is logged separately (e.g. ``"repeated"`` tokens).
        attention_mask: ``[batch, pos]`` 0/1, or ``None`` when nothing is padded.
    """

    input_ids: torch.Tensor
    loss_mask: torch.Tensor
    groups: dict[str, torch.Tensor] = field(default_factory=dict)
    attention_mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on ``device``."""
        return Batch(
            input_ids=self.input_ids.to(device),
            loss_mask=self.loss_mask.to(device),
            groups={k: v.to(device) for k, v in self.groups.items()},
            attention_mask=None if self.attention_mask is None else self.attention_mask.to(device),
        )

    def __repr__(self) -> str:
        b, p = self.input_ids.shape
        return f"Batch(batch={b}, pos={p}, targets={int(self.loss_mask.sum())}, groups={sorted(self.groups)})"


def pack_rows(rows: list[list[int]], pad: int, width: int | None = None,
              marks: list[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into ``(ids[batch, pos], attention_mask[batch, pos], marked[batch, pos])``:
    ``pad`` after each row up to ``width`` (default: the longest row), mask 1 on the row's tokens, and
    ``marked`` true at the positions ``marks[row]`` (e.g. where an answer is)."""
    width = max(len(r) for r in rows) if width is None else width
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    marked = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        if marks is not None:
            marked[i, marks[i]] = True
    return ids, mask, marked
