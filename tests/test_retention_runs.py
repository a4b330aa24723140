"""The catalog after a real run (issue 15): a finished run compacts its experiment (plain pandas
sees one row per trial), prunes checkpoints by ``checkpoints.keep``, and a pruned trial's
checkpoint export is refused (exit 2) while a refit export works."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, base_spec
from tunehouse import load_spec
from tunehouse.catalog import Catalog, open_storage
from tunehouse.driver import run
from tunehouse.export import export, load_export
from tunehouse.records import best_n_of

pytestmark = pytest.mark.slow


def _spec(write_spec, n: int, checkpoints: dict | None = None):
    extra = {"checkpoints": checkpoints} if checkpoints else {}
    return load_spec(write_spec(base_spec(search={"algorithm": "random", "num_samples": n}, **extra)))


def _trial_folders(store, exp_id: str) -> set[str]:
    return {f.path.split("/")[2] for f in store.list_files(f"checkpoints/{exp_id}/") if "/trial_" in f.path}


def test_keep_best_prunes_the_rest_compacts_and_refuses_their_checkpoint_export(ray_session, tmp_path, write_spec):
    cat_dir = tmp_path / "cat"
    result = run(_spec(write_spec, 5, {"keep": "best", "best_n": 2}), catalog=cat_dir)
    exp_id = result.experiment_id
    assert {"compact", "prune_checkpoints"} <= set(result.phases)

    raw = pd.read_parquet(cat_dir / "trials")  # plain pandas over the whole table
    assert sorted(raw.trial_id) == sorted(t.trial_id for t in result.trials) and len(raw) == 5
    assert [p.path.rsplit("/", 1)[-1][:10] for p in Catalog(cat_dir).parts("trials", exp_id)] == ["compacted-"]

    kept = {t.trial_id for t in best_n_of(result.trials, "accuracy", "max", 2)}
    assert len(kept) == 2 and result.best.trial_id in kept
    assert _trial_folders(open_storage(cat_dir), exp_id) == {f"trial_{t}" for t in kept}
    assert dict(zip(raw.trial_id, raw.checkpoint_pruned)) == {t.trial_id: t.trial_id not in kept for t in result.trials}
    assert raw.checkpoint_uri.notna().all() and raw.checkpoint_sha256.notna().all()  # provenance stays
    assert {t.trial_id for t in result.trials if t.checkpoint_pruned} == {t.trial_id for t in result.trials} - kept

    pruned = sorted({t.trial_id for t in result.trials} - kept)[0]
    cli = subprocess.run([sys.executable, "-m", "tunehouse", "export", exp_id, "--trial", pruned, "--no-refit",
                          "--out", str(tmp_path / "refused"), "--catalog", str(cat_dir)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cli.returncode == 2, cli.stderr
    assert cli.stderr.strip().splitlines() == [
        f"error: trial {pruned}'s checkpoint was pruned (checkpoints.keep: best, best_n: 2); "
        "export it refitted (without --no-refit)"]
    assert not (tmp_path / "refused").exists()

    meta = export(cat_dir, exp_id, tmp_path / "refit", trial=pruned, refit=True)  # needs no checkpoint
    assert meta["refit"] and meta["checkpoint"]["pruned"] is True
    row = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=[f["name"] for f in meta["features"]])
    assert len(load_export(tmp_path / "refit").predict(row)) == 1
    kept_meta = export(cat_dir, exp_id, tmp_path / "kept", trial=sorted(kept)[0], refit=False)
    assert kept_meta["checkpoint"]["pruned"] is False


def test_keep_none_on_s3_deletes_every_trial_folder_and_compacts(ray_session, s3_server, tmp_path, write_spec):
    uri = f"s3://tunehouse-test/{uuid.uuid4().hex[:8]}"
    result = run(_spec(write_spec, 4, {"keep": "none"}), catalog=uri)
    store = open_storage(uri)
    assert _trial_folders(store, result.experiment_id) == set()
    assert store.list_files(f"checkpoints/{result.experiment_id}/")  # Tune's own files stay
    table = ds.dataset(store.fs_path("trials"), filesystem=store.filesystem, format="parquet",
                       partitioning="hive").to_table().to_pandas()
    assert len(table) == 4 and table.trial_id.is_unique and table.checkpoint_pruned.all()
    assert len(Catalog(uri).parts("trials", result.experiment_id)) == 1


def test_keep_all_is_today_s_behaviour_and_a_failed_compaction_never_fails_the_run(
        ray_session, tmp_path, write_spec, capfd):
    cat_dir, exp_id = tmp_path / "cat", "keep-all-1"
    bad = cat_dir / "trials" / f"experiment={exp_id}" / "part-0-foreign.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")  # compaction never deletes what it cannot read
    with pytest.warns(Warning):
        result = run(_spec(write_spec, 4), catalog=cat_dir, experiment_id=exp_id)
    assert result.best is not None and "compact" in result.phases and "prune_checkpoints" not in result.phases
    err = [line for line in capfd.readouterr().err.splitlines() if "compacting" in line]
    assert len(err) == 1 and f"compacting {exp_id} failed" in err[0] and "unreadable part" in err[0]
    assert Catalog(cat_dir).experiment(exp_id)["status"] == "completed"
    assert _trial_folders(open_storage(cat_dir), exp_id) == {f"trial_{t.trial_id}" for t in result.trials}
    assert not any(t.checkpoint_pruned for t in result.trials)
    assert bad.exists()
    # left as written: every trial's running row is still beside its final one (a compaction keeps
    # one row per trial); however many flushes wrote them (one, on a fast day)
    good = [p for p in Catalog(cat_dir).parts("trials", exp_id) if not p.path.endswith("foreign.parquet")]
    rows = pa.concat_tables([pq.read_table(cat_dir / p.path) for p in good])
    assert rows.num_rows > len(result.trials) and "running" in rows.column("status").to_pylist()
