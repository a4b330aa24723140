"""Searches on a real embedded Ray (one per test session)."""

from __future__ import annotations

import json
import os
import statistics

import pytest

from conftest import SPECS, base_spec
from tunehouse import load_spec
from tunehouse.driver import run
from tunehouse.space import contains, grid_points
from tunehouse.spec import parse_spec

pytestmark = pytest.mark.slow


def test_grid_runs_exactly_the_product(ray_session, tmp_path):
    spec = load_spec(SPECS / "diabetes_linear_grid.yaml")
    result = run(spec, catalog=tmp_path)
    expected = grid_points(spec.space)
    got = sorted((t.params["alpha"], t.params["l1_ratio"], t.params["fit_intercept"]) for t in result.trials)
    assert len(result.trials) == len(expected) == 24
    assert got == sorted((p["alpha"], p["l1_ratio"], p["fit_intercept"]) for p in expected)
    assert result.best.metrics["rmse"] == min(t.metrics["rmse"] for t in result.trials)
    assert set(result.test_metrics) == {"rmse", "mae", "r2"}


def test_a_fixed_size_ray_keeps_few_trials_waiting_and_tune_imports_no_integrations(ray_session, tmp_path):
    """On a Ray of fixed size Tune keeps twice the trials that fit waiting (its own default
    created all 24 grid trials and their placement groups before the first ran), the setting
    ends with the search, and Tune's callback telemetry imported no W&B/MLflow integration."""
    import sys

    from ray.tune import Callback

    class Waiting(Callback):
        most = 0

        def on_step_begin(self, iteration, trials, **info):
            Waiting.most = max(Waiting.most, sum(t.status == "PENDING" for t in trials))

    result = run(load_spec(SPECS / "diabetes_linear_grid.yaml"), catalog=tmp_path, callbacks=[Waiting()])
    assert len(result.trials) == 24
    assert 1 <= Waiting.most <= 4  # 2 CPUs, 1 per trial
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    assert "ray.air.integrations.mlflow" not in sys.modules and "ray.air.integrations.wandb" not in sys.modules


def test_max_concurrent_holds_for_grid_and_random(ray_session, tmp_path):
    """``search.max_concurrent: 1`` runs one trial at a time, in the grid's own order (Tune
    ignores its ``max_concurrent_trials`` for the variant generator grid and random search use)."""
    from ray.tune import Callback

    class Running(Callback):
        most = 0

        def on_step_begin(self, iteration, trials, **info):
            Running.most = max(Running.most, sum(t.status == "RUNNING" for t in trials))

    for algorithm, space in (("grid", {"max_depth": {"type": "grid", "values": [1, 2, 3, 4]}}), ("random", None)):
        Running.most = 0
        search = {"algorithm": algorithm, "max_concurrent": 1, **({"num_samples": 4} if space is None else {})}
        spec = parse_spec(json.dumps(base_spec(search=search, **({"space": space} if space else {}))))
        result = run(spec, catalog=tmp_path / algorithm, callbacks=[Running()])
        assert len(result.trials) == 4 and Running.most == 1, algorithm
        if space:
            assert [t.params["max_depth"] for t in sorted(result.trials, key=lambda t: t.started_at)] == [1, 2, 3, 4]


def _configs(result):
    return sorted(tuple(sorted(t.params.items())) for t in result.trials)


def test_random_search_is_seeded(ray_session, tmp_path, write_spec):
    space = {"max_depth": {"type": "int", "low": 1, "high": 30},
             "min_samples_split": {"type": "uniform", "low": 0.01, "high": 0.5}}
    a = run(load_spec(write_spec(base_spec(seed=5, space=space), "a.yaml")), catalog=tmp_path)
    assert len(a.trials) == 4
    # exactly the seeded list `resume` recomputes (a pure function of the space and the seed:
    # the same seed gives the same list, another seed another)
    from tunehouse.space import sample_points

    spec = load_spec(write_spec(base_spec(seed=5, space=space), "d.yaml"))
    planned = sample_points(spec.space, 4, 5)
    assert _configs(a) == sorted(tuple(sorted(p.items())) for p in planned)
    assert sample_points(spec.space, 4, 5) == planned != sample_points(spec.space, 4, 6)


def test_bayes_stays_in_bounds_and_improves(ray_session, tmp_path, write_spec):
    spec = load_spec(write_spec(base_spec(
        model="helpers.objectives:quadratic",
        metrics=[{"name": "loss", "mode": "min"}],
        search={"algorithm": "bayes", "sampler": "tpe", "num_samples": 40, "max_concurrent": 1},
        space={"x": {"type": "uniform", "low": -10, "high": 10},
               "y": {"type": "uniform", "low": -10, "high": 10}},
    )))
    result = run(spec, catalog=tmp_path)
    assert len(result.trials) == 40
    assert all(contains(spec.space, t.params) for t in result.trials)
    losses = [t.metrics["loss"] for t in sorted(result.trials, key=lambda t: t.started_at)]
    # TPE's first 10 trials are random; the model-guided ones must do better
    assert statistics.median(losses[-15:]) < statistics.median(losses[:10])
    assert result.best.metrics["loss"] < 2.0


def test_usage_is_recorded_per_trial(ray_session, tmp_path):
    spec = load_spec(SPECS / "quickstart.yaml")
    spec = spec.override({"search.num_samples": 4})
    result = run(spec, catalog=tmp_path)
    node_ids = {n["NodeID"] for n in ray_session.nodes() if n["Alive"]}
    for t in result.trials:
        u = t.usage
        assert 0 < u["wall_s"] < 60
        assert 0 < u["cpu_s"] < 4 * u["wall_s"] + 1
        assert 50 < u["peak_rss_mb"] < 8000
        assert u["node_id"] in node_ids
        assert u["pid"] > 0 and u["pid"] != os.getpid()  # measured in the worker
        assert t.checkpoint and os.path.exists(os.path.join(t.checkpoint, "model.pkl"))


def test_failing_trials_are_recorded_and_the_search_goes_on(ray_session, tmp_path, write_spec):
    spec = load_spec(write_spec(base_spec(
        model="helpers.objectives:fails_when_big",
        metrics=[{"name": "loss", "mode": "min"}],
        search={"algorithm": "grid"},
        space={"x": {"type": "grid", "values": [1, 3, 7, 9]}},
    )))
    result = run(spec, catalog=tmp_path)
    by_x = {t.params["x"]: t for t in result.trials}
    assert {x: t.status for x, t in by_x.items()} == {1: "terminated", 3: "terminated", 7: "error", 9: "error"}
    assert "ValueError: x too big: 7" in by_x[7].error
    assert result.best.params["x"] == 1


def test_run_records_experiment_and_trials_in_the_catalog(ray_session, tmp_path):
    from tunehouse.catalog import Catalog

    spec = load_spec(SPECS / "quickstart.yaml")
    spec = spec.override({"search.num_samples": 3})
    result = run(spec, catalog=tmp_path)
    cat = Catalog(tmp_path)
    exp = cat.experiment(result.experiment_id)
    assert exp["status"] == "completed" and exp["trials_done"] == 3
    assert exp["best_trial_id"] == result.best.trial_id
    assert exp["spec_hash"] == spec.spec_hash and "n_estimators" in exp["spec_text"]
    env = dict(exp["environment"])
    assert env["package.ray"] and env["python"]
    assert dict(exp["test_metrics"]).keys() == result.test_metrics.keys()
    df = cat.trials(result.experiment_id)
    assert sorted(df.trial_id) == sorted(t.trial_id for t in result.trials)
    row = df.set_index("trial_id").loc[result.best.trial_id]
    assert row.roc_auc == result.best.metrics["roc_auc"]
    assert row.checkpoint_uri.startswith(f"checkpoints/{result.experiment_id}/")  # relative
    import hashlib

    data = (tmp_path / row.checkpoint_uri / "model.pkl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == row.checkpoint_sha256
    assert len(cat.iterations(result.experiment_id)) == 3


def test_run_on_an_s3_catalog(ray_session, s3_server):
    import uuid

    from tunehouse.catalog import Catalog, open_storage

    uri = f"s3://tunehouse-test/run-{uuid.uuid4().hex[:6]}"
    spec = load_spec(SPECS / "quickstart.yaml")
    spec = spec.override({"search.num_samples": 2})
    result = run(spec, catalog=uri)
    cat = Catalog(uri)
    best = cat.best(result.experiment_id)
    assert best["trial_id"] == result.best.trial_id
    store = open_storage(uri)
    files = [p.path for p in store.list_files(f"{best['checkpoint_uri']}/")]
    assert any(f.endswith("model.pkl") for f in files)


def test_time_budget_stops_the_search(ray_session, tmp_path, write_spec):
    spec = load_spec(write_spec(base_spec(
        model="helpers.objectives:sleepy", metrics=[{"name": "loss", "mode": "min"}], time_budget_s=6,
        evaluation={"holdout": 0.3, "test_size": 0},
        search={"algorithm": "random", "num_samples": 200},
        space={"x": {"type": "uniform", "low": 0, "high": 1}},
    )))
    result = run(spec, catalog=tmp_path)
    done = [t for t in result.trials if t.status == "terminated"]
    assert 1 <= len(done) < 60  # ~4 trials/s on 2 CPUs once started, for 6 s: far from 200
    from tunehouse.catalog import Catalog

    cat = Catalog(tmp_path)
    df = cat.trials(result.experiment_id)
    assert set(df.status) <= {"terminated", "stopped"}  # nothing left 'running'
    assert cat.experiment(result.experiment_id)["trials_done"] == len(done)


_EMBEDDED_START = r"""
import json, sys
import psutil
from ray._private import node, utils
from tunehouse.backend import EmbeddedRay

originals = {name: getattr(node.Node, name) for name in ("start_api_server", "start_monitor", "start_log_monitor")}
backend = EmbeddedRay()
backend.start([])
import ray

@ray.remote
def square(x):
    return x * x

out = {
    "tasks": ray.get([square.remote(i) for i in range(4)]),
    "cmdlines": [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)],
    "restored": all(getattr(node.Node, n) is f for n, f in originals.items()),
    "dependency_hook_restored": utils.get_dashboard_dependency_error.__module__ == utils.__name__,
}
print(json.dumps(out), flush=True)
backend.exit(0)
"""


def test_an_embedded_ray_starts_without_the_processes_it_never_uses():
    """ray.init of an embedded Ray starts no API server, autoscaler monitor or log monitor
    (``backend.local._SKIPPED``), runs tasks, and leaves Ray's own functions as they were."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="th-ray-", dir="/tmp") as tmp:  # socket paths stay short
        env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        child = subprocess.run([sys.executable, "-c", _EMBEDDED_START], env=env, capture_output=True, text=True,
                               timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["tasks"] == [0, 1, 4, 9]
    started = " ".join(out["cmdlines"])
    assert "raylet" in started and "gcs_server" in started  # the Ray that ran the tasks
    for never in ("dashboard/dashboard.py", "autoscaler/_private/monitor.py", "_private/log_monitor.py"):
        assert never not in started, never
    assert out["restored"] and out["dependency_hook_restored"]


def test_the_best_is_refitted_while_the_last_trial_runs_and_that_model_is_scored(ray_session, tmp_path, write_spec):
    """Once every trial has started, a trial's end leaves a core idle: the run refits the best so
    far there (``RefitAhead``). Here the first of four trials is slow and no better, so when the
    search ends the refit is done; its test score is what a fresh refit (the export's) gives."""
    from tunehouse.export import export

    path = write_spec("""
name: ahead
seed: 0
task: classification
data: {sklearn: breast_cancer}
model: {estimator: helpers.estimators.PacedTree, params: {max_depth: 3}}
evaluation: {cv: 2, test_size: 0.25}
metrics: [accuracy]
search: {algorithm: grid}
space: {pause: {type: choice, values: [1.5, 0.0, 0.01, 0.02]}}
""", "ahead.yaml")
    result = run(load_spec(path), catalog=tmp_path / "cat")
    slow = next(t for t in result.trials if t.params["pause"] == 1.5)
    assert slow.ended_at == max(t.ended_at for t in result.trials)  # the last to end
    assert result.best.params["pause"] != 1.5 and result.refit_ahead
    assert result.phases["refit_and_test"] < 1.0
    meta = export(str(tmp_path / "cat"), result.experiment_id, tmp_path / "exp")
    assert meta["metrics"]["test"] == result.test_metrics  # exactly: the same fit on the same rows
