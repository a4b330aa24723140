"""Attaching to a running Ray: bounded by a timeout, with Ctrl-C working while it connects.

Shared by the attached-cluster and Ray Client backends. With nothing listening, Ray 2.60
retries for about 14 minutes with the main thread blocked in C++ (so Ctrl-C waited too); here
a TCP check fails at once, Ray's own attempts are cut to fit the timeout, and the CLI's
signals end the process while Ray holds the thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import warnings
from typing import Any

from tunehouse.backend._base import first_lines
from tunehouse.errors import RunError

DEFAULT_CONNECT_TIMEOUT_S = 30.0


def attach(target: str, timeout_s: float, kwargs: dict[str, Any], *, own_signals: bool) -> None:
    """``ray.init(address=target)``, failing within about ``timeout_s`` when nothing answers.

    ``own_signals``: this process's SIGINT and SIGTERM are ours (the CLI), so they may end it
    while Ray connects; a notebook keeps its own signal handling.
    """
    import ray

    endpoint = _endpoint(target)
    with _signals_end_connecting(target, own_signals):
        if endpoint is not None:
            _check_listening(target, endpoint, timeout_s)
        for attempt in range(3):
            try:
                with _held_stderr(), warnings.catch_warnings():
                    # Ray Client's timeout warning repeats what our error says
                    warnings.filterwarnings("ignore", message="Ray Client connection timed out")
                    ray.init(address=target, **kwargs)
                return
            except ConnectionAbortedError:
                # Ray Client's server starts a process per client and gives it 30 s; on a
                # loaded head that start can fail once ("Initialization failure from server")
                if attempt == 2 or not target.startswith("ray://"):
                    raise
                time.sleep(2.0)
            except ConnectionError as e:
                if endpoint is None:
                    raise
                said = first_lines(e)
                said = "" if said.startswith("Failed to connect to Ray cluster") else f" ({said})"
                hint = ("the head's Ray Client port (10001 by default)" if target.startswith("ray://")
                        else "the cluster's GCS port (6379 by default), or ray://HOST:10001 for Ray Client")
                raise RunError(
                    f"cannot connect to Ray at {target} within {timeout_s:g} s: {_hostport(endpoint)} accepts "
                    f"connections but did not answer as Ray{said}; is it {hint}?"
                ) from e


def _endpoint(target: str) -> tuple[str, int] | None:
    """The host and port that ``ray.init(address=target)`` connects to, when known here."""
    from urllib.parse import urlparse

    if target.startswith("ray://"):
        u = urlparse(target)
        try:
            return (u.hostname, u.port or 10001) if u.hostname else None
        except ValueError:  # a port that is not a number: Ray's own error says so
            return None
    try:
        # what Ray does with it: "auto" -> the cluster ray start recorded (or RAY_ADDRESS),
        # 127.0.0.1 -> this host's own address
        from ray._private.services import canonicalize_bootstrap_address

        addr = canonicalize_bootstrap_address(target)
    except Exception:  # no cluster found for "auto", a malformed address: Ray's error says it
        return None
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _hostport(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_listening(target: str, endpoint: tuple[str, int], timeout_s: float) -> None:
    """A TCP connect to Ray's address, bounded by the timeout: with nothing listening Ray
    itself retries for minutes, blocking Ctrl-C meanwhile."""
    import socket

    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            pass
    except OSError as e:
        where = target if target.endswith(_hostport(endpoint)) else f"{target} ({_hostport(endpoint)})"
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
        raise RunError(f"cannot reach Ray at {where} within {timeout_s:g} s (nothing listening?): {reason}; "
                       "start the cluster or check --address (HOST:6379, ray://HOST:10001 or auto)") from None


@contextlib.contextmanager
def connect_budget(timeout_s: float):
    """Ray's own connection attempts, cut to fit ``timeout_s``, while attaching.

    To a GCS address Ray makes up to 20 attempts, each waiting 5 s for its channel, 5 s for
    its pubsub and 30 s for the cluster id: 14 minutes when a port listens but nothing there
    answers. One attempt with its waits scaled to the timeout fits in it; Ray Client (ray://)
    makes 3 attempts, each given a third. Ray reads the C++ settings when it is first
    imported (a Ray imported earlier keeps its own); a variable already set wins. The
    variables are removed again afterwards (the retry count also governs a local start).
    """
    t = max(1, int(timeout_s))
    budget = {
        "RAY_gcs_server_port_wait_time_s": "1",  # attempts, about a second apart
        "RAY_gcs_rpc_server_connect_timeout_s": str(max(1, t // 4)),
        "RAY_py_gcs_connect_timeout_s": str(max(1, t // 2)),
        "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": str(max(1, t // 3)),
        "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": str(max(1, t // 3)),
    }
    added = [k for k in budget if k not in os.environ]
    os.environ.update({k: budget[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


_RAY_LOG_LINE = re.compile(r"^(\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] |\d{4}-\d\d-\d\d [\d:,]+\t[A-Z]+ )")


@contextlib.contextmanager
def _held_stderr():
    """Hold what is printed on stderr while Ray connects; if the connection fails, drop Ray's
    own log lines (a warning per attempt), since the error says it in one line."""
    import tempfile

    try:
        ours = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a notebook's or a test's stream
        ours = False
    if not ours:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            text = "".join(ln for ln in lines if ok or not _RAY_LOG_LINE.match(ln))
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


@contextlib.contextmanager
def _signals_end_connecting(target: str, own_signals: bool):
    """From the CLI, Ctrl-C (exit 130) or SIGTERM (143) while attaching ends the process at once.

    Ray's C++ client blocks the main thread while it connects, and Python runs a signal's
    handler only once it has the thread back (Ray's timeouts later; a KeyboardInterrupt was
    lost in its retry loop here). The signal still reaches Python's C-level handler, which
    writes its number to the wakeup fd: a thread waiting on it ends the process. Nothing has
    been written to the catalog yet. A notebook keeps its own signal handling.
    """
    import select
    import signal
    import socket

    if not own_signals or threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = socket.socketpair()
    w.setblocking(False)
    err = os.dup(2)  # the terminal's stderr, even while ray.init's output is held
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not select.select([r], [], [], 0.1)[0]:
                continue
            for signum in r.recv(64):
                if signum in (signal.SIGINT, signal.SIGTERM):
                    what, code = ("interrupted", 130) if signum == signal.SIGINT else ("stopped", 143)
                    os.write(err, f"{what} while connecting to Ray at {target}; nothing ran\n".encode())
                    os._exit(code)

    # the watcher acts; Python's own handlers would only run after Ray returns
    handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="tunehouse-connect-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        done.set()
        watcher.join()
        r.close()
        w.close()
        os.close(err)
