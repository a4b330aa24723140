"""The real CLI in subprocesses: each example spec end to end, help, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import tunehouse_main

ROOT = Path(__file__).resolve().parents[2]


def tunehouse(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunehouse", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


@pytest.mark.slow
def test_the_quickstart_runs_as_the_readme_shows(tmp_path):
    """The README's first command, as a person runs it and reads it: a real process, its own Ray."""
    spec = ROOT / "search_spaces" / "quickstart.yaml"
    proc = tunehouse("run", str(spec), "--catalog", str(tmp_path), "--num-samples", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "best trial" in out and "roc_auc:" in out and "param max_depth" in out and "test roc_auc" in out
    exp_id = out.split()[1].rstrip(":")  # "experiment <id>: 3 trials ..."
    from tunehouse.catalog import Catalog

    best = Catalog(tmp_path).best(exp_id)
    assert f"best trial {best['trial_id']}" in out
    assert (tmp_path / best["checkpoint_uri"]).is_dir()


def test_help_lists_every_command_and_each_has_help():
    out = tunehouse("--help")
    assert out.returncode == 0
    commands = ["run", "validate", "schema", "experiments", "trials", "best", "query", "catalog",
                "catalog check", "catalog compact"]
    for cmd in commands:
        assert cmd.split()[0] in out.stdout
        sub = tunehouse_main(*cmd.split(), "--help")  # argparse's output: in this process
        assert sub.returncode == 0 and "usage: tunehouse " + cmd in sub.stdout
        assert len(sub.stdout.splitlines()) > 3  # every command documents itself


@pytest.mark.slow  # `run` starts its embedded Ray while the spec is checked (as test_spec's RUN_CASES)
def test_run_with_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "search_spaces/quickstart.yaml").read_text().replace("n_estimators:", "n_estimator:"))
    cat = tmp_path / "catalog"
    proc = tunehouse("run", str(bad), "--catalog", str(cat))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:")
    assert "space.n_estimator" in lines[0] and "did you mean 'n_estimators'" in lines[0]
    assert not cat.exists()


def test_run_missing_file_exits_2():
    proc = tunehouse("run", "no/such/spec.yaml")
    assert proc.returncode == 2 and "no such file" in proc.stderr


@pytest.mark.slow
def test_concurrent_runs_of_one_name_share_one_catalog(tmp_path):
    """Two real `tunehouse run` processes of one spec (two embedded Rays) writing one catalog at
    once (four writer processes without Ray: tests/catalog/test_processes.py)."""
    cat = tmp_path / "catalog"
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: same\ntask: classification\ndata: {sklearn: iris}\n"
                    "model: sklearn.tree.DecisionTreeClassifier\nevaluation: {cv: 3}\nmetrics: [accuracy]\n"
                    "search: {algorithm: grid}\nspace: {max_depth: {type: grid, values: [1, 2, 3, 4, 5, 6]}}\n")
    procs = [
        subprocess.Popen([sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", str(cat), "--json"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    ids = {json.loads(o[0])["experiment_id"] for o in outs}
    assert len(ids) == 2  # same name, distinct experiments
    from tunehouse.catalog import Catalog

    c = Catalog(cat)
    counts = c.sql("select experiment_id, count(*) n, count(distinct trial_id) d from trials group by 1").df()
    assert set(counts.experiment_id) == ids
    assert set(counts.n) == {6} and set(counts.d) == {6}  # every grid point once per experiment
    assert set(c.experiments().status) == {"completed"}
    assert c.check() == []
