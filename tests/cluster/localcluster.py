"""Real multi-node Ray clusters on this machine, started and stopped by cluster/local-cluster.sh."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local-cluster.sh"


@contextlib.contextmanager
def local_cluster(d: Path, workers: int = 2):
    """Head + ``workers`` workers, 1 CPU each, {"worker_b": 1} on the first; yields the client env.

    The env also carries ``TH_CLUSTER_DIR``; ``d/nodes`` names each node's node-manager port.
    Stops exactly this cluster's processes and checks none survived.
    """
    start = subprocess.run([str(SCRIPT), "start", "--dir", str(d), "--workers", str(workers)],
                           capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        env = dict(os.environ)
        for line in (d / "env").read_text().splitlines():
            k, _, v = line.removeprefix("export ").partition("=")
            env[k] = v
        env["TH_CLUSTER_DIR"] = str(d)
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(d)], capture_output=True, text=True, timeout=120)
        left = subprocess.run(["pgrep", "-f", str(d / "ray")], capture_output=True, text=True)
        assert left.stdout.strip() == "", "cluster processes survived stop"


@contextlib.contextmanager
def short_dir():
    """Ray's unix sockets live under the cluster's folder and must stay short (pytest's tmp_path is not)."""
    d = Path(tempfile.mkdtemp(prefix="thc", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def alive_nodes(env) -> list[dict]:
    """The cluster's alive nodes as Ray reports them (NodeID, NodeManagerPort, Resources, ...)."""
    code = textwrap.dedent("""
        import json, ray
        ray.init(log_to_driver=False)
        keep = ("NodeID", "NodeManagerPort", "Resources")
        print(json.dumps([{k: n[k] for k in keep} for n in ray.nodes() if n["Alive"]]))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
