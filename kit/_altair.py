"""Altair with no network: the renderer every chart of the kit is shown with.

Altair's default renderer leaves the drawing to the front end, which loads vega from a CDN
(``cdn.jsdelivr.net``) wherever it has no vega of its own for this Vega-Lite version: offline,
the chart is an error. :func:`offline_charts` switches altair to the ``"kit-offline"`` renderer
instead: the kernel draws each chart with ``vl-convert`` (no browser, no network) to SVG and to a
PNG. Hosts show the SVG where they trust the notebook
and the PNG where they do not (JupyterLab and Notebook 7 render no SVG of an untrusted notebook,
such as a lesson opened from disk): JupyterLab, Notebook 7, VS Code, Colab, an nbconvert export,
GitHub. What is lost is interactivity inside the chart (tooltips, zoom). marimo draws altair
charts itself with the vega it ships, offline, and is left alone.

Making a chart with the kit (``kit.charts``, ``TrainLog.chart()``) calls it, once, and only
while altair's renderer is its default: a renderer you enabled yourself is kept.
"""

from __future__ import annotations

__all__ = ["offline_charts", "RENDERER"]

RENDERER = "kit-offline"
_done = False


def _render(spec: dict, **metadata) -> tuple[dict, dict]:
    """Altair renderer: ``image/svg+xml`` and ``image/png`` of the chart, drawn in the kernel."""
    from altair.vegalite.v6.display import png_renderer, svg_renderer

    svg = svg_renderer(spec, **metadata)
    png = png_renderer(spec, **metadata)
    png_data, png_meta = png if isinstance(png, tuple) else (png, {})
    return {**png_data, **svg}, png_meta


def offline_charts(force: bool = False) -> str:
    """Render altair charts to SVG in the kernel (no CDN); returns the renderer in effect.

    Leaves a renderer you chose alone unless ``force``. Needs ``vl-convert-python`` (a dependency
    of the kit); without it, altair's renderer is left as it is and an ``ImportError`` says so.
    """
    global _done
    import altair as alt

    if force or (not _done and alt.renderers.active == "default"):
        try:
            import vl_convert  # noqa: F401  (the svg renderer needs it)
        except ImportError as e:
            raise ImportError(
                "kit charts render offline through vl-convert: pip install vl-convert-python"
            ) from e
        if RENDERER not in alt.renderers.names():
            alt.renderers.register(RENDERER, _render)
        alt.renderers.enable(RENDERER)
    _done = True
    return alt.renderers.active
