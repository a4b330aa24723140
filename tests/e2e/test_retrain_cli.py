"""`tunehouse retrain` through the real CLI: a champion exported with a tag, then new data.

The same file is nothing to do (nothing written); a file like the old one with a large
--min-gain keeps the champion (a promotions row), and again is "already decided"; a file whose
relationship flipped promotes the challenger (the tag moves). The first call is a real process,
the others go through main(argv) on the session's Ray (no Ray start per call).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import cli_env, tunehouse_main
from tunehouse import load_spec
from tunehouse.catalog import Catalog
from tunehouse.driver import run

pytestmark = pytest.mark.slow

SPEC = """
name: churn
seed: 1
task: classification
data: {path: old.csv, target: churned}
preprocess: {onehot: true}
model: {estimator: sklearn.linear_model.LogisticRegression, params: {max_iter: 200}}
evaluation: {holdout: 0.25, test_size: 0.25}
metrics: [accuracy]
search: {algorithm: random, num_samples: 2}
space:
  C: {type: loguniform, low: 0.01, high: 10.0}
"""


def write_data(path: Path, seed: int, *, flip: bool = False, n: int = 240) -> Path:
    """Churn depends on x1 (and a little on x2); ``flip`` turns the relationship around."""
    r = np.random.default_rng(seed)
    x1, x2 = r.normal(size=n), r.normal(size=n)
    y = (x1 + 0.3 * x2 + r.normal(scale=0.3, size=n) > 0).astype(int)
    pd.DataFrame({"x1": x1, "x2": x2, "plan": r.choice(["basic", "pro"], size=n),
                  "churned": 1 - y if flip else y}).to_csv(path, index=False)
    return path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def champion(ray_session, tmp_path_factory):
    """A searched experiment on old.csv, its best exported to champ/ with the tag prod."""
    root = tmp_path_factory.mktemp("retrain")
    write_data(root / "old.csv", 0)
    (root / "spec.yaml").write_text(SPEC)
    cat = root / "cat"
    result = run(load_spec(root / "spec.yaml"), catalog=cat)
    proc = tunehouse_main("export", result.experiment_id, "--out", str(root / "exports" / "champ"), "--tag", "prod",
                          "--catalog", str(cat))
    assert proc.returncode == 0, proc.stderr
    return root, cat, result.experiment_id


def retrain(cat: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    return tunehouse_main("retrain", "prod", "--data", str(data), "--catalog", str(cat), "--quiet", *args)


def test_the_same_data_is_nothing_to_do_and_writes_nothing(champion):
    root, cat, exp_id = champion
    before = files(root)
    proc = subprocess.run([sys.executable, "-m", "tunehouse", "retrain", "prod", "--data", "old.csv",
                           "--catalog", str(cat)], cwd=root, capture_output=True, text=True, timeout=120,
                          env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"nothing to do: old.csv has the same fingerprint as the data {exp_id} was trained on"
    assert files(root) == before  # no part, no export, no checkpoint


def test_data_like_the_old_with_a_large_min_gain_keeps_the_champion_once(champion):
    root, cat, exp_id = champion
    like = write_data(root / "like.csv", 1)  # resampled from the same distribution
    holder = Catalog(cat).exports(tag="prod").iloc[0]
    proc = retrain(cat, like, "--min-gain", "0.5", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["decision"] == "kept" and d["min_gain"] == 0.5 and not d["already_decided"]
    assert d["gain"] == pytest.approx(d["challenger_score"] - d["champion_score"]) and d["gain"] < 0.5
    assert d["champion_export_id"] == holder.export_id and d["champion_experiment_id"] == exp_id
    cat_ = Catalog(cat)
    assert cat_.exports(tag="prod").iloc[0].export_id == holder.export_id  # the tag did not move
    child = cat_.experiment(d["challenger_experiment_id"])
    assert child["parent_id"] == exp_id and child["dataset_source"] == str(like.resolve())
    assert json.loads(child["warm_start"])["sources"] == [exp_id]
    # the challenger's export scored itself on the same held-out rows of like.csv
    meta = json.loads((Path(d["export_path"]) / "tunehouse.json").read_text())
    assert meta["metrics"]["test"]["accuracy"] == pytest.approx(d["challenger_score"])
    rows = cat_.promotions(tag="prod")
    assert len(rows) == 1 and rows.iloc[0].decision == "kept" and rows.iloc[0].data_fingerprint == child[
        "dataset_fingerprint"]
    assert rows.iloc[0].champion_score == pytest.approx(d["champion_score"])

    before, experiments = files(root), len(cat_.experiments())
    again = retrain(cat, like, "--min-gain", "0.5")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("already decided: kept: accuracy champion ")
    assert f"gain {d['gain']:+.4g}, min_gain 0.5" in again.stdout
    assert files(root) == before and len(Catalog(cat).experiments()) == experiments  # nothing rerun
    # the champion named by its export folder is the same champion
    by_folder = tunehouse_main("retrain", str(root / "exports" / "champ"), "--data", str(like), "--min-gain", "0.5",
                               "--catalog", str(cat))
    assert by_folder.returncode == 0 and by_folder.stdout == again.stdout


def test_a_flipped_relationship_promotes_the_challenger_and_moves_the_tag(champion):
    root, cat, exp_id = champion
    flipped = write_data(root / "flipped.csv", 2, flip=True)
    old_holder = Catalog(cat).exports(tag="prod").iloc[0]
    proc = retrain(cat, flipped)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("promoted: accuracy champion ") and "min_gain 0:" in line and "tag 'prod' moved to" in line
    cat_ = Catalog(cat)
    row = cat_.promotions(tag="prod").iloc[0]
    assert row.decision == "promoted" and row.champion_export_id == old_holder.export_id
    assert row.champion_experiment_id == exp_id and old_holder.experiment_id == exp_id
    assert row.champion_score < 0.3 < 0.7 < row.challenger_score and row.gain > 0.4
    holder = cat_.exports(tag="prod").iloc[0]
    assert holder.export_id == row.challenger_export_id and holder.experiment_id == row.challenger_experiment_id
    history = cat_.exports(tag="prod", history=True)
    assert old_holder.export_id in set(history.export_id)  # the rollback target stays listed
    listed = tunehouse_main("promotions", "--tag", "prod", "--catalog", str(cat))
    assert listed.returncode == 0 and "promoted" in listed.stdout and "kept" in listed.stdout
    # run again from cron: the tag's new holder was trained on this very file
    again = retrain(cat, flipped)
    assert again.returncode == 0 and again.stdout.startswith("nothing to do: flipped.csv has the same fingerprint")


def test_data_breaking_the_contract_is_refused_and_searches_nothing(champion):
    root, cat, _ = champion
    broken = write_data(root / "broken.csv", 3)
    frame = pd.read_csv(broken)
    frame["x1"] = np.where(frame.x1 > 0, "high", "low")  # a number column turned to text
    frame.to_csv(broken, index=False)
    experiments = len(Catalog(cat).experiments())
    proc = retrain(cat, broken)
    assert proc.returncode == 1
    # the contract of the tag's holder now: an earlier test of this module may have moved the tag
    assert re.match(r"refused: broken\.csv breaks the data contract of churn-\S+: column 'x1': str values ",
                    proc.stdout), proc.stdout
    assert len(Catalog(cat).experiments()) == experiments
    row = Catalog(cat).promotions(tag="prod").iloc[0]
    assert row.decision == "refused" and pd.isna(row.challenger_experiment_id)
