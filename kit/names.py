"""Glossary of activation names and dimension names.

Dimensions (used in every docstring and shape comment of the kit):

========  =====================================================
batch     prompts in one trace
pos       token positions (``query`` and ``key`` for attention)
head      attention heads (query heads for grouped-query models)
d_head    width of one head's queries, keys and values
d_model   width of the residual stream
d_mlp     number of MLP neurons
vocab     vocabulary size
layer     decoder block index, 0-based
========  =====================================================

Activation names, each captured per layer by ``model.trace``:

============  ===============================  =========================================
name          shape                            meaning
============  ===============================  =========================================
pattern       [batch, head, query, key]        attention probabilities
resid_pre     [batch, pos, d_model]            residual stream entering the block
resid_post    [batch, pos, d_model]            residual stream leaving the block
attn_out      [batch, pos, d_model]            what attention adds to the residual stream
z             [batch, pos, head, d_head]       each head's mixed values (input of W_O)
head_out      [batch, pos, head, d_model]      each head's share of attn_out (z @ W_O[head])
mlp_out       [batch, pos, d_model]            what the MLP adds to the residual stream
mlp_post      [batch, pos, d_mlp]              MLP neuron activations after the nonlinearity
============  ===============================  =========================================

``head_out`` summed over heads plus the output projection's bias equals ``attn_out``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

NAMES: tuple[str, ...] = (
    "pattern", "resid_pre", "resid_post", "attn_out", "z", "head_out", "mlp_out", "mlp_post",
)

# Points an intervention may edit: the captured names (head_out is edited through z) plus the
# pre-softmax attention scores, where attention knockout acts.
EDITABLE: tuple[str, ...] = tuple(n for n in NAMES if n != "head_out") + ("attn_scores",)


def hint(word: str, valid: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest valid spelling, or an empty string."""
    match = difflib.get_close_matches(str(word), list(valid), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_name(name: str, valid: Iterable[str] = NAMES, what: str = "activation name") -> str:
    """Return ``name`` if valid, else raise ``ValueError`` listing the valid names."""
    valid = tuple(valid)
    if name not in valid:
        raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(valid)}.{hint(name, valid)}")
    return name


def check_index(value: int, size: int, what: str) -> int:
    """Normalise a possibly negative index into ``range(size)``, or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)  # numpy / torch integer scalars
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an integer in 0..{size - 1}, got {value!r}") from None
    if not -size <= value < size:
        raise ValueError(f"{what} {value} is out of range: valid {what}s are 0..{size - 1}")
    return value % size
