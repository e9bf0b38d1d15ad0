"""What a widget shows where no kernel runs it: a notebook exported with nbconvert, GitHub, nbviewer.

A widget's display bundle carries, beside the live widget view (which Jupyter prefers), a
``text/html`` fallback that only static renderers use. Three modes, set with
:func:`set_static_fallback` or the ``KIT_WIDGET_FALLBACK`` environment variable:

- ``"note"`` (default): a one-line box naming the view and how to see it (cheap: nothing encoded).
- ``"page"``: the widget's own offline page (:meth:`to_html`) in a sandboxed ``<iframe srcdoc>``,
  so the exported notebook stays interactive with no kernel and no network. Every lazy blob is
  encoded up front, so use it for small views (the lessons are built with it).
- ``"off"``: no fallback (static renderers show the text ``repr``).
"""

from __future__ import annotations

import html
import os
import uuid

__all__ = ["MODES", "static_fallback", "set_static_fallback", "fallback_html"]

MODES = ("note", "page", "off")
_mode: str | None = None


def set_static_fallback(mode: str | None) -> None:
    """Choose the fallback of widgets displayed from now on; ``None`` returns to the environment's."""
    global _mode
    if mode is not None and mode not in MODES:
        raise ValueError(f"static fallback must be one of {list(MODES)} (or None); got {mode!r}")
    _mode = mode


def static_fallback() -> str:
    """The mode in force: :func:`set_static_fallback`, else ``KIT_WIDGET_FALLBACK``, else ``"note"``."""
    if _mode is not None:
        return _mode
    env = os.environ.get("KIT_WIDGET_FALLBACK", "note").strip().lower() or "note"
    if env not in MODES:
        raise ValueError(f"KIT_WIDGET_FALLBACK must be one of {list(MODES)}; got {env!r}")
    return env


def _note(title: str) -> str:
    return (
        '<div class="tmk-fallback-note" style="border:1px dashed #888;padding:6px 10px;margin:4px 0;'
        'font:13px system-ui,sans-serif">'
        f"<b>{html.escape(title)}</b>: an interactive view. Run the notebook in Jupyter to use it, or save an "
        "offline copy with <code>.to_html(\"view.html\")</code>.</div>"
    )


# The page inside the iframe reports its height so that the frame fits it (no inner scroll bar).
# Reports of an empty page (a frame not painted yet: browsers defer offscreen frames) are ignored.
_REPORT_HEIGHT = (
    "<script>(()=>{const post=()=>parent.postMessage({tmkFrame:FRAME,height:"
    "document.documentElement.scrollHeight},'*');new ResizeObserver(post).observe(document.body);post()})()</script>"
)
_FIT_FRAME = (
    "<script>(()=>{const f=document.getElementById(FRAME);addEventListener('message',e=>{"
    "if(e.data&&e.data.tmkFrame===FRAME&&f&&e.source===f.contentWindow&&e.data.height>40)"
    "f.style.height=(e.data.height+4)+'px'})})()"
    "</script>"
)


def fallback_html(title: str, page: str | None, height: int = 480) -> str:
    """The ``text/html`` fallback: a note, or `page` (a :func:`html_page`) in a sandboxed iframe."""
    if page is None:
        return _note(title)
    frame = f"tmk-frame-{uuid.uuid4().hex[:10]}"
    script = _REPORT_HEIGHT.replace("FRAME", repr(frame))
    page = page.replace("</body>", script + "\n</body>", 1)
    return (
        f'<iframe id="{frame}" class="tmk-fallback" title="{html.escape(title)} (offline copy)" '
        f'sandbox="allow-scripts" style="width:100%;height:{int(height)}px;border:0" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>' + _FIT_FRAME.replace("FRAME", repr(frame))
    )
