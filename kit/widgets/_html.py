"""Static HTML export: one file with the widgets' code and data inlined, no network needed.

Layout of a page: per widget a ``<div>`` target and a ``<script
type="application/vnd.tmk.widget+json">`` payload (state, binary buffers and every lazy blob,
base64); per front-end module one ``<script type="application/vnd.tmk.module+json">`` holding
its source as a JSON string; then the static host (``kit/static/_static_host.js``), which
imports each module from a ``blob:`` URL and renders it with a stand-in widget model.

Linked views (a :class:`~kit.widgets.Dashboard`): a ``<script
type="application/vnd.tmk.links+json">`` lists ``[widget id, trait, widget id]`` triples; the
host copies each change of that trait from one view's model to the other's, both ways, as
``ipywidgets.jslink`` does in Jupyter.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._wire import Encoded

__all__ = [
    "STATIC", "Exportable", "PageView", "grid_columns", "html_page", "page_budget", "script_json", "split_buffers", "write_atomically",
]

STATIC = Path(__file__).parent.parent / "static"

_BINARY = (bytes, bytearray, memoryview)


@dataclass(frozen=True)
class PageView:
    """What a page needs of one view: its front-end ``module`` (a bundle in kit/static), its synced
    ``state``, the lazy data the front end may ask for (``blob_keys``, each encoded by ``blob``),
    and, for the over-budget message, its ``name`` and how to export less (``export_hint``)."""

    name: str
    module: str
    state: dict[str, Any]
    blob_keys: Sequence[str]
    blob: Callable[[str], Encoded]
    export_hint: str = ""


class Exportable(Protocol):
    """Anything a page can show: a view that describes itself as a :class:`PageView`."""

    def page_view(self) -> PageView: ...


def split_buffers(value: Any, path: list[Any] | None = None) -> tuple[Any, list[list[Any]], list[bytes]]:
    """Take binary leaves out of nested dicts/lists: (value without them, their paths, the bytes)."""
    path = path or []
    paths: list[list[Any]] = []
    buffers: list[bytes] = []
    if isinstance(value, dict):
        out: Any = {}
        items = value.items()
    elif isinstance(value, (list, tuple)):
        out = [None] * len(value)
        items = enumerate(value)
    else:
        return value, paths, buffers
    for key, item in items:
        if isinstance(item, _BINARY):
            paths.append([*path, key])
            buffers.append(bytes(item))
            if isinstance(out, list):
                out[key] = None
        else:
            sub, sub_paths, sub_buffers = split_buffers(item, [*path, key])
            out[key] = sub
            paths += sub_paths
            buffers += sub_buffers
    return out, paths, buffers


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no '<', '>' or '&' can end or alter it)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


DEFAULT_MAX_BYTES = 100 * 2**20  # data inlined in one page, before base64


def page_budget(max_bytes: int | None) -> int:
    """The page's data budget: ``max_bytes``, else ``$KIT_MAX_HTML_BYTES``, else 100 MiB."""
    return int(max_bytes if max_bytes is not None else os.environ.get("KIT_MAX_HTML_BYTES", DEFAULT_MAX_BYTES))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


class _Budget:
    """Counts the bytes a page inlines and refuses, naming the way out, once they pass the budget."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def add(self, view: PageView, nbytes: int, done: int, total: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise ValueError(
                f"this page would inline more than {_size(self.limit)} of data: {view.name}'s first "
                f"{done} of {total} pieces already take {_size(self.used)}. Export less"
                f"{': ' + view.export_hint if view.export_hint else ''}; or show it live in Jupyter, "
                f"which sends only what is on screen; or raise the limit with to_html(path, max_bytes=...) "
                f"or the KIT_MAX_HTML_BYTES environment variable."
            )


def _payload(view: PageView, widget_id: str, target: str, budget: _Budget) -> dict[str, Any]:
    state, paths, buffers = split_buffers(view.state)
    budget.add(view, sum(len(b) for b in buffers), 0, 0)
    blobs = {}
    keys = list(view.blob_keys)
    for i, key in enumerate(keys):
        encoded = view.blob(key)
        budget.add(view, encoded.nbytes, i + 1, len(keys))
        blobs[key] = {"meta": encoded.meta, "data": _b64(encoded.data)}
    return {
        "id": widget_id,
        "target": target,
        "module": view.module,
        "state": state,
        "buffer_paths": paths,
        "buffers": [_b64(b) for b in buffers],
        "blobs": blobs,
    }


#: The narrowest column a grid of views gives a view before it puts the views one under another.
MIN_COLUMN_PX = 420


def grid_columns(columns: int, gap_px: int = 16) -> str:
    """CSS ``grid-template-columns`` for at most ``columns`` views per row that wraps to fewer rows'
    worth of columns (down to one) when the width given is too narrow for ``MIN_COLUMN_PX`` each."""
    columns = int(columns)
    share = f"(100% - {(columns - 1) * gap_px}px) / {columns}"
    return f"repeat(auto-fit, minmax(min(100%, max({MIN_COLUMN_PX}px, calc({share}))), 1fr))"


def _static_code(name: str) -> str:
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise FileNotFoundError(f"front-end bundle {path} is missing: run `npm ci && npm run build` in widgets/")
    return path.read_text(encoding="utf-8")


def html_page(
    widgets: Sequence[Exportable],
    path: str | Path | None = None,
    title: str = "Transformer Mechanisms Kit",
    links: Sequence[tuple[int, str, int]] = (),
    columns: int = 1,
    max_bytes: int | None = None,
) -> str:
    """One self-contained HTML page showing `widgets`; written to `path` if given.

    ``links``: ``(i, trait, j)`` triples keep ``trait`` of ``widgets[i]`` and ``widgets[j]`` equal
    in the page (both ways). ``columns``: widgets per row. ``max_bytes``: refuse (``ValueError``,
    nothing written) a page that would inline more data than this (default 100 MiB, or
    ``$KIT_MAX_HTML_BYTES``); the message says how to export less.
    """
    budget = _Budget(page_budget(max_bytes))
    page_id = uuid.uuid4().hex[:8]
    bodies, modules = [], {}
    ids = []
    for i, widget in enumerate(widgets):
        view = widget.page_view()
        widget_id = f"tmk-{page_id}-{i}"
        ids.append(widget_id)
        target = f"{widget_id}-view"
        modules.setdefault(view.module, _static_code(view.module))
        bodies.append(
            f'<div id="{target}" class="tmk-host"></div>\n'
            f'<script type="application/vnd.tmk.widget+json">{script_json(_payload(view, widget_id, target, budget))}</script>'
        )
    link_list = []
    for i, trait, j in links:
        if not (0 <= i < len(ids) and 0 <= j < len(ids)) or i == j:
            raise ValueError(
                f"link ({i}, {trait!r}, {j}) must join two different widgets of the {len(ids)} on the page"
            )
        link_list.append([ids[i], str(trait), ids[j]])
    if link_list:
        bodies.append(f'<script type="application/vnd.tmk.links+json">{script_json(link_list)}</script>')
    host = _static_code("_static_host")
    if "</script" in host.lower() or "<!--" in host:
        raise ValueError("the static host bundle cannot be inlined: it contains '</script' or '<!--'")
    module_scripts = "\n".join(
        f'<script type="application/vnd.tmk.module+json" data-module="{html.escape(name)}">{script_json(code)}</script>'
        for name, code in modules.items()
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{html.escape(title)}</title>
<style>:root{{color-scheme:light dark}}body{{margin:16px;font-family:system-ui,sans-serif}}
.tmk-host{{margin:0 0 16px;min-width:0;max-width:100%}}
.tmk-page{{display:grid;grid-template-columns:{grid_columns(columns)};gap:0 16px;align-items:start;justify-items:start}}</style>
</head>
<body>
<div class="tmk-page">
{chr(10).join(bodies)}
</div>
{module_scripts}
<script>{host}</script>
<script>tmkHost.boot();</script>
</body>
</html>
"""
    if path is not None:
        write_atomically(Path(path), page)
    return page


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and a rename: a reader (or a crash)
    sees the old file or the new one, never half of it; on failure no temporary file is left."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: the directory {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the page is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
