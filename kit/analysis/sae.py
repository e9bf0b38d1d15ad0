"""The sparse autoencoder of lesson 04, now part of :mod:`kit.analysis.dictionary`.

``from kit.analysis.sae import SAE, train_sae`` keeps working: :class:`SAE` is
:class:`~kit.analysis.dictionary.Dictionary` and :func:`train_sae` the same function (layout
``acts[d_mlp, n_tokens]``, the :class:`~kit.analysis.snmf.Decomposition` of SNMF, so label purity, top
tokens and steering treat SNMF, NMF and SAE features alike). New code: ``kit.analysis.train_sae``,
``kit.analysis.train_transcoder`` and ``kit.analysis.Dictionary``.
"""

from __future__ import annotations

from .dictionary import SAE, Dictionary, train_sae

__all__ = ["SAE", "Dictionary", "train_sae"]
