"""Execute a lesson notebook once per test session, with the network blocked, and read its text outputs.

The kernel is a separate process, so the block is a ``sitecustomize.py`` on its ``PYTHONPATH``: it
refuses every socket connection and name lookup that is not loopback (the kernel talks to this
process over loopback ZeroMQ) and appends each refused address to a log file.
``run_lesson(path)`` returns the executed notebook and the log (``installed in process N`` for each
process that ran with the block, then one line per refused address); ``text_outputs(nb)``
lists what a reader sees as text: stdout and ``text/plain`` results, per cell, with timings and
memory addresses masked and progress bars dropped (HTML, vega, images and stderr are not text
outputs here; a widget counts by its ``text/plain`` repr).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))

SITECUSTOMIZE = r'''
"""Installed by tests/lesson_runs.py: this Python process may not reach beyond loopback."""
import os
import socket

_LOG = os.environ.get("KIT_BLOCKED_LOG", "")
_LOCAL = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")


def _local(host):
    return host is None or str(host) in _LOCAL or str(host).startswith("127.")


def _refuse(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{what}\n")
    raise OSError(f"network blocked by the kit's offline test: {what}")


def _guard(real):
    def connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(address)
        return real(self, address, *args, **kwargs)
    return connect


socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
_getaddrinfo = socket.getaddrinfo


def _lookup(host, *args, **kwargs):
    if not _local(host):
        _refuse(f"lookup {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _lookup
if _LOG:  # proof that this process runs with the block in place
    with open(_LOG, "a") as f:
        f.write(f"installed in process {os.getpid()}\n")
'''

_TIME = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|seconds|min)\b")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_PROGRESS = re.compile(r"\d+%\|.*\||it/s\]|s/it\]")
_RICH = ("text/html", "image/", "application/vnd.vegalite", "application/vnd.vega", "application/javascript")


@functools.cache
def blocked_env_dir() -> str:
    """A folder holding the blocking ``sitecustomize.py``: put it first on ``PYTHONPATH``."""
    folder = Path(tempfile.mkdtemp(prefix="kit-offline-"))
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return str(folder)


@functools.cache
def run_lesson(path: str):
    """``(executed notebook, log lines)`` for the lesson at ``path`` (executed once per session)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    log = Path(tempfile.mkdtemp(prefix="kit-offline-log-")) / "refused.txt"
    log.touch()
    env = {**os.environ, **blocked_env(log), "OMP_NUM_THREADS": "2"}
    client = NotebookClient(copy.deepcopy(nb), timeout=600, kernel_name="python3",
                            skip_cells_with_tag="skip-execution",
                            resources={"metadata": {"path": str(Path(path).parent)}})
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        executed = client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return executed, [line for line in log.read_text().splitlines() if line]


def blocked_env(log: Path) -> dict[str, str]:
    """Environment variables that run a Python process (a kernel, a script) with the network
    blocked and refusals logged to ``log``; the offline flags are off, so the block alone holds."""
    return {"PYTHONPATH": os.pathsep.join([blocked_env_dir(), str(ROOT)]), "KIT_BLOCKED_LOG": str(log),
            "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}


def refused(log_lines: list[str]) -> list[str]:
    """The refused connections and look-ups of a log (without the ``installed`` lines)."""
    return [line for line in log_lines if not line.startswith("installed in process")]


def _clean(text: str) -> str:
    lines = [_ADDRESS.sub("0x…", _TIME.sub("<time>", line.rstrip())) for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not _PROGRESS.search(line))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def text_outputs(nb) -> list[tuple[int, str]]:
    """``[(cell index, text)]`` of every executed code cell's text outputs (see the module docstring)."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "skip-execution" in cell.metadata.get("tags", []):
            continue
        if "NBVAL_SKIP" in cell.source or "NBVAL_IGNORE_OUTPUT" in cell.source:
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream" and o.name == "stdout":
                parts.append(_text(o.text))
            elif o.output_type in ("execute_result", "display_data"):
                data = o.get("data", {})
                if "text/plain" in data and not any(k.startswith(_RICH) for k in data):
                    parts.append(_text(data["text/plain"]))
            elif o.output_type == "error":
                parts.append(f"{o.ename}: {o.evalue}")
        out.append((i, _clean("\n".join(parts))))
    return out
