"""tunehouse run --address on a real 3-node Ray cluster on this machine (cluster/local-cluster.sh)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .localcluster import alive_nodes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
pytest.importorskip("ray.util.client", reason="cluster mode needs ray[default,client]")


def _nodes(env) -> dict[str, dict]:
    return {n["NodeID"]: n["Resources"] for n in alive_nodes(env)}


def _run(env, spec_text: str, tmp_path, address: str | None = None) -> dict:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    out = subprocess.run(
        [sys.executable, "-m", "tunehouse", "run", str(spec), "--address", address or env["RAY_ADDRESS"],
         "--catalog", str(tmp_path / "catalog"), "--json"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


SPEC = """
name: on-cluster
task: classification
data: {sklearn: iris}
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy]
search: {algorithm: grid}
space: {max_depth: {type: grid, values: [1, 2, 3, 4, 5, 6]}}
"""


def test_trials_spread_over_nodes_and_land_once(cluster, tmp_path):
    nodes = _nodes(cluster)
    assert len(nodes) == 3
    result = _run(cluster, SPEC, tmp_path)
    used = {t["usage"]["node_id"] for t in result["trials"]}
    assert used <= set(nodes) and len(used) > 1
    assert result["cluster_cpus"] == 3
    from tunehouse.catalog import Catalog

    df = Catalog(tmp_path / "catalog").trials(result["experiment_id"])
    assert sorted(df.max_depth) == [1, 2, 3, 4, 5, 6] and df.trial_id.is_unique
    assert df.node_id.nunique() > 1


def test_custom_resource_pins_trials_to_its_node(cluster, tmp_path):
    nodes = _nodes(cluster)
    tagged = [n for n, res in nodes.items() if res.get("worker_b")]
    assert len(tagged) == 1
    result = _run(cluster, SPEC + "resources: {cpus: 1, custom: {worker_b: 1}}\n", tmp_path)
    assert {t["usage"]["node_id"] for t in result["trials"]} == set(tagged)


def test_ray_client_address_runs_the_search_on_the_cluster(cluster, tmp_path):
    """ray://: Tune runs fit() on the cluster with a copy of our callback; the catalog is still complete."""
    result = _run(cluster, SPEC, tmp_path, address=cluster["TUNEHOUSE_CLIENT_ADDRESS"])
    from tunehouse.catalog import Catalog

    cat = Catalog(tmp_path / "catalog")
    df = cat.trials(result["experiment_id"])
    assert sorted(df.max_depth) == [1, 2, 3, 4, 5, 6] and df.trial_id.is_unique
    assert set(df.status) == {"terminated"}
    exp = cat.experiment(result["experiment_id"])
    assert exp["status"] == "completed" and exp["trials_done"] == 6
    assert exp["best_trial_id"] == result["best"]["trial_id"]
    assert result["best"]["params"]["max_depth"] in range(1, 7) and result["test_metrics"]
