"""A Pareto search through the real CLI: run, best (the front), trials --pareto, export --where."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_pareto import brute_front  # noqa: E402

pytestmark = pytest.mark.slow


def th(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_the_example_pareto_search_end_to_end(tmp_path):
    cat = str(tmp_path / "catalog")
    run = th("run", "search_spaces/xgboost_pareto.yaml", "--catalog", cat, "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    exp = result["experiment_id"]
    assert len(result["trials"]) == 16 and result["searcher"] == {"COMPLETE": 16}
    objectives = {"roc_auc": "max", "predict_ms": "min"}

    rows = json.loads(th("trials", exp, "--catalog", cat, "--json").stdout)
    expected = brute_front(rows, objectives)
    assert expected and sorted(r["trial_id"] for r in rows if r["pareto"]) == expected

    best = th("best", exp, "--catalog", cat, "--json")
    assert best.returncode == 0, best.stderr
    front = json.loads(best.stdout)
    assert sorted(r["trial_id"] for r in front) == expected
    assert [r["roc_auc"] for r in front] == sorted((r["roc_auc"] for r in front), reverse=True)
    text = th("best", exp, "--catalog", cat).stdout
    assert f"Pareto front of {len(expected)} trial(s) by max roc_auc, min predict_ms" in text

    listed = json.loads(th("trials", exp, "--catalog", cat, "--pareto", "--json").stdout)
    assert sorted(r["trial_id"] for r in listed) == expected

    # export: the best roc_auc among the trials meeting the condition (a median latency bound)
    bound = sorted(r["predict_ms"] for r in rows)[len(rows) // 2]
    fast = [r for r in rows if r["predict_ms"] < bound]
    out = th("export", exp, "--catalog", cat, "--out", str(tmp_path / "fast"), "--no-refit", "--json",
             "--where", f"predict_ms < {bound}")
    assert out.returncode == 0, out.stderr
    got = next(r for r in rows if r["trial_id"] == json.loads(out.stdout)["trial_id"])
    assert got["predict_ms"] < bound and got["roc_auc"] == max(r["roc_auc"] for r in fast)
    none = th("export", exp, "--catalog", cat, "--out", str(tmp_path / "none"), "--where", "predict_ms < 0")
    assert none.returncode != 0 and "meeting --where 'predict_ms < 0'" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1 and not (tmp_path / "none").exists()
