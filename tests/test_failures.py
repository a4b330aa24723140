"""When trials fail: retries, the failed-trials limit and the time budget, on a real Ray.

Each search writes a real catalog; the assertions read it back as a user would.
"""

from __future__ import annotations

import re

import pytest

from conftest import base_spec
from tunehouse import load_spec
from tunehouse.catalog import Catalog
from tunehouse.driver import run
from tunehouse.errors import RunError

pytestmark = pytest.mark.slow

LOSS = [{"name": "loss", "mode": "min"}]
HOLDOUT = {"holdout": 0.3, "test_size": 0}  # one training call per attempt, no final refit


def _spec(write_spec, **over):
    """A loss-minimising spec evaluated on a hold-out (one training call per attempt)."""
    return load_spec(write_spec(base_spec(metrics=LOSS, evaluation=HOLDOUT, **over)))


def flaky_spec(tmp_path, write_spec, xs, *, how="raise", **failure):
    """A grid over ``helpers.objectives:flaky``; its attempts are counted in ``markers/x<x>``."""
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = _spec(
        write_spec,
        model="helpers.objectives:flaky",
        search={"algorithm": "grid"},
        space={
            "x": {"type": "grid", "values": xs},
            "how": {"type": "grid", "values": [how]},
            "marker_dir": {"type": "grid", "values": [str(markers)]},
        },
        failure=failure,
    )
    return spec, markers


def ran(markers, x) -> int:
    """How many attempts of config ``x`` really ran (the function's own count)."""
    return len((markers / f"x{x}").read_text().splitlines())


def final_rows(cat, exp_id):
    """Per trial, how many non-running rows the catalog holds (before latest-wins)."""
    raw = cat.table("trials", exp_id, latest=False).to_pandas()
    return raw[raw.status != "running"].groupby("trial_id").size().to_dict()


@pytest.mark.parametrize("retries", [0, 2])
def test_failed_attempts_are_retried_up_to_max_retries(ray_session, tmp_path, write_spec, retries):
    # x=1 never fails, x=2 fails on its first attempt only, x=9 on every attempt
    spec, markers = flaky_spec(tmp_path, write_spec, [1, 2, 9], max_retries=retries)
    result = run(spec, catalog=tmp_path / "catalog")
    by_x = {t.params["x"]: t for t in result.trials}
    assert len(result.trials) == 3  # one record per trial, however many attempts
    assert by_x[1].status == "terminated" and by_x[1].attempts == 1 and ran(markers, 1) == 1
    if retries:
        assert by_x[2].status == "terminated" and by_x[2].attempts == 2 == ran(markers, 2)
        assert by_x[2].metrics["loss"] == 2.0
    else:
        assert by_x[2].status == "error" and by_x[2].attempts == 1 == ran(markers, 2)
        assert "RuntimeError: attempt 1 of x=2 fails" in by_x[2].error
    # a config that always fails is given up after max_retries + 1 attempts, with its last error
    assert by_x[9].status == "error" and by_x[9].attempts == retries + 1 == ran(markers, 9)
    assert f"RuntimeError: attempt {retries + 1} of x=9 fails" in by_x[9].error
    assert result.best.params["x"] == 1 and result.stop_reason is None

    cat = Catalog(tmp_path / "catalog")
    df = cat.trials(result.experiment_id).set_index("x")
    assert df.attempts.to_dict() == {x: t.attempts for x, t in by_x.items()}
    assert df.status.to_dict() == {x: t.status for x, t in by_x.items()}
    assert df.loc[9, "error"] == by_x[9].error
    assert set(final_rows(cat, result.experiment_id).values()) == {1}  # exactly one final row each
    exp = cat.experiment(result.experiment_id)
    assert exp["status"] == "completed" and exp["stop_reason"] is None
    assert (exp["trials_done"], exp["trials_failed"]) == ((2, 1) if retries else (1, 2))


def test_a_trial_whose_worker_dies_is_retried(ray_session, tmp_path, write_spec):
    # 'exit': the trial's worker process dies (os._exit) instead of raising
    spec, markers = flaky_spec(tmp_path, write_spec, [1, 2, 9], how="exit", max_retries=1)
    result = run(spec, catalog=tmp_path / "catalog")
    by_x = {t.params["x"]: t for t in result.trials}
    assert by_x[2].status == "terminated" and by_x[2].attempts == 2 == ran(markers, 2)
    assert by_x[9].status == "error" and by_x[9].attempts == 2 == ran(markers, 9)
    assert "died" in by_x[9].error.lower(), by_x[9].error
    assert by_x[1].status == "terminated"
    cat = Catalog(tmp_path / "catalog")
    assert set(final_rows(cat, result.experiment_id).values()) == {1}
    assert cat.experiment(result.experiment_id)["status"] == "completed"


def test_max_failed_trials_stops_the_search(ray_session, tmp_path, write_spec):
    spec = _spec(
        write_spec,
        model="helpers.objectives:fails_when_big",
        search={"algorithm": "random", "num_samples": 10},
        space={"x": {"type": "uniform", "low": 6, "high": 10}},  # every x fails
        failure={"max_failed_trials": 2},
    )
    catalog = tmp_path / "catalog"
    with pytest.raises(RunError, match=r"stopped \(max_failed_trials: \d+ trials failed\)"):
        run(spec, catalog=catalog)
    cat = Catalog(catalog)
    exp = cat.experiments().iloc[0].to_dict()
    assert exp["status"] == "stopped"
    assert re.fullmatch(r"max_failed_trials: \d+ trials failed", exp["stop_reason"])
    assert exp["trials_failed"] >= 2 and exp["trials_done"] == 0
    df = cat.trials(exp["experiment_id"])
    assert len(df) < 10  # trials started, of the 10 asked for
    assert set(df.status) <= {"error", "stopped"}  # nothing left running
    for err in df[df.status == "stopped"].error:
        assert err == f"stopped before it finished ({exp['stop_reason']})"


def test_time_budget_is_recorded_as_a_stop(ray_session, tmp_path, write_spec):
    spec = _spec(
        write_spec,
        model="helpers.objectives:sleepy",
        time_budget_s=12,  # cold workers start well within it; 200 x 0.5 s never fit
        search={"algorithm": "random", "num_samples": 200},
        space={"x": {"type": "uniform", "low": 0, "high": 1}},
    )
    result = run(spec, catalog=tmp_path / "catalog")
    assert result.stop_reason == "time_budget_s: 12 s reached"
    assert 1 <= len([t for t in result.trials if t.status == "terminated"]) < 200
    cat = Catalog(tmp_path / "catalog")
    exp = cat.experiment(result.experiment_id)
    assert exp["status"] == "stopped" and exp["stop_reason"] == "time_budget_s: 12 s reached"
    assert exp["best_trial_id"] == result.best.trial_id  # a stopped search still has its best
    df = cat.trials(result.experiment_id)
    assert set(df.status) <= {"terminated", "stopped"}
    for err in df[df.status == "stopped"].error:
        assert err == "stopped before it finished (time_budget_s: 12 s reached)"


def test_a_search_within_its_limits_stays_completed(ray_session, tmp_path, write_spec):
    spec = _spec(
        write_spec,
        model="helpers.objectives:fails_when_big",
        time_budget_s=600,
        failure={"max_failed_trials": 3},
        search={"algorithm": "grid"},
        space={"x": {"type": "grid", "values": [1, 3, 7, 9]}},  # 7 and 9 fail: 2 < 3
    )
    result = run(spec, catalog=tmp_path / "catalog")
    assert result.stop_reason is None and len(result.trials) == 4
    assert {t.attempts for t in result.trials} == {1}
    exp = Catalog(tmp_path / "catalog").experiment(result.experiment_id)
    assert exp["status"] == "completed" and exp["stop_reason"] is None
    assert (exp["trials_done"], exp["trials_failed"]) == (2, 2)
