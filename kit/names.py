"""Glossary of activation names and dimension names, and their TransformerLens hook names.

Dimensions (used in every docstring and shape comment of the kit):

========  =====================================================
batch     prompts in one trace
pos       token positions (``query`` and ``key`` for attention)
head      attention heads (query heads for grouped-query models)
kv_head   key/value heads (fewer than ``head`` in grouped-query models)
d_head    width of one head's queries, keys and values
d_model   width of the residual stream
d_mlp     number of MLP neurons
vocab     vocabulary size
layer     decoder block index, 0-based
========  =====================================================

Activation names. ``model.trace(prompt)`` captures the eight **default** names of every layer;
the others are captured when named in ``capture=[...]`` (``capture=kit.names.ALL`` for all).
Per-layer names are read as ``tr[name, layer]``; model-level names as ``tr[name]``.
``model.trace(..., heads=[...])`` keeps ``pattern`` and ``attn_scores`` of those heads only:
``[batch, len(heads), query, key]``, in the order of ``tr.pattern_heads``.

================  ============================  =====  ===============================================
name              shape                         scope  meaning
================  ============================  =====  ===============================================
pattern           [batch, head, query, key]     layer  attention probabilities (default)
resid_pre         [batch, pos, d_model]         layer  residual stream entering the block (default)
resid_post        [batch, pos, d_model]         layer  residual stream leaving the block (default)
attn_out          [batch, pos, d_model]         layer  what attention adds to the residual stream (default)
z                 [batch, pos, head, d_head]    layer  each head's mixed values, input of W_O (default)
head_out          [batch, pos, head, d_model]   layer  each head's share of attn_out (default)
mlp_out           [batch, pos, d_model]         layer  what the MLP adds to the residual stream (default)
mlp_post          [batch, pos, d_mlp]           layer  MLP neuron activations after the nonlinearity (default)
q                 [batch, pos, head, d_head]    layer  queries as attention uses them (after q-norm and rotary)
k                 [batch, pos, kv_head, d_head] layer  keys as attention uses them (key/value heads for GQA)
v                 [batch, pos, kv_head, d_head] layer  values (key/value heads for GQA)
attn_scores       [batch, head, query, key]     layer  pre-softmax scores: scaled, soft-capped, masked
resid_mid         [batch, pos, d_model]         layer  stream between attention and MLP (sequential blocks)
attn_normalized   [batch, pos, d_model]         layer  attention's input norm before its gain: center(x)/scale
attn_scale        [batch, pos, 1]               layer  that norm's divisor sqrt(var + eps) or sqrt(mean sq + eps)
mlp_normalized    [batch, pos, d_model]         layer  the MLP's input norm before its gain
mlp_scale         [batch, pos, 1]               layer  that norm's divisor
mlp_pre           [batch, pos, d_mlp]           layer  MLP pre-activation (the gate's, in gated MLPs)
embed             [batch, pos, d_model]         model  token embeddings as the model adds them (Gemma: x sqrt(d_model))
pos_embed         [batch, pos, d_model]         model  learned position embeddings (GPT-2, OPT only)
resid_final       [batch, pos, d_model]         model  the final residual stream, input of the final norm
final_normalized  [batch, pos, d_model]         model  the final norm before its gain
final_scale       [batch, pos, 1]               model  the final norm's divisor
================  ============================  =====  ===============================================

Identities (tested for every family, ``kit/arch`` says which block kind each family has):

* sequential blocks: ``resid_mid = resid_pre + attn_out`` and ``resid_post = resid_mid + mlp_out``;
* parallel blocks (GPT-NeoX parallel, GPT-J, Falcon): ``resid_post = resid_pre + attn_out + mlp_out``;
* blocks with norms after attention and MLP (Gemma 2/3, OLMo 2): ``attn_out`` and ``mlp_out`` are
  taken *after* those norms (what is added to the stream), so the identities above hold; ``head_out``
  is each head's share through the post-attention norm with its scale frozen, so heads still sum
  to ``attn_out``;
* ``head_out`` summed over heads plus the output projection's bias equals ``attn_out``.

TransformerLens hook names are accepted by ``tr[...]`` wherever an equivalent exists (see
:data:`TL_HOOKS` and :func:`from_transformerlens`): ``"blocks.3.attn.hook_pattern"`` is
``tr["pattern", 3]``, ``"hook_embed"`` is ``tr["embed"]``, ``"ln_final.hook_normalized"`` is
``tr["final_normalized"]``. TransformerLens's ``hook_q``/``hook_k`` are before rotary: they map to
``q``/``k`` only for families without rotary (GPT-2, OPT); for rotary families use
``hook_rot_q``/``hook_rot_k``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# the eight default names, captured by model.trace(prompt) at every layer
NAMES: tuple[str, ...] = (
    "pattern", "resid_pre", "resid_post", "attn_out", "z", "head_out", "mlp_out", "mlp_post",
)
# per-layer names captured when asked for
EXTRA: tuple[str, ...] = (
    "q", "k", "v", "attn_scores", "resid_mid", "attn_normalized", "attn_scale", "mlp_normalized", "mlp_scale",
    "mlp_pre",
)
# model-level names (no layer): tr["embed"]
MODEL_NAMES: tuple[str, ...] = ("embed", "pos_embed", "resid_final", "final_normalized", "final_scale")
LAYER_NAMES: tuple[str, ...] = NAMES + EXTRA
ALL: tuple[str, ...] = LAYER_NAMES + MODEL_NAMES

# Points an intervention may edit: the default names (head_out is edited through z), the
# pre-softmax attention scores (where attention knockout acts) and the embeddings.
EDITABLE: tuple[str, ...] = tuple(n for n in NAMES if n != "head_out") + ("attn_scores",)
# Points a Patch may overwrite from another trace
PATCHABLE: tuple[str, ...] = NAMES

# TransformerLens hook name (with {l} for the layer) -> kit name
TL_HOOKS: dict[str, str] = {
    "hook_embed": "embed",
    "hook_pos_embed": "pos_embed",
    "blocks.{l}.hook_resid_pre": "resid_pre",
    "blocks.{l}.hook_resid_mid": "resid_mid",
    "blocks.{l}.hook_resid_post": "resid_post",
    "blocks.{l}.hook_attn_out": "attn_out",
    "blocks.{l}.hook_mlp_out": "mlp_out",
    "blocks.{l}.attn.hook_pattern": "pattern",
    "blocks.{l}.attn.hook_attn_scores": "attn_scores",
    "blocks.{l}.attn.hook_z": "z",
    "blocks.{l}.attn.hook_result": "head_out",
    "blocks.{l}.attn.hook_q": "q",
    "blocks.{l}.attn.hook_k": "k",
    "blocks.{l}.attn.hook_rot_q": "q",
    "blocks.{l}.attn.hook_rot_k": "k",
    "blocks.{l}.attn.hook_v": "v",
    "blocks.{l}.mlp.hook_pre": "mlp_pre",
    "blocks.{l}.mlp.hook_post": "mlp_post",
    "blocks.{l}.ln1.hook_normalized": "attn_normalized",
    "blocks.{l}.ln1.hook_scale": "attn_scale",
    "blocks.{l}.ln2.hook_normalized": "mlp_normalized",
    "blocks.{l}.ln2.hook_scale": "mlp_scale",
    "ln_final.hook_normalized": "final_normalized",
    "ln_final.hook_scale": "final_scale",
}
# hooks whose meaning depends on rotary embeddings: name -> (valid without rotary, valid with rotary)
TL_ROTARY: dict[str, bool] = {"hook_q": False, "hook_k": False, "hook_rot_q": True, "hook_rot_k": True}
_TL_PATTERNS = [(re.compile("^" + re.escape(k).replace(r"\{l\}", r"(\d+)") + "$"), k, v) for k, v in TL_HOOKS.items()]


def from_transformerlens(hook: str, rotary: bool | None = None) -> tuple[str, int | None]:
    """``(kit name, layer or None)`` for a TransformerLens hook name, else ``ValueError``.

    ``rotary``: whether the model rotates queries and keys; TransformerLens's ``hook_q``/``hook_k``
    are taken before rotary, so they have a kit equivalent only without it (and ``hook_rot_*`` only
    with it). ``None`` skips that check.
    """
    for pattern, key, name in _TL_PATTERNS:
        m = pattern.match(hook)
        if m:
            suffix = key.rsplit(".", 1)[-1]
            if rotary is not None and suffix in TL_ROTARY and TL_ROTARY[suffix] != rotary:
                other = suffix.replace("hook_", "hook_rot_") if rotary else suffix.replace("hook_rot_", "hook_")
                raise ValueError(
                    f"{hook!r}: this model {'rotates' if rotary else 'does not rotate'} queries and keys, so the kit "
                    f"has no equivalent of {suffix}; use {key.replace(suffix, other).replace('{l}', m.group(1))!r} "
                    f"(kit name {name!r}: q/k as attention uses them)")
            return name, (int(m.group(1)) if m.groups() else None)
    known = [k.replace("{l}", "0") for k in TL_HOOKS]
    raise ValueError(f"unknown hook name {hook!r}; TransformerLens names with a kit equivalent: "
                     f"{', '.join(TL_HOOKS)}.{hint(hook, known)}")


def is_transformerlens(name: str) -> bool:
    """Whether ``name`` looks like a TransformerLens hook name (``hook_*``, ``blocks.*``, ``ln_final.*``)."""
    return name.startswith(("hook_", "blocks.", "ln_final."))


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
