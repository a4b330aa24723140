"""Data contracts through the real CLI: a run records one, check-data (experiment and export
folder) reports a clean, a drifted and a broken copy, and predict refuses or warns."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import cli_env, tunehouse_main
from tunehouse import load_spec
from tunehouse.driver import run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(ray_session, tmp_path_factory):
    """The customers example (2 trials) run into a catalog, its best exported; a drifted and a
    broken copy of its CSV."""
    root = tmp_path_factory.mktemp("contract")
    shutil.copytree(ROOT / "search_spaces" / "data", root / "data")
    spec = (ROOT / "search_spaces" / "customers_csv.yaml").read_text().replace("num_samples: 12", "num_samples: 2")
    (root / "spec.yaml").write_text(spec)
    cat = root / "cat"
    result = run(load_spec(root / "spec.yaml"), catalog=cat)
    out = tunehouse_main("export", result.experiment_id, "--out", str(root / "model"), "--catalog", str(cat))
    assert out.returncode == 0, out.stderr
    df = pd.read_csv(root / "data" / "customers.csv")
    drifted = df.copy()
    drifted["monthly_charges"] = drifted.monthly_charges * 0.6 + 20  # inside the seen range, shifted
    drifted["plan"] = np.where(np.arange(len(df)) % 4 == 0, "basic", "premium")
    drifted.to_csv(root / "drifted.csv", index=False)
    broken = df.drop(columns=["region"])
    broken["tenure_months"] = broken.tenure_months.astype(str) + " months"
    broken.loc[:2, "plan"] = "gold"
    broken.to_csv(root / "broken.csv", index=False)
    return root, cat, result.experiment_id


def check(root, cat, source, name, *args):
    return tunehouse_main("check-data", source, "--input", str(root / name), "--catalog", str(cat), *args)


def test_the_training_file_is_clean_and_the_export_carries_the_contract(searched):
    root, cat, exp = searched
    proc = check(root, cat, exp, "data/customers.csv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"ok: 600 rows of {root / 'data/customers.csv'} match the data contract of {exp}"
    meta = json.loads((root / "model" / "tunehouse.json").read_text())
    assert "contract.json" in meta["files"]  # covered by the checksums
    assert json.loads((root / "model" / "contract.json").read_text())["target"] == "churned"


def test_a_drifted_copy_is_drift_per_column_and_exit_1(searched):
    root, cat, _ = searched
    proc = check(root, cat, str(root / "model"), "drifted.csv", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    drift = {p["column"]: p for p in report["problems"] if p["kind"] == "drift"}
    assert set(drift) == {"monthly_charges", "plan"} and report["violations"] == 0
    assert all(p["psi"] >= 0.1 for p in drift.values())


def test_a_broken_copy_is_one_line_per_problem(searched):
    root, cat, exp = searched
    proc = check(root, cat, exp, "broken.csv")
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert "missing_column: column 'region' is missing" in lines
    assert any(ln.startswith("dtype: column 'tenure_months': ") for ln in lines)
    assert "categories: column 'plan': 3 value(s) in 1 unseen category (e.g. 'gold')" in lines


def test_bad_input_is_exit_2(searched):
    root, cat, exp = searched
    assert check(root, cat, "nope", "broken.csv").returncode == 2
    missing = check(root, cat, exp, "missing.csv")
    assert missing.returncode == 2 and "missing.csv" in missing.stderr


def test_predict_refuses_a_broken_file_and_warns_of_drift(searched):
    root = searched[0]
    pd.read_csv(root / "broken.csv").drop(columns=["churned"]).to_csv(root / "broken_x.csv", index=False)
    pd.read_csv(root / "drifted.csv").drop(columns=["churned"]).to_csv(root / "drifted_x.csv", index=False)
    refused = subprocess.run([sys.executable, "-m", "tunehouse", "predict", str(root / "model"), "--input",
                              str(root / "broken_x.csv"), "--output", str(root / "p.csv")],
                             capture_output=True, text=True, timeout=120, env=cli_env())
    assert refused.returncode == 2 and not (root / "p.csv").exists()
    errors = refused.stderr.strip().splitlines()
    assert any("column 'region' is missing" in e for e in errors)
    assert any("column 'tenure_months'" in e for e in errors)
    warned = tunehouse_main("predict", str(root / "model"), "--input", str(root / "drifted_x.csv"))
    assert warned.returncode == 0, warned.stderr
    assert len(warned.stdout.strip().splitlines()) == 601
    assert "warning: column 'plan': " in warned.stderr and "drift (PSI" in warned.stderr
