"""Architecture adapters: where each canonical piece lives inside a Hugging Face model.

One small table per family maps the kit's names (blocks, attention, MLP, the output projection
of attention, the MLP's down projection, final norm, unembedding) to module paths, so the tracer
hooks the real ``transformers`` modules and never re-implements a model.

Supported families:

* ``gpt2``: GPT-2 (``transformer.h[i]``; Conv1D weights stored as ``[in, out]``).
* ``gpt_neox``: GPT-NeoX / Pythia (parallel attention and MLP, rotary).
* ``llama``: Llama-like decoders (Llama, Qwen2/3, Mistral, ...: RMSNorm, rotary,
  grouped-query attention, gated MLP) with ``model.layers[i].self_attn.o_proj`` and
  ``model.layers[i].mlp.down_proj``.
"""

from __future__ import annotations

from ._adapter import Adapter, adapter_for

__all__ = ["Adapter", "adapter_for"]
