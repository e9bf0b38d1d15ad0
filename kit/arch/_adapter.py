"""The :class:`Adapter`: canonical access to one loaded model, driven by its family row."""

from __future__ import annotations

import torch
from torch import nn

from . import _norms
from ._families import Family, family_for_config


def _get(root: nn.Module, path: str) -> nn.Module:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _first(cfg, *names: str, default=None):
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    if default is not None:
        return default
    raise ValueError(f"config of type {type(cfg).__name__} has none of {names}")


class Adapter:
    """Canonical access to one loaded Hugging Face causal LM.

    Attributes: ``family`` (a :class:`Family` row), ``blocks`` (the decoder blocks in order),
    ``n_layers``, ``n_heads``, ``n_kv_heads``, ``d_head``, ``d_model``, ``d_mlp``, ``n_ctx``,
    ``vocab_size``, ``parallel`` (attention and MLP read the same block input), ``rotary``,
    ``final_softcap`` (Gemma 2/3's final logit soft-capping, or None).
    """

    def __init__(self, hf: nn.Module, family: Family):
        self.hf = hf
        self.family = family
        cfg = hf.config
        self.blocks: list[nn.Module] = list(_get(hf, family.blocks))
        self.n_layers = len(self.blocks)
        self.n_heads = int(_first(cfg, "num_attention_heads", "n_head"))
        kv = _first(cfg, "num_key_value_heads", "num_kv_heads", default=self.n_heads) or self.n_heads
        if family.qkv == "falcon" and getattr(cfg, "multi_query", False) and not cfg.new_decoder_architecture:
            kv = 1
        self.n_kv_heads = int(kv)
        self.d_model = int(_first(cfg, "hidden_size", "n_embd"))
        self.d_head = self._matrix(self.o_proj(0)).shape[0] // self.n_heads
        self.d_mlp = self._matrix(self.down_proj(0)).shape[0]
        self.n_ctx = int(_first(cfg, "n_positions", "max_position_embeddings"))
        self.vocab_size = int(self.unembed.weight.shape[0])
        self.parallel = family.parallel
        self.rotary = family.rotary
        self.final_softcap = getattr(cfg, "final_logit_softcapping", None)

    def __repr__(self) -> str:
        return f"Adapter({self.family.name}, n_layers={self.n_layers}, parallel={self.parallel})"

    # modules -------------------------------------------------------------------------------
    def _block_part(self, layer: int, path: str | None) -> nn.Module | None:
        return None if path is None else _get(self.blocks[layer], path)

    def attn(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.attn)

    def mlp(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.mlp)

    def o_proj(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.o_proj)

    def down_proj(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.down_proj)

    def mlp_in(self, layer: int) -> nn.Module:
        return _get(self.blocks[layer], self.family.mlp_in)

    def attn_norm(self, layer: int) -> nn.Module | None:
        return self._block_part(layer, self.family.attn_norm)

    def mlp_norm(self, layer: int) -> nn.Module | None:
        return self._block_part(layer, self.family.mlp_norm)

    def attn_post_norm(self, layer: int) -> nn.Module | None:
        return self._block_part(layer, self.family.attn_post_norm)

    def mlp_post_norm(self, layer: int) -> nn.Module | None:
        return self._block_part(layer, self.family.mlp_post_norm)

    def resid_mid_at(self, layer: int) -> nn.Module | None:
        """A module whose first input is ``resid_mid`` (None for parallel blocks, which have none)."""
        return self._block_part(layer, self.family.resid_mid_at)

    def attn_out_at(self, layer: int) -> nn.Module:
        """The module whose output attention adds to the stream (the post-attention norm if any)."""
        return self.attn_post_norm(layer) or self.attn(layer)

    def mlp_out_at(self, layer: int) -> nn.Module:
        return self.mlp_post_norm(layer) or self.mlp(layer)

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

    @property
    def norm_offset(self) -> float:
        """Added to an RMSNorm's weight to give its gain (1 for Gemma's ``1 + weight``, else 0)."""
        return self.family.norm_offset

    def norm_gain(self, norm: nn.Module) -> torch.Tensor | None:
        """``gain[d]`` (float32) of one of this model's norms (Gemma's ``1 + weight`` included)."""
        return _norms.norm_gain(norm, 0.0 if _norms.is_layernorm(norm) else self.norm_offset)

    def frozen_final_norm(self, resid: torch.Tensor):
        """``(linear, bias)``: the final norm with its scale frozen at ``resid[..., d_model]``."""
        norm = self.final_norm
        return _norms.frozen_norm(norm, resid, 0.0 if _norms.is_layernorm(norm) else self.norm_offset)

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm, unembedding and (Gemma 2/3) final soft-capping of ``resid[..., d_model]``."""
        logits = self.unembed(self.final_norm(resid))
        if self.final_softcap is not None:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits

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
        """``W_out[d_mlp, d_model]``: each MLP neuron's output direction (before any post-MLP norm)."""
        return self._matrix(self.down_proj(layer))

    def b_out(self, layer: int) -> torch.Tensor | None:
        """``b_out[d_model]``, or None when the MLP's down projection has no bias."""
        return getattr(self.down_proj(layer), "bias", None)

    def head_out(self, z: torch.Tensor, layer: int, post_scale: torch.Tensor | None = None) -> torch.Tensor:
        """``head_out[batch, pos, head, d_model]`` from ``z[batch, pos, head, d_head]``.

        Where the block normalises attention's output before adding it (Gemma 2/3, OLMo 2),
        ``post_scale[batch, pos, 1]`` is that norm's divisor in the traced pass, and each head's
        share is ``z_h W_O[h] * gain / post_scale``, so the heads sum to ``attn_out`` exactly.
        """
        W_O = self.W_O(layer).detach()
        if W_O.is_meta:
            raise ValueError(f"head_out of layer {layer} needs that layer's output projection, which device_map "
                             f"offloaded (its weights are not in memory); read z instead, or load the model "
                             f"without offloading that layer")
        out = torch.einsum("bphd,hdm->bphm", z, W_O.to(z.dtype))
        norm = self.attn_post_norm(layer)
        if norm is None:
            return out
        if post_scale is None:
            raise ValueError("head_out of a block with a norm after attention needs that norm's scale")
        gain = self.norm_gain(norm)
        gain = torch.ones(self.d_model, device=z.device) if gain is None else gain.to(z.device)
        return (out.float() * gain / post_scale[:, :, None].float()).to(z.dtype)

    def W_QKV(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W_Q, W_K, W_V)``, each ``[head, d_model, d_head]`` (key/value heads repeated to query heads).

        Rotary embeddings, q/k norms and the input norm are not folded in.
        """
        attn, h, kv, dh, d = self.attn(layer), self.n_heads, self.n_kv_heads, self.d_head, self.d_model
        layout = self.family.qkv
        if layout == "gpt2":
            w = attn.c_attn.weight  # Conv1D [d_model, 3 * d_model]
            q, k, v = w.split(h * dh, dim=1)
            return tuple(x.reshape(d, h, dh).permute(1, 0, 2) for x in (q, k, v))  # type: ignore[return-value]
        if layout == "neox":
            w = attn.query_key_value.weight.reshape(h, 3, dh, d)  # per head: [q | k | v] rows
            return tuple(w[:, i].transpose(1, 2) for i in range(3))  # type: ignore[return-value]
        if layout == "phi3":
            wq, wk, wv = attn.qkv_proj.weight.split([h * dh, kv * dh, kv * dh], dim=0)
        elif layout == "falcon":
            w = attn.query_key_value.weight
            if self.hf.config.new_decoder_architecture:  # per kv group: its queries, then k, then v
                g = w.reshape(kv, h // kv + 2, dh, d)
                wq, wk, wv = g[:, :-2].reshape(h * dh, d), g[:, -2].reshape(kv * dh, d), g[:, -1].reshape(kv * dh, d)
            elif kv == 1:  # multi-query: [q (h heads) | k | v]
                wq, wk, wv = w.split([h * dh, dh, dh], dim=0)
            else:  # interleaved per head
                g = w.reshape(h, 3, dh, d)
                wq, wk, wv = (g[:, i].reshape(h * dh, d) for i in range(3))
        else:
            wq, wk, wv = attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight
        rep = h // kv
        q = wq.reshape(h, dh, d).transpose(1, 2)
        k = wk.reshape(kv, dh, d).transpose(1, 2).repeat_interleave(rep, 0)
        v = wv.reshape(kv, dh, d).transpose(1, 2).repeat_interleave(rep, 0)
        return q, k, v

    @property
    def W_U(self) -> torch.Tensor:
        """``W_U[d_model, vocab]``: the unembedding."""
        return self.unembed.weight.T

    @property
    def b_U(self) -> torch.Tensor | None:
        return getattr(self.unembed, "bias", None)


def adapter_for(hf: nn.Module) -> Adapter:
    """The adapter of a loaded ``*ForCausalLM`` model, from its ``config.model_type``.

    Raises ``ValueError`` naming the supported families (and how to add one) when the family is
    unknown, or saying why a known family's variant is refused.
    """
    family = family_for_config(hf.config)
    if hf.get_output_embeddings() is None:
        raise ValueError(f"{type(hf).__name__} has no output embedding: load a *ForCausalLM model")
    try:
        _get(hf, family.blocks)
    except AttributeError as err:
        raise ValueError(f"{type(hf).__name__} does not have the {family.name} layout ({family.blocks}): {err}. "
                         f"Load it with AutoModelForCausalLM.") from err
    return Adapter(hf, family)
