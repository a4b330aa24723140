"""`tunehouse submit` and `tunehouse jobs` against a real 3-node cluster's job server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunehouse.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _cli(env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # run from a folder unrelated to the spec: everything the job needs must travel with it
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd="/")


def test_submit_wait_runs_on_several_nodes_and_records_each_trial_once(cluster, tmp_path):
    """A spec with a local CSV travels with the job; its trials spread over the nodes."""
    (tmp_path / "rows.csv").write_text("a,b,label\n" + "".join(f"{i},{(i * 7) % 11},{int(i % 3 == 0)}\n" for i in range(60)))
    spec = tmp_path / "cluster-csv.yaml"
    spec.write_text(
        "name: cluster-csv\ntask: classification\ndata: {path: rows.csv, target: label}\n"
        "model: sklearn.tree.DecisionTreeClassifier\nmetrics: [accuracy]\nevaluation: {cv: 3}\n"
        "search: {algorithm: grid}\nspace: {max_depth: {type: grid, values: [1, 2, 3, 4, 5, 6]}}\n"
    )
    cat = tmp_path / "catalog"
    out = _cli(cluster, "submit", str(spec), "--address", cluster["RAY_API_SERVER_ADDRESS"],
               "--catalog", str(cat), "--wait", "--env", f"TMPDIR={tmp_path}")  # the job's folder: ours to clean
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "best trial" in out.stdout and out.stdout.rstrip().endswith("SUCCEEDED")
    job_id = out.stdout.split("submitted job ", 1)[1].split(":", 1)[0]

    c = Catalog(cat)
    exp = c.experiments().iloc[0]
    assert exp.status == "completed" and exp.cluster_nodes == 3
    df = c.trials(exp.experiment_id)
    assert sorted(df.max_depth) == [1, 2, 3, 4, 5, 6] and df.trial_id.is_unique
    assert df.node_id.nunique() > 1  # trials ran on more than one node
    job_dirs = list(tmp_path.glob("tunehouse-job-*"))  # where the driver ran: the spec and data copied
    assert len(job_dirs) == 1 and (job_dirs[0] / "rows.csv").is_file()

    st = _cli(cluster, "jobs", "status", job_id, "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["status"] == "SUCCEEDED" and status["experiment_id"] == exp.experiment_id
    assert (status["trials_done"], status["trials_total"]) == (6, 6)
    listed = json.loads(_cli(cluster, "jobs", "list", "--json").stdout)
    assert job_id in {j["job_id"] for j in listed}
    logs = _cli(cluster, "jobs", "logs", job_id)
    assert logs.returncode == 0 and f"experiment {exp.experiment_id}" in logs.stdout


SLOW = """
import time

def slow(params, data):
    time.sleep(0.4)
    return {"loss": (params["x"] - 3) ** 2}
"""


def test_jobs_stop_records_the_experiment_stopped_with_its_finished_trials(cluster, tmp_path):
    (tmp_path / "slow_fn.py").write_text(SLOW)  # a training function next to the spec travels too
    spec = tmp_path / "slow.yaml"
    spec.write_text(
        "name: slow-job\ntask: classification\ndata: {sklearn: iris}\nmodel: slow_fn:slow\n"
        "metrics: [{name: loss, mode: min}]\nsearch: {algorithm: grid}\n"
        "space: {x: {type: grid, values: [" + ", ".join(map(str, range(40))) + "]}}\n"
    )
    cat = tmp_path / "catalog"
    out = _cli(cluster, "submit", str(spec), "--address", cluster["RAY_API_SERVER_ADDRESS"],
               "--catalog", str(cat), "--json", "--env", f"TMPDIR={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    sub = json.loads(out.stdout)

    def finished() -> int:
        if not (cat / "trials").exists():
            return 0
        df = Catalog(cat).trials(sub["experiment_id"])
        return int((df.status == "terminated").sum()) if len(df) else 0

    deadline = time.time() + 120
    while time.time() < deadline and finished() < 3:
        time.sleep(0.5)
    assert finished() >= 3
    stop = _cli(cluster, "jobs", "stop", sub["job_id"], "--json")
    assert stop.returncode == 0, stop.stderr[-2000:]
    st = json.loads(stop.stdout)
    assert st["status"] == "STOPPED" and st["experiment_status"] == "stopped"

    c = Catalog(cat)
    exp = c.experiment(sub["experiment_id"])
    assert exp["status"] == "stopped" and exp["ended_at"] is not None  # recorded by the driver itself
    df = c.trials(sub["experiment_id"])
    assert df.trial_id.is_unique and "running" not in set(df.status)
    assert int((df.status == "terminated").sum()) == exp["trials_done"] >= 3
    assert len(df) < 40  # it did stop


def test_unknown_job_is_one_line(cluster):
    out = _cli(cluster, "jobs", "status", "no-such-job", "--address", cluster["RAY_API_SERVER_ADDRESS"])
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "no such job" in out.stderr


def test_a_retrain_submitted_as_a_job_promotes_on_the_cluster(cluster, tmp_path):
    """`submit --retrain TAG --data FILE --wait`: the new file travels with the job, the child
    search runs on the cluster, and the tag moves when the challenger wins."""
    def rows(flip: int) -> str:
        return "a,b,label\n" + "".join(f"{i},{(i * 7) % 11},{int((i % 3 == 0) != bool(flip))}\n" for i in range(90))

    (tmp_path / "old.csv").write_text(rows(0))
    (tmp_path / "flipped.csv").write_text(rows(1))  # the relationship inverted: the champion is wrong
    spec = tmp_path / "retrain.yaml"
    spec.write_text(
        "name: cluster-retrain\ntask: classification\ndata: {path: old.csv, target: label}\n"
        "model: sklearn.tree.DecisionTreeClassifier\nmetrics: [accuracy]\nevaluation: {cv: 3, test_size: 0.3}\n"
        "search: {algorithm: grid}\nspace: {max_depth: {type: grid, values: [2, 4]}}\n")
    cat = tmp_path / "catalog"
    env = {**cluster}
    out = _cli(env, "submit", str(spec), "--address", cluster["RAY_API_SERVER_ADDRESS"], "--catalog", str(cat),
               "--wait", "--env", f"TMPDIR={tmp_path}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exp = Catalog(cat).experiments().iloc[0].experiment_id
    ex = _cli(env, "export", exp, "--out", str(tmp_path / "champ"), "--tag", "prod", "--catalog", str(cat))
    assert ex.returncode == 0, ex.stderr
    job = _cli(env, "submit", "--retrain", "prod", "--data", str(tmp_path / "flipped.csv"), "--address",
               cluster["RAY_API_SERVER_ADDRESS"], "--catalog", str(cat), "--wait", "--env", f"TMPDIR={tmp_path}")
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "promoted: accuracy champion" in job.stdout and job.stdout.rstrip().endswith("SUCCEEDED")
    c = Catalog(cat)
    (row,) = c.promotions(tag="prod").itertuples()
    assert row.decision == "promoted" and row.challenger_score > row.champion_score
    child = c.experiment(row.challenger_experiment_id)
    assert child["parent_id"] == exp and child["cluster_nodes"] == 3
    assert c.exports(tag="prod").iloc[0].experiment_id == row.challenger_experiment_id
