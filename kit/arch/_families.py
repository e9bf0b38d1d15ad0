"""The family table: where each canonical piece lives in a Hugging Face ``*ForCausalLM`` model.

One :class:`Family` row per architecture family. Paths are dotted attribute paths, relative to
the model (``blocks``, ``final_norm``, ``pos_embed``) or to one decoder block (everything else).
A family whose layout depends on its config (GPT-NeoX's parallel residual, Falcon's variants)
gives a ``variant`` function that returns the row for that config, or a reason to refuse it.
Adding a family is adding a row here (see ``docs/families.md`` for a worked example).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Family", "FAMILIES", "family_for_config", "supported_text"]


@dataclass(frozen=True)
class Family:
    """Module paths and block kind of one architecture family."""

    name: str
    label: str  # for people: the checkpoints it covers
    model_types: tuple[str, ...]  # config.model_type values of this family
    blocks: str  # the list of decoder blocks, relative to the model
    attn: str  # attention module (its output is what attention adds, unless attn_post_norm)
    mlp: str  # MLP module (its output is what the MLP adds, unless mlp_post_norm)
    o_proj: str  # attention output projection (its input is z)
    down_proj: str  # MLP output projection (its input is mlp_post)
    mlp_in: str  # first MLP projection (its output is mlp_pre; the gate in gated MLPs)
    final_norm: str  # relative to the model
    attn_norm: str | None  # norm whose output attention reads (None: OLMo 2 reads the raw stream)
    mlp_norm: str | None  # norm whose output the MLP reads
    resid_mid_at: str | None  # a module whose first input is resid_mid (None: parallel block)
    qkv: str  # layout of the query/key/value weights: separate | gpt2 | neox | phi3 | falcon
    attn_post_norm: str | None = None  # norm applied to attention's output before the residual add
    mlp_post_norm: str | None = None  # norm applied to the MLP's output before the residual add
    pos_embed: str | None = None  # learned absolute positions, relative to the model
    conv1d: bool = False  # GPT-2 style Conv1D weights [in, out] instead of nn.Linear [out, in]
    parallel: bool = False  # attention and MLP both read the block input
    rotary: bool = True  # queries and keys are rotated (TransformerLens: hook_rot_q / hook_rot_k)
    norm_offset: float = 0.0  # RMSNorm gain is weight + offset (Gemma: 1)
    fused_mlp_in: int = 1  # mlp_in holds this many chunks; mlp_pre is the first (Phi-3: [gate | up])
    outputs_edited_in_place: bool = False  # the block adds into a module's output tensor (Falcon)
    variant: Callable[[Any, "Family"], "Family | str"] | None = None  # config -> row, or why refused

    @property
    def post_norms(self) -> bool:
        return self.attn_post_norm is not None or self.mlp_post_norm is not None


def _gpt2(cfg, fam: Family) -> Family | str:
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or getattr(cfg, "reorder_and_upcast_attn", False):
        return "GPT-2 configs with scale_attn_by_inverse_layer_idx or reorder_and_upcast_attn are not supported"
    return fam


def _neox(cfg, fam: Family) -> Family | str:
    if getattr(cfg, "use_parallel_residual", True):
        return replace(fam, parallel=True, resid_mid_at=None)
    return fam


def _opt(cfg, fam: Family) -> Family | str:
    if not getattr(cfg, "do_layer_norm_before", True):
        return "OPT with do_layer_norm_before=False (opt-350m: norms after attention and MLP) is not supported"
    if getattr(cfg, "word_embed_proj_dim", cfg.hidden_size) != cfg.hidden_size:
        return "OPT with word_embed_proj_dim != hidden_size (project_in/project_out, opt-350m) is not supported"
    return fam


def _falcon(cfg, fam: Family) -> Family | str:
    if getattr(cfg, "alibi", False):
        return "Falcon with ALiBi position biases (falcon-rw) is not supported"
    new, parallel = getattr(cfg, "new_decoder_architecture", False), getattr(cfg, "parallel_attn", True)
    if new and (getattr(cfg, "num_ln_in_parallel_attn", None) or 2) == 2:  # falcon-40b/180b: two norms
        return replace(fam, attn_norm="ln_attn", mlp_norm="ln_mlp")
    if new or parallel:  # falcon-7b: one norm feeds both
        return fam
    return replace(fam, parallel=False, mlp_norm="post_attention_layernorm",
                   resid_mid_at="post_attention_layernorm")


def _post_norm(cfg, fam: Family) -> Family | str:
    if getattr(cfg, "attention_bias", False):
        return (f"{fam.label} with attention_bias=True is not supported (the bias's share through the norm "
                f"after attention is not decomposed)")
    return fam


_LLAMA = Family(
    "llama", "Llama 1/2/3, Mistral, Qwen2/2.5, Qwen3", ("llama", "mistral", "qwen2", "qwen3"),
    blocks="model.layers", attn="self_attn", mlp="mlp", o_proj="self_attn.o_proj", down_proj="mlp.down_proj",
    mlp_in="mlp.gate_proj", final_norm="model.norm", attn_norm="input_layernorm",
    mlp_norm="post_attention_layernorm", resid_mid_at="post_attention_layernorm", qkv="separate",
)
_GEMMA2 = replace(
    _LLAMA, name="gemma2", label="Gemma 2", model_types=("gemma2",), mlp_norm="pre_feedforward_layernorm",
    resid_mid_at="pre_feedforward_layernorm", attn_post_norm="post_attention_layernorm",
    mlp_post_norm="post_feedforward_layernorm", norm_offset=1.0, variant=_post_norm,
)

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gpt2", "GPT-2 (and the kit's teaching models)", ("gpt2",), blocks="transformer.h", attn="attn",
           mlp="mlp", o_proj="attn.c_proj", down_proj="mlp.c_proj", mlp_in="mlp.c_fc", final_norm="transformer.ln_f",
           attn_norm="ln_1", mlp_norm="ln_2", resid_mid_at="ln_2", qkv="gpt2", pos_embed="transformer.wpe",
           conv1d=True, rotary=False, variant=_gpt2),
    Family("gpt_neox", "GPT-NeoX, Pythia (parallel or sequential residual)", ("gpt_neox",), blocks="gpt_neox.layers",
           attn="attention", mlp="mlp", o_proj="attention.dense", down_proj="mlp.dense_4h_to_h",
           mlp_in="mlp.dense_h_to_4h", final_norm="gpt_neox.final_layer_norm", attn_norm="input_layernorm",
           mlp_norm="post_attention_layernorm", resid_mid_at="post_attention_layernorm", qkv="neox",
           variant=_neox),
    _LLAMA,
    replace(_LLAMA, name="gemma", label="Gemma", model_types=("gemma",), norm_offset=1.0),
    _GEMMA2,
    replace(_GEMMA2, name="gemma3", label="Gemma 3 (text)", model_types=("gemma3_text",)),
    replace(_LLAMA, name="phi3", label="Phi-3, Phi-3.5, Phi-4 (fused qkv and gate/up)", model_types=("phi3",),
            mlp_in="mlp.gate_up_proj", fused_mlp_in=2, qkv="phi3"),
    replace(_LLAMA, name="olmo2", label="OLMo 2", model_types=("olmo2",), attn_norm=None, mlp_norm=None,
            resid_mid_at="mlp", attn_post_norm="post_attention_layernorm",
            mlp_post_norm="post_feedforward_layernorm", variant=_post_norm),
    Family("gptj", "GPT-J (parallel block, rotary on part of each head)", ("gptj",), blocks="transformer.h",
           attn="attn", mlp="mlp", o_proj="attn.out_proj", down_proj="mlp.fc_out", mlp_in="mlp.fc_in",
           final_norm="transformer.ln_f", attn_norm="ln_1", mlp_norm="ln_1", resid_mid_at=None, qkv="separate",
           parallel=True),
    Family("opt", "OPT (pre-norm sizes: 125m, 1.3b, 2.7b, 6.7b, ...)", ("opt",), blocks="model.decoder.layers",
           attn="self_attn", mlp="fc2", o_proj="self_attn.out_proj", down_proj="fc2", mlp_in="fc1",
           final_norm="model.decoder.final_layer_norm", attn_norm="self_attn_layer_norm",
           mlp_norm="final_layer_norm", resid_mid_at="final_layer_norm", qkv="separate",
           pos_embed="model.decoder.embed_positions", rotary=False, variant=_opt),
    Family("falcon", "Falcon (rotary variants: 7b, 40b, 180b)", ("falcon",), blocks="transformer.h",
           attn="self_attention", mlp="mlp", o_proj="self_attention.dense", down_proj="mlp.dense_4h_to_h",
           mlp_in="mlp.dense_h_to_4h", final_norm="transformer.ln_f", attn_norm="input_layernorm",
           mlp_norm="input_layernorm", resid_mid_at=None, qkv="falcon", parallel=True,
           outputs_edited_in_place=True, variant=_falcon),
)}


def supported_text() -> str:
    """One line per family: its name, the checkpoints it covers and its ``model_type`` values."""
    return "\n".join(f"  {f.name}: {f.label} (model_type {', '.join(f.model_types)})" for f in FAMILIES.values())


HOW_TO_ADD = ("To add a family, add a Family row to kit/arch/_families.py naming its modules "
              "(see docs/families.md, 'Adding a family'), then run the contract tests on a tiny config.")


def family_for_config(cfg: Any) -> Family:
    """The family row for a model config (``config.model_type``), or ``ValueError`` saying why not."""
    model_type = getattr(cfg, "model_type", None)
    for fam in FAMILIES.values():
        if model_type in fam.model_types:
            row = fam.variant(cfg, fam) if fam.variant is not None else fam
            if isinstance(row, str):
                raise ValueError(f"{row}; the kit refuses what it cannot trace exactly.")
            return row
    raise ValueError(
        f"unsupported architecture {model_type!r}: the kit traces these families exactly:\n{supported_text()}\n"
        f"{HOW_TO_ADD}"
    )
