"""Interactive views of a trace, for Jupyter (anywidget) and for static HTML.

Every widget shares the selection traits ``layer``, ``head`` and ``token`` (link views with
``ipywidgets.jslink``; observe clicks with ``widget.observe``), a ``theme`` trait
("auto" | "light" | "dark"), and ``to_html(path=None)``, which writes one self-contained page
that renders with no network. ``html_page([w1, w2], path)`` puts several on one page.
"""

from ._html import html_page
from .attention import AttentionViewer
from .circuit import CircuitDiagram
from .lens import ResidualLens
from .patching import PatchingHeatmap
from .probe import NeuronProbe

__all__ = ["AttentionViewer", "CircuitDiagram", "NeuronProbe", "PatchingHeatmap", "ResidualLens", "html_page"]
