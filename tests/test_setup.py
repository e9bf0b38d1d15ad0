"""The README's two commands: which torch `make` installs, `make lab`, and CI's `.ci/run`.

These run the real Makefile and scripts, with a stand-in virtual environment (``fake_venv``: its
``python`` and ``jupyter`` are this interpreter's, so nothing is installed) and, for the torch
decision, a fake ``nvidia-smi`` on PATH and local HTTP servers standing for PyTorch's CPU index.
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from scripts.torch_install_args import decide

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "torch_install_args.py"
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_env(**extra: str) -> dict[str, str]:
    """This process's environment without what an enclosing `make` passes down (`make test VENV=...`
    would otherwise reach the makes these tests start), plus ``extra``."""
    skip = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VENV", "PYTEST_ARGS", "LAB_ARGS", "TORCH_SPEC",
            "PIP_TORCH_ARGS", "TORCH_BUILD", "TORCH_VERSION"}
    return {**{k: v for k, v in os.environ.items() if k not in skip}, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_venv(tmp_path):
    """A directory the Makefile takes for a set-up virtual environment (``VENV=...``): its ``.installed``
    stamp is newer than pyproject.toml, and ``bin/python`` / ``bin/jupyter`` run this interpreter."""
    venv = Path(tempfile.mkdtemp(prefix="kit-venv-"))  # not under tmp_path: a dropped-privilege user reads it
    venv.chmod(0o755)
    _executable(venv / "bin" / "python", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    _executable(venv / "bin" / "jupyter", f'#!/bin/sh\nexec "{sys.executable}" -m jupyter "$@"\n')
    (venv / ".installed").touch()
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


# which torch ------------------------------------------------------------------------------------

class _Index(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (the http.server API)
        self.send_response(200 if self.path.endswith("/torch/") else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cpu_index():
    """A local HTTP server answering like PyTorch's CPU wheel index."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()


@pytest.fixture
def silent_index():
    """An address that accepts connections and never answers (a firewall that drops, a hung proxy)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/whl/cpu"
    sock.close()


def _refused_index() -> str:
    return f"http://127.0.0.1:{_free_port()}/whl/cpu"  # nothing listens there


def run_script(*args: str, path_dirs: list[Path] = (), timeout: float = 60) -> tuple[list[str], str]:
    """Run torch_install_args.py with only ``path_dirs`` on PATH (so a real ``nvidia-smi`` in /usr/bin
    stays out of it): ``(pip arguments, the reason on stderr)``."""
    env = {**os.environ, "PATH": os.pathsep.join(map(str, path_dirs)) or os.devnull}
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                         timeout=timeout, check=True)
    return shlex.split(out.stdout), out.stderr.strip()


def fake_nvidia_smi(bin_dir: Path, gpus: int) -> Path:
    """An ``nvidia-smi`` that lists ``gpus`` GPUs, or (0) fails as it does when no driver answers."""
    if gpus:
        lines = "\n".join(f"GPU {i}: NVIDIA H200 (UUID: GPU-{i:08d})" for i in range(gpus))
        body = f'[ "$1" = "-L" ] && printf "%s\\n" "{lines}" && exit 0\nexit 1\n'
    else:
        body = ('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\n'
                "exit 9\n")
    return _executable(bin_dir / "nvidia-smi", "#!/bin/sh\n" + body)


def test_linux_without_nvidia_smi_gets_the_cpu_build_from_the_cpu_index(tmp_path, cpu_index):
    args, why = run_script("--cpu-index", cpu_index, path_dirs=[tmp_path])
    assert args == ["torch==2.13.0+cpu", "--extra-index-url", cpu_index]
    assert "no NVIDIA GPU" in why and "the CPU build" in why


def test_linux_with_an_nvidia_gpu_gets_pypis_cuda_build(tmp_path, cpu_index):
    fake_nvidia_smi(tmp_path, gpus=2)
    args, why = run_script("--cpu-index", cpu_index, path_dirs=[tmp_path])
    assert args == ["torch==2.13.0"]
    assert "NVIDIA GPU" in why and "CUDA" in why


def test_nvidia_smi_without_a_driver_counts_as_no_gpu(tmp_path, cpu_index):
    fake_nvidia_smi(tmp_path, gpus=0)
    args, _ = run_script("--cpu-index", cpu_index, path_dirs=[tmp_path])
    assert args == ["torch==2.13.0+cpu", "--extra-index-url", cpu_index]


@pytest.mark.parametrize("index", ["refused", "silent"])
def test_an_unanswering_cpu_index_is_left_out_within_the_probe_timeout(tmp_path, index, silent_index):
    # this machine: download.pytorch.org is unreachable and pip's configuration supplies the wheel;
    # pip must not be pointed at the dead index (it retries it for every package)
    url = _refused_index() if index == "refused" else silent_index
    t0 = time.perf_counter()
    args, why = run_script("--cpu-index", url, "--probe-timeout", "1", path_dirs=[tmp_path])
    assert time.perf_counter() - t0 < 15  # the probe gives up after 1 s (the rest is starting Python)
    assert args == ["torch==2.13.0+cpu"]
    assert "does not answer" in why


def test_without_the_index_a_local_cpu_wheel_is_what_pip_installs(tmp_path):
    # what pip does with those arguments when the only source is a local wheel directory (pip's
    # `find-links`, as on this project's CI machine): it takes the +cpu wheel, without a network
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("torch-2.13.0+cpu-py3-none-any.whl", "torch-2.13.0-py3-none-any.whl"):
        dist = "torch-2.13.0" + ("+cpu" if "+cpu" in name else "")
        version = dist.split("-", 1)[1]
        with zipfile.ZipFile(wheels / name, "w") as z:
            info = f"torch-{version}.dist-info"
            z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
            z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            z.writestr(f"{info}/RECORD", "")
    args, _ = run_script("--cpu-index", _refused_index(), "--probe-timeout", "1", path_dirs=[tmp_path])
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--no-deps", "--no-index",
                    "--find-links", str(wheels), "--report", str(report), "--quiet", *args],
                   check=True, capture_output=True, timeout=120)
    installed = json.loads(report.read_text())["install"]
    assert [x["metadata"]["version"] for x in installed] == ["2.13.0+cpu"]


def test_override_is_taken_as_given(tmp_path, cpu_index):
    fake_nvidia_smi(tmp_path, gpus=1)
    args, why = run_script("--spec", "torch==2.12.0", "--pip-args",
                           "--index-url 'https://download.pytorch.org/whl/cu128'", path_dirs=[tmp_path])
    assert args == ["torch==2.12.0", "--index-url", "https://download.pytorch.org/whl/cu128"]
    assert "as given" in why
    args, _ = run_script("--pip-args", "--index-url https://example.invalid/simple", path_dirs=[tmp_path])
    assert args == ["torch==2.13.0", "--index-url", "https://example.invalid/simple"]


def test_forced_builds_ignore_the_machine(tmp_path, cpu_index):
    args, _ = run_script("--build", "cuda", "--cpu-index", cpu_index, path_dirs=[tmp_path])  # no GPU here
    assert args == ["torch==2.13.0"]
    fake_nvidia_smi(tmp_path, gpus=1)
    args, _ = run_script("--build", "cpu", "--cpu-index", cpu_index, "--version", "2.11.0", path_dirs=[tmp_path])
    assert args == ["torch==2.11.0+cpu", "--extra-index-url", cpu_index]


def test_macos_and_windows_get_pypis_build(cpu_index):
    for system in ("Darwin", "Windows"):
        args, why = decide("2.13.0", system=system, gpu=False, cpu_index=cpu_index)
        assert args == ["torch==2.13.0"] and "CPU build" in why


def test_an_unknown_build_is_refused_naming_the_valid_ones(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--build", "rocm"], capture_output=True, text=True)
    assert out.returncode != 0 and "'auto', 'cpu' or 'cuda'" in out.stderr


@needs_make
@pytest.mark.parametrize("overrides, expected", [
    ({"TORCH_BUILD": "cuda"}, ["torch==2.13.0"]),
    ({"TORCH_SPEC": "torch==2.12.0", "PIP_TORCH_ARGS": "--index-url https://download.pytorch.org/whl/cu126"},
     ["torch==2.12.0", "--index-url", "https://download.pytorch.org/whl/cu126"]),
])
def test_make_setup_passes_the_decision_to_pip(fake_venv, overrides, expected):
    # bin/python records the pip commands instead of running them
    log = fake_venv / "pip.log"
    _executable(fake_venv / "bin" / "python",
                f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then shift 2; printf "%s\\n" "$*" >> "{log}"; exit 0; fi\n'
                f'exec "{sys.executable}" "$@"\n')
    (fake_venv / ".installed").unlink()
    cmd = [MAKE, "-C", str(ROOT), "setup", f"VENV={fake_venv}", *(f"{k}={v}" for k, v in overrides.items())]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, env=make_env())
    torch_line, kit_line = log.read_text().splitlines()
    assert torch_line.split() == ["install", "-q", *expected]
    assert kit_line.split() == ["install", "-q", "-e", ".[test]"]
    assert (fake_venv / ".installed").exists()


# make lab ---------------------------------------------------------------------------------------

def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _start_lab(fake_venv: Path, port: int, token: str, preexec=None) -> subprocess.Popen:
    home = Path(tempfile.mkdtemp(prefix="kit-lab-home-"))
    home.chmod(0o777)
    env = make_env(HOME=str(home), JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_CONFIG_DIR=str(home / "config"),
                   PYTHONPATH=str(ROOT))
    lab_args = f"--port {port} --no-browser --IdentityProvider.token={token} --ServerApp.port_retries=0"
    return subprocess.Popen([MAKE, "-C", str(ROOT), "lab", f"VENV={fake_venv}", f"LAB_ARGS={lab_args}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=preexec)


def _stop(proc: subprocess.Popen) -> str:
    """Stop ``make lab`` and everything it started (its process group); its output (once stopped, again)."""
    if getattr(proc, "kit_output", None) is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        except ProcessLookupError:  # it had stopped already
            out, _ = proc.communicate()
        proc.kit_output = out
    return proc.kit_output


def _check_lab_lists_the_lessons(proc: subprocess.Popen, port: int, token: str) -> str:
    base, deadline, root = f"http://127.0.0.1:{port}", time.monotonic() + 180, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                root = _get_json(f"{base}/api/contents?token={token}")
                break
            except OSError:
                time.sleep(0.5)
        if root is None:
            pytest.fail(f"JupyterLab did not answer:\n{_stop(proc)}")
        assert {"name": "lessons", "type": "directory"}.items() <= next(
            c for c in root["content"] if c["name"] == "lessons").items()
        lessons = _get_json(f"{base}/api/contents/lessons?token={token}")
        names = {c["name"] for c in lessons["content"]}
        assert {p.name for p in (ROOT / "lessons").glob("*.ipynb")} <= names
        assert "00_quickstart.ipynb" in names
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                  {"redirect_request": lambda *a, **k: None}))
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(f"{base}/?token={token}", timeout=10)
        assert redirect.value.headers["Location"].startswith("/lab/tree/lessons")  # the browser opens there
    finally:
        out = _stop(proc)
    return out


@needs_make
def test_make_lab_serves_the_lessons_and_takes_jupyterlab_options(fake_venv):
    # as whoever runs the tests: root here, as in most containers
    port, token = _free_port(), "kit-test-token"
    out = _check_lab_lists_the_lessons(_start_lab(fake_venv, port, token), port, token)
    command = next(line for line in out.splitlines() if " lab " in line)
    assert f"--port {port} --no-browser" in command  # LAB_ARGS reach JupyterLab
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    assert "Running as root is not recommended" not in out


def _drop_to_nobody() -> None:
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)


def _runs_as_nobody(python: str) -> bool:
    """True when an unprivileged user (uid 65534) can run ``python`` from a shell, as make does."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    return subprocess.run(["sh", "-c", f'exec "{python}" -c pass'], capture_output=True,
                          preexec_fn=_drop_to_nobody).returncode == 0


@needs_make
@pytest.mark.skipif(not _runs_as_nobody(sys.executable),
                    reason="needs root (to become uid 65534) and this Python runnable by an unprivileged user")
def test_make_lab_works_as_a_normal_user(fake_venv):
    port, token = _free_port(), "kit-test-token"
    out = _check_lab_lists_the_lessons(_start_lab(fake_venv, port, token, preexec=_drop_to_nobody), port, token)
    assert "--allow-root" not in next(line for line in out.splitlines() if " lab " in line)


# .ci/run ----------------------------------------------------------------------------------------

@needs_make
@pytest.mark.parametrize("fails", [False, True])
def test_ci_run_prints_pytests_summary_and_fails_when_a_test_fails(tmp_path, fake_venv, fails):
    # a copy of the repository's Makefile and .ci/run around a tiny test suite; npm and chromium are
    # stand-ins so that `make test` goes straight to pytest
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-ra -p no:cacheprovider'\n")
    os.utime(fake_venv / ".installed")  # newer than the pyproject.toml just written
    (repo / "tests").mkdir()
    (repo / "widgets").mkdir()
    (repo / "tests" / "test_probe.py").write_text(
        f"def test_passes():\n    assert True\n\n\ndef test_maybe():\n    assert not {fails}\n")
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "npm", "#!/bin/sh\nexit 0\n")
    _executable(bin_dir / "chromium", "#!/bin/sh\nexit 0\n")
    env = make_env(PATH=os.pathsep.join([str(bin_dir), os.environ["PATH"]]), VENV=str(fake_venv))
    out = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=300)
    if fails:
        assert out.returncode != 0
        assert "1 failed, 1 passed" in out.stdout
        assert "FAILED tests/test_probe.py::test_maybe" in out.stdout
    else:
        assert out.returncode == 0, out.stdout + out.stderr
        assert "2 passed" in out.stdout
