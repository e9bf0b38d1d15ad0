"""What NeuronProbe's feature mode shows for one layer: directions over neurons, or a sparse dictionary.

Two kinds of feature set, one interface (:class:`FeatureSet`): where the features read, their
activation on each token (``acts[tokens, k]``), the tokens each promotes, and the edit that sets one
feature to a value.

- :class:`DirectionFeatures`: columns of ``Z[d_mlp, k]`` (SNMF, NMF, DiffMeans, ...). A feature's
  activation is the projection ``mlp_post · z``; clamping it to ``v`` moves ``mlp_post`` along ``z``
  until ``mlp_post · z == v``.
- :class:`DictionaryFeatures`: a trained SAE of ``mlp_post`` or a transcoder (``mlp_normalized`` ->
  ``mlp_out``), a :class:`kit.analysis.Dictionary`. A feature's activation is its encoder's output
  ``f_i = ReLU(W_enc[i] · x + b_enc[i])`` (``x - b_dec`` for an SAE), as the dictionary itself computes it;
  its unit decoder direction ``z_i`` is what it writes (to ``mlp_post`` for an SAE, to ``mlp_out`` for a
  transcoder). Clamping it to ``v`` replaces its term ``f_i z_i`` by ``v z_i`` where it writes, leaving
  the other features' terms and the dictionary's error as they are.

Glossary: ``tokens`` (every real token of every text, concatenated), ``k`` (features), ``d_mlp``,
``d_model``, ``vocab``.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_tensor
from ..interventions import Edit
from ._probe import _feature_edit

__all__ = ["FeatureSet", "DirectionFeatures", "DictionaryFeatures", "feature_set"]

# where each kind of dictionary reads and writes (kit capture names)
SITES = {"sae": ("mlp_post", "mlp_post"), "transcoder": ("mlp_normalized", "mlp_out")}


class FeatureSet:
    """The features of one layer (see the module docstring). ``reads``: the capture name their
    activations are computed from; ``k``: how many; ``name``: how the view names one ("SAE feature")."""

    reads: str = "mlp_post"
    name: str = "feature"
    legend: str = "feature activation"

    @property
    def k(self) -> int:
        raise NotImplementedError

    def acts(self, x: torch.Tensor) -> torch.Tensor:
        """``[tokens, k]`` from ``x[tokens, d]``, the activation named :attr:`reads`."""
        raise NotImplementedError

    def out_directions(self, model: Any, layer: int) -> torch.Tensor:
        """``[k, d_model]``: what each feature adds to the residual stream per unit of activation."""
        raise NotImplementedError

    def clamp_edits(self, model: Any, prompt: str, layer: int, unit: int, value: float) -> list[Edit]:
        """Interventions that set feature ``unit`` to ``value`` at every position of ``prompt``."""
        raise NotImplementedError


class DirectionFeatures(FeatureSet):
    """Features as directions over the neurons: ``Z[d_mlp, k]`` (e.g. SNMF's ``Z``)."""

    name = "feature"
    legend = "feature activation (mlp_post \u00b7 z)"

    def __init__(self, Z: torch.Tensor, label: str = "feature"):
        self.Z = Z  # [d_mlp, k]
        self.name = label

    @property
    def k(self) -> int:
        return self.Z.shape[1]

    def acts(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.Z

    def out_directions(self, model: Any, layer: int) -> torch.Tensor:
        return self.Z.T.to(model.device).float() @ model.adapter.W_out(layer).float()

    def clamp_edits(self, model: Any, prompt: str, layer: int, unit: int, value: float) -> list[Edit]:
        return [_feature_edit(layer, self.Z[:, unit], value)]


class DictionaryFeatures(FeatureSet):
    """The features of a trained SAE or transcoder (a :class:`kit.analysis.Dictionary`)."""

    def __init__(self, dictionary: Any):
        self.d = dictionary
        self.kind = dictionary.kind
        self.reads, self.writes = SITES[self.kind]
        self.name = "SAE feature" if self.kind == "sae" else "transcoder feature"
        self.legend = f"{self.name} activation (its encoder, on {self.reads})"
        self.Z = dictionary.Z.detach().float().cpu()  # [d_out, k]
        self.W_enc = dictionary.W_enc.detach().float().cpu()  # [k, d_in]
        self.b_enc = dictionary.b_enc.detach().float().cpu()  # [k]
        self.b_dec = dictionary.b_dec.detach().float().cpu()  # [d_out]

    @property
    def k(self) -> int:
        return self.Z.shape[1]

    def acts(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().cpu()
        if self.kind == "sae":
            x = x - self.b_dec
        return torch.relu(x @ self.W_enc.T + self.b_enc)  # [tokens, k]

    def out_directions(self, model: Any, layer: int) -> torch.Tensor:
        z = self.Z.T.to(model.device)  # [k, d_out]
        return z @ model.adapter.W_out(layer).float() if self.kind == "sae" else z

    def clamp_edits(self, model: Any, prompt: str, layer: int, unit: int, value: float) -> list[Edit]:
        z = self.Z[:, unit]  # [d_out]
        if self.kind == "sae":
            w, b, b_dec = self.W_enc[unit], float(self.b_enc[unit]), self.b_dec

            def fn(x: torch.Tensor) -> torch.Tensor:  # x: mlp_post [batch, pos, d_mlp]
                f = torch.relu((x.float() - b_dec.to(x.device)) @ w.to(x.device) + b)  # [batch, pos]
                return x + ((value - f)[..., None] * z.to(x.device)).to(x.dtype)

            return [Edit("mlp_post", layer, fn)]
        # a transcoder reads the MLP's input, which its own output cannot change: read it from a clean run
        tr = model.trace(prompt, capture=[self.reads], layers=[layer])
        f = self.acts(tr[self.reads, layer][0])[:, unit]  # [pos]
        delta = (value - f)[:, None] * z  # [pos, d_model]

        def add(x: torch.Tensor) -> torch.Tensor:  # x: mlp_out [1, pos, d_model]
            return x + delta.to(x.device, x.dtype)[None]

        return [Edit(self.writes, layer, add)]


def _is_dictionary(obj: Any) -> bool:
    return getattr(obj, "kind", None) in SITES and getattr(obj, "W_enc", None) is not None and hasattr(obj, "Z")


def feature_set(model: Any, layer: int, features: Any) -> FeatureSet:
    """One layer's features from what a user passes: ``Z[d_mlp, k]``, an object holding ``Z`` (an SNMF
    :class:`~kit.analysis.Decomposition`), or a trained SAE / transcoder (:class:`~kit.analysis.Dictionary`)."""
    if not 0 <= int(layer) < model.n_layers:
        raise ValueError(f"features given for layer {layer}; valid layers are 0..{model.n_layers - 1}")
    if _is_dictionary(features):
        kind = features.kind
        d_in, d_out = features.W_enc.shape[1], features.Z.shape[0]
        want = (model.d_mlp, model.d_mlp) if kind == "sae" else (model.d_model, model.d_model)
        if (d_in, d_out) != want:
            where = "mlp_post [d_mlp]" if kind == "sae" else "mlp_normalized -> mlp_out [d_model]"
            raise ValueError(f"the {kind} for layer {layer} maps {d_in} -> {d_out}; NeuronProbe shows an SAE of "
                             f"mlp_post [d_mlp={model.d_mlp}] or a transcoder of mlp_normalized -> mlp_out "
                             f"[d_model={model.d_model}], so it needs {want[0]} -> {want[1]} ({where})")
        if features.Z.shape[1] == 0:
            raise ValueError(f"the {kind} for layer {layer} has no features")
        return DictionaryFeatures(features)
    label = {"snmf": "SNMF feature", "nmf": "NMF feature"}.get(getattr(features, "method", None), "feature")
    z = getattr(features, "Z", features)
    z = check_tensor(z, f"features for layer {layer}", finite=False).detach().to("cpu", torch.float32)
    if z.ndim != 2 or z.shape[0] != model.d_mlp or z.shape[1] == 0:
        raise ValueError(
            f"features for layer {layer} must be Z[d_mlp={model.d_mlp}, k], an SNMF result, or a trained SAE / "
            f"transcoder (kit.analysis.train_sae / train_transcoder); got shape {tuple(z.shape)}"
        )
    return DirectionFeatures(check_tensor(z, f"features for layer {layer}"), label)
