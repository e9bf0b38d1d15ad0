"""One-page summaries of the lessons, generated from their sources and built notebooks (never written by hand).

For each lesson ``lessons/src/NN_name.py`` (and its built ``lessons/NN_name.ipynb``) this writes
``docs/summaries/NN_name.md``: the title, the opening paragraph and the learning goals, then per
section its key claim (the first sentences of its text), the figures the notebook drew (altair charts
rendered to SVG in ``docs/summaries/NN_name/``, offline, with ``vl-convert-python``), the measured
claims the notebook checks (the printed output of its ``# NBVAL_CHECK_OUTPUT`` cells) and the
widgets it shows; the lesson's own *Summary* section is kept whole. An instructor can project it.

    python lessons/summaries.py          # every lesson
    python lessons/summaries.py 02       # lessons whose name starts with 02

``tests/test_lesson_summaries.py`` fails when a summary is stale: when its text, regenerated from the
current source and notebook, differs from the file (figures are named by a hash of their chart spec,
so a changed figure changes the text too), or a figure file is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = HERE / "src"
OUT = ROOT / "docs" / "summaries"
MAX_OUTPUT_LINES = 14


def _build_module():
    spec = importlib.util.spec_from_file_location("_lesson_build", HERE / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Summary:
    """A lesson's summary: its markdown text and the chart specs its figures are rendered from."""

    name: str
    markdown: str
    figures: dict[str, dict | str] = field(default_factory=dict)  # file name -> Vega-Lite spec or SVG


def _paragraphs(text: str) -> list[str]:
    return [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def key_claim(text: str, max_sentences: int = 2) -> str:
    """The first sentences of a section's text (its first paragraph that is not a heading, list or code)."""
    for para in _paragraphs(text):
        if para.startswith(("#", "-", "*", "```", "|", "$$")) and not para.startswith("**"):
            continue
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z`*(\[])", para)
        return " ".join(sentences[:max_sentences])
    return ""


def _altair_spec(html: str) -> dict | None:
    """The Vega-Lite spec inside altair's HTML output (``...})(SPEC, {"mode": "vega-lite"})``)."""
    if "vega-embed" not in html or "})(" not in html:
        return None
    try:
        spec, _ = json.JSONDecoder().raw_decode(html, html.rindex("})(") + 3)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def _stdout(cell) -> str:
    text = "".join("".join(o.text) if isinstance(o.text, list) else o.text
                   for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout")
    lines = text.rstrip().splitlines()
    if len(lines) > MAX_OUTPUT_LINES:
        lines = lines[:MAX_OUTPUT_LINES] + [f"... ({len(lines) - MAX_OUTPUT_LINES} more lines in the notebook)"]
    return "\n".join(lines)


def _rich(cell):
    """``(kind, value)`` for each figure, table or widget output of a cell: ``("chart", spec)``,
    ``("table", markdown)`` or ``("widget", repr)``."""
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        html = data.get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        plain = data.get("text/plain", "")
        plain = "".join(plain) if isinstance(plain, list) else plain
        if "application/vnd.vegalite.v6+json" in data or "application/vnd.vegalite.v5+json" in data:
            key = next(k for k in data if k.startswith("application/vnd.vegalite"))
            yield "chart", data[key]
        elif (spec := _altair_spec(html)) is not None:
            yield "chart", spec
        elif "image/svg+xml" in data:  # a chart the kit's offline renderer already drew (kit._altair)
            svg = data["image/svg+xml"]
            yield "chart", "".join(svg) if isinstance(svg, list) else svg
        elif "tmk-fallback" in html or "application/vnd.jupyter.widget-view+json" in data:
            yield "widget", plain.splitlines()[0] if plain else "a widget"
        elif "text/markdown" in data:  # a result table the lesson displays as markdown
            md = data["text/markdown"]
            yield "table", "".join(md) if isinstance(md, list) else md


def _figure_name(spec: dict | str) -> str:
    canon = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return f"fig-{hashlib.sha256(canon.encode()).hexdigest()[:12]}.svg"


def summarize(src: Path, notebook: Path | None = None) -> Summary:
    """The summary of the lesson whose source is ``src``; its notebook (default ``lessons/NN_name.ipynb``)
    must be built from that source, else a ``ValueError`` says to rebuild it."""
    build = _build_module()
    cells = build.parse(src.read_text()).cells
    nb_path = notebook or HERE / f"{src.stem}.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    if [c.source for c in nb.cells] != [c.source for c in cells]:
        raise ValueError(f"{nb_path.name} was not built from the current {src.name}: run python lessons/build.py "
                         f"{src.stem[:2]} first")
    name = src.stem
    lines = [f"<!-- Generated by lessons/summaries.py from lessons/src/{name}.py and lessons/{name}.ipynb. "
             f"Do not edit: run `python lessons/summaries.py {name[:2]}`. -->", ""]
    figures: dict[str, dict | str] = {}  # file name -> Vega-Lite spec, or an SVG already drawn
    first = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    title = next((l[2:].strip() for l in first.splitlines() if l.startswith("# ")), name)
    lines += [f"# {title}", ""]
    intro = first.split("\n", 1)[1] if "\n" in first else ""
    paras = re.split(r"\n\s*\n", intro.strip())
    if paras and paras[0].strip():
        lines += [" ".join(l.strip() for l in paras[0].splitlines()), ""]
    goals = next((p for p in paras if p.lstrip().startswith("**Learning goals**")), None)
    if goals:
        lines += [goals.strip(), ""]
    in_summary = False
    optional = False
    for cell in nb.cells[1:]:
        if cell.cell_type == "markdown":
            heading = next((l for l in cell.source.splitlines()[:1] if re.match(r"#{2,3} ", l)), None)
            if heading is None:
                continue
            text = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
            in_summary = heading.lstrip("#").strip().lower().startswith("summary")
            optional = heading.lstrip("#").strip().lower().startswith("optional")
            lines += [heading, ""]
            if in_summary:
                lines += [text.strip(), ""]
            elif (claim := key_claim(text)):
                lines += [f"**Key point.** {claim}", ""]
            if optional:
                lines += ["*(Needs the hub: not run when the notebook was built.)*", ""]
            continue
        if in_summary or optional:
            continue
        for kind, value in _rich(cell):
            if kind == "chart":
                fname = _figure_name(value)
                figures[fname] = value
                title = value.get("title", "") if isinstance(value, dict) else ""
                title = title.get("text", "") if isinstance(title, dict) else title
                lines += [f"![{title or 'figure'}]({name}/{fname})", ""]
            elif kind == "table":
                lines += [value.strip(), ""]
            else:
                lines += [f"*Widget in the notebook:* `{value}`", ""]
        if "NBVAL_CHECK_OUTPUT" in cell.source and (out := _stdout(cell)):
            lines += ["Measured in the notebook (checked on every test run):", "", "```text", out, "```", ""]
    return Summary(name, "\n".join(lines).rstrip() + "\n", figures)


def _render_svg(spec: dict) -> str:
    """An SVG of a Vega-Lite spec, drawn offline by vl-convert."""
    import vl_convert as vlc

    m = re.search(r"v(\d+)\.(\d+)", spec.get("$schema", ""))
    versions = vlc.get_vegalite_versions()
    version = f"{m[1]}.{m[2]}" if m and f"{m[1]}.{m[2]}" in versions else versions[-1]
    return vlc.vegalite_to_svg(spec, vl_version=version)


def write(summary: Summary, out: Path = OUT) -> Path:
    """Write ``summary``'s markdown and render its figures (only the missing ones; stale ones removed)."""
    out.mkdir(parents=True, exist_ok=True)
    folder = out / summary.name
    folder.mkdir(exist_ok=True)
    for old in folder.glob("fig-*.svg"):
        if old.name not in summary.figures:
            old.unlink()
    for fname, spec in summary.figures.items():
        if not (folder / fname).exists():
            svg = spec if isinstance(spec, str) else _render_svg(spec)
            (folder / fname).write_text(svg, encoding="utf-8")
    path = out / f"{summary.name}.md"
    path.write_text(summary.markdown, encoding="utf-8")
    return path


def sources(prefixes: list[str] | None = None) -> list[Path]:
    """The lesson sources (``lessons/src/NN_*.py``), those starting with one of ``prefixes`` if given."""
    found = sorted(p for p in SRC.glob("[0-9][0-9]_*.py") if (HERE / f"{p.stem}.ipynb").exists())
    return [p for p in found if not prefixes or any(p.stem.startswith(x) for x in prefixes)]


def main(argv: list[str]) -> int:
    """Write the summaries; a lesson whose notebook is stale is reported and left as it was (exit 1)."""
    status = 0
    for src in sources(argv):
        try:
            print("wrote", write(summarize(src)).relative_to(ROOT))
        except ValueError as err:
            print(f"skipped {src.stem}: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
