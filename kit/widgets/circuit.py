"""CircuitDiagram: embeddings, heads, MLPs and logits as a graph weighted by an attribution or patching result."""

from __future__ import annotations

import operator
from typing import Any

import torch
import traitlets

from ..analysis import direct_logit_attribution, token_id
from ._base import STATIC, KitWidget
from ._circuit import KINDS, head_edges, measured_edges, weights_from
from ._options import refuse_unknown
from ._patterns import from_source
from ._probe import decode_directions
from ._source import resolve_source
from ._tokens import visible_token
from ._wire import Encoded, encode_tensor, is_causal

__all__ = ["CircuitDiagram"]

CAPTURE = ["pattern", "resid_pre", "resid_post", "head_out", "mlp_out", "mlp_post"]
TOP_NEURONS = 5


class CircuitDiagram(KitWidget):
    """The model as a circuit: ``embed``, each layer's heads and MLP, and ``logits``, drawn as an SVG
    graph whose nodes and edges are weighted by a result from :mod:`kit.analysis`.

    ``CircuitDiagram(trace)`` (or ``CircuitDiagram(model, prompt)``) weights nodes by their direct
    logit attribution to ``answer`` (default: the model's top prediction) at position ``pos``
    (default: the last), computed with :func:`kit.analysis.direct_logit_attribution`. Or pass
    ``attribution=`` (an Attribution), ``patching=`` (``activation_patching(..., kind="heads")``)
    and/or ``mlp_patching=`` (``kind="mlp"``), or ``weights={"heads": [layer, head], "mlps": [layer],
    "embed": float}``.

    What the picture means (details in :mod:`kit.widgets._circuit`):

    - node colour and size: its weight ``w`` (blue positive, red negative, size ``|w|``);
    - an edge into the logits: ``w`` itself (for direct attribution, exactly the node's direct effect);
    - a head-to-head edge: ``composition * sqrt(|w_from| * |w_to|)``, the largest of the Q/K/V
      composition scores of the pair scaled by how much both heads matter: a weight-based
      heuristic, not a measured path effect; the ``max_edges`` strongest are kept. Or pass
      ``edges=[((l1, h1), (l2, h2), weight), ...]``: measured edges (e.g. path-patching effects,
      :func:`kit.analysis.path_patching`), drawn as given (``|weight|``) and labelled ``edge_label``.

    The ``threshold`` slider (a share of the largest weight) dims weaker nodes and hides weaker
    edges. Clicking a node selects it (``node``: ``"embed"``, ``"L3.H2"``, ``"L3.MLP"``,
    ``"logits"``) and shows its details: a head's attention pattern, an MLP's top neurons (by
    direct effect, or by activation) with their decoded tokens. Clicking a head also sets ``layer``
    and ``head``; an MLP sets ``layer``.
    """

    _esm = STATIC / "circuit_diagram.js"
    _module = "circuit_diagram"
    _links = ("layer", "head")

    threshold = traitlets.Float(0.2, help="Hide edges (and dim nodes) below this share of the largest weight").tag(
        sync=True
    )
    node = traitlets.Unicode("", help='Selected node: "embed", "L<l>.H<h>", "L<l>.MLP", "logits" or ""').tag(sync=True)
    _graph = traitlets.Dict().tag(sync=True)
    _weights = traitlets.Dict().tag(sync=True)  # float16 [1 + layer * head + layer]: embed, heads, mlps
    _edges = traitlets.Dict().tag(sync=True)  # {pairs: int32 [E, 2], weight: float16 [E], kind: int32 [E]}
    _details = traitlets.Dict().tag(sync=True)  # {mlp: [[{neuron, value, tokens}] per layer], basis}

    def __init__(
        self,
        source: Any,
        prompt: str | None = None,
        *,
        answer: int | str | None = None,
        contrast: int | str | None = None,
        attribution: Any = None,
        patching: Any = None,
        mlp_patching: Any = None,
        weights: dict | None = None,
        pos: int = -1,
        batch_index: int = 0,
        threshold: float = 0.2,
        max_edges: int = 400,
        edges: Any = None,
        edge_label: str = "measured path effect",
        node: str = "",
        layer: int = 0,
        head: int = 0,
        token: int = -1,
        theme: str = "auto",
        height: int = 0,
        **unknown: Any,
    ) -> None:
        refuse_unknown(CircuitDiagram, unknown)
        model, trace = self._model_and_trace(source, prompt)
        self._model, self._trace, self._b = model, trace, batch_index
        L, H = model.n_layers, model.n_heads
        self._L, self._H = L, H
        if trace is not None and not 0 <= batch_index < trace.batch:
            raise ValueError(f"batch_index must be in 0..{trace.batch - 1}; got {batch_index}")
        if trace is not None:  # a position is checked, never wrapped around silently
            n_pos = int(trace.lengths[batch_index])
            try:
                pos = operator.index(pos)  # ints and numpy integers
            except TypeError:
                raise TypeError(f"pos must be an integer position; got {type(pos).__name__}") from None
            if not -n_pos <= pos < n_pos:
                raise ValueError(f"position {pos!r} is out of range: the prompt has {n_pos} tokens "
                                 f"(valid positions {-n_pos}..{n_pos - 1})")
        if attribution is None and patching is None and mlp_patching is None and weights is None:
            if trace is None:
                raise ValueError("CircuitDiagram(model) needs a prompt, or weights=/attribution=/patching= to draw")
            missing = [n for n in CAPTURE[1:] if n not in trace.names]
            if missing or len(trace.layers) != L:
                raise ValueError(f"the trace lacks {missing} for the attribution: trace with capture={CAPTURE}")
            n = int(trace.lengths[batch_index])
            p = pos % n
            if answer is None:
                answer = int(trace.logits[batch_index, p].argmax())
            attribution = direct_logit_attribution(trace, answer, contrast, pos=pos, neurons=True)
            self._pos = p
        else:
            self._pos = None if trace is None else pos % int(trace.lengths[batch_index])
        graph = weights_from(L, H, attribution, patching, mlp_patching, weights, batch_index)
        self._graph_data = graph
        self._attribution = attribution
        if edges is None:
            pairs, strength, kind = head_edges(model, graph.heads, max_edges)
            kinds, edge_note = list(KINDS), None
        else:
            pairs, strength, kind = measured_edges(edges, L, H)
            kinds, edge_note = ["path"], f"{edge_label} (measured)"
        self._edge_list = (pairs, strength, kind)
        flat = torch.cat([torch.tensor([graph.embed]), graph.heads.flatten(), graph.mlps])
        tokens = [] if trace is None else [str(t) for t in trace.tokens[batch_index]]
        self._tokens = tokens
        self._has_patterns = trace is not None and "pattern" in trace.names and len(trace.layers) == L
        target = None
        if answer is not None:
            target = model.to_str_tokens([token_id(model, answer)])[0]
        super().__init__(
            _graph={
                "n_layers": L,
                "n_heads": H,
                "label": graph.label,
                "logit": graph.logit,
                "target": target,
                "contrast": None if contrast is None else str(contrast),
                "tokens": tokens,
                "pos": self._pos,
                "patterns": self._has_patterns,
                "kinds": kinds,
                **({"edge_note": edge_note} if edge_note else {}),
            },
            _weights=encode_tensor(flat, "float16").envelope(),
            _edges={
                "pairs": encode_tensor(pairs, "int32").envelope(),
                "weight": encode_tensor(strength, "float16").envelope(),
                "kind": encode_tensor(kind, "int32").envelope(),
            },
            _details=self._mlp_details(),
            threshold=threshold,
            node=node,
            layer=layer,
            head=head,
            token=token,
            theme=theme,
            height=height,
        )

    @staticmethod
    def _model_and_trace(source: Any, prompt: str | None) -> tuple[Any, Any]:
        resolved = resolve_source("CircuitDiagram", source, prompt, CAPTURE, model_alone="weights=")
        if resolved.trace is not None and resolved.model is None:
            raise TypeError(f"CircuitDiagram takes a kit trace (from model.trace(...)); got {type(source).__name__}")
        return resolved.model, resolved.trace

    def _mlp_details(self) -> dict[str, Any]:
        """Per layer, the MLP's top neurons: by direct effect when known, else by activation at ``pos``."""
        attr, tr, b = self._attribution, self._trace, self._b
        if attr is not None and getattr(attr, "neurons", None) is not None:
            scores, basis = attr.neurons[b].float(), "direct effect"
        elif tr is not None and "mlp_post" in tr.names and len(tr.layers) == self._L and self._pos is not None:
            scores = torch.stack([tr["mlp_post", l][b, self._pos].float().cpu() for l in range(self._L)])
            basis = "activation"
        else:
            return {"mlp": [], "basis": None}
        top = scores.abs().topk(min(TOP_NEURONS, scores.shape[1]), dim=1).indices  # [layer, n]
        out = []
        for l in range(self._L):
            one_hot = torch.zeros(top.shape[1], self._model.d_mlp)
            one_hot[torch.arange(top.shape[1]), top[l]] = 1.0
            ids = decode_directions(self._model, l, one_hot, k=4)
            out.append(
                [
                    {"neuron": int(n), "value": float(scores[l, n]), "tokens": self._model.to_str_tokens(ids[i])}
                    for i, n in enumerate(top[l].tolist())
                ]
            )
        return {"mlp": out, "basis": basis}

    # --- public views

    @property
    def heads(self) -> torch.Tensor:
        """``[layer, head]``: each head's weight."""
        return self._graph_data.heads.clone()

    @property
    def mlps(self) -> torch.Tensor:
        """``[layer]``: each MLP's weight."""
        return self._graph_data.mlps.clone()

    def edges(self, min_weight: float = 0.0) -> list[tuple[str, str, float, str]]:
        """Head-to-head edges ``(from, to, weight, composition kind)``, strongest first."""
        pairs, strength, kind = self._edge_list
        name = lambda i: f"L{i // self._H}.H{i % self._H}"  # noqa: E731
        return [
            (name(int(s)), name(int(d)), float(w), KINDS[int(k)])
            for (s, d), w, k in zip(pairs.tolist(), strength, kind)
            if float(w) >= min_weight
        ]

    # --- validation and sync

    def _limits(self) -> dict[str, int]:
        if not hasattr(self, "_L"):
            return {}
        limits = {"layer": self._L, "head": self._H}
        if self._tokens:
            limits["token"] = len(self._tokens)
        return limits

    @traitlets.validate("threshold")
    def _check_threshold(self, proposal: traitlets.Bunch) -> float:
        value = float(proposal["value"])
        if not 0.0 <= value <= 1.0:
            raise traitlets.TraitError(f"threshold is a share of the largest weight, in 0..1; got {value}")
        return value

    @traitlets.validate("node")
    def _check_node(self, proposal: traitlets.Bunch) -> str:
        value = proposal["value"]
        if value in ("", "embed", "logits") or not hasattr(self, "_L"):
            return value
        import re

        m = re.fullmatch(r"L(\d+)\.(?:H(\d+)|MLP)", value)
        if not m or int(m.group(1)) >= self._L or (m.group(2) is not None and int(m.group(2)) >= self._H):
            raise traitlets.TraitError(
                f'node must be "", "embed", "logits", "L<layer>.H<head>" or "L<layer>.MLP"; got {value!r}'
            )
        return value

    @traitlets.observe("node")
    def _on_node(self, change: traitlets.Bunch) -> None:
        import re

        m = re.fullmatch(r"L(\d+)\.(?:H(\d+)|MLP)", change["new"])
        if m:
            self.layer = int(m.group(1))
            if m.group(2) is not None:
                self.head = int(m.group(2))

    # --- blobs: a layer's attention patterns for the details panel

    def _blob_keys(self) -> list[str]:
        return [f"pattern/{l}" for l in range(self._L)] if self._has_patterns else []

    def _make_blob(self, key: str) -> Encoded:
        kind, _, index = key.partition("/")
        if kind != "pattern" or not index.isdigit() or int(index) >= self._L or not self._has_patterns:
            raise KeyError(key)
        attention = self._patterns()
        p = attention.patterns[int(index)]
        return encode_tensor(p, "uint8", layout="tril" if is_causal(p) else "dense")

    def _patterns(self) -> Any:
        if not hasattr(self, "_attention"):
            self._attention = from_source(self._trace, None, self._b)
        return self._attention

    def __repr__(self) -> str:
        g = self._graph_data
        top = g.heads.abs().flatten().topk(min(3, g.heads.numel())).indices.tolist()
        best = ", ".join(f"L{i // self._H}.H{i % self._H} {float(g.heads.flatten()[i]):+.3g}" for i in top)
        target = f" to {visible_token(self._graph['target'])}" if self._graph.get("target") else ""
        return (
            f"CircuitDiagram({self._L} layers x {self._H} heads, {g.label}{target}; strongest heads: {best}; "
            f"{len(self._edge_list[1])} head-to-head edges; node={self.node!r})"
        )
