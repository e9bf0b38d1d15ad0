"""NeuronProbe: one MLP neuron (or feature) over several texts, what it writes, and what clamping it does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import traitlets

from ..analysis import decode_neurons, token_id
from ._base import STATIC, KitWidget
from ._features import FeatureSet, feature_set
from ._options import refuse_unknown
from ._probe import CLAMP_MULTIPLES, MLPActs, collect_acts, decode_residual, next_token_change
from ._tokens import visible_token
from ._wire import Encoded, encode_tensor

__all__ = ["NeuronProbe"]

DECODE_K = 8
STATIC_ACTS_BUDGET = 8 * 2**20  # to_html inlines every layer's activations up to this many bytes


def _mult_key(m: float) -> str:
    """The clamp multiple as it appears in blob keys (same text as the view's)."""
    return f"{float(m):g}"


class NeuronProbe(KitWidget):
    """What one MLP neuron responds to and what it does, over several texts.

    ``NeuronProbe(model, texts, layer=2, neuron=17)``:

    - every text's tokens shaded by the neuron's activation (``mlp_post``; blue positive, red
      negative, on a scale up to its largest ``|activation|`` over the texts);
    - a picker (``neuron``, ``layer``) with search by decoded token: type ``" Paris"`` to list the
      neurons whose output promotes a token containing it;
    - the neuron's decoded top tokens (its ``W_out`` row through the final norm's weight and the
      unembedding, as :func:`kit.analysis.decode_neurons`) and its top-activating tokens in the texts;
    - a clamp slider: ``clamp`` is the value the neuron is set to at every position of ``prompt``
      (default: the first text), in units of its largest ``|activation|`` over the texts (0 ablates
      it, 1 is its maximum, ``None`` is off). The model runs again in Python and the view shows how
      the next-token distribution changes; ``probe.prob(" token")`` reads it in Python.
    - feature mode (``mode="feature"``): ``features=`` for ``layer`` (or ``{layer: features}``) shows
      feature ``feature`` instead of a neuron, in the same panels. ``features`` is one of
      (see :mod:`kit.widgets._features`):

      - ``Z[d_mlp, k]`` or an SNMF / NMF result: a feature's activation on a token is ``mlp_post · z``;
        clamping it sets that dot product, moving ``mlp_post`` along ``z`` only;
      - a trained SAE of ``mlp_post`` or a transcoder (``mlp_normalized`` -> ``mlp_out``), from
        :func:`kit.analysis.train_sae` / :func:`~kit.analysis.train_transcoder`: a feature's activation
        is its encoder's output; it promotes what its decoder direction writes; clamping it to ``v``
        replaces its term ``f z`` by ``v z`` where the dictionary writes (``mlp_post`` for an SAE,
        ``mlp_out`` for a transcoder), keeping the other features and the dictionary's error.

    The selection traits are shared with other views: ``layer``, and ``text`` / ``token`` (a
    position in ``texts[text]``).
    """

    _esm = STATIC / "neuron_probe.js"
    _module = "neuron_probe"
    _links = ("layer",)  # its `token` is a position in texts[text], not in a shared prompt

    neuron = traitlets.Int(0, help="Selected neuron of the layer").tag(sync=True)
    feature = traitlets.Int(0, help="Selected feature (feature mode)").tag(sync=True)
    mode = traitlets.Enum(("neuron", "feature"), default_value="neuron", help="Show a neuron or a feature").tag(
        sync=True
    )
    text = traitlets.Int(0, help="Which text `token` refers to").tag(sync=True)
    clamp = traitlets.Float(
        None, allow_none=True, help="Clamp value in units of the largest |activation| (None: off)"
    ).tag(sync=True)
    _texts = traitlets.List().tag(sync=True)  # token texts per text
    _info = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        model: Any,
        texts: str | Sequence[str],
        layer: int = 0,
        neuron: int = 0,
        *,
        features: Any = None,
        feature: int = 0,
        mode: str | None = None,
        prompt: str | None = None,
        clamp: float | None = None,
        text: int = 0,
        token: int = -1,
        theme: str = "auto",
        height: int = 0,
        **unknown: Any,
    ) -> None:
        refuse_unknown(NeuronProbe, unknown)
        if not callable(getattr(model, "trace", None)) or not hasattr(model, "d_mlp"):
            raise TypeError(
                f"NeuronProbe needs a kit model (from kit.load) as its first argument; got {type(model).__name__}"
            )
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        if not texts:
            raise ValueError("NeuronProbe needs at least one text")
        self._model = model
        self._text_list = texts
        self._prompt = texts[0] if prompt is None else str(prompt)
        if features is not None and not isinstance(features, dict):
            features = {layer: features}  # one layer's features: for the layer shown first
        self._features = self._check_features(model, features)
        self._acts: dict[int, MLPActs] = {}
        self._inputs: dict[tuple[int, str], MLPActs] = {}
        self._feat_acts: dict[int, torch.Tensor] = {}
        self._effects: dict[tuple, dict[str, Any]] = {}
        self._n_layers, self._d_mlp = model.n_layers, model.d_mlp
        token_texts = [model.to_str_tokens(t) for t in texts]
        self._lengths = [len(t) for t in token_texts]
        if mode is None:
            mode = "feature" if layer in self._features else "neuron"
        super().__init__(
            _texts=token_texts,
            _info={
                "n_layers": model.n_layers,
                "d_mlp": model.d_mlp,
                "prompt": model.to_str_tokens(self._prompt),
                "features": {str(l): fs.k for l, fs in self._features.items()},
                "feature_names": {str(l): fs.name for l, fs in self._features.items()},
                "feature_legends": {str(l): fs.legend for l, fs in self._features.items()},
                "multiples": list(CLAMP_MULTIPLES),
                "decode_k": DECODE_K,
            },
            layer=layer,
            neuron=neuron,
            feature=feature,
            text=text,
            token=token,
            theme=theme,
            height=height,
        )
        self.mode = mode
        self.clamp = clamp

    @staticmethod
    def _check_features(model: Any, features: Any) -> dict[int, FeatureSet]:
        if features is None:
            return {}
        return {int(layer): feature_set(model, int(layer), f) for layer, f in features.items()}

    # --- data (computed when first needed, then cached)

    def _layer_acts(self, layer: int) -> MLPActs:
        if layer not in self._acts:
            self._acts[layer] = collect_acts(self._model, self._text_list, layer)
        return self._acts[layer]

    def _layer_feature_acts(self, layer: int) -> torch.Tensor:
        if layer not in self._feat_acts:
            fs = self._features[layer]
            if fs.reads == "mlp_post":
                x = self._layer_acts(layer).acts
            else:
                x = collect_acts(self._model, self._text_list, layer, name=fs.reads).acts  # [tokens, d]
            self._feat_acts[layer] = fs.acts(x)  # [tokens, k]
        return self._feat_acts[layer]

    @property
    def features(self) -> dict[int, FeatureSet]:
        """The feature set of each layer that has one (``{layer: FeatureSet}``)."""
        return dict(self._features)

    def _unit_acts(self, mode: str, layer: int, unit: int) -> torch.Tensor:
        """``[tokens]``: the unit's activation at every token of every text."""
        if mode == "feature":
            return self._layer_feature_acts(layer)[:, unit]
        return self._layer_acts(layer).acts[:, unit]

    def _unit_max(self, mode: str, layer: int, unit: int) -> float:
        top = float(self._unit_acts(mode, layer, unit).abs().max())
        return top if top > 0 else 1.0

    def _unit(self) -> tuple[str, int, int]:
        return self.mode, self.layer, self.feature if self.mode == "feature" else self.neuron

    # --- public API

    @property
    def texts(self) -> list[str]:
        return list(self._text_list)

    @property
    def prompt(self) -> str:
        """The prompt whose next token the clamp slider changes."""
        return self._prompt

    def activations(self) -> list[torch.Tensor]:
        """The selected neuron's (or feature's) activation on each text: a list of ``[pos]``."""
        mode, layer, unit = self._unit()
        acts = self._unit_acts(mode, layer, unit)
        off = self._layer_acts(layer).offsets
        return [acts[o : o + n] for o, n in zip(off, self._lengths)]

    def top_examples(self, k: int = 8) -> list[dict[str, Any]]:
        """The ``k`` tokens of the texts where the unit is most active: ``{text, pos, token, activation}``."""
        mode, layer, unit = self._unit()
        acts = self._unit_acts(mode, layer, unit)
        off = self._layer_acts(layer).offsets
        out = []
        for i in acts.topk(min(k, acts.numel())).indices.tolist():
            t = max(j for j, o in enumerate(off) if o <= i)
            out.append(
                {"text": t, "pos": i - off[t], "token": self._texts[t][i - off[t]], "activation": float(acts[i])}
            )
        return out

    def decoded(self, k: int = DECODE_K) -> list[str]:
        """Tokens the selected unit's output promotes most."""
        mode, layer, unit = self._unit()
        return self._model.to_str_tokens(self._decode(mode, layer, k)[unit])

    @property
    def clamp_value(self) -> float | None:
        """The activation the unit is clamped to (``clamp`` times its largest |activation|), or None."""
        if self.clamp is None:
            return None
        mode, layer, unit = self._unit()
        return float(self.clamp) * self._unit_max(mode, layer, unit)

    def effect(self) -> dict[str, Any] | None:
        """The next-token change under the current clamp (None when off): ``{tokens, before, after, kl, ...}``."""
        if self.clamp is None:
            return None
        return self._effect(*self._unit(), float(self.clamp))

    def prob(self, token: int | str) -> tuple[float, float]:
        """``(before, after)``: the probability of ``token`` as the prompt's next token, without and with the clamp."""
        tid = token_id(self._model, token)
        eff = self._effect(*self._unit(), float(self.clamp if self.clamp is not None else 0.0))
        before = float(eff["before_all"][tid])
        return before, (float(eff["after_all"][tid]) if self.clamp is not None else before)

    # --- helpers behind the blobs

    def _decode(self, mode: str, layer: int, k: int = DECODE_K) -> torch.Tensor:
        if mode == "feature":
            return decode_residual(self._model, self._features[layer].out_directions(self._model, layer), k)
        return decode_neurons(self._model, k=k, layers=[layer]).promoted[0]

    def _effect(self, mode: str, layer: int, unit: int, multiple: float) -> dict[str, Any]:
        key = (mode, layer, unit, _mult_key(multiple))
        if key not in self._effects:
            value = multiple * self._unit_max(mode, layer, unit)
            if mode == "feature":
                edits = self._features[layer].clamp_edits(self._model, self._prompt, layer, unit, value)
                eff = next_token_change(self._model, self._prompt, layer, value, edits=edits)
            else:
                eff = next_token_change(self._model, self._prompt, layer, value, neuron=unit)
            self._effects[key] = {**eff, "value": value, "multiple": multiple}
        return self._effects[key]

    # --- validation

    def _limits(self) -> dict[str, int]:
        if not hasattr(self, "_lengths"):
            return {}
        text = self._trait_values.get("text", 0)
        return {
            "layer": self._n_layers,
            "head": self._model.n_heads,
            "token": self._lengths[min(text, len(self._lengths) - 1)],
        }

    @traitlets.validate("neuron")
    def _check_neuron(self, proposal: traitlets.Bunch) -> int:
        value = int(proposal["value"])
        if hasattr(self, "_d_mlp") and not 0 <= value < self._d_mlp:
            raise traitlets.TraitError(f"neuron must be in 0..{self._d_mlp - 1}; got {value}")
        return value

    @traitlets.validate("feature")
    def _check_feature(self, proposal: traitlets.Bunch) -> int:
        value = int(proposal["value"])
        z = getattr(self, "_features", {}).get(self._trait_values.get("layer", 0))
        limit = z.k if z is not None else max([f.k for f in getattr(self, "_features", {}).values()] or [1])
        if not 0 <= value < limit:
            raise traitlets.TraitError(f"feature must be in 0..{limit - 1}; got {value}")
        return value

    @traitlets.validate("mode")
    def _check_mode(self, proposal: traitlets.Bunch) -> str:
        if proposal["value"] == "feature" and self._trait_values.get("layer", 0) not in getattr(self, "_features", {}):
            have = sorted(getattr(self, "_features", {}))
            raise traitlets.TraitError(
                f"feature mode needs features for layer {self._trait_values.get('layer', 0)}; "
                + (f"features were given for layers {have}" if have
                   else "pass features={layer: Z[d_mlp, k]} or a trained SAE / transcoder")
            )
        return proposal["value"]

    @traitlets.validate("clamp")
    def _check_clamp(self, proposal: traitlets.Bunch) -> float | None:
        value = proposal["value"]
        if value is not None and not math.isfinite(value):
            raise traitlets.TraitError(
                f"clamp must be a finite multiple of the largest |activation| (e.g. 0 ablates, 1 is the maximum) "
                f"or None for off; got {value}"
            )
        return value

    @traitlets.validate("text")
    def _check_text(self, proposal: traitlets.Bunch) -> int:
        value = int(proposal["value"])
        if hasattr(self, "_lengths") and not 0 <= value < len(self._lengths):
            raise traitlets.TraitError(f"text must be in 0..{len(self._lengths) - 1}; got {value}")
        return value

    @traitlets.observe("layer")
    def _on_layer(self, change: traitlets.Bunch) -> None:
        if self.mode == "feature" and change["new"] not in self._features:
            self.mode = "neuron"

    @traitlets.observe("text")
    def _on_text(self, change: traitlets.Bunch) -> None:
        if self.token >= self._lengths[change["new"]]:
            self.token = -1

    # --- blobs

    def _blob_keys(self) -> list[str]:
        per_layer = sum(self._lengths) * self._d_mlp * 2
        layers = range(self._n_layers) if per_layer * self._n_layers <= STATIC_ACTS_BUDGET else [self.layer]
        keys = [f"{kind}/{l}" for l in layers for kind in ("acts", "decode")]
        keys += [f"{kind}/{l}" for l in self._features for kind in ("feat", "fdecode")]
        mode, layer, unit = self._unit()
        keys += [f"clamp/{mode}/{layer}/{unit}/{_mult_key(m)}" for m in CLAMP_MULTIPLES]
        return keys

    def _make_blob(self, key: str) -> Encoded:
        parts = key.split("/")
        if parts[0] == "clamp":
            return self._clamp_blob(key, parts)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= self._n_layers:
            raise KeyError(key)
        kind, layer = parts[0], int(parts[1])
        if kind == "acts":
            return encode_tensor(self._layer_acts(layer).acts, "float16")
        if kind == "feat" and layer in self._features:
            return encode_tensor(self._layer_feature_acts(layer), "float16")
        if kind == "decode" or kind == "fdecode" and layer in self._features:
            ids = self._decode("feature" if kind == "fdecode" else "neuron", layer)
            unique, index = torch.unique(ids, return_inverse=True)
            enc = encode_tensor(index, "int32")
            return Encoded({**enc.meta, "vocab": self._model.to_str_tokens(unique)}, enc.data)
        raise KeyError(key)

    def _clamp_blob(self, key: str, parts: list[str]) -> Encoded:
        """``clamp/<mode>/<layer>/<unit>/<multiple>``: next-token probabilities ``[token, (before, after)]``."""
        try:
            _, mode, layer, unit, multiple = parts[0], parts[1], int(parts[2]), int(parts[3]), float(parts[4])
        except (IndexError, ValueError):
            raise KeyError(key) from None
        if mode == "feature":
            ok = layer in self._features and 0 <= unit < self._features[layer].k
        else:
            ok = mode == "neuron" and 0 <= layer < self._n_layers and 0 <= unit < self._d_mlp
        if not ok or len(parts) != 5:
            raise KeyError(key)
        eff = self._effect(mode, layer, unit, multiple)
        enc = encode_tensor(torch.stack([eff["before"], eff["after"]], 1), "float16")
        meta = {**enc.meta, "tokens": eff["tokens"], "kl": eff["kl"], "value": eff["value"], "multiple": multiple}
        return Encoded(meta, enc.data)

    def __repr__(self) -> str:
        mode, layer, unit = self._unit()
        what = f"{self._features[layer].name} {unit}" if mode == "feature" else f"neuron {unit}"
        clamp = "" if self.clamp is None else f", clamp={self.clamp:g}x max"
        prompt = "".join(self._model.to_str_tokens(self._prompt)[-6:])
        return (
            f"NeuronProbe(layer {layer} {what}, {len(self._text_list)} texts, next token after "
            f"{visible_token(prompt)!s}{clamp})"
        )
