"""Interactive views of a trace, for Jupyter (anywidget) and for static HTML.

Every widget shares the selection traits ``layer``, ``head`` and ``token`` (link views with
``ipywidgets.jslink``; observe clicks with ``widget.observe``), a ``theme`` trait
("auto" | "light" | "dark"), and ``to_html(path=None)``, which writes one self-contained page
that renders with no network. ``html_page([w1, w2], path)`` puts several on one page;
``Dashboard(w1, w2, ...)`` lays views out with their selections linked, in Jupyter and in its
``to_html()`` page.

- ``AttentionViewer(trace)``: every head's attention pattern; one head up close.
- ``ResidualLens(trace, target=None)``: the logit lens by layer and position, residual norms, and
  a direct-logit-attribution waterfall.
- ``PatchingHeatmap(result)``: activation patching or causal tracing, layer x position.
- ``NeuronProbe(model, texts, layer=...)``: a neuron's (or feature's) activations, decoded tokens,
  top examples, and a clamp slider rerun in Python.
- ``CircuitDiagram(trace)``: heads and MLPs as a graph weighted by attribution or patching.
- ``TrainingScrubber(history)``: a training run step by step (``kit.train.TrainingHistory``): losses
  with the phase change marked, every head's scores over time, one head's pattern at a chosen step.

Where no kernel runs a notebook (nbconvert HTML, GitHub), a displayed widget falls back to its
offline page in an iframe, or to a note with ``set_static_fallback("note")`` (see ``_fallback``).
A view's first arguments (a trace, or a model and a prompt) are resolved in one place (``_source``).
Hosts (JupyterLab, Notebook 7, marimo, VS Code, Colab, exports): docs/hosts.md.
"""

from ._fallback import set_static_fallback, static_fallback
from ._html import html_page
from .attention import AttentionViewer
from .circuit import CircuitDiagram
from .dashboard import Dashboard
from .lens import ResidualLens
from .patching import PatchingHeatmap
from .probe import NeuronProbe
from .scrubber import TrainingScrubber

__all__ = [
    "AttentionViewer", "CircuitDiagram", "Dashboard", "NeuronProbe", "PatchingHeatmap", "ResidualLens", "TrainingScrubber", "html_page",
    "set_static_fallback", "static_fallback",
]
