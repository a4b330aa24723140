"""resources.memory_mb through the real CLI: a trial past its limit fails alone, the run goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TESTS, base_spec
from tunehouse.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_trial_past_its_memory_limit_is_an_error_and_the_others_finish(tmp_path):
    spec = tmp_path / "memory.yaml"
    spec.write_text(
        yaml.safe_dump(
            base_spec(
                model="helpers.objectives:allocates",  # 1.5 GB when big
                metrics=[{"name": "loss", "mode": "min"}],
                evaluation={"holdout": 0.3, "test_size": 0},
                search={
                    "algorithm": "grid",
                    "num_samples": 2,
                },  # the grid twice: 2 big, 2 small trials
                space={"big": {"type": "grid", "values": [False, True]}},
                resources={"cpus": 1, "memory_mb": 300},
            )
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunehouse",
            "run",
            str(spec),
            "--catalog",
            str(tmp_path / "catalog"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    message = "MemoryError: the trial exceeded its memory limit of 300 MB (resources.memory_mb)"
    by_status: dict[str, list] = {}
    for t in result["trials"]:
        by_status.setdefault(t["status"], []).append(t)
    assert sorted(by_status) == ["error", "terminated"]
    assert [t["params"]["big"] for t in by_status["error"]] == [True, True]
    assert [t["params"]["big"] for t in by_status["terminated"]] == [False, False]
    for t in by_status["error"]:
        assert message in t["error"], t["error"]
    assert result["stop_reason"] is None

    cat = Catalog(tmp_path / "catalog")
    exp = cat.experiment(result["experiment_id"])
    assert exp["status"] == "completed" and (exp["trials_done"], exp["trials_failed"]) == (2, 2)
    df = cat.trials(result["experiment_id"])
    assert (df.memory_mb == 300).all()
    assert all(message in e for e in df[df.status == "error"].error)
    assert (df.attempts == 1).all()
