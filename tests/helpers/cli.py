"""The CLI in this process: ``main(argv)`` with its exit code and output as a subprocess's.

For tests about what a command prints and its exit code; what only a real process shows
(pipes, signals, start-up, ``entry``'s fast exit) stays with ``subprocess`` in each test
file that has one, so every command keeps at least one true subprocess.
"""

from __future__ import annotations

import contextlib
import io
import subprocess


def tunehouse_main(*args: str) -> subprocess.CompletedProcess[str]:
    """``tunehouse ARGS`` through ``tunehouse.cli.main``: (returncode, stdout, stderr).

    argparse's own errors (exit 2 with usage) arrive as ``SystemExit`` and become the code.
    """
    from tunehouse.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(["tunehouse", *args], code, out.getvalue(), err.getvalue())
