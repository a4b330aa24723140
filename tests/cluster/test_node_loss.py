"""A worker node dies mid-search: the search finishes on the remaining nodes, each trial once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tunehouse.catalog import Catalog

from .localcluster import local_cluster, short_dir

pytestmark = pytest.mark.slow

SLOW = """
import time

def slow(params, data):
    time.sleep(0.8)
    return {"loss": (params["x"] - 5) ** 2}
"""


def _node_ids(env) -> dict[int, str]:
    """Node-manager port -> Ray node id, from the cluster itself."""
    code = textwrap.dedent("""
        import json, ray
        ray.init(log_to_driver=False)
        print(json.dumps({n["NodeManagerPort"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def _raylet(cluster_dir: Path, port: int) -> psutil.Process:
    """The raylet this test's cluster started for the node with that node-manager port."""
    tmp = str(cluster_dir / "ray")
    hits = [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "raylet" and any(tmp in a for a in p.info["cmdline"] or [])
            and f"--node_manager_port={port}" in (p.info["cmdline"] or [])]
    assert len(hits) == 1, hits
    return hits[0]


def test_killing_a_worker_raylet_mid_search_loses_no_trial(tmp_path):
    pytest.importorskip("ray.job_submission", reason="cluster mode needs ray[default,client]")
    with short_dir() as d, local_cluster(d) as env:
        ports = dict(line.split() for line in (d / "nodes").read_text().splitlines())
        victim_port = int(ports["worker-2"])
        victim = _node_ids(env)[victim_port]
        (tmp_path / "slow_fn.py").write_text(SLOW)
        spec = tmp_path / "node-loss.yaml"
        spec.write_text(
            "name: node-loss\ntask: classification\ndata: {sklearn: iris}\nmodel: slow_fn:slow\n"
            "metrics: [{name: loss, mode: min}]\nevaluation: {holdout: 0.25}\nfailure: {max_retries: 3}\n"
            "search: {algorithm: grid}\n"
            "space: {x: {type: grid, values: [" + ", ".join(map(str, range(18))) + "]}}\n"
        )
        cat = tmp_path / "catalog"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunehouse", "run", str(spec), "--address", env["RAY_ADDRESS"],
             "--catalog", str(cat), "--json"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            # wait until the victim node has finished a trial: it is in use, and busy again
            deadline = time.time() + 150
            while time.time() < deadline:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                if (cat / "trials").exists():
                    df = Catalog(cat).trials("node-loss")
                    if "node_id" in df and (df.node_id == victim).any():
                        break
                time.sleep(0.3)
            else:
                pytest.fail("no trial ran on the victim node")
            os.kill(_raylet(d, victim_port).pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-3000:]
        assert "Raylet is terminated" not in out  # Ray's notice goes to stderr, the JSON stays clean
        result = json.loads(out)

        c = Catalog(cat)
        df = c.trials(result["experiment_id"])
        assert sorted(df.x) == list(range(18)) and df.trial_id.is_unique  # every trial, once
        assert set(df.status) == {"terminated"}
        assert c.experiment(result["experiment_id"])["status"] == "completed"
        retried = df[df.attempts >= 2]
        assert len(retried)  # the trial(s) on the dead node ran again ...
        assert victim not in set(retried.node_id)  # ... and finished on another node
