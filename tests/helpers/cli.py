"""The tunehouse CLI as a real subprocess in end-to-end tests: its environment, and a
pseudo-terminal that collects what it draws."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path
from types import TracebackType

TESTS = Path(__file__).resolve().parents[1]
#: An ANSI escape sequence (colours, cursor moves, erases): ``ANSI.sub("", text)`` is what shows.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: Erase the line, and move the cursor up: a live display redraws itself in place with these.
ERASE, CURSOR_UP = "\x1b[2K", re.compile(r"\x1b\[\d*A")
#: The terminal a child on ``Terminal`` believes it draws on.
TERMINAL_ENV = {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}


def paced_spec(name: str, n: int) -> str:
    """A spec of ``n`` trials of ``helpers.objectives:paced`` (0.3 s each), two at once.

    Long enough to be watched from another process or interrupted mid-search.
    """
    return f"""
name: {name}
seed: 3
task: classification
data: {{sklearn: iris}}
model: helpers.objectives:paced
evaluation: {{holdout: 0.25}}
metrics: [{{name: loss, mode: min}}]
search: {{algorithm: random, num_samples: {n}, max_concurrent: 2}}
space: {{x: {{type: uniform, low: 0, high: 4}}}}
"""


def after_panel(text: str) -> str:
    """What stays on screen after a live panel was last erased, without escape sequences."""
    return ANSI.sub("", text.rsplit(ERASE, 1)[-1])


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment with tests/ first on PYTHONPATH, and ``extra`` on top.

    Ray's workers import the training functions (``helpers.objectives``) from tests/.
    """
    pythonpath = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": pythonpath, **extra}


def cli_argv(*args: str) -> list[str]:
    """``python -m tunehouse ARGS`` with this interpreter."""
    return [sys.executable, "-m", "tunehouse", *args]


class Terminal:
    """``tunehouse ARGS`` with one pseudo-terminal (120x40) as stdin, stdout and stderr.

    A daemon thread reads everything the child draws until every writer has closed the
    terminal. As a context manager, it kills the child if it is still running on exit.
    """

    def __init__(self, *args: str, cwd: Path) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(cli_argv(*args), cwd=cwd, stdin=slave, stdout=slave,
                                     stderr=slave, env=cli_env(**TERMINAL_ENV))
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._pump, args=(master,), daemon=True)
        self._reader.start()

    def _pump(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            self._chunks.append(data)
        os.close(master)

    def text(self) -> str:
        """Everything drawn so far, escape sequences included."""
        return b"".join(self._chunks).decode("utf-8", "replace")

    def wait(self, timeout: float) -> tuple[int, str]:
        """Wait for the child to end; its exit code and everything it drew.

        Raises:
            subprocess.TimeoutExpired: it is still running after ``timeout`` seconds.
        """
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.text()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tunehouse_main(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """``tunehouse ARGS`` in this process, through ``tunehouse.cli.main``: (returncode, stdout,
    stderr), as a subprocess would give them; ``cwd`` is the working directory meanwhile.

    A search run this way (``run``, ``continue``, ``resume``) uses the test session's Ray
    (``ray_session``): a subprocess pays an embedded Ray's start-up (8-10 s of both cores).

    For tests about what a command prints and its exit code; what only a real process shows
    (pipes, signals, start-up, ``entry``'s fast exit) stays with ``subprocess``, so every command
    keeps at least one true subprocess test. argparse's own errors (exit 2 with usage) arrive as
    ``SystemExit`` and become the code.
    """
    import contextlib
    import io

    from tunehouse.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(["tunehouse", *args], code, out.getvalue(), err.getvalue())
