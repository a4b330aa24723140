"""The catalog's invariants, run against a local folder and the loopback S3 server."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunehouse.catalog import Catalog, CatalogError, CatalogWarning, open_storage
from tunehouse.catalog.schema import EXPERIMENTS, TRIALS
from tunehouse.catalog.writer import parquet_bytes, part_name

from .helpers import FakeTrial, plain_duckdb, record_experiment, trials


def test_roundtrip_wide_trials_and_best(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(12), name="first")
    cat = Catalog(catalog_uri)
    exps = cat.experiments()
    assert list(exps.experiment_id) == ["e1"]
    row = exps.iloc[0]
    assert (row.status, row.trials_done, row.trials_failed, row.best_trial_id) == ("completed", 12, 0, "t0011")
    df = cat.trials("first")  # by name
    assert len(df) == 12 and {"max_depth", "criterion", "accuracy", "accuracy_std", "wall_s"} <= set(df.columns)
    assert df.max_depth.dtype.kind == "i" and df.criterion.iloc[0] == "gini"
    best = cat.best("e1")
    assert best["trial_id"] == "t0011" and best["accuracy"] == pytest.approx(11 / 12)


def test_latest_row_wins_and_running_rows_are_superseded(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(5), flush_rows=1)  # every row its own part
    cat = Catalog(catalog_uri)
    assert len(cat.parts("trials", "e1")) >= 10  # a running and a finished row per trial
    df = cat.trials("e1")
    assert sorted(df.trial_id) == [f"t{i:04d}" for i in range(5)]
    assert set(df.status) == {"terminated"}
    assert len(cat.table("trials", "e1", latest=False)) == 10


def test_heterogeneous_experiments_coexist_and_one_sql_spans_them(catalog_uri):
    record_experiment(catalog_uri, "forest", trials(6, "accuracy"), name="forest", fingerprint="fpA")
    record_experiment(
        catalog_uri, "linear", trials(4, "rmse", params=lambda i: {"alpha": 10.0 ** -i, "fit_intercept": bool(i % 2)}),
        name="linear", metric="rmse", fingerprint="fpA",
    )
    cat = Catalog(catalog_uri)
    a, b = cat.trials("forest"), cat.trials("linear")
    assert "max_depth" in a.columns and "alpha" not in a.columns
    assert "alpha" in b.columns and "max_depth" not in b.columns and b.fit_intercept.dtype == bool
    top = cat.sql(
        "select t.experiment_id, t.trial_id, t.objective, t.objective_value from trials t "
        "join experiments e using (experiment_id) where e.dataset_fingerprint = 'fpA' "
        "order by t.objective_value desc limit 10"
    ).df()
    assert len(top) == 10 and set(top.experiment_id) == {"forest", "linear"}
    assert cat.sql("select params_num['max_depth'] d from trials where experiment_id='forest' order by d limit 1").fetchall()[0][0] == 1.0


def test_compaction_keeps_every_query_result(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(20), flush_rows=3)
    record_experiment(catalog_uri, "e2", trials(3), flush_rows=1)
    cat = Catalog(catalog_uri)
    before = cat.trials("e1"), cat.experiments(), cat.sql("select count(*) from trials").fetchall()[0]
    assert len(cat.parts("trials", "e1")) > 5
    out = cat.compact("e1")
    assert out["trials"][1] == 1 and out["experiments"][1] == 1 and out["iterations"][1] == 1
    for table in ("experiments", "trials", "iterations"):
        assert len(cat.parts(table, "e1")) == 1
    after = cat.trials("e1"), cat.experiments(), cat.sql("select count(*) from trials").fetchall()[0]
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(before[0], after[0])
    pd_testing.assert_frame_equal(before[1].drop(columns="duration_s"), after[1].drop(columns="duration_s"))
    assert before[2] == after[2] == (23,)
    assert len(cat.parts("trials", "e2")) > 1  # other experiments untouched


def test_compaction_refuses_a_running_experiment(catalog_uri):
    record_experiment(catalog_uri, "live", trials(2), finish=False)  # this process is its driver
    with pytest.raises(CatalogError, match="still running"):
        Catalog(catalog_uri).compact("live")


def test_duplicates_on_disk_are_read_once(catalog_uri):
    """What a reader sees between compaction's write and its deletes: every row twice."""
    record_experiment(catalog_uri, "e1", trials(4))
    cat = Catalog(catalog_uri)
    merged = cat.table("trials", "e1")
    cat.storage.write_atomic(part_name("trials", "e1"), parquet_bytes(merged))
    assert len(cat.trials("e1")) == 4


def test_a_compaction_between_listing_and_reading_is_read_again(catalog_uri):
    """A reader lists an experiment's parts, another process compacts them away, the reader reads:
    it lists again (``tunehouse watch`` failed with FileNotFoundError at the end of a run)."""
    record_experiment(catalog_uri, "e1", trials(4))  # a finished run compacts itself: add a version
    cat = Catalog(catalog_uri)

    def another_version():
        cat.storage.write_atomic(part_name("experiments", "e1"), parquet_bytes(cat.table("experiments", "e1")))

    another_version()

    class CompactedAfterListing(Catalog):
        armed = True

        def parts(self, table, experiment_id=None):
            listed = super().parts(table, experiment_id)
            if self.armed and table == "experiments" and experiment_id == "e1":
                self.armed = False
                assert len(listed) > 1
                Catalog(catalog_uri).compact("e1")  # what the run's own compaction did meanwhile
            return listed

    row = CompactedAfterListing(catalog_uri).experiment("e1")
    assert row["experiment_id"] == "e1" and row["trials_done"] == 4
    another_version()
    reader = CompactedAfterListing(catalog_uri)
    assert len(reader.table("experiments", "e1")) == 1


def test_truncated_and_foreign_files_are_skipped_and_reported(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(4))
    store = open_storage(catalog_uri)
    good = Catalog(catalog_uri).parts("trials", "e1")[0]
    data = store.read(good.path)
    store.write_atomic("trials/experiment=e1/part-truncated.parquet", data[: len(data) // 2])
    store.write_atomic("trials/experiment=e1/notes.txt", b"hello")
    store.write_atomic("trials/experiment=e1/part-foreign.parquet", parquet_bytes(pa.table({"x": [1, 2]})))
    cat = Catalog(catalog_uri)
    with pytest.warns(CatalogWarning) as caught:
        df = cat.trials("e1")
    assert len(df) == 4
    assert {str(w.message).split(":")[0] for w in caught} >= {
        "skipping trials/experiment=e1/part-truncated.parquet",
        "skipping trials/experiment=e1/part-foreign.parquet",
    }
    with pytest.warns(CatalogWarning):  # SQL falls back to the checked reader too
        assert cat.sql("select count(*) from trials").fetchall()[0][0] == 4
    problems = {p.path: p.reason for p in cat.check()}
    assert set(problems) == {
        "trials/experiment=e1/part-truncated.parquet",
        "trials/experiment=e1/notes.txt",
        "trials/experiment=e1/part-foreign.parquet",
    }
    assert "truncated" in problems["trials/experiment=e1/part-truncated.parquet"]
    assert "foreign" in problems["trials/experiment=e1/notes.txt"]


def test_temporary_files_are_never_read(catalog_uri):
    record_experiment(catalog_uri, "e1", trials(2))
    store = open_storage(catalog_uri)
    store.write_atomic("trials/experiment=e1/.tmp-abc-part-x.parquet", b"PAR1 half")
    assert all(".tmp-" not in p.path for p in Catalog(catalog_uri).parts("trials"))
    assert len(Catalog(catalog_uri).trials("e1")) == 2


def test_parts_of_an_older_schema_stay_readable(catalog_uri):
    """Schema changes are additive: a part without newer columns reads with nulls."""
    record_experiment(catalog_uri, "e1", trials(2))
    cat = Catalog(catalog_uri)
    t = cat.table("trials", "e1")
    old = t.drop_columns(["best_metrics", "checkpoint_sha256", "gpus"]).set_column(
        t.schema.get_field_index("trial_id"), "trial_id", pa.array(["old1", "old2"])
    )
    cat.storage.write_atomic(part_name("trials", "e1"), parquet_bytes(old))
    df = cat.trials("e1")
    assert len(df) == 4
    olds = df[df.trial_id.str.startswith("old")]
    assert olds.checkpoint_sha256.isna().all() and olds.gpus.isna().all()
    assert cat.table("trials", "e1").schema == TRIALS


def test_unknown_experiment_suggests_a_name(catalog_uri):
    record_experiment(catalog_uri, "quickstart-1", trials(1), name="quickstart")
    with pytest.raises(CatalogError, match="did you mean 'quickstart'"):
        Catalog(catalog_uri).trials("quikstart")


def test_failed_trials_keep_their_error(catalog_uri):
    ts = trials(2) + [FakeTrial("bad", "error", {"max_depth": 3}, error="ValueError: boom")]
    record_experiment(catalog_uri, "e1", ts)
    cat = Catalog(catalog_uri)
    row = cat.experiments().iloc[0]
    assert (row.trials_done, row.trials_failed) == (2, 1)
    df = cat.trials("e1")
    assert df.set_index("trial_id").loc["bad", "error"] == "ValueError: boom"
    assert cat.best("e1")["trial_id"] == "t0001"


def test_plain_parquet_readers_need_no_tunehouse(tmp_path):
    """pyarrow reads the catalog as a hive-partitioned data set, as any tool would."""
    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(3))
    import pyarrow.dataset as ds

    t = ds.dataset(f"{uri}/trials", format="parquet", partitioning="hive").to_table()
    assert set(t.column("experiment").to_pylist()) == {"e1"}
    first = Catalog(uri).parts("trials")[0].path
    assert pq.read_schema(f"{uri}/{first}").field("schema_version").type == pa.int16()


def test_catalog_wide_compaction_builds_one_experiments_index(catalog_uri):
    for i in range(5):
        record_experiment(catalog_uri, f"e{i}", trials(3), name=f"n{i}", flush_rows=1)
    record_experiment(catalog_uri, "live", trials(2), finish=False)  # still running here
    cat = Catalog(catalog_uri)
    before = cat.experiments().drop(columns="duration_s"), cat.trials("e3"), cat.best("n2")
    out = cat.compact_catalog()
    assert out == {"experiments": 5, "index_rows": 5}
    exp_parts = [p.path for p in cat.parts("experiments")]
    assert sum("experiment=_all/compacted-" in p for p in exp_parts) == 1
    assert all("experiment=_all" in p or "experiment=live" in p for p in exp_parts)
    after = cat.experiments().drop(columns="duration_s"), cat.trials("e3"), cat.best("n2")
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(before[0], after[0])
    pd_testing.assert_frame_equal(before[1], after[1])
    assert before[2]["trial_id"] == after[2]["trial_id"]
    assert cat.experiment("e1")["status"] == "completed"  # exact id finds it in the index
    assert cat.experiment("live")["status"] == "running"
    # a second pass only rewrites the index
    record_experiment(catalog_uri, "e9", trials(1))
    assert cat.compact_catalog()["index_rows"] == 6
    assert sum("experiment=_all/" in p.path for p in cat.parts("experiments")) == 1


def test_duckdb_reads_the_catalog_without_tunehouse(tmp_path):
    """The README's snippet, in a process that imports neither tunehouse nor Ray."""

    uri = str(tmp_path / "c")
    record_experiment(uri, "e1", trials(5))
    rows = plain_duckdb(f"select trial_id, objective_value from read_parquet('{uri}/trials/**/*.parquet', "
                        "hive_partitioning=true) where status = 'terminated' order by objective_value desc limit 2")
    assert rows == "[('t0004', 0.8), ('t0003', 0.6)]"


def test_parts_written_before_the_failure_columns_read_as_nulls(catalog_uri):
    """attempts, memory_mb (trials) and stop_reason (experiments) were appended later."""
    record_experiment(catalog_uri, "e1", trials(2))
    cat = Catalog(catalog_uri)
    t = cat.table("trials", "e1").drop_columns(["attempts", "memory_mb"])
    old = t.set_column(t.schema.get_field_index("trial_id"), "trial_id", pa.array(["old1", "old2"]))
    cat.storage.write_atomic(part_name("trials", "e1"), parquet_bytes(old))
    e = cat.table("experiments", "e1").drop_columns(["stop_reason"])
    e = e.set_column(e.schema.get_field_index("experiment_id"), "experiment_id", pa.array(["e0"]))
    cat.storage.write_atomic(part_name("experiments", "e0"), parquet_bytes(e))
    df = cat.trials("e1").set_index("trial_id")
    assert df.loc[["old1", "old2"], "attempts"].isna().all()
    assert df.loc[["old1", "old2"], "memory_mb"].isna().all()
    assert (df.loc[["t0000", "t0001"], "attempts"] == 1).all()
    assert cat.experiment("e0")["stop_reason"] is None
    assert cat.table("trials", "e1").schema == TRIALS
    assert cat.table("experiments").schema == EXPERIMENTS


def test_trial_records_round_trip_every_field_a_trial_row_holds(tmp_path):
    """A resumed driver rewrites earlier trials' rows from ``trial_records`` (a Pareto front's
    push-offs): the rewritten row equals the stored one except its version and front flag."""
    uri = str(tmp_path / "cat")
    full = {"wall_s": 1.5, "cpu_s": 1.25, "cpu_user_s": 1.0, "cpu_sys_s": 0.25, "peak_rss_mb": 120.0,
            "node_id": "n1", "node_ip": "127.0.0.1", "hostname": "h", "pid": 42}
    rows = [FakeTrial("t1", "terminated", {"max_depth": 3}, {"accuracy": 0.9}, usage=full, iterations=4,
                      attempts=2, best_metrics={"accuracy": 0.95}, started_at=1_700_000_000.5,
                      ended_at=1_700_000_002.25, resource=40)]
    rec = record_experiment(uri, "e1", rows)
    stored = Catalog(uri).trials("e1", raw=True).iloc[0].to_dict()
    (back,) = Catalog(uri).trial_records("e1")
    again = rec._finished_row(back, pareto=None)
    for column, value in again.items():
        if column in ("updated_at", "pareto"):
            continue
        want = stored[column]
        if want is None or (isinstance(want, float) and want != want):
            assert value is None, column
            continue
        if hasattr(want, "to_pydatetime"):
            want = want.to_pydatetime()
        if isinstance(value, list):
            value, want = sorted(value), sorted(tuple(x) for x in want)
        assert value == want, column
