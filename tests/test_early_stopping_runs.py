"""Early stopping on a real Ray (issue 13): every search algorithm with every scheduler, the
catalog's rows, Optuna told of every trial, exports at the trial's resource, and a killed
worker's trial resuming from its checkpoint."""

from __future__ import annotations

import json

import pytest

from conftest import SPECS, base_spec
from tunehouse import load_spec
from tunehouse.catalog import Catalog
from tunehouse.driver import run
from tunehouse.export import export, load_export

pytestmark = pytest.mark.slow

#: Each grid point worse than the ones before it: every scheduler has trials to stop.
GRID = [0.0, 0.2, -0.3, 0.5, -0.6, 0.8, -0.9, 1.0, 1.2]


def _learns_spec(write_spec, algorithm, scheduler):
    """Nine trials of ``helpers.objectives:learns`` (loss x**2 + 1/step), nine steps each."""
    space = ({"x": {"type": "grid", "values": GRID}} if algorithm == "grid"
             else {"x": {"type": "uniform", "low": -1.2, "high": 1.2}})
    search = {"algorithm": algorithm, "early_stopping": {
        "scheduler": scheduler, "min_resource": 1, "max_resource": 9, "reduction_factor": 3}}
    if algorithm != "grid":
        search["num_samples"] = 9
    spec = base_spec(model={"estimator": "helpers.objectives:learns"}, metrics=[{"name": "loss", "mode": "min"}],
                     evaluation={"cv": 2, "test_size": 0}, search=search, space=space, seed=1)
    return load_spec(write_spec(spec))


@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median"])
@pytest.mark.parametrize("algorithm", ["grid", "random", "bayes"])
def test_every_algorithm_with_every_scheduler_stops_poor_trials(ray_session, tmp_path, write_spec, algorithm,
                                                                 scheduler):
    result = run(_learns_spec(write_spec, algorithm, scheduler), catalog=tmp_path / "cat")
    statuses = [t.status for t in result.trials]
    assert len(statuses) == 9 and set(statuses) <= {"terminated", "early_stopped"}, statuses
    assert "terminated" in statuses, statuses
    if algorithm == "grid" and scheduler in ("asha", "median"):
        # each grid point is worse than those before it: ASHA cuts 2 of 3 at its first rung and
        # the median rule stops the later ones; sampled points come in an order, and end at
        # times, that decide how many a rung cuts (HyperBand's brackets are drawn at random)
        assert statuses.count("early_stopped") >= 3, statuses
    elif scheduler == "asha":
        assert statuses.count("early_stopped") >= 1, statuses
    assert result.best.status == "terminated" and result.best.resource == 9
    full = [t for t in result.trials if t.status == "terminated"]
    assert result.best.metrics["loss"] == min(t.metrics["loss"] for t in full)
    cat = Catalog(tmp_path / "cat")
    rows = cat.trials(result.experiment_id).set_index("trial_id")
    its = cat.iterations(result.experiment_id)
    for t in result.trials:  # one iterations row per report, at resources 1..reached
        assert rows.loc[t.trial_id, "status"] == t.status
        assert its[its.trial_id == t.trial_id].resource.tolist() == list(range(1, t.resource + 1))
        assert (t.status == "early_stopped") == (t.resource < 9)
    exp = cat.experiment(result.experiment_id)
    assert exp["trials_early_stopped"] == statuses.count("early_stopped")
    if algorithm == "bayes":  # Optuna's study holds every trial, stopped ones with their last value
        assert result.searcher == {"COMPLETE": 9}


def test_xgboost_asha_example_runs_from_the_cli_and_exports_at_the_trials_resource(ray_session, tmp_path):
    from helpers.cli import tunehouse_main

    cat = tmp_path / "cat"
    proc = tunehouse_main("run", str(SPECS / "xgboost_asha.yaml"), "--catalog", str(cat), "--json", "--num-samples", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["max_resource"] == 200
    stopped = [t for t in result["trials"] if t["status"] == "early_stopped"]
    assert stopped and all(t["resource"] < 200 for t in stopped)
    assert result["best"]["status"] == "terminated" and result["best"]["resource"] == 200
    listing = tunehouse_main("trials", result["experiment_id"], "--catalog", str(cat))
    assert "early_stopped" in listing.stdout and "resource" in listing.stdout.splitlines()[0]
    # an early-stopped trial exports refitted with the rounds it reached, and says so
    trial = stopped[0]
    meta = export(cat, result["experiment_id"], tmp_path / "exp", trial=trial["trial_id"])
    assert meta["resource"] == {"reached": trial["resource"], "max": 200, "status": "early_stopped"}
    booster = load_export(tmp_path / "exp").model.steps[-1][1].get_booster()
    assert booster.num_boosted_rounds() == trial["resource"]
    assert f"resource {trial['resource']} of 200" in (tmp_path / "exp" / "MODEL_CARD.md").read_text()
    with pytest.raises(Exception, match="stopped early"):
        export(cat, result["experiment_id"], tmp_path / "exp2", trial=trial["trial_id"], refit=False)


def test_a_killed_workers_trial_resumes_from_its_last_checkpoint(ray_session, tmp_path, write_spec):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = base_spec(
        data={"sklearn": "breast_cancer"},
        model={"estimator": "helpers.objectives.DyingForest", "params": {"marker": str(markers), "die_at": 30}},
        evaluation={"holdout": 0.3, "test_size": 0}, metrics=["roc_auc"],
        search={"algorithm": "grid", "early_stopping": {"scheduler": "asha", "min_resource": 10, "max_resource": 50,
                                                        "report_every": 10, "checkpoint_every": 1}},
        space={"max_depth": {"type": "grid", "values": [3]}}, failure={"max_retries": 1})
    result = run(load_spec(write_spec(spec)), catalog=tmp_path / "cat")
    (trial,) = result.trials
    assert trial.status == "terminated" and trial.attempts == 2 and trial.resource == 50
    fits = [int(n) for n in (markers / "fits").read_text().split()]
    died = fits.index(40)  # the first attempt died growing to 40 trees, after its checkpoint at 30
    assert fits[: died + 1] == [10, 20, 30, 40]
    assert fits[died + 1] == 40, fits  # the retry went on from 30 trees, not from zero
    its = Catalog(tmp_path / "cat").iterations(result.experiment_id)
    assert its.resource.tolist() == [10, 20, 30, 40, 50]
