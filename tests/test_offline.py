"""Nothing leaves the machine: importing kit, loading a local or shipped model and tracing open no connection."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
