"""Regression tests for bugs found in review (each failed before its fix)."""

from __future__ import annotations

import pandas as pd
import pytest

from catalog.helpers import record_experiment, trials
from conftest import base_spec
from tunehouse.catalog import Catalog, CatalogError, CatalogWriter
from tunehouse.catalog.writer import parquet_bytes, part_name
from tunehouse.errors import DataError, SpecError
from tunehouse.spec import load_spec


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


def test_bad_catalog_path_fails_before_running(tmp_path):
    import subprocess
    import sys

    (tmp_path / "file").write_text("x")
    out = subprocess.run([sys.executable, "-m", "tunehouse", "run", "search_spaces/quickstart.yaml",
                          "--catalog", str(tmp_path / "file" / "cat")], capture_output=True, text=True,
                         timeout=120, cwd=str(__import__("conftest").ROOT))
    assert out.returncode == 1 and out.stderr.strip() == f"error: catalog {tmp_path}/file/cat: {tmp_path}/file is not a folder"
