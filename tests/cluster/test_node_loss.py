"""A worker node dies mid-search: the search finishes on the remaining nodes, each trial once.

The shared cluster gets a fourth node for this test (`local-cluster.sh add-worker`), which the
test kills; the cluster is left as it was (three alive nodes) for any test after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tunehouse.catalog import Catalog

from .localcluster import SCRIPT, alive_nodes

pytestmark = pytest.mark.slow

SLOW = """
import os, time, uuid

GATE = {gate!r}

def slow(params, data):
    # After one trial per node, trials wait while the gate folder exists: the test kills
    # the node while each node (1 CPU) is certainly inside a trial, then opens the gate.
    if os.path.isdir(GATE):
        seen = len(os.listdir(GATE))
        open(os.path.join(GATE, uuid.uuid4().hex), "w").close()
        while seen >= {nodes} and os.path.isdir(GATE):
            time.sleep(0.1)
    time.sleep(0.3)
    return {{"loss": (params["x"] - 5) ** 2}}
"""


def _node_ids(env) -> dict[int, str]:
    """Node-manager port -> Ray node id, from the cluster itself."""
    return {int(n["NodeManagerPort"]): n["NodeID"] for n in alive_nodes(env)}


def _raylet(cluster_dir: Path, port: int) -> psutil.Process:
    """The raylet this test's cluster started for the node with that node-manager port."""
    tmp = str(cluster_dir / "ray")
    hits = [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "raylet" and any(tmp in a for a in p.info["cmdline"] or [])
            and f"--node_manager_port={port}" in (p.info["cmdline"] or [])]
    assert len(hits) == 1, hits
    return hits[0]


def test_killing_a_worker_raylet_mid_search_loses_no_trial(cluster, tmp_path):
    d = Path(cluster["TH_CLUSTER_DIR"])
    added = subprocess.run([str(SCRIPT), "add-worker", "--dir", str(d)], capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stdout + added.stderr
    victim_name = added.stdout.split()[-1]
    ports = dict(line.split() for line in (d / "nodes").read_text().splitlines())
    victim_port = int(ports[victim_name])
    nodes = _node_ids(cluster)
    victim = nodes[victim_port]
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "slow_fn.py").write_text(SLOW.format(gate=str(gate), nodes=len(nodes)))
    spec = tmp_path / "node-loss.yaml"
    spec.write_text(
        "name: node-loss\ntask: classification\ndata: {sklearn: iris}\nmodel: slow_fn:slow\n"
        "metrics: [{name: loss, mode: min}]\nevaluation: {holdout: 0.25}\nfailure: {max_retries: 3}\n"
        "search: {algorithm: grid}\n"
        "space: {x: {type: grid, values: [" + ", ".join(map(str, range(18))) + "]}}\n"
    )
    cat = tmp_path / "catalog"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunehouse", "run", str(spec), "--address", cluster["RAY_ADDRESS"],
         "--catalog", str(cat), "--json"],
        env=cluster, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # one trial done on every node (1 CPU each) and one more waiting at the gate on each
        deadline = time.time() + 150
        while time.time() < deadline and len(list(gate.iterdir())) < 2 * len(nodes):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        assert len(list(gate.iterdir())) >= 2 * len(nodes)
        os.kill(_raylet(d, victim_port).pid, signal.SIGKILL)
        time.sleep(1.0)
        shutil.rmtree(gate)
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
