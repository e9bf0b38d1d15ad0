"""What every kit widget shares.

- Selection traits with the same names in every widget, so views link with
  ``ipywidgets.jslink((a, "layer"), (b, "layer"))`` and Python can observe a click:
  ``layer`` and ``head`` (ints), ``token`` (a position, or -1 for none).
- ``theme``: ``"auto"`` (follow JupyterLab, VS Code, or the OS), ``"light"`` or ``"dark"``.
- ``height``: the view's height in CSS pixels (0: the widget's natural height).
- Lazy data: the front end asks for a named blob (``{"type": "tmk-fetch", "key": ...}``);
  `_make_blob` encodes it on first request and the reply carries one binary buffer.
- `to_html`: one self-contained HTML file (see `_html`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from ._fallback import fallback_html, static_fallback
from ._html import STATIC, PageView, html_page
from ._wire import Encoded

__all__ = ["KitWidget", "STATIC", "with_static_fallback"]


class KitWidget(anywidget.AnyWidget):
    """Base class: shared selection traits, theme, lazy blobs, static HTML export."""

    layer = traitlets.Int(0, help="Selected layer").tag(sync=True)
    head = traitlets.Int(0, help="Selected head").tag(sync=True)
    token = traitlets.Int(-1, help="Selected (locked) token position, -1 for none").tag(sync=True)
    theme = traitlets.Enum(("auto", "light", "dark"), default_value="auto", help="Colour theme").tag(sync=True)
    height = traitlets.Int(0, help="Height in CSS pixels; 0 for the natural height").tag(sync=True)
    #: Every lazy blob ({key: {"meta", "data"}}), when the view is displayed with its offline page and
    #: they take at most ``SAVED_BLOBS_BYTES``: JupyterLab / Notebook 7 save it with the widget state,
    #: so the view reopened without its kernel needs nothing from Python (see `with_static_fallback`).
    _saved_blobs = traitlets.Dict().tag(sync=True)

    #: Name of the front-end module in kit/static (without .js); set by subclasses.
    _module: str = ""
    #: Selection traits that mean the same thing across views (a Dashboard links these).
    _links: tuple[str, ...] = ("layer", "head", "token")
    #: How to export less of this widget, shown when a page is over its data budget.
    _export_hint: str = ""

    def __init__(self, **traits: Any) -> None:
        self._blob_cache: dict[str, Encoded] = {}
        # never wider than the output area or grid cell it is given: its parts scroll inside it
        traits.setdefault("layout", ipywidgets.Layout(min_width="0", max_width="100%"))
        super().__init__(**traits)
        self.on_msg(self._on_custom_msg)

    # --- limits for the selection traits (subclasses know their data)

    def _limits(self) -> dict[str, int]:
        """Exclusive upper bounds of layer, head and token; token may also be -1."""
        return {}

    @traitlets.validate("layer", "head", "token")
    def _check_selection(self, proposal: traitlets.Bunch) -> int:
        name, value = proposal["trait"].name, int(proposal["value"])
        bound = self._limits().get(name)
        low = -1 if name == "token" else 0
        if bound is not None and not low <= value < bound:
            valid = f"0..{bound - 1}" + (" or -1 for none" if name == "token" else "")
            raise traitlets.TraitError(f"{name} must be in {valid}; got {value}")
        return value

    def _link_domain(self, trait: str) -> Any:
        """What a linked ``trait`` ranges over (views linked by a Dashboard must agree on it), or ``None``
        where this view cannot be linked by it now: by default the exclusive bound of ``_limits``."""
        return self._limits().get(trait)

    # --- lazy data

    def _make_blob(self, key: str) -> Encoded:
        """Encode the data named `key`; subclasses override. Unknown keys raise KeyError."""
        raise KeyError(key)

    def _blob_keys(self) -> list[str]:
        """Every key the front end may ask for (inlined by to_html)."""
        return []

    def blob(self, key: str) -> Encoded:
        """The encoded data named `key`, cached."""
        if key not in self._blob_cache:
            self._blob_cache[key] = self._make_blob(key)
        return self._blob_cache[key]

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if not isinstance(content, dict) or content.get("type") != "tmk-fetch":
            return
        key = str(content.get("key"))
        try:
            encoded = self.blob(key)
        except KeyError:
            self.send({"type": "tmk-blob", "key": key, "error": f"no data named {key!r}"})
            return
        self.send({"type": "tmk-blob", "key": key, "meta": encoded.meta}, buffers=[encoded.data])

    # --- export

    def _state_for_html(self) -> dict[str, Any]:
        """The synced state the front end reads (our traits, not the widget framework's)."""
        framework = set(anywidget.AnyWidget.class_trait_names(sync=True)) | {"_esm", "_css", "_anywidget_id", "_saved_blobs"}
        return self.get_state(key=[n for n in self.trait_names(sync=True) if n not in framework])

    def page_view(self) -> PageView:
        """This view as a static page shows it: its module, synced state and every lazy blob's key."""
        return PageView(
            name=type(self).__name__,
            module=self._module,
            state=self._state_for_html(),
            blob_keys=self._blob_keys(),
            blob=self.blob,
            export_hint=self._export_hint,
        )

    def to_html(self, path: str | Path | None = None, *, max_bytes: int | None = None) -> str:
        """One self-contained HTML page (code and data inlined; renders with no network).

        Writes it to `path` when given (atomically); returns the HTML either way. A page that would
        inline more than ``max_bytes`` of data (default 100 MiB, or ``$KIT_MAX_HTML_BYTES``) is
        refused with a ``ValueError`` that says how to export less.
        """
        return html_page([self], path=path, max_bytes=max_bytes)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live view, plus a ``text/html`` fallback for static renderers (see `_fallback`)."""
        return with_static_fallback(self, super()._repr_mimebundle_(**kwargs))


#: Data budget of a "page" fallback: a notebook carries every displayed view's page.
FALLBACK_PAGE_BYTES = 8_000_000
#: Data budget of the lazy blobs a view also keeps in its synced state (`KitWidget._saved_blobs`):
#: the notebook then carries them twice (page and widget state), so only small views do. A larger
#: view reopened without its kernel shows what its state holds and says which parts need the cell rerun.
SAVED_BLOBS_BYTES = 1_000_000


def _save_blobs(view: Any) -> None:
    """Copy `view`'s lazy blobs (already encoded for its page) into its synced state, within budget."""
    views = list(getattr(view, "views", [view]))
    for v in views:
        if not isinstance(v, KitWidget):
            continue
        keys = v._blob_keys()
        if sum(v.blob(k).nbytes for k in keys) <= SAVED_BLOBS_BYTES:
            v._saved_blobs = {k: {"meta": v.blob(k).meta, "data": v.blob(k).data} for k in keys}


def with_static_fallback(view: Any, bundle: Any) -> Any:
    """Add `view`'s static fallback to a display bundle (``data`` or ``(data, metadata)``)."""
    mode = static_fallback()
    if mode == "off" or bundle is None:
        return bundle
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    page, why = None, ""
    if mode == "page":
        try:
            page = view.to_html(max_bytes=FALLBACK_PAGE_BYTES)
        except ValueError:  # over the fallback's budget: the note, rather than a huge notebook
            why = f" (too large to keep in the notebook: over {FALLBACK_PAGE_BYTES // 1_000_000} MB of data)"
        else:
            _save_blobs(view)
    data["text/html"] = fallback_html(type(view).__name__, page, height=getattr(view, "height", 0) or 480, why=why)
    return bundle
