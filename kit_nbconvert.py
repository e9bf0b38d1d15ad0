"""nbconvert's side of the kit's views: exported pages show each view's offline copy.

A kit view's output carries the live widget (``application/vnd.jupyter.widget-view+json``) and,
for pages like these, its offline page in a ``text/html`` fallback (``kit/widgets/_fallback.py``).
nbconvert's HTML exporter prefers the live widget whenever the notebook stores widget state
(``jupyter nbconvert --execute`` always does; JupyterLab and Notebook 7 do with "Save Jupyter
widget state" on), and then loads a widget manager from a CDN: offline, the view stays blank.

:class:`KitViews`, run after execution, drops the live widget from each kit output that has its
fallback (so the exporter takes the fallback) and drops those widgets' models from the stored
state; a notebook left with no other widget state loses its ``widgets`` metadata, so the page asks
no CDN for a widget manager. Every other widget and output is left as it is.

The kit installs ``etc/jupyter/jupyter_nbconvert_config.json`` (from the repository's
``jupyter-config/``), which adds it to ``HTMLExporter.preprocessors``; by hand::

    jupyter nbconvert --to html --HTMLExporter.preprocessors=kit_nbconvert.KitViews nb.ipynb

This module is a top-level one on purpose: importing it imports nothing of ``kit`` (nor torch), so
it costs nbconvert nothing and cannot break the export of notebooks that never used the kit.
"""

from __future__ import annotations

import json
from typing import Any

from nbconvert.preprocessors import Preprocessor

__all__ = ["KitViews", "kit_view_ids", "strip_kit_views"]

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
#: What the kit's fallbacks are made of (``kit/widgets/_fallback.py``): the offline page's frame, or the note.
FALLBACK_MARKS = ('class="tmk-fallback"', 'class="tmk-fallback-note"')


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _is_kit_fallback(data: dict[str, Any]) -> bool:
    html = _text(data.get("text/html"))
    return any(mark in html for mark in FALLBACK_MARKS)


def kit_view_ids(nb: Any) -> set[str]:
    """Model ids of the kit views displayed in `nb` with an offline fallback."""
    return {
        str(out["data"][VIEW].get("model_id"))
        for cell in nb.get("cells", [])
        for out in cell.get("outputs", [])
        if isinstance(out.get("data"), dict) and VIEW in out["data"] and _is_kit_fallback(out["data"])
    }


def _references(state: Any) -> set[str]:
    """Model ids a widget's state points at (``"IPY_MODEL_<id>"``: its layout, style, children)."""
    text = json.dumps(state)
    found, start = set(), 0
    while (i := text.find('"IPY_MODEL_', start)) >= 0:
        end = text.find('"', i + 1)
        found.add(text[i + len('"IPY_MODEL_'):end])
        start = end + 1
    return found


def strip_kit_views(nb: Any) -> int:
    """Let `nb`'s kit views export as their fallbacks (in place); returns how many outputs changed.

    Drops the live-widget entry of each kit output that has its fallback, then the stored state of
    those widgets and of the models only they point at (their layouts); the ``widgets`` metadata
    goes when nothing is left in it.
    """
    ids = kit_view_ids(nb)
    changed = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data")
            if isinstance(data, dict) and VIEW in data and _is_kit_fallback(data):
                del data[VIEW]
                changed += 1
    widgets = nb.get("metadata", {}).get("widgets")
    if not ids or not isinstance(widgets, dict) or not isinstance(widgets.get(STATE), dict):
        return changed
    models = widgets[STATE].get("state") or {}
    shown = {str(out["data"][VIEW].get("model_id")) for cell in nb.get("cells", []) for out in cell.get("outputs", [])
             if isinstance(out.get("data"), dict) and VIEW in out["data"]}
    refs = {mid: _references(m.get("state", {}) if isinstance(m, dict) else {}) for mid, m in models.items()}
    # what the widgets still shown need: every model reachable from them
    needed: set[str] = set()
    todo = list(shown & set(models))
    while todo:
        mid = todo.pop()
        if mid not in needed and mid in models:
            needed.add(mid)
            todo += refs[mid]
    # the kit views and what only they point at, then whatever points at those (a jslink between two views)
    dropped: set[str] = set()
    todo = list(ids)
    while todo:
        mid = todo.pop()
        if mid not in dropped and mid not in needed and mid in models:
            dropped.add(mid)
            todo += refs[mid]
            todo += [other for other, r in refs.items() if mid in r]
    for mid in dropped:
        del models[mid]
    if not shown:  # no live widget left on the page: no widget manager to load
        del nb["metadata"]["widgets"]
    return changed


class KitViews(Preprocessor):
    """nbconvert preprocessor: the kit's views export as their offline copies (see the module)."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        strip_kit_views(nb)
        return nb, resources
