"""A Jupyter server for browser tests: a notebook of given cells, served from a temp folder, opened
in JupyterLab (``/lab/tree/...``) or, when the ``notebook`` package is installed, in Notebook 7
(`notebook7_url`: ``/notebooks/...``) from the same server.

Skips (through pytest) when JupyterLab or anywidget's JupyterLab extension is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The Jupyter configuration the kit installs into etc/jupyter (and `make lab` puts on JUPYTER_CONFIG_PATH).
KIT_JUPYTER_CONFIG = REPO / "jupyter-config"

# The notebook is open and its kernel has started.
KERNEL_IDLE = """() => {
  const widget = window.jupyterapp?.shell.currentWidget;
  return widget?.sessionContext?.session?.kernel?.status === "idle" && document.querySelector(".jp-Notebook .jp-Cell");
}"""

# Run one cell (not awaited: the command settles only once the kernel has run it).
RUN_CELL = """(index) => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = index;
  window.jupyterapp.commands.execute('notebook:run-cell');
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_anywidget_extension() -> bool:
    from jupyter_core.paths import jupyter_path

    return any((Path(p) / "labextensions" / "anywidget" / "package.json").exists() for p in jupyter_path())


@contextmanager
def served(server: subprocess.Popen, ready_url: str, log: Path, what: str, timeout: float = 90) -> Iterator[None]:
    """Wait until ``ready_url`` answers (failing the test with the end of ``log`` if ``server`` exits or
    ``timeout`` seconds pass), run the block, then stop ``server`` (killed if it does not stop in 30 s)."""
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what} did not start:\n" + log.read_text()[-2000:])
                time.sleep(0.5)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@contextmanager
def jupyterlab_server(tmp_path: Path, cells: list[str], name: str = "live.ipynb") -> Iterator[tuple[str, str]]:
    """Start JupyterLab on a free local port with a notebook of `cells`; yields (notebook url, base url)."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed")
    if not has_anywidget_extension():
        pytest.skip("the anywidget JupyterLab extension is not installed")
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c} for c in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / name).write_text(json.dumps(notebook), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--expose-app-in-browser",
            "--JupyterNotebookApp.expose_app_in_browser=True",  # Notebook 7, when installed
            "--allow-root",
            "--LabApp.news_url=",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("w"),
        env={
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
            # what the kit installs into etc/jupyter (and `make lab` uses): widget state saved with the notebook
            "JUPYTER_CONFIG_PATH": str(KIT_JUPYTER_CONFIG),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    with served(server, f"{base}/api/status?token={token}", tmp_path / "server.log", "JupyterLab"):
        yield f"{base}/lab/tree/{name}?token={token}", base


def open_lab(browser, url: str, base: str):
    """A page on the notebook with only the local server reachable; returns (context, page, errors)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # JupyterLab may reach for the internet (news, extension manager): only the local server is allowed.
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((base, "blob:", "data:")) else r.abort())
    page.goto(url, timeout=90_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    return context, page, errors


def notebook7_url(lab_url: str) -> str:
    """The Notebook 7 address of the notebook that `lab_url` opens in JupyterLab (same server)."""
    pytest.importorskip("notebook", reason="Notebook 7 is not installed (pip install 'notebook>=7')")
    return lab_url.replace("/lab/tree/", "/notebooks/", 1)
