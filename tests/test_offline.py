"""Nothing leaves the machine: importing kit, loading a local or shipped model, tracing, building and
exporting every widget, and running every lesson notebook open no connection.

The widget and lesson tests run in separate processes whose ``sitecustomize`` (``tests/lesson_runs.py``)
refuses every non-loopback connection and name look-up and logs it; the offline flags of the hub
libraries are off there, so only the block keeps them home.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.lesson_runs import LESSONS


def test_import_load_and_trace_open_no_network_connection(tiny_dirs):
    code = textwrap.dedent(f"""
        import socket
        attempts = []
        real_connect = socket.socket.connect
        def refuse(self, address, *a, **k):
            attempts.append(address)
            raise OSError("network blocked by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = lambda address, *a, **k: refuse(None, address)
        import kit
        for name in [{str(tiny_dirs["gpt2"])!r}] + kit.models():
            model = kit.load(name, device="cpu")
            model.trace([list(range(3, 9))])
        assert not attempts, attempts
        print("no connection attempted")
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no connection attempted" in out.stdout


# --- widgets and lessons, in separate processes with every non-loopback connection refused -------------

def _run_blocked(code: str, tmp_path) -> tuple[subprocess.CompletedProcess, list[str]]:
    from tests.lesson_runs import blocked_env

    log = tmp_path / "refused.txt"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **blocked_env(log)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=600, cwd=tmp_path)
    return out, log.read_text().splitlines() if log.exists() else []


def test_the_network_block_refuses_real_connections_and_lookups(tmp_path):
    """The control for the tests below: the block is installed and does refuse."""
    from tests.lesson_runs import refused

    out, log = _run_blocked("""
        import socket
        for attempt in (lambda: socket.socket().connect(("93.184.216.34", 80)),
                        lambda: socket.getaddrinfo("huggingface.co", 443)):
            try:
                attempt()
            except OSError as err:
                assert "network blocked" in str(err), err
            else:
                raise SystemExit("not blocked")
        socket.socket().connect_ex(("127.0.0.1", 9))  # loopback stays open (the kernel needs it)
        print("blocked")
    """, tmp_path)
    assert out.returncode == 0 and "blocked" in out.stdout, out.stderr[-2000:]
    assert any(line.startswith("installed in process") for line in log)
    assert refused(log) == ["('93.184.216.34', 80)", "lookup huggingface.co"]


def test_building_and_exporting_every_widget_opens_no_connection(tmp_path):
    from tests.lesson_runs import refused

    out, log = _run_blocked("""
        import torch
        import kit
        from kit.analysis import activation_patching
        from kit.widgets import AttentionViewer, CircuitDiagram, Dashboard, NeuronProbe, PatchingHeatmap, ResidualLens
        model = kit.load("facts-4l", device="cpu")
        prompt = "The capital of Fusuvaria is"
        tr = model.trace(prompt)
        views = [
            AttentionViewer(tr), AttentionViewer(model, prompt), ResidualLens(tr, target=" Gregrostton"),
            PatchingHeatmap(activation_patching(model, prompt, "The capital of Grermark is", " Gregrostton")),
            NeuronProbe(model, [prompt, "Gregrostton is the capital of"], layer=2, clamp=1.0,
                        features={2: torch.rand(model.d_mlp, 3)}),
            CircuitDiagram(tr),
        ]
        views[4].effect()
        for i, view in enumerate(views):
            view.to_html(f"view{i}.html")
        Dashboard(ResidualLens(tr), CircuitDiagram(tr)).to_html("dashboard.html")
        print("exported", len(views) + 1)
    """, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "exported 7" in out.stdout
    assert any(line.startswith("installed in process") for line in log)
    assert refused(log) == []
    assert all((tmp_path / f"view{i}.html").stat().st_size > 0 for i in range(6))


@pytest.mark.lessons
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_notebook_runs_with_the_network_blocked(path):
    from tests.lesson_runs import refused, run_lesson

    executed, log = run_lesson(str(path))  # the kernel is a separate process: blocked by its sitecustomize
    assert any(line.startswith("installed in process") for line in log), "the kernel ran without the block"
    assert refused(log) == []
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
