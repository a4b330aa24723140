"""What a result depends on besides its spec: interpreter, packages, code version, host."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tunehouse", "ray", "optuna", "numpy", "pandas", "pyarrow")


def packages() -> tuple[str, ...]:
    """The distributions whose versions a result depends on: ours, and every model family's."""
    from tunehouse.families import FAMILIES

    return PACKAGES + tuple(sorted({f.package for f in FAMILIES.values() if f.package}))


def git_commit(where: Path) -> str | None:
    """The commit checked out at ``where`` (with ``+dirty`` for local changes), if it is a repo."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(where: Path | None = None) -> dict[str, str]:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
    }
    for pkg in packages():
        try:
            env[f"package.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    commit = git_commit(where or Path.cwd())
    if commit:
        env["git_commit"] = commit
    return env
