"""``tunehouse reproduce`` through the CLI on a real search: a trial that reproduces (exit 0),
the same trial after its CSV changed (fingerprint mismatch, exit 1), unknown ids (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT, base_spec
from helpers.cli import cli_env, tunehouse_main
from tunehouse.catalog import Catalog
from tunehouse.driver import run
from tunehouse.spec import load_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(ray_session, tmp_path_factory):
    """A 3-trial random search of a decision tree on iris read from a CSV: (catalog, result, csv)."""
    from sklearn.datasets import load_iris

    d = tmp_path_factory.mktemp("reproduce")
    csv = d / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(csv, index=False)
    spec = d / "spec.yaml"
    spec.write_text(yaml.safe_dump(base_spec(
        name="rep", seed=1, data={"path": str(csv), "target": "target"}, metrics=["accuracy", "balanced_accuracy"],
        search={"algorithm": "random", "num_samples": 3},
    ), sort_keys=False))
    result = run(load_spec(spec), catalog=d / "catalog")
    return str(d / "catalog"), result, csv


def test_a_trial_reproduces_from_the_catalog(searched):
    cat, result, _ = searched
    trial = result.best.trial_id
    out = subprocess.run([sys.executable, "-m", "tunehouse", "reproduce", result.experiment_id, trial,
                          "--catalog", cat], capture_output=True, text=True, timeout=120, cwd=ROOT, env=cli_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(same)" in out.stdout and "reproduced: every metric equal" in out.stdout
    lines = {ln.split()[0]: ln for ln in out.stdout.splitlines() if ln.split()}
    assert lines["accuracy"].endswith("equal") and "measured, not compared" in lines["fit_s"]
    js = tunehouse_main("reproduce", result.experiment_id, trial, "--catalog", cat, "--json")
    got = json.loads(js.stdout)
    assert js.returncode == 0 and got["equal"] and got["packages"] == []
    recorded = {m["name"]: m for m in got["metrics"]}
    assert recorded["accuracy"]["recorded"] == pytest.approx(result.best.metrics["accuracy"], abs=0)
    assert recorded["accuracy"]["reproduced"] == pytest.approx(recorded["accuracy"]["recorded"], rel=1e-9)
    assert {"fit_s", "predict_ms", "model_kb"} <= {n for n, m in recorded.items() if m["measured"]}


def test_a_changed_data_file_is_reported_and_exits_1(searched, tmp_path):
    cat, result, csv = searched
    original = csv.read_bytes()
    frame = pd.read_csv(csv)
    frame.loc[0, "sepal length (cm)"] += 0.1
    try:
        frame.to_csv(csv, index=False)
        out = tunehouse_main("reproduce", result.experiment_id, result.best.trial_id, "--catalog", cat)
    finally:
        csv.write_bytes(original)
    assert out.returncode == 1, out.stdout + out.stderr
    want = Catalog(cat).experiment(result.experiment_id)["dataset_fingerprint"][:12]
    data_line = next(ln for ln in out.stdout.splitlines() if ln.startswith("data:"))
    assert f"recorded {want}" in data_line and "(CHANGED)" in data_line
    assert "not reproduced: the data changed" in out.stdout
    assert "accuracy" in out.stdout  # still re-run: the metrics are shown


def test_unknown_experiment_or_trial_is_one_line_exit_2(searched):
    cat, result, _ = searched
    out = tunehouse_main("reproduce", result.experiment_id, result.best.trial_id + "x", "--catalog", cat)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: TRIAL: no trial") and out.stderr.count("\n") == 1
    out = tunehouse_main("reproduce", "no-such-exp", "t", "--catalog", cat)
    assert out.returncode == 2 and out.stderr.startswith("error: EXP: ") and out.stderr.count("\n") == 1
