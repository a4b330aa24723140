"""Checkpoint retention on real catalogs (a local folder and the loopback S3 server), without
Ray: rows as the driver records them, checkpoint folders as Ray Tune writes them."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from tunehouse.catalog import Catalog
from tunehouse.catalog.retention import prune_checkpoints, trial_folder
from tunehouse.catalog.schema import SCHEMAS

from .helpers import FakeTrial, record_experiment


def _experiment(uri: str, exp_id: str = "e1") -> Catalog:
    """Six trials (values 0.0 .. 0.5, t0005 best; t0004 early-stopped with the top value,
    t0003 failed), each with a checkpoint folder of two files, plus Tune's own file."""
    values = [0.1, 0.3, 0.2, None, 0.9, 0.5]
    trials = []
    for i, v in enumerate(values):
        status = "error" if v is None else "early_stopped" if i == 4 else "terminated"
        trials.append(FakeTrial(f"t{i:04d}", status, {"max_depth": i + 1}, {} if v is None else {"accuracy": v},
                                checkpoint=f"{Catalog(uri).uri}/{trial_folder(exp_id, f't{i:04d}')}/checkpoint_000000",
                                checkpoint_sha256="ab" * 32))
    record_experiment(uri, exp_id, trials, flush_rows=2)  # several parts: versions on disk
    cat = Catalog(uri)
    for t in trials:
        for f in ("checkpoint_000000/model.pkl", "checkpoint_000000/params.json"):
            cat.storage.write_atomic(f"{trial_folder(exp_id, t.trial_id)}/{f}", b"model")
    cat.storage.write_atomic(f"checkpoints/{exp_id}/tuner.pkl", b"tune")
    return cat


def _folders(cat: Catalog, exp_id: str = "e1") -> set[str]:
    return {f.path.split("/")[2] for f in cat.storage.list_files(f"checkpoints/{exp_id}/") if f.path.count("/") > 3}


def _pruned_rows(cat: Catalog, exp_id: str = "e1") -> dict[str, bool]:
    df = cat.trials(exp_id, raw=True)
    return dict(zip(df.trial_id, df.checkpoint_pruned.fillna(False).astype(bool)))


@pytest.mark.parametrize(("keep", "best_n", "kept"), [
    ("best", 2, {"t0005", "t0001"}),  # full-budget trials first: t0004 (0.9, early-stopped) is not among 2
    ("best", 4, {"t0005", "t0001", "t0002", "t0000"}),
    ("best", 5, {"t0005", "t0001", "t0002", "t0000", "t0004"}),  # then the early-stopped one; never the failed one
    ("none", 5, set()),
])
def test_prune_keeps_exactly_the_policy_s_folders_and_marks_the_rest(catalog_uri, keep, best_n, kept):
    cat = _experiment(catalog_uri)
    everyone = {f"t{i:04d}" for i in range(6)}
    pruned = prune_checkpoints(cat, "e1", keep=keep, best_n=best_n)
    assert set(pruned) == everyone - kept
    assert _folders(cat) == {f"trial_{t}" for t in kept}
    assert cat.storage.read("checkpoints/e1/tuner.pkl") == b"tune"  # only trial folders go
    assert _pruned_rows(cat) == {t: t not in kept for t in everyone}
    df = cat.trials("e1", raw=True).set_index("trial_id")
    assert df.loc[sorted(everyone - kept), "checkpoint_uri"].notna().all()  # provenance stays
    assert (df.checkpoint_sha256 == "ab" * 32).all()
    assert len(df) == 6 and set(df.status) == {"terminated", "early_stopped", "error"}
    assert prune_checkpoints(cat, "e1", keep=keep, best_n=best_n) == []  # again: nothing new to mark


def test_keep_all_prunes_nothing(catalog_uri):
    cat = _experiment(catalog_uri)
    assert prune_checkpoints(cat, "e1", keep="all") == []
    assert len(_folders(cat)) == 6 and not any(_pruned_rows(cat).values())


def test_after_pruning_and_compaction_a_plain_dataset_read_sees_one_row_per_trial(catalog_uri):
    cat = _experiment(catalog_uri)
    _experiment(catalog_uri, "e2")  # another experiment, left uncompacted: its versions stay
    prune_checkpoints(cat, "e1", keep="best", best_n=1)
    cat.compact("e1")
    assert len(cat.parts("trials", "e1")) == 1
    raw = ds.dataset(cat.storage.fs_path("trials/experiment=e1"), filesystem=cat.storage.filesystem,
                     format="parquet").to_table().to_pandas()
    assert sorted(raw.trial_id) == [f"t{i:04d}" for i in range(6)]  # one row each, no older versions
    assert dict(zip(raw.trial_id, raw.checkpoint_pruned)) == {f"t{i:04d}": i != 5 for i in range(6)}
    other = ds.dataset(cat.storage.fs_path("trials/experiment=e2"), filesystem=cat.storage.filesystem,
                       format="parquet").to_table()
    assert other.num_rows > 6  # running and finished versions of each trial


def test_a_catalog_written_before_the_column_reads_with_nulls(tmp_path):
    """Additive schema change: an old part (no checkpoint_pruned) still reads, as not pruned."""
    import pyarrow.parquet as pq

    uri = str(tmp_path / "cat")
    cat = _experiment(uri)
    for part in cat.parts("trials", "e1"):
        path = cat.storage.fs_path(part.path)
        pq.write_table(pq.read_table(path).drop_columns(["checkpoint_pruned"]), path)
    assert "checkpoint_pruned" in SCHEMAS["trials"].names
    assert not any(_pruned_rows(cat).values())
    assert all(not r.checkpoint_pruned for r in cat.trial_records("e1"))
    assert prune_checkpoints(cat, "e1", keep="none") != []  # and prunes like a new one
