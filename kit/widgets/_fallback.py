"""What a widget shows where no kernel runs it: a notebook exported with nbconvert, GitHub, nbviewer.

A widget's display bundle carries, beside the live widget view (which Jupyter prefers), a
``text/html`` fallback that only static renderers use: ``jupyter nbconvert --to html`` of a
notebook saved from JupyterLab or Notebook 7 (which save no widget state by default), GitHub,
nbviewer. Three modes, set with :func:`set_static_fallback` or the ``KIT_WIDGET_FALLBACK``
environment variable:

- ``"page"`` (default): the widget's own offline page (:meth:`to_html`) in a sandboxed
  ``<iframe srcdoc>``, so the exported notebook stays interactive with no kernel and no network.
  Every lazy blob is encoded up front; a view whose page would pass ``FALLBACK_PAGE_BYTES`` of
  data gets the note instead, which says how to save it (``view.to_html(path)``).
- ``"note"``: a one-line box naming the view and how to see it (cheap: nothing encoded).
- ``"off"``: no fallback (static renderers show the text ``repr``).

The frame follows the exporting page's theme: the page tells the frame whether it is light or
dark (``postMessage``), so a white notebook page never shows dark panels when the OS is dark.
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
    """The mode in force: :func:`set_static_fallback`, else ``KIT_WIDGET_FALLBACK``, else ``"page"``."""
    if _mode is not None:
        return _mode
    env = os.environ.get("KIT_WIDGET_FALLBACK", "page").strip().lower() or "page"
    if env not in MODES:
        raise ValueError(f"KIT_WIDGET_FALLBACK must be one of {list(MODES)}; got {env!r}")
    return env


def _note(title: str, why: str = "") -> str:
    return (
        '<div class="tmk-fallback-note" style="border:1px dashed #888;padding:6px 10px;margin:4px 0;'
        'font:13px system-ui,sans-serif">'
        f"<b>{html.escape(title)}</b>: an interactive view{html.escape(why)}. Run the notebook in Jupyter to use "
        "it, or save an offline copy with <code>.to_html(\"view.html\")</code>.</div>"
    )


# The page inside the iframe reports its height so that the frame fits it (no inner scroll bar),
# and takes the theme the embedding page hands it. Reports of an empty page (a frame not painted
# yet: browsers defer offscreen frames) are ignored.
_REPORT_HEIGHT = (
    "<script>(()=>{const post=()=>parent.postMessage({tmkFrame:FRAME,height:"
    "document.documentElement.scrollHeight},'*');new ResizeObserver(post).observe(document.body);post();"
    "addEventListener('message',e=>{const t=e.data&&e.data.tmkHostTheme;if(e.source===parent&&"
    "(t==='light'||t==='dark')){document.documentElement.dataset.tmkHostTheme=t;"
    "document.documentElement.style.colorScheme=t}})})()</script>"
)
# In the embedding page: size the frame, and tell it the page's theme (JupyterLab's data attribute
# in an nbconvert page, else the first opaque background around the frame, else the page's
# declared color-scheme: a page that declares no dark scheme is light).
_FIT_FRAME = (
    "<script>(()=>{const f=document.getElementById(FRAME);"
    "const theme=()=>{const jp=document.body&&document.body.dataset.jpThemeLight;"
    "if(jp==='true')return'light';if(jp==='false')return'dark';"
    "const x=document.createElement('canvas').getContext('2d');"
    "for(let n=f&&f.parentElement;n;n=n.parentElement){x.clearRect(0,0,1,1);x.fillStyle='rgba(0,0,0,0)';"
    "x.fillStyle=getComputedStyle(n).backgroundColor;x.fillRect(0,0,1,1);const m=x.getImageData(0,0,1,1).data;"
    "if(m[3]>127)return(0.2126*m[0]+0.7152*m[1]+0.0722*m[2])/255<0.5?'dark':'light'}"
    "const s=getComputedStyle(document.documentElement).colorScheme||'';"
    "return s.includes('dark')&&!s.includes('light')?'dark':s.includes('dark')&&"
    "matchMedia('(prefers-color-scheme: dark)').matches?'dark':'light'};"
    "addEventListener('message',e=>{if(e.data&&e.data.tmkFrame===FRAME&&f&&e.source===f.contentWindow){"
    "f.contentWindow.postMessage({tmkHostTheme:theme()},'*');"
    "if(e.data.height>40)f.style.height=(e.data.height+4)+'px'}})})()"
    "</script>"
)


def fallback_html(title: str, page: str | None, height: int = 480, why: str = "") -> str:
    """The ``text/html`` fallback: a note (saying ``why`` there is no page), or `page` (a
    :func:`html_page`) in a sandboxed iframe."""
    if page is None:
        return _note(title, why)
    frame = f"tmk-frame-{uuid.uuid4().hex[:10]}"
    script = _REPORT_HEIGHT.replace("FRAME", repr(frame))
    page = page.replace("</body>", script + "\n</body>", 1)
    return (
        f'<iframe id="{frame}" class="tmk-fallback" title="{html.escape(title)} (offline copy)" '
        f'sandbox="allow-scripts" style="width:100%;height:{int(height)}px;border:0" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>' + _FIT_FRAME.replace("FRAME", repr(frame))
    )
