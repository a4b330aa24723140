"""`tunehouse submit` / `jobs` refuse bad input with one line, before anything is sent.

An unreachable server and a bad spec run as real processes; the other refusals are messages
and exit codes, checked through ``main(argv)`` in this process (``_main``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import tunehouse_main

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "search_spaces" / "quickstart.yaml"


def _cli(*args: str, env_drop=("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def _main(monkeypatch):
    """``tunehouse ARGS`` in this process, without the Ray address variables (as ``_cli``)."""
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return tunehouse_main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def _one_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:6379", "expected http://HOST:PORT"),
    ("ray://127.0.0.1:10001", "the job server is the dashboard's"),
    ("http://127.0.0.1:notaport", "the port is not a number"),
    ("http://", "expected http://HOST:PORT"),
])
def test_bad_address_is_exit_2_with_one_line(address, expected, _main):
    out = _main("submit", str(QUICK), "--address", address)
    assert out.returncode == 2
    assert expected in _one_line(out) and "--address" in out.stderr


def test_unreachable_job_server_is_exit_1_with_one_line():
    port = _closed_port()
    out = _cli("submit", str(QUICK), "--address", f"http://127.0.0.1:{port}")
    assert out.returncode == 1
    line = _one_line(out)
    assert "cannot reach Ray's job server" in line and str(port) in line
    st = _cli("jobs", "list", "--address", f"http://127.0.0.1:{port}")
    assert st.returncode == 1 and "cannot reach" in _one_line(st)


def test_missing_address_is_exit_2(_main):
    out = _main("jobs", "list")
    assert out.returncode == 2 and "no job server address" in _one_line(out)


def test_a_bad_spec_fails_locally_before_the_server_is_contacted(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICK.read_text().replace("algorithm: random", "algorithm: randon"))
    # the server address is unreachable: the spec's error must come first
    out = _cli("submit", str(bad), "--address", f"http://127.0.0.1:{_closed_port()}")
    assert out.returncode == 2
    line = _one_line(out)
    assert str(bad) in line and "search.algorithm" in line


def test_bad_env_option(_main):
    out = _main("submit", str(QUICK), "--address", "http://127.0.0.1:1", "--env", "NOVALUE")
    assert out.returncode == 2 and "KEY=VALUE" in _one_line(out)
