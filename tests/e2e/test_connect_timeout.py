"""`tunehouse run --address` when nothing (or no Ray) answers there: a timeout, Ctrl-C works.

No cluster is needed: a closed port, and a plain socket server that accepts TCP connections
and never says a word (what Ray's client meets at a wrong port).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "search_spaces" / "quickstart.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_server():
    """Accepts connections on every interface (Ray dials this host's own address for
    127.0.0.1) and never answers. Yields (port, the number of connections accepted so far)."""
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], lambda: len(accepted)
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        srv.close()


def run_cli(*args: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tunehouse", "run", str(SPEC), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return proc, time.monotonic() - t0


def _nothing_listening(tmp: Path) -> SimpleNamespace:
    port = _closed_port()
    proc, took = run_cli("--address", f"127.0.0.1:{port}", "--connect-timeout", "3",
                         "--catalog", str(tmp / "catalog"), timeout=120)
    return SimpleNamespace(port=port, proc=proc, took=took, catalog=tmp / "catalog")


def _silent_port(tmp: Path) -> SimpleNamespace:
    with silent_server() as (port, accepted):
        proc, took = run_cli("--address", f"127.0.0.1:{port}", "--connect-timeout", "3",
                             "--catalog", str(tmp / "catalog"), timeout=120)
        seen = accepted()
    return SimpleNamespace(port=port, proc=proc, took=took, catalog=tmp / "catalog", accepted=seen)


@pytest.fixture(scope="module")
def timed_out(tmp_path_factory) -> dict[str, SimpleNamespace]:
    """Both connect-timeout runs at once (each mostly waits out its 3 s): {case: outcome}."""
    cases = {"nothing": _nothing_listening, "silent": _silent_port}
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(fn, tmp_path_factory.mktemp(name)) for name, fn in cases.items()}
        return {name: f.result() for name, f in futures.items()}


def test_nothing_listening_fails_within_the_connect_timeout_in_one_line(timed_out):
    run = timed_out["nothing"]
    port, proc, took = run.port, run.proc, run.took
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: cannot reach Ray at 127.0.0.1:{port}")
    assert "within 3 s (nothing listening?)" in lines[0]
    assert took < 30  # Python, pandas and the data load included; Ray alone retried for ~10 minutes
    assert not run.catalog.exists()


def test_a_port_that_listens_but_is_not_ray_fails_within_the_connect_timeout(timed_out):
    run = timed_out["silent"]
    port, proc, took = run.port, run.proc, run.took
    assert run.accepted >= 2  # our TCP check, then Ray's own client
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]  # Ray's warning per attempt is not shown
    assert lines[0].startswith(f"error: cannot connect to Ray at 127.0.0.1:{port} within 3 s")
    assert "did not answer as Ray" in lines[0]
    assert took < 40  # Ray's own attempts, cut to the timeout: ~14 minutes by default
    assert not run.catalog.exists()


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "stopped")])
def test_a_signal_while_connecting_ends_the_run_at_once(tmp_path, sig, code, word):
    """Ctrl-C (SIGINT) or a stop (SIGTERM) while Ray's C++ client blocks in its connect."""
    with silent_server() as (port, accepted):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunehouse", "run", str(SPEC), "--address", f"127.0.0.1:{port}",
             "--catalog", str(tmp_path / "catalog")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while accepted() < 2 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)  # the TCP check's connection, then Ray's client's
            assert accepted() >= 2 and proc.poll() is None, "the run never got to Ray's connect"
            time.sleep(0.5)  # well inside Ray's connect (its first wait is 7 s with the default timeout)
            proc.send_signal(sig)
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=15)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == code, err[-2000:]
    assert took < 5
    assert err.strip().splitlines() == [f"{word} while connecting to Ray at 127.0.0.1:{port}; nothing ran"]
    assert out == ""
    assert not (tmp_path / "catalog").exists()
