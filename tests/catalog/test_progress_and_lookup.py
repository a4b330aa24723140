"""The experiment row keeps up with its trials; params as plain text for SQL; id prefixes.

Written by the real writer and recorder, read back as a user would (no Ray).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from tunehouse.catalog import Catalog, CatalogError
from tunehouse.catalog.schema import TRIALS
from tunehouse.catalog.writer import parquet_bytes, part_name

from .helpers import FakeTrial, plain_duckdb, record_experiment, trials


def test_every_flush_of_trials_refreshes_the_experiments_progress_and_best(catalog_uri):
    """`tunehouse experiments` read trials_done 0 with 35 trials done: the row waited for a heartbeat."""
    rec = record_experiment(catalog_uri, "live", trials(35), finish=False)  # one flush, no heartbeat yet
    cat = Catalog(catalog_uri)
    exp = cat.experiment("live")
    assert exp["status"] == "running"
    assert (exp["trials_done"], exp["trials_failed"]) == (35, 0)
    assert (exp["best_trial_id"], exp["best_value"]) == ("t0034", pytest.approx(34 / 35))
    listed = cat.experiments().set_index("experiment_id").loc["live"]
    assert listed.trials_done == 35 and listed.best_trial_id == "t0034"
    assert cat.sql("select trials_done from experiments").fetchall() == [(35,)]

    # a failure counts at the next flush too; a flush whose trial rows change nothing adds no row
    rec.trial_finished(FakeTrial("bad", "error", {"max_depth": 2}, error="ValueError: boom"))
    rec.writer.flush()
    assert cat.experiment("live")["trials_failed"] == 1
    versions = len(cat.table("experiments", "live", latest=False))
    rec.trial_started("t9999", {"max_depth": 3}, 0.0)
    rec.writer.flush()
    assert len(cat.table("experiments", "live", latest=False)) == versions


PARAMS = {"max_features": "log2", "max_depth": 3, "bootstrap": True, "ccp_alpha": 0.5, "class_weight": None}


def test_params_text_compares_as_plain_text_in_sql(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(4, params=lambda i: {**PARAMS, "max_features": ["log2", "sqrt"][i % 2]}))
    cat = Catalog(catalog_uri)
    hits = cat.sql("select trial_id from trials where params_text['max_features'] = 'log2' order by 1").fetchall()
    assert hits == [("t0000",), ("t0002",)]
    # params keeps exact types as JSON (hence no match for the plain comparison)
    assert cat.sql("select count(*) from trials where params['max_features'] = 'log2'").fetchall() == [(0,)]
    row = cat.sql("select params_text['max_depth'], params_text['bootstrap'], params_text['ccp_alpha'], "
                  "params_text['class_weight'], params_num['max_depth'] from trials where trial_id = 't0001'").fetchall()
    assert row == [("3", "true", "0.5", None, 3.0)]
    df = cat.trials("e1")  # the wide view still decodes the exact types
    assert list(df.max_features) == ["log2", "sqrt", "log2", "sqrt"] and df.bootstrap.dtype == bool
    assert "params_text" not in df.columns


def test_params_text_in_plain_duckdb_without_tunehouse(tmp_path):
    """The README's DuckDB snippet with a text parameter, in a process without tunehouse or Ray."""
    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(4, params=lambda i: {**PARAMS, "max_features": ["log2", "sqrt"][i % 2]}))
    rows = plain_duckdb(f"select trial_id from read_parquet('{uri}/trials/**/*.parquet', hive_partitioning=true) "
                        "where status = 'terminated' and params_text['max_features'] = 'log2' order by 1")
    assert rows == "[('t0000',), ('t0002',)]"


def test_parts_written_before_params_text_and_error_traceback_read_as_nulls(tmp_path):
    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(1))
    cat = Catalog(uri)
    t = cat.table("trials", "e1").drop_columns(["params_text", "error_traceback"])
    old = t.set_column(t.schema.get_field_index("trial_id"), "trial_id", pa.array(["old"]))
    cat.storage.write_atomic(part_name("trials", "e1"), parquet_bytes(old))
    assert cat.table("trials", "e1").schema == TRIALS
    df = cat.trials("e1", raw=True).set_index("trial_id")
    assert df.loc["old", "params_text"] is None and pd.isna(df.loc["old", "error_traceback"])
    assert dict(df.loc["t0000", "params_text"])["criterion"] == "gini"


def test_a_failed_trials_traceback_is_kept_beside_its_error_line(tmp_path):
    uri = str(tmp_path / "c")
    bad = FakeTrial("bad", "error", {"max_depth": 2}, error="ValueError: boom")
    bad.error_traceback = 'Traceback (most recent call last):\n  File "fit.py", line 3\nValueError: boom'
    record_experiment(uri, "e1", trials(2) + [bad])
    df = Catalog(uri).trials("e1").set_index("trial_id")
    assert df.loc["bad", "error"] == "ValueError: boom"
    assert df.loc["bad", "error_traceback"] == bad.error_traceback
    assert pd.isna(df.loc["t0000", "error_traceback"])


def _record(uri: str, exp_id: str, name: str) -> None:
    record_experiment(uri, exp_id, trials(1), name=name)


def test_an_ambiguous_id_prefix_is_an_error_listing_the_candidates(tmp_path):
    uri = str(tmp_path / "c")
    for i in range(12):
        _record(uri, f"quick-{i:02d}", name=f"n{i}")
    _record(uri, "other-1", name="other")
    cat = Catalog(uri)
    with pytest.raises(CatalogError) as err:
        cat.experiment("quick-0")
    msg = str(err.value)
    assert "'quick-0' matches 10 experiments" in msg and "\n" not in msg
    assert all(f"quick-0{i}" in msg for i in range(10))
    with pytest.raises(CatalogError, match=r"matches 12 experiments.*and 2 more"):
        cat.experiment("q")
    assert cat.experiment("oth")["experiment_id"] == "other-1"  # a prefix of one is that one
    assert cat.experiment("quick-11")["experiment_id"] == "quick-11"  # an exact id


def test_an_exact_name_means_the_newest_of_that_name_and_an_exact_id_wins(tmp_path):
    uri = str(tmp_path / "c")
    _record(uri, "q-1", name="q")
    _record(uri, "q-2", name="q")
    _record(uri, "q", name="zzz")  # an id that is also a prefix of the others
    cat = Catalog(uri)
    assert cat.experiment("q")["experiment_id"] == "q"  # the exact id wins over the name
    assert cat.experiment("zzz")["experiment_id"] == "q"
    _record(uri, "r-1", name="r")
    _record(uri, "r-2", name="r")
    _record(uri, "r-3", name="s")
    assert cat.experiment("r")["experiment_id"] == "r-2"  # the newest named r, not an ambiguous prefix
    with pytest.raises(CatalogError, match=r"'r-' matches 3 experiments in .*: r-3, r-2, r-1;"):
        cat.experiment("r-")
