"""The lesson summaries in docs/summaries/ are generated from the lesson sources and notebooks, and kept fresh."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lesson_summaries", ROOT / "lessons" / "summaries.py")
summaries = importlib.util.module_from_spec(_spec)
sys.modules["lesson_summaries"] = summaries  # dataclasses look their module up there
_spec.loader.exec_module(summaries)

LESSONS = summaries.sources()


def test_every_lesson_has_a_summary():
    assert LESSONS, "no lesson sources found"
    made = sorted(p.stem for p in (ROOT / "docs" / "summaries").glob("*.md"))
    assert made == [p.stem for p in LESSONS], "run: python lessons/summaries.py (and remove summaries of lessons gone)"


@pytest.mark.parametrize("src", LESSONS, ids=lambda p: p.stem)
def test_summary_is_fresh(src):
    summary = summaries.summarize(src)
    path = ROOT / "docs" / "summaries" / f"{src.stem}.md"
    assert path.read_text() == summary.markdown, f"{path.name} is stale: run python lessons/summaries.py {src.stem[:2]}"
    folder = path.with_suffix("")
    missing = [f for f in summary.figures if not (folder / f).exists()]
    assert not missing, f"figures missing in {folder}: run python lessons/summaries.py {src.stem[:2]}"
    extra = sorted(p.name for p in folder.glob("*.svg") if p.name not in summary.figures) if folder.exists() else []
    assert not extra, f"stale figures in {folder}: {extra}"
    for fname in summary.figures:
        assert (folder / fname).read_text().lstrip().startswith("<svg")


def test_summary_of_lesson_02_keeps_its_claims_and_figures():
    summary = summaries.summarize(summaries.SRC / "02_induction_heads.py")
    text = summary.markdown
    assert text.splitlines()[2] == "# 02 · Induction heads"
    assert "## Ablation: what breaks the second copy?" in text
    assert "Measured in the notebook" in text and "it ends above 0.8: True" in text  # a checked output
    # each figure is a Vega-Lite spec, or the SVG that the kit's offline chart renderer already drew
    assert len(summary.figures) >= 3 and all(
        spec.lstrip().startswith("<svg") if isinstance(spec, str) else spec.get("$schema", "").startswith(
            "https://vega.github.io") for spec in summary.figures.values())
    assert "\n## Summary\n" in text


def test_a_notebook_not_built_from_its_source_is_refused(tmp_path):
    src = summaries.SRC / "02_induction_heads.py"
    nb = nbformat.read(ROOT / "lessons" / "02_induction_heads.ipynb", as_version=4)
    nb.cells[3].source += "\n# edited"
    nbformat.write(nb, tmp_path / "nb.ipynb")
    with pytest.raises(ValueError, match="was not built from the current"):
        summaries.summarize(src, tmp_path / "nb.ipynb")


def test_a_changed_checked_output_or_chart_changes_the_summary(tmp_path):
    src = summaries.SRC / "02_induction_heads.py"
    base = summaries.summarize(src)
    nb = nbformat.read(ROOT / "lessons" / "02_induction_heads.ipynb", as_version=4)
    checked = next(c for c in nb.cells if "NBVAL_CHECK_OUTPUT" in c.source and c.outputs)
    checked.outputs[0].text = "a different measurement: 0.12\n"
    nbformat.write(nb, tmp_path / "nb.ipynb")
    changed = summaries.summarize(src, tmp_path / "nb.ipynb")
    assert changed.markdown != base.markdown and "a different measurement: 0.12" in changed.markdown
    # a chart whose data changed gets another file name, so the summary text changes too
    spec = next(iter(base.figures.values()))
    if isinstance(spec, str):  # an SVG drawn in the kernel
        spec2 = spec.replace("</svg>", "<title>another title</title></svg>")
    else:
        spec2 = json.loads(json.dumps(spec))
        spec2["title"] = "another title"
    assert summaries._figure_name(spec2) != summaries._figure_name(spec)


def test_key_claim_takes_the_first_sentences_of_the_first_prose_paragraph():
    text = "- a list item first\n\nThe first claim. The second one holds too. A third is left out.\n\nMore."
    assert summaries.key_claim(text) == "The first claim. The second one holds too."
    assert summaries.key_claim("```\ncode\n```") == ""


def test_write_renders_only_what_is_missing_and_removes_stale_figures(tmp_path, monkeypatch):
    summary = summaries.Summary("99_x", "# x\n", {"fig-a.svg": {"spec": 1}})
    calls = []
    monkeypatch.setattr(summaries, "_render_svg", lambda spec: calls.append(spec) or "<svg/>")
    (tmp_path / "99_x").mkdir()
    (tmp_path / "99_x" / "fig-old.svg").write_text("<svg/>")
    summaries.write(summary, tmp_path)
    summaries.write(summary, tmp_path)
    assert calls == [{"spec": 1}]  # rendered once
    assert sorted(p.name for p in (tmp_path / "99_x").iterdir()) == ["fig-a.svg"]
    assert (tmp_path / "99_x.md").read_text() == "# x\n"


def test_figures_tables_and_widgets_are_read_from_the_outputs():
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.4.1.json", "mark": "bar"}
    html = ('<div id="vis"></div><script>(function(spec, embedOpt){ vegaEmbed("#vis", spec); })('
            + json.dumps(spec) + ', {"mode": "vega-lite"});</script><style>.vega-embed{}</style>')
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": html, "text/plain": "alt.Chart(...)"}),
        nbformat.v4.new_output("display_data", {"text/markdown": "| a | b |\n| --- | --- |\n| 1 | 2 |",
                                                "text/plain": "table"}),
        nbformat.v4.new_output("display_data", {"text/html": '<iframe class="tmk-fallback"></iframe>',
                                                "text/plain": "AttentionViewer(2 layers)"}),
        nbformat.v4.new_output("stream", name="stdout", text="printed"),
    ]
    assert list(summaries._rich(cell)) == [("chart", spec), ("table", "| a | b |\n| --- | --- |\n| 1 | 2 |"),
                                           ("widget", "AttentionViewer(2 layers)")]
