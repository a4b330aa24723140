"""cluster/local-cluster.sh run from outside the repository (tunehouse installed elsewhere)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from .localcluster import SCRIPT, short_dir

pytestmark = pytest.mark.slow


def cluster_processes(d: Path) -> list[psutil.Process]:
    """This cluster's processes: those naming its temp dir, and their descendants."""
    tmp = str(d / "ray")
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(tmp in a for a in (p.info["cmdline"] or [])):
                roots.append(p)
    family = {}
    for r in roots:
        with contextlib.suppress(psutil.Error):
            family.update({p.pid: p for p in [r, *r.children(recursive=True)]})
    return list(family.values())


def test_stop_uses_the_python_that_start_used(tmp_path):
    """`stop` ran the repository's .venv/bin/python, which a copy elsewhere does not have: it
    failed and left the cluster running. It uses the Python recorded by `start` now."""
    ray = Path(sys.executable).parent / "ray"  # a Ray installed outside the script's folder
    script = tmp_path / "elsewhere" / "cluster" / "local-cluster.sh"
    script.parent.mkdir(parents=True)
    shutil.copy2(SCRIPT, script)
    assert not (tmp_path / "elsewhere" / ".venv").exists()
    with short_dir() as d:
        try:
            start = subprocess.run([str(script), "start", "--dir", str(d), "--workers", "0"],
                                   env={**os.environ, "RAY": str(ray)}, capture_output=True, text=True, timeout=180)
            assert start.returncode == 0, start.stdout + start.stderr
            recorded = Path((d / "python").read_text().strip())
            assert recorded.samefile(sys.executable) or recorded.parent.samefile(ray.parent)
            assert cluster_processes(d), "the head is not running"
            # stop needs neither RAY nor this environment's bin on PATH: only the cluster's folder
            path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != ray.parent)
            env = {k: v for k, v in os.environ.items() if k != "RAY"} | {"PATH": path}
            stop = subprocess.run([str(script), "stop", "--dir", str(d)], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert stop.returncode == 0, stop.stdout + stop.stderr
            assert f"stopped the cluster in {d}" in stop.stdout
            assert cluster_processes(d) == []
        finally:
            for p in cluster_processes(d):  # what a failed stop left behind: this test's own processes
                with contextlib.suppress(psutil.Error):
                    p.kill()
