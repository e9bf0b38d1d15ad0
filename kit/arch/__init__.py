"""Architecture adapters: where each canonical piece lives inside a Hugging Face model.

One row per family in a table (:data:`FAMILIES`, ``kit/arch/_families.py``) maps the kit's
names (blocks, attention, MLP, their norms, the output projections, final norm, unembedding) to
module paths, so the tracer hooks the real ``transformers`` modules and never re-implements a
model. A family is found from ``config.model_type``; an unknown one is refused with the list of
supported families. ``docs/families.md`` has the table and a worked example of adding a family.
"""

from __future__ import annotations

from ._adapter import Adapter, adapter_for
from ._families import FAMILIES, Family, family_for_config, supported_text

__all__ = ["Adapter", "adapter_for", "Family", "FAMILIES", "family_for_config", "supported_text"]
