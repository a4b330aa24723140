"""Warm starts and child experiments through the CLI's ``main`` (the session's Ray, real Parquet).

A continue with a narrowed grid reuses exactly the parent's trials inside the new space and
leaves out the others (counts checked, line checked); a warm-started Bayesian search's Optuna
study holds the parent's trials; on other data the parent's best configurations run first
and nothing is reused.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers.cli import tunehouse_main
from tunehouse.catalog import Catalog
from tunehouse.records import best_n_of, config_key

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

TREE = "sklearn.tree.DecisionTreeClassifier"


def _spec(path: Path, name: str, search: str, space: str, data: str = "iris", seed: int = 5, extra: str = "") -> Path:
    path.write_text(
        f"name: {name}\nseed: {seed}\ntask: classification\ndata: {{sklearn: {data}}}\nmodel: {TREE}\n"
        "evaluation: {holdout: 0.3, test_size: 0.2}\nmetrics: [accuracy]\n"
        f"search: {search}\nspace: {space}\n{extra}")
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command in this process, on the session's Ray (the CLI as a process: tests/e2e/test_cli.py)."""
    proc = tunehouse_main(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _json_run(*args: str, cwd: Path) -> tuple[dict, str]:
    proc = _cli(*args, "--json", cwd=cwd)
    return json.loads(proc.stdout), proc.stderr


def test_continue_with_a_narrowed_grid_reuses_the_trials_inside_it(tmp_path):
    cat = str(tmp_path / "cat")
    parent_spec = _spec(tmp_path / "p.yaml", "warm-grid", "{algorithm: grid, max_concurrent: 2}",
                        "{max_depth: {type: int, low: 1, high: 5}, criterion: {type: grid, values: [gini, entropy]}}")
    parent, _ = _json_run("run", str(parent_spec), "--catalog", cat, cwd=tmp_path)
    assert len(parent["trials"]) == 10
    narrowed = _spec(tmp_path / "n.yaml", "warm-grid", "{algorithm: grid, max_concurrent: 2}",
                     "{max_depth: {type: int, low: 3, high: 6}, criterion: {type: grid, values: [gini, entropy]}}",
                     extra="checkpoints: {keep: none}\n")  # the child prunes its own checkpoints only
    child, err = _json_run("continue", parent["experiment_id"], "--spec", str(narrowed), "--catalog", cat, cwd=tmp_path)

    pid = parent["experiment_id"]
    assert f"reused 6 of 10 trials from {pid}; left out 4 (max_depth=1, 2 outside 3..6)" in err
    trials = Catalog(cat).trial_records(child["experiment_id"])
    assert len(trials) == 8 and all(t.status == "terminated" for t in trials)
    reused = [t for t in trials if t.reused_from]
    ran = [t for t in trials if not t.reused_from]
    assert len(reused) == 6 and {t.params["max_depth"] for t in reused} == {3, 4, 5}
    assert sorted((t.params["max_depth"], t.params["criterion"]) for t in ran) == [(6, "entropy"), (6, "gini")]
    assert all(t.checkpoint_pruned for t in ran) and not any(t.checkpoint_pruned for t in reused)
    assert all((Path(cat) / t.checkpoint).is_dir() and t.checkpoint.startswith(f"checkpoints/{parent['experiment_id']}/")
               for t in reused)
    by_id = {t["trial_id"]: t for t in parent["trials"]}
    for t in reused:  # each names the parent's trial that ran it, and carries its results
        src_exp, src_trial = t.reused_from.split("/")
        assert src_exp == pid and by_id[src_trial]["params"] == t.params
        assert by_id[src_trial]["metrics"]["accuracy"] == t.metrics["accuracy"]
    # the child's best is chosen among its own and its reused trials
    assert child["best"]["trial_id"] == best_n_of(trials, "accuracy", "max", 1)[0].trial_id
    exp = Catalog(cat).experiment(child["experiment_id"])
    assert exp["parent_id"] == pid and exp["trials_done"] == 8

    tree = _cli("experiments", "--tree", "--catalog", cat, cwd=tmp_path).stdout.splitlines()
    rows = [line for line in tree if pid in line or child["experiment_id"] in line]
    assert pid in rows[0] and "└─ warm-grid" in rows[1] and child["experiment_id"] in rows[1]

    # an export of a reused trial names the trial that actually ran it
    out = tmp_path / "export"
    _cli("export", child["experiment_id"], "--trial", reused[0].trial_id, "--no-refit", "--out", str(out),
         "--catalog", cat, cwd=tmp_path)
    meta = json.loads((out / "tunehouse.json").read_text())
    assert meta["trial_id"] == reused[0].trial_id and meta["reused_from"] == reused[0].reused_from


@pytest.fixture(scope="module")
def random_parent(tmp_path_factory):
    """A random search of 6 trials on iris: (its RunResult, the catalog, the folder)."""
    tmp = tmp_path_factory.mktemp("warm-random")
    cat = str(tmp / "cat")
    spec = _spec(tmp / "r.yaml", "warm-random", "{algorithm: random, num_samples: 6, max_concurrent: 2}",
                 "{max_depth: {type: int, low: 1, high: 30}, min_samples_leaf: {type: int, low: 1, high: 30}}")
    result, _ = _json_run("run", str(spec), "--catalog", cat, cwd=tmp)
    assert len(result["trials"]) == 6
    return result, cat, tmp


def test_warm_started_bayes_study_holds_the_parents_trials(random_parent):
    parent, cat, tmp = random_parent
    spec = _spec(tmp / "b.yaml", "warm-bayes", "{algorithm: bayes, num_samples: 9, max_concurrent: 2}",
                 "{max_depth: {type: int, low: 1, high: 30}, min_samples_leaf: {type: int, low: 1, high: 30}}")
    child, err = _json_run("run", str(spec), "--warm-start", parent["experiment_id"], "--catalog", cat, cwd=tmp)
    assert f"reused 6 of 6 trials from {parent['experiment_id']}" in err
    # Optuna's study was told the 6 parent trials, then ran 3 of its own: 9 complete trials
    assert child["searcher"] == {"COMPLETE": 9}
    assert len(child["trials"]) == 9 and sum(bool(t["reused_from"]) for t in child["trials"]) == 6


def test_warm_start_on_other_data_runs_the_best_configurations_first(random_parent):
    parent, cat, tmp = random_parent
    spec = _spec(tmp / "w.yaml", "warm-wine", "{algorithm: random, num_samples: 6, max_concurrent: 2}",
                 "{max_depth: {type: int, low: 1, high: 30}, min_samples_leaf: {type: int, low: 1, high: 30}}",
                 data="wine", seed=11)
    child, err = _json_run("run", str(spec), "--warm-start", parent["experiment_id"], "--catalog", cat, cwd=tmp)
    assert re.search(rf"{parent['experiment_id']} ran on different data \(fingerprint \w+ != \w+\): its 5 best "
                     "configurations in the new space run first, no results reused", err), err
    assert not [t for t in child["trials"] if t["reused_from"]] and len(child["trials"]) == 6
    recorded = json.loads(Catalog(cat).experiment(child["experiment_id"])["warm_start"])  # what resume replans
    assert recorded["sources"] == [parent["experiment_id"]] and len(recorded["first"]) == 5
    accuracy = {config_key(t["params"]): t["metrics"]["accuracy"] for t in parent["trials"]}
    fifth = sorted(accuracy.values(), reverse=True)[4]  # ties may pick either of equals
    hits = [accuracy[k] for k in (config_key(t["params"]) for t in child["trials"]) if k in accuracy]
    assert sum(a >= fifth for a in hits) >= 5, (hits, fifth)
