"""The parts of `tunehouse jobs` that need no cluster: planned trial counts, the list's rows."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from tunehouse import jobs
from tunehouse.spec import parse_spec, planned_trials

GRID = """
name: g
task: regression
data: {sklearn: diabetes}
model: sklearn.linear_model.ElasticNet
metrics: [rmse]
search: {algorithm: grid}
space:
  alpha: {type: grid, values: [0.1, 1.0, 10.0]}
  l1_ratio: {type: grid, values: [0.2, 0.8]}
"""


@pytest.mark.parametrize(("text", "num_samples", "planned"), [
    (GRID, None, 6),  # the grid's product
    (GRID, 3, 18),  # repeated three times (num_samples of a grid)
    (GRID.replace("algorithm: grid", "algorithm: random, num_samples: 7").replace("type: grid", "type: choice"),
     None, 7),
])
def test_one_planned_trial_count_for_validate_and_jobs_status(text, num_samples, planned):
    spec = parse_spec(text)
    if num_samples:
        spec = spec.override({"search.num_samples": num_samples})
    assert spec.planned_trials == planned
    assert planned_trials(text, num_samples) == planned  # what `jobs status` shows as the total


def test_jobs_list_rows_show_utc_times_not_epoch_milliseconds():
    from ray.job_submission import JobDetails, JobStatus

    started = datetime(2026, 11, 23, 9, 30, 5, 250000, tzinfo=timezone.utc)
    ms = int(started.timestamp() * 1000)
    details = [
        JobDetails(type="SUBMISSION", submission_id="tunehouse-a", entrypoint="tunehouse run a.yaml",
                   status=JobStatus.SUCCEEDED, start_time=ms, end_time=ms + 61_000,
                   metadata={jobs.META_EXPERIMENT: "a-1", jobs.META_SPEC: "a"}),
        JobDetails(type="SUBMISSION", submission_id="tunehouse-b", entrypoint="tunehouse run b.yaml",
                   status=JobStatus.RUNNING, start_time=ms + 120_000, metadata={jobs.META_EXPERIMENT: "b-1"}),
        JobDetails(type="SUBMISSION", submission_id="other", entrypoint="python x.py",
                   status=JobStatus.RUNNING, start_time=ms + 5_000),
    ]
    rows = jobs.job_rows(details)
    assert [r["job_id"] for r in rows] == ["tunehouse-b", "tunehouse-a"]  # newest first, ours only
    assert rows[1]["start_time"] == started and rows[1]["end_time"] == datetime(2026, 11, 23, 9, 31, 6, 250000,
                                                                                tzinfo=timezone.utc)
    assert rows[0]["end_time"] is None and rows[0]["status"] == "RUNNING"
    assert [r["job_id"] for r in jobs.job_rows(details, everything=True)] == ["tunehouse-b", "other", "tunehouse-a"]
    text = pd.DataFrame(rows).to_string(index=False)  # as `tunehouse jobs list` prints them
    assert "2026-11-23 09:30:05.250+00:00" in text and str(ms) not in text


def test_submit_takes_a_spec_or_a_retrain_not_both(tmp_path):
    from helpers.cli import tunehouse_main

    for args, message in [
        ((), "give a spec, or --retrain TAG --data FILE (not both)"),
        (("s.yaml", "--retrain", "prod", "--data", "x.csv"), "give a spec, or --retrain TAG --data FILE (not both)"),
        (("--retrain", "prod"), "--retrain needs --data FILE"),
        (("s.yaml", "--data", "x.csv"), "--data and --min-gain go with --retrain"),
    ]:
        proc = tunehouse_main("submit", *args, "--address", "http://127.0.0.1:1")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)


@pytest.mark.slow
def test_a_retrain_job_s_entrypoint_runs_retrain_on_the_staged_data(tmp_path):
    """The entrypoint `submit --retrain` sends, run as the job's driver would run it (bash in the
    job's folder, `tunehouse` on PATH): the same data is nothing to do."""
    import shlex
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from helpers.cli import cli_env, tunehouse_main
    from helpers.offline import record

    data = tmp_path / "old.csv"
    r = np.random.default_rng(0)
    x = r.normal(size=80)
    pd.DataFrame({"x": x, "y": (x > 0).astype(int)}).to_csv(data, index=False)
    (tmp_path / "spec.yaml").write_text(
        "name: churn\ntask: classification\ndata: {path: old.csv, target: y}\n"
        "model: sklearn.linear_model.LogisticRegression\nevaluation: {holdout: 0.25, test_size: 0.25}\n"
        "metrics: [accuracy]\nsearch: {algorithm: random, num_samples: 2}\n"
        "space: {C: {type: loguniform, low: 0.1, high: 10.0}}\n")
    cat = tmp_path / "cat"
    exp_id = record(tmp_path / "spec.yaml", cat, [{"C": 1.0}])
    assert tunehouse_main("export", exp_id, "--out", str(tmp_path / "champ"), "--tag", "prod",
                          "--catalog", str(cat)).returncode == 0

    uri, child, staging, entrypoint = jobs.stage_retrain("prod", data, catalog=str(cat), min_gain=0.02,
                                                         experiment_id="churn-retrain-1")
    try:
        assert uri == str(cat.resolve()) and child == "churn-retrain-1"
        assert (staging / "data" / "old.csv").read_bytes() == data.read_bytes()
        argv = shlex.split(entrypoint.split("exec ", 1)[1])
        assert argv == ["tunehouse", "retrain", "prod", "--data", "$d/data/old.csv", "--catalog", uri,
                        "--experiment-id", "churn-retrain-1", "--min-gain", "0.02"]
        env = cli_env(PATH=f"{Path(sys.executable).parent}:{cli_env()['PATH']}")
        proc = subprocess.run(["bash", "-c", entrypoint], cwd=staging, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == (f"nothing to do: old.csv has the same fingerprint as the data {exp_id} "
                                       "was trained on")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
