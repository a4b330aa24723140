"""Regression tests for bugs found in review (each failed before its fix)."""

from __future__ import annotations

import pandas as pd
import pytest

from catalog.helpers import record_experiment, trials
from conftest import base_spec
from tunehouse import load_spec
from tunehouse.catalog import Catalog, CatalogError, CatalogWriter
from tunehouse.catalog.writer import parquet_bytes, part_name
from tunehouse.errors import DataError, SpecError


def test_custom_metric_needs_a_mode(write_spec):
    with pytest.raises(SpecError, match=r"metrics\.0: custom metric 'val_loss' needs a mode"):
        load_spec(write_spec(base_spec(model="helpers.objectives:quadratic", metrics=["val_loss"],
                                       space={"x": {"type": "uniform", "low": 0, "high": 1},
                                              "y": {"type": "uniform", "low": 0, "high": 1}})))


def test_missing_numbers_need_an_imputer_even_beside_text_columns(tmp_path, write_spec):
    pd.DataFrame({"c": ["a", "b"] * 10, "x": [1.0, None] * 10, "y": [0, 1] * 10}).to_csv(tmp_path / "d.csv", index=False)
    spec = base_spec(data={"path": "d.csv", "target": "y"}, preprocess={"onehot": True},
                     evaluation={"cv": 2, "test_size": 0.2})
    with pytest.raises(DataError, match="column 'x' has missing values"):
        load_spec(write_spec(spec))


def test_compaction_never_deletes_a_part_it_cannot_read(tmp_path):
    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(4), flush_rows=1)
    cat = Catalog(uri)
    victim = cat.parts("trials", "e1")[0]
    (tmp_path / "c" / victim.path).write_bytes(b"PAR1 garbage")
    with pytest.warns(Warning), pytest.raises(CatalogError, match="unreadable part"):
        cat.compact("e1")
    assert victim.path in [p.path for p in cat.parts("trials", "e1")]


def test_a_failed_flush_keeps_its_rows(tmp_path):
    w = CatalogWriter(str(tmp_path / "c"), "e1")
    w.add("trials", {"trial_id": "t1", "status": "terminated"})
    real = w.storage.write_atomic
    w.storage.write_atomic = lambda rel, data: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError):
        w.flush()
    assert w.pending() == 1
    w.storage.write_atomic = real
    assert w.flush() == 1 and w.pending() == 0
    assert list(Catalog(str(tmp_path / "c")).table("trials", "e1").column("trial_id").to_pylist()) == ["t1"]


def test_sql_shows_an_experiment_once_after_the_index(tmp_path):
    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(2))
    cat = Catalog(uri)
    cat.compact_catalog()
    row = cat.table("experiments").to_pylist()[0]  # the driver writes again after the index
    row.update(status="failed", updated_at=pd.Timestamp.now(tz="UTC").to_pydatetime())
    from tunehouse.catalog.schema import to_table

    cat.storage.write_atomic(part_name("experiments", "e1"), parquet_bytes(to_table("experiments", [row])))
    assert cat.sql("select status from experiments").fetchall() == [("failed",)]


@pytest.mark.slow  # `run` starts its embedded Ray while the catalog is probed (as test_spec's RUN_CASES)
def test_bad_catalog_path_fails_before_running(tmp_path):
    import subprocess
    import sys

    (tmp_path / "file").write_text("x")
    out = subprocess.run([sys.executable, "-m", "tunehouse", "run", "search_spaces/quickstart.yaml",
                          "--catalog", str(tmp_path / "file" / "cat")], capture_output=True, text=True,
                         timeout=120, cwd=str(__import__("conftest").ROOT))
    assert out.returncode == 1 and out.stderr.strip() == f"error: catalog {tmp_path}/file/cat: {tmp_path}/file is not a folder"


# -- review of resume, stops and cluster mode -------------------------------------------------
def test_bayes_warm_start_takes_a_nan_objective_as_a_failed_trial(write_spec):
    """An uninterrupted run tells Optuna a NaN as a failure; resume crashed with 'values should not contain NaN'."""
    from tunehouse.records import TrialRecord
    from tunehouse.search import History
    from tunehouse.search.bayes import study_searcher

    spec = load_spec(write_spec(base_spec(
        model="helpers.objectives:quadratic", metrics=[{"name": "loss", "mode": "min"}],
        search={"algorithm": "bayes", "num_samples": 6},
        space={"x": {"type": "uniform", "low": 0, "high": 4}, "y": {"type": "uniform", "low": -2, "high": 0}})), check=False)
    done = [TrialRecord("a", "terminated", {"x": 1.0, "y": -1.0}, metrics={"loss": float("nan")}),
            TrialRecord("b", "terminated", {"x": 2.0, "y": -1.0}, metrics={"loss": 0.0}),
            TrialRecord("c", "error", {"x": 3.0, "y": -1.0}, error="ValueError: boom")]
    searcher = study_searcher(spec, History(finished=done))
    states = sorted(t.state.name for t in searcher._ot_study.trials)
    assert states == ["COMPLETE", "FAIL", "FAIL"]


def test_a_resumed_search_that_ran_everything_is_not_stopped():
    """The stop reason compared this run's trials with the whole plan: a resume always looked cut short."""
    from types import SimpleNamespace

    from tunehouse.driver import TrialRecord, _stop_reason

    prior = [TrialRecord(f"p{i}", "terminated", {"x": i}) for i in range(3)]
    new = [TrialRecord("n0", "error", {"x": 9})]
    stopper = SimpleNamespace(reason="max_failed_trials: 1 trials failed")
    assert _stop_reason(stopper, 4, [*prior, *new]) is None  # every planned trial ran
    assert _stop_reason(stopper, 5, [*prior, *new]) == stopper.reason


def test_running_trials_of_a_stopped_experiment_read_as_interrupted(tmp_path):
    uri = str(tmp_path / "c")
    rec = record_experiment(uri, "e1", trials(2), finish=False)
    rec.trial_started("t9", {"max_depth": 3, "criterion": "gini"}, 0.0)
    rec.finish("stopped")
    df = Catalog(uri).trials("e1")
    assert df.set_index("trial_id").status["t9"] == "interrupted"


def test_results_go_to_the_callers_stream_when_it_is_not_fd_1(capsys):
    """cli.main called in-process (a notebook, a test): results must reach sys.stdout, not the raw fd."""
    import io
    from contextlib import redirect_stdout

    from tunehouse.cli import _results_stdout

    buf = io.StringIO()
    with redirect_stdout(buf), _results_stdout() as out:
        print("result", file=out)
    assert buf.getvalue() == "result\n"


@pytest.mark.slow
@pytest.mark.parametrize("extra, field, needle", [
    ({"resources": {"cpus": 1, "memory_mb": 10_000_000}}, "resources.memory_mb", "MB memory"),
])
def test_a_trial_that_fits_no_node_of_the_embedded_ray_is_refused(tmp_path, write_spec, extra, field, needle):
    """It waited forever (Tune warns about CPUs and GPUs only, and not at all with its output off)."""
    import subprocess
    import sys

    spec = write_spec(base_spec(**extra))
    out = subprocess.run([sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", str(tmp_path / "cat")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert f"{field}: " in line and needle in line and str(spec) in line


@pytest.mark.parametrize("bad", ["../escape", "a/b", "has space"])
def test_a_chosen_experiment_id_must_be_a_plain_name(tmp_path, write_spec, bad):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tunehouse", "run", str(write_spec(base_spec())),
                          "--catalog", str(tmp_path / "cat"), "--experiment-id", bad],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--experiment-id" in out.stderr.strip().splitlines()[-1], out.stderr[-2000:]
    assert not list((tmp_path / "cat").rglob("*.parquet"))
