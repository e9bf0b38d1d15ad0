"""Which torch build `make` installs, and from where: prints the arguments for ``pip install``.

    python scripts/torch_install_args.py                 # e.g. torch==2.13.0+cpu --extra-index-url https://...
    python scripts/torch_install_args.py --build cuda    # torch==2.13.0 (PyPI's default build)

The Makefile runs it (standard library only, before any virtual environment exists) and passes what
it prints to ``pip install``; the reason for the choice goes to stderr. The rules:

1. ``--spec`` or ``--pip-args`` given (the Makefile's ``TORCH_SPEC`` / ``PIP_TORCH_ARGS``): exactly
   those, nothing decided (``--spec`` defaults to ``torch==VERSION``).
2. ``--build cuda``: ``torch==VERSION`` from PyPI, whose Linux x86-64 wheels are CUDA builds.
3. ``--build cpu``, or ``auto`` (the default) on Linux where no NVIDIA GPU answers ``nvidia-smi -L``:
   the CPU build ``torch==VERSION+cpu``, from PyTorch's CPU wheel index when that answers within
   ``--probe-timeout`` seconds, otherwise from pip's own configured sources only (a local wheel
   directory or mirror). pip is never pointed at an index that does not answer, since it would retry
   it for every package; and with no source of a ``+cpu`` wheel pip stops with "No matching
   distribution", rather than falling back to a CUDA build.
4. ``auto`` on Linux with an NVIDIA GPU: ``torch==VERSION`` from PyPI (a CUDA build).
5. ``auto`` on macOS and Windows: ``torch==VERSION`` from PyPI, which is a CPU build there (with MPS
   on Apple silicon); PyTorch's CPU index has no ``+cpu`` wheels for them.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    """True when ``nvidia-smi -L`` (found on PATH) runs and lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(line.startswith("GPU ") for line in out.stdout.splitlines())


def index_answers(url: str, timeout: float) -> bool:
    """True when ``url`` answers an HTTP request within ``timeout`` seconds (any status below 500)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD"),
                                    timeout=timeout) as response:
            return response.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (OSError, ValueError):  # no route, no DNS, refused, timed out, or not a URL
        return False


def decide(version: str, build: str = "auto", spec: str = "", pip_args: str = "", *, system: str | None = None,
           gpu: bool | None = None, cpu_index: str = CPU_INDEX, probe_timeout: float = 5.0) -> tuple[list[str], str]:
    """``(pip install arguments, the reason)`` following the module's rules."""
    if spec.strip() or pip_args.strip():
        return [spec.strip() or f"torch=={version}", *shlex.split(pip_args)], "TORCH_SPEC / PIP_TORCH_ARGS as given"
    if build not in ("auto", "cpu", "cuda"):
        raise ValueError(f"build must be 'auto', 'cpu' or 'cuda', got {build!r}")
    system = system or platform.system()
    if build == "cuda":
        return [f"torch=={version}"], "TORCH_BUILD=cuda: PyPI's default build (CUDA on Linux x86-64)"
    if build == "auto":
        if system != "Linux":
            return [f"torch=={version}"], f"{system}: PyPI's torch is a CPU build here"
        if gpu if gpu is not None else has_nvidia_gpu():
            return [f"torch=={version}"], "an NVIDIA GPU answers nvidia-smi: PyPI's default build (CUDA)"
    why = "TORCH_BUILD=cpu" if build == "cpu" else "no NVIDIA GPU found (nvidia-smi)"
    if index_answers(cpu_index, probe_timeout):
        return [f"torch=={version}+cpu", "--extra-index-url", cpu_index], f"{why}: the CPU build, from {cpu_index}"
    return [f"torch=={version}+cpu"], (f"{why}: the CPU build; {cpu_index} does not answer, so only from pip's "
                                       "configured sources (a local wheel or mirror)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="2.13.0", help="torch version (default: %(default)s)")
    ap.add_argument("--build", default="auto", help="auto (default), cpu or cuda")
    ap.add_argument("--spec", default="", help="a requirement to install as given (TORCH_SPEC)")
    ap.add_argument("--pip-args", default="", help="extra pip arguments, as given (PIP_TORCH_ARGS)")
    ap.add_argument("--cpu-index", default=CPU_INDEX, help="PyTorch's CPU wheel index (default: %(default)s)")
    ap.add_argument("--probe-timeout", type=float, default=5.0, help="seconds to wait for the CPU index")
    args = ap.parse_args(argv)
    try:
        pip_args, why = decide(args.version, args.build, args.spec, args.pip_args,
                               cpu_index=args.cpu_index, probe_timeout=args.probe_timeout)
    except ValueError as err:
        ap.error(str(err))
    print(f"torch: {why}", file=sys.stderr)
    print(shlex.join(pip_args))


if __name__ == "__main__":
    main()
