"""Catalog commands through the real CLI, on a catalog written by the real writer.

``query``, ``catalog check`` and ``catalog compact`` run as real processes (``th``); the
listings (``experiments``, ``trials``, ``best``, which tests/e2e/test_cli_output.py runs as
real processes into closed pipes) and the follow-up calls about messages and exit codes go
through ``main(argv)`` in this process (``thm``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from catalog.helpers import FakeTrial, record_experiment, trials  # noqa: E402
from helpers.cli import tunehouse_main as thm  # noqa: E402


def th(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("cli") / "catalog")
    record_experiment(uri, "forest-1", trials(10) + [FakeTrial("bad", "error", {"max_depth": 2}, error="ValueError: boom")],
                      name="forest", flush_rows=3)
    record_experiment(uri, "linear-1", trials(5, "rmse", params=lambda i: {"alpha": 0.1 * (i + 1)}),
                      name="linear", metric="rmse")
    return uri


def test_experiments_lists_both(catalog):
    out = thm("experiments", "--catalog", catalog, "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["experiment_id"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"forest-1", "linear-1"}
    assert (rows["forest-1"]["trials_done"], rows["forest-1"]["trials_failed"]) == (10, 1)
    text = thm("experiments", "--catalog", catalog).stdout
    assert "forest-1" in text and "completed" in text


def test_trials_sort_where_limit(catalog):
    out = thm("trials", "forest", "--catalog", catalog, "--where", "max_depth > 5", "--limit", "3", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 and all(r["max_depth"] > 5 for r in rows)
    assert [r["accuracy"] for r in rows] == sorted((r["accuracy"] for r in rows), reverse=True)
    bad = thm("trials", "forest", "--catalog", catalog, "--where", "max_dept > 5")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --where") and len(bad.stderr.strip().splitlines()) == 1
    nosort = thm("trials", "forest", "--catalog", catalog, "--sort", "acuracy")
    assert nosort.returncode == 1 and "did you mean 'accuracy'" in nosort.stderr


def test_best_respects_mode(catalog):
    out = thm("best", "linear", "--catalog", catalog, "--json")
    best = json.loads(out.stdout)
    assert best["trial_id"] == "t0000" and best["mode"] == "min"  # rmse: lower is better
    out = thm("best", "forest", "--catalog", catalog)
    assert "best trial t0009 by max accuracy" in out.stdout


def test_query_spans_experiments_csv_and_json(catalog):
    sql = "select experiment_id, count(*) n from trials group by 1 order by 1"
    out = th("query", sql, "--catalog", catalog, "--csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["experiment_id,n", "forest-1,11", "linear-1,5"]
    bad = thm("query", "select nope from trials", "--catalog", catalog)
    assert bad.returncode == 1 and bad.stderr.startswith("error: SQL error")


def test_check_and_compact(catalog, tmp_path):
    assert th("catalog", "check", "--catalog", catalog).returncode == 0
    before = thm("trials", "forest", "--catalog", catalog, "--json").stdout
    out = th("catalog", "compact", "forest", "--catalog", catalog)
    assert out.returncode == 0 and "trials" in out.stdout and "-> 1 parts" in out.stdout
    assert thm("trials", "forest", "--catalog", catalog, "--json").stdout == before
    stray = Path(catalog) / "trials" / "experiment=forest-1" / "junk.txt"
    stray.write_text("x")
    out = thm("catalog", "check", "--catalog", catalog)
    assert out.returncode == 1 and "junk.txt" in out.stdout
    stray.unlink()


def test_unknown_experiment_is_one_line(catalog):
    out = thm("trials", "forrest", "--catalog", catalog)
    assert out.returncode == 1 and "did you mean 'forest'" in out.stderr and "Traceback" not in out.stderr
