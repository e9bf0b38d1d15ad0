"""What a notebook keeps of a view for when its kernel is gone, and what nbconvert makes of it.

- A view displayed with its offline page keeps its lazy data in its synced state (``_saved_blobs``)
  when that data is small, so a front-end that saves widget state can show it with no kernel; a
  larger view keeps none (the notebook would carry it twice); the page's state never holds it.
- ``kit_nbconvert.strip_kit_views``: kit outputs export as their offline copies, their models leave
  the stored widget state, other widgets keep theirs.
- The Jupyter configuration the kit installs turns both on, and the wheel installs it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

import kit
import kit.widgets._base as widget_base
from kit.widgets import Dashboard, ResidualLens, set_static_fallback
from kit_nbconvert import STATE, VIEW, KitViews, strip_kit_views

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "jupyter-config"


@pytest.fixture(scope="module")
def trace():
    return kit.load("facts-4l", device="cpu").trace("The capital of Fusuvaria is")


@pytest.fixture(autouse=True)
def page_mode(monkeypatch):
    monkeypatch.delenv("KIT_WIDGET_FALLBACK", raising=False)
    yield
    set_static_fallback(None)


def test_a_small_view_keeps_every_lazy_blob_in_its_state_and_not_in_its_page(trace):
    lens = ResidualLens(trace)
    assert lens._saved_blobs == {}  # nothing before it is displayed
    lens._repr_mimebundle_()
    keys = lens._blob_keys()
    assert keys and sorted(lens._saved_blobs) == sorted(keys)
    for key in keys:
        assert lens._saved_blobs[key]["data"] == lens.blob(key).data
        assert lens._saved_blobs[key]["meta"] == lens.blob(key).meta
    state = lens.get_state()
    assert "_saved_blobs" in state  # synced: the front-end saves it with the widget state
    assert "_saved_blobs" not in lens.page_view().state  # the page inlines the blobs once, not twice


def test_a_view_over_the_budget_keeps_no_blob_in_its_state(trace, monkeypatch):
    lens = ResidualLens(trace)
    total = sum(lens.blob(k).nbytes for k in lens._blob_keys())
    monkeypatch.setattr(widget_base, "SAVED_BLOBS_BYTES", total - 1)
    lens._repr_mimebundle_()
    assert lens._saved_blobs == {}
    monkeypatch.setattr(widget_base, "SAVED_BLOBS_BYTES", total)  # exactly at the budget: kept
    lens._repr_mimebundle_()
    assert len(lens._saved_blobs) == len(lens._blob_keys())


@pytest.mark.parametrize("mode", ["note", "off"])
def test_the_cheap_fallbacks_encode_nothing_for_the_state(trace, mode):
    set_static_fallback(mode)
    lens = ResidualLens(trace)
    lens._repr_mimebundle_()
    assert lens._saved_blobs == {} and lens._blob_cache == {}


def test_a_dashboard_saves_the_blobs_of_each_of_its_views(trace):
    board = Dashboard(ResidualLens(trace), ResidualLens(trace))
    board._repr_mimebundle_()
    assert all(len(v._saved_blobs) == len(v._blob_keys()) > 0 for v in board.views)


# --- kit_nbconvert -------------------------------------------------------------------------------

def _model(name: str, **state):
    return {"model_name": name, "model_module": "x", "model_module_version": "1", "state": state}


def _notebook():
    """A kit view (with its layout), a dashboard of two kit views joined by a jslink, and a slider."""
    page = '<iframe id="tmk-frame-1" class="tmk-fallback" srcdoc="..."></iframe>'
    outputs = [
        {"output_type": "display_data", "metadata": {},
         "data": {VIEW: {"model_id": "lens", "version_major": 2}, "text/html": page, "text/plain": "ResidualLens(...)"}},
        {"output_type": "display_data", "metadata": {},
         "data": {VIEW: {"model_id": "grid", "version_major": 2}, "text/html": [page[:20], page[20:]], "text/plain": "D"}},
        {"output_type": "display_data", "metadata": {},
         "data": {VIEW: {"model_id": "slider", "version_major": 2}, "text/plain": "IntSlider(value=3)"}},
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("...", outputs=[nbformat.from_dict(o) for o in outputs])]
    nb.metadata["widgets"] = {STATE: {"version_major": 2, "version_minor": 0, "state": {
        "lens": _model("AnyModel", layout="IPY_MODEL_lens-layout"),
        "lens-layout": _model("LayoutModel"),
        "grid": _model("GridBoxModel", children=["IPY_MODEL_a", "IPY_MODEL_b"], layout="IPY_MODEL_grid-layout"),
        "grid-layout": _model("LayoutModel"),
        "a": _model("AnyModel"), "b": _model("AnyModel"),
        "link": _model("LinkModel", source=["IPY_MODEL_a", "layer"], target=["IPY_MODEL_b", "layer"]),
        "slider": _model("IntSliderModel", layout="IPY_MODEL_slider-layout", style="IPY_MODEL_slider-style"),
        "slider-layout": _model("LayoutModel"), "slider-style": _model("SliderStyleModel"),
    }}}
    return nb


def test_kit_views_export_as_their_offline_copies_and_other_widgets_stay_live():
    nb = _notebook()
    assert strip_kit_views(nb) == 2
    kinds = [sorted(o["data"]) for o in nb.cells[0].outputs]
    assert kinds == [["text/html", "text/plain"], ["text/html", "text/plain"], [VIEW, "text/plain"]]
    assert set(nb.metadata["widgets"][STATE]["state"]) == {"slider", "slider-layout", "slider-style"}


def test_a_notebook_of_kit_views_only_loses_its_widget_metadata_so_no_manager_is_loaded():
    nb = _notebook()
    nb.cells[0].outputs.pop()  # no slider shown
    strip_kit_views(nb)
    assert "widgets" not in nb.metadata


def test_outputs_without_the_kits_fallback_are_left_alone():
    nb = _notebook()
    for out in nb.cells[0].outputs:
        out["data"].pop("text/html", None)  # the kit's "off" mode, or any other widget
    before = copy.deepcopy(nb)
    assert strip_kit_views(nb) == 0
    assert nb == before


def test_the_preprocessor_runs_in_nbconverts_html_exporter():
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(preprocessors=[KitViews]).from_notebook_node(_notebook())
    assert body.count('class="tmk-fallback"') == 2
    assert '"model_name": "AnyModel"' not in body and "IntSliderModel" in body


# --- the configuration the kit installs ---------------------------------------------------------

def test_the_installed_configuration_enables_the_preprocessor_and_saved_widget_state():
    nbconvert = json.loads((CONFIG / "jupyter_nbconvert_config.json").read_text())
    assert nbconvert["HTMLExporter"]["preprocessors"] == ["kit_nbconvert.KitViews"]
    lab = json.loads((CONFIG / "labconfig/default_setting_overrides.d/transformer-mechanisms-kit.json").read_text())
    assert lab["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["shared-data"] == {"jupyter-config": "etc/jupyter"}
    assert wheel["force-include"] == {"kit_nbconvert.py": "kit_nbconvert.py"}


def test_jupyter_reads_the_kits_configuration(tmp_path):
    """What JupyterLab / Notebook 7 and nbconvert see with the folder on their config path."""
    code = (
        "from jupyterlab_server.settings_utils import _get_overrides\n"
        "from nbconvert.nbconvertapp import NbConvertApp\n"
        "o, _ = _get_overrides('/nonexistent')\n"
        "app = NbConvertApp(); app.initialize(['--to', 'html', 'x.ipynb'])\n"
        "print(o['@jupyter-widgets/jupyterlab-manager:plugin']['saveState'], list(app.config.HTMLExporter.preprocessors))"
    )
    env = {"JUPYTER_CONFIG_PATH": str(CONFIG), "JUPYTER_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "['kit_nbconvert.KitViews']"]


def test_the_preprocessor_module_imports_neither_kit_nor_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, kit_nbconvert; print('torch' in sys.modules, 'kit' in sys.modules)"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


def test_the_preprocessor_named_on_the_command_line_works_without_the_config(tmp_path):
    """docs/hosts.md's way for a nbconvert that does not read the kit's configuration."""
    path = tmp_path / "nb.ipynb"
    nbformat.write(_notebook(), path)
    env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "user"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                           "--HTMLExporter.preprocessors=kit_nbconvert.KitViews", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    body = (tmp_path / "nb.html").read_text()
    assert body.count('class="tmk-fallback"') == 2 and '"model_name": "AnyModel"' not in body
