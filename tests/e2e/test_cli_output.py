"""What the CLI prints: a closed pipe, an ambiguous prefix, trial counts, failed trials."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from catalog.helpers import record_experiment, trials  # noqa: E402
from helpers.cli import tunehouse_main  # noqa: E402


def th(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("out") / "catalog")
    record_experiment(uri, "quick-1", trials(2000), name="quick")  # a listing longer than a pipe holds
    record_experiment(uri, "quick-2", trials(3), name="quick")
    return uri


@pytest.mark.parametrize("args", [["best", "quick"], ["trials", "quick-1"], ["experiments"]])
def test_a_closed_pipe_ends_quietly_with_exit_0(catalog, args):
    """`tunehouse best EXP | head -1`: the reader is gone before we write (a real pipe, closed)."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "tunehouse", *args, "--catalog", catalog], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    finally:
        os.close(w)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_head_of_a_long_listing_through_the_shell(catalog):
    """The same through a shell pipeline, as a person types it: 2000 trials, `| head -1`."""
    cmd = f"{sys.executable} -m tunehouse trials quick-1 --catalog {catalog} | head -1; echo status ${{PIPESTATUS[0]}} >&2"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.split()[0] == "trial_id" and len(proc.stdout.splitlines()) == 1
    assert proc.stderr.strip() == "status 0"


def test_an_ambiguous_id_prefix_lists_the_candidates(catalog):
    out = tunehouse_main("best", "quick-", "--catalog", catalog)  # messages: in this process
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"error: experiment id prefix 'quick-' matches 2 experiments in {catalog}: quick-2, quick-1; "
        "give more of the id, or a name"]
    assert "quick-2" in tunehouse_main("best", "quick", "--catalog", catalog).stdout  # a name: its newest


def test_validate_says_how_many_trials_run(write_spec):
    grid = th("validate", "search_spaces/diabetes_linear_grid.yaml", "search_spaces/quickstart.yaml")
    assert grid.returncode == 0, grid.stderr
    lines = grid.stdout.splitlines()
    assert "grid search, 24 trials," in lines[0] and "random search, 20 trials," in lines[1]
    doc = yaml.safe_load((ROOT / "search_spaces/diabetes_linear_grid.yaml").read_text())
    doc["search"]["num_samples"] = 2  # the grid, twice
    twice = tunehouse_main("validate", str(write_spec(doc)))  # the message: in this process
    assert "grid search, 48 trials (24 grid points x 2)," in twice.stdout, twice.stdout + twice.stderr


FAILING = {
    "name": "fails", "seed": 0, "task": "classification", "data": {"sklearn": "iris"},
    "model": "helpers.objectives:fails_when_big",  # raises for x > 5
    "evaluation": {"holdout": 0.3, "test_size": 0}, "metrics": [{"name": "loss", "mode": "min"}],
    "search": {"algorithm": "grid"}, "space": {"x": {"type": "grid", "values": [1, 2, 6, 7]}},
}


@pytest.mark.slow
def test_failed_trials_are_one_line_each_and_their_tracebacks_are_in_the_catalog(tmp_path, write_spec):
    spec, cat = write_spec(FAILING), str(tmp_path / "catalog")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    run = th("run", str(spec), "--catalog", cat, "--json", "--quiet", env=env, timeout=300)  # no progress lines
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    failed = {t["trial_id"]: t for t in result["trials"] if t["status"] == "error"}
    assert len(failed) == 2
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr
    assert sorted(lines) == sorted(f"trial {tid} failed: {t['error']}" for tid, t in failed.items()), run.stderr
    assert {t["error"] for t in failed.values()} == {"ValueError: x too big: 6", "ValueError: x too big: 7"}

    shown = th("trials", result["experiment_id"], "--catalog", cat, "--errors")
    assert shown.returncode == 0, shown.stderr
    blocks = shown.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    for block, (tid, t) in zip(blocks, sorted(failed.items())):
        head, *trace = block.splitlines()
        assert head == f"trial {tid} failed: {t['error']}"
        assert any("fails_when_big" in ln for ln in trace) and trace[-1] == t["error"]
        assert not re.search(r"\x1b\[", block)  # Ray's terminal colours are stripped
    rows = json.loads(th("trials", result["experiment_id"], "--catalog", cat, "--errors", "--json").stdout)
    assert sorted(r["trial_id"] for r in rows) == sorted(failed)
    assert all('raise ValueError(f"x too big' in r["error_traceback"] for r in rows)
