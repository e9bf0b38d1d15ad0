"""The :class:`Adapter` table and detection of a model's family."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Family:
    """Module paths of one architecture family, relative to the ``*ForCausalLM`` model."""

    name: str
    blocks: str  # list of decoder blocks
    attn: str  # attention module, relative to a block
    mlp: str  # MLP module, relative to a block
    o_proj: str  # attention output projection, relative to a block
    down_proj: str  # MLP output projection, relative to a block
    final_norm: str
    pos_embed: str | None  # learned absolute position embedding, if any
    conv1d: bool  # GPT-2 style Conv1D (weight [in, out]) instead of nn.Linear ([out, in])


FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        "gpt2", "transformer.h", "attn", "mlp", "attn.c_proj", "mlp.c_proj",
        "transformer.ln_f", "transformer.wpe", True,
    ),
    "gpt_neox": Family(
        "gpt_neox", "gpt_neox.layers", "attention", "mlp", "attention.dense", "mlp.dense_4h_to_h",
        "gpt_neox.final_layer_norm", None, False,
    ),
    "llama": Family(
        "llama", "model.layers", "self_attn", "mlp", "self_attn.o_proj", "mlp.down_proj",
        "model.norm", None, False,
    ),
}


def _get(root: nn.Module, path: str) -> nn.Module:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has(root: nn.Module, path: str) -> bool:
    try:
        _get(root, path)
        return True
    except AttributeError:
        return False


class Adapter:
    """Canonical access to one loaded Hugging Face causal LM.

    Attributes: ``family`` (a :class:`Family`), ``blocks`` (the decoder blocks in order),
    ``n_layers``, ``n_heads``, ``n_kv_heads``, ``d_head``, ``d_model``, ``d_mlp``, ``n_ctx``,
    ``vocab_size``.
    """

    def __init__(self, hf: nn.Module, family: Family):
        self.hf = hf
        self.family = family
        cfg = hf.config
        self.blocks: list[nn.Module] = list(_get(hf, family.blocks))
        self.n_layers = len(self.blocks)
        self.n_heads = int(_first(cfg, "num_attention_heads", "n_head"))
        self.n_kv_heads = int(_first(cfg, "num_key_value_heads", default=self.n_heads) or self.n_heads)
        self.d_model = int(_first(cfg, "hidden_size", "n_embd"))
        in_features = self._matrix(self.o_proj(0)).shape[0]
        self.d_head = in_features // self.n_heads
        self.d_mlp = self._matrix(self.down_proj(0)).shape[0]
        self.n_ctx = int(_first(cfg, "n_positions", "max_position_embeddings"))
        self.vocab_size = int(self.unembed.weight.shape[0])
        self.parallel = bool(getattr(cfg, "use_parallel_residual", False))

    # modules -------------------------------------------------------------------------------
    def attn(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.attn)

    def mlp(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.mlp)

    def o_proj(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.o_proj)

    def down_proj(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.down_proj)

    @property
    def final_norm(self) -> nn.Module:
        return _get(self.hf, self.family.final_norm)

    @property
    def unembed(self) -> nn.Module:
        """The output embedding (``lm_head``; ``embed_out`` in older GPT-NeoX code)."""
        return self.hf.get_output_embeddings()

    @property
    def embed(self) -> nn.Module:
        return self.hf.get_input_embeddings()

    @property
    def pos_embed(self) -> nn.Module | None:
        return _get(self.hf, self.family.pos_embed) if self.family.pos_embed else None

    # weights in canonical orientation ------------------------------------------------------
    def _matrix(self, proj: nn.Module) -> torch.Tensor:
        """The projection's weight as ``[in, out]``."""
        return proj.weight if self.family.conv1d else proj.weight.T

    def W_O(self, layer: int) -> torch.Tensor:
        """``W_O[head, d_head, d_model]``: each head's slice of the attention output projection."""
        return self._matrix(self.o_proj(layer)).reshape(self.n_heads, self.d_head, self.d_model)

    def b_O(self, layer: int) -> torch.Tensor | None:
        """``b_O[d_model]``, or None when the projection has no bias."""
        return getattr(self.o_proj(layer), "bias", None)

    def W_out(self, layer: int) -> torch.Tensor:
        """``W_out[d_mlp, d_model]``: each MLP neuron's output direction."""
        return self._matrix(self.down_proj(layer))

    def b_out(self, layer: int) -> torch.Tensor | None:
        """``b_out[d_model]``, or None when the MLP's down projection has no bias."""
        return getattr(self.down_proj(layer), "bias", None)

    def W_QKV(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W_Q, W_K, W_V)``, each ``[head, d_model, d_head]`` (key/value heads repeated to query heads).

        Rotary embeddings and norms are not folded in.
        """
        attn, h, dh, d = self.attn(layer), self.n_heads, self.d_head, self.d_model
        name = self.family.name
        if name == "gpt2":
            w = attn.c_attn.weight  # Conv1D [d_model, 3 * d_model]
            q, k, v = w.split(h * dh, dim=1)
            return tuple(x.reshape(d, h, dh).permute(1, 0, 2) for x in (q, k, v))  # type: ignore[return-value]
        if name == "gpt_neox":
            w = attn.query_key_value.weight.reshape(h, 3, dh, d)  # per head: [q | k | v] rows
            return tuple(w[:, i].transpose(1, 2) for i in range(3))  # type: ignore[return-value]
        rep = h // self.n_kv_heads
        q = attn.q_proj.weight.reshape(h, dh, d).transpose(1, 2)
        k = attn.k_proj.weight.reshape(self.n_kv_heads, dh, d).transpose(1, 2).repeat_interleave(rep, 0)
        v = attn.v_proj.weight.reshape(self.n_kv_heads, dh, d).transpose(1, 2).repeat_interleave(rep, 0)
        return q, k, v

    @property
    def W_U(self) -> torch.Tensor:
        """``W_U[d_model, vocab]``: the unembedding."""
        return self.unembed.weight.T

    @property
    def b_U(self) -> torch.Tensor | None:
        return getattr(self.unembed, "bias", None)


def _first(cfg, *names: str, default=None):
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    if default is not None:
        return default
    raise ValueError(f"config of type {type(cfg).__name__} has none of {names}")


def adapter_for(hf: nn.Module) -> Adapter:
    """Detect the family of a loaded ``*ForCausalLM`` model by its module layout.

    Raises ``ValueError`` naming the supported families when the layout is unknown.
    """
    for family in FAMILIES.values():
        if all(_has(hf, p) for p in (family.blocks, family.final_norm)) and hf.get_output_embeddings() is not None:
            blocks = _get(hf, family.blocks)
            if len(blocks) and _has(blocks[0], family.o_proj) and _has(blocks[0], family.down_proj):
                return Adapter(hf, family)
    model_type = getattr(hf.config, "model_type", type(hf).__name__)
    raise ValueError(
        f"unsupported architecture {model_type!r}: the kit supports the families "
        f"{sorted(FAMILIES)} (GPT-2; GPT-NeoX/Pythia; Llama-like: Llama, Qwen2, Mistral, ...)"
    )
