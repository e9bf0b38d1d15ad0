"""The real thing: AttentionViewer in JupyterLab with a live kernel (anywidget's own front end).

A click in the view reaches a Python observer in the kernel; the observer sets a trait and the
view follows. Skips when JupyterLab or its anywidget extension is not installed. Slow (a server,
a kernel, JupyterLab's UI): about 20-40 s.
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
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CELL = """\
import sys
sys.path[:0] = [{repo!r}, {fakes!r}]
from widget_fakes import FakeTrace
from kit.widgets import AttentionViewer

viewer = AttentionViewer(FakeTrace([["When", " Mary", " and", " John", " went", " to"]], n_layers=3, n_heads=4))
log = open({log!r}, "a")

def on_change(change):
    log.write(f"{{change['name']}}={{change['new']}}\\n")
    log.flush()
    if change["name"] == "layer" and change["new"] == 1:
        viewer.head = 3  # Python answers the click; the view must follow

viewer.observe(on_change, names=["layer", "head", "token"])
viewer
"""


# The notebook is open and its kernel has started.
KERNEL_IDLE = """() => {
  const widget = window.jupyterapp?.shell.currentWidget;
  return widget?.sessionContext?.session?.kernel?.status === "idle" && document.querySelector(".jp-Notebook .jp-Cell");
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_anywidget_extension() -> bool:
    from jupyter_core.paths import jupyter_path

    return any((Path(p) / "labextensions" / "anywidget" / "package.json").exists() for p in jupyter_path())


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free local port, serving tmp_path; yields (url, log path)."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed")
    if not has_anywidget_extension():
        pytest.skip("the anywidget JupyterLab extension is not installed")
    log = tmp_path / "changes.log"
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": CELL.format(repo=str(REPO), fakes=str(REPO / "tests" / "widgets"), log=str(log)),
            }
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "live.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
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
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        yield f"{base}/lab/tree/live.ipynb?token={token}", log, base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_clicks_reach_the_kernel_and_the_kernel_moves_the_view(browser, jupyterlab):
    url, log, base = jupyterlab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # JupyterLab may reach for the internet (news, extension manager): only the local server is allowed.
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((base, "blob:", "data:")) else r.abort())
    try:
        page.goto(url, timeout=90_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        # not awaited: the command settles only once the kernel has run the cell
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        root = page.locator(".jp-OutputArea .tmk-root")
        root.and_(page.locator('[data-ready="1"]')).wait_for(timeout=120_000)
        assert root.get_attribute("data-theme") == "light"  # JupyterLab's light theme
        assert root.locator(".tmk-thumb").count() == 12
        root.locator('.tmk-thumb[data-layer="1"][data-head="2"]').click()
        root.and_(page.locator('[data-layer="1"][data-head="3"][data-painted="1/3"]')).wait_for(timeout=30_000)
        root.locator('.tmk-chip[data-pos="4"]').click()
        deadline = time.monotonic() + 30
        while "token=4" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        lines = log.read_text().split()
        assert {"layer=1", "head=2", "head=3", "token=4"} <= set(lines)
        assert [e for e in errors if "tmk" in e or "kit" in e] == []
    except Exception:
        page.screenshot(path=str(log.parent / "failure.png"))  # for a look at what JupyterLab showed
        raise
    finally:
        context.close()
