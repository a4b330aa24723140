"""The parts of `tunehouse jobs` that need no cluster: planned trial counts, the list's rows."""

from __future__ import annotations

from datetime import datetime, timezone

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
