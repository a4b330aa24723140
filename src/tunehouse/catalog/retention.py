"""Checkpoint retention after a run: which trials keep their checkpoint folders, and pruning
the others (their rows marked first, then their folders deleted through the ``Storage``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tunehouse.catalog.reader import Catalog
from tunehouse.catalog.schema import now, to_table
from tunehouse.catalog.writer import parquet_bytes, part_name
from tunehouse.records import TrialRecord, best_n_of

#: ``checkpoints.keep`` values: every folder, the ``best_n`` best trials' folders, or none.
KEEP = ("all", "best", "none")


def trial_folder(experiment_id: str, trial_id: str) -> str:
    """A trial's Ray Tune folder, relative to the catalog root (the driver names it so)."""
    return f"checkpoints/{experiment_id}/trial_{trial_id}"


def kept(records: list[TrialRecord], keep: str, best_n: int, metric: str, mode: str) -> set[str]:
    """The trial ids whose checkpoints survive ``keep`` (``best``: ``records.best_n_of``'s rule,
    full-budget trials before early-stopped ones)."""
    if keep not in KEEP:
        raise ValueError(f"checkpoints.keep {keep!r}: expected one of {', '.join(KEEP)}")
    if keep == "all":
        return {r.trial_id for r in records}
    if keep == "none":
        return set()
    return {r.trial_id for r in best_n_of(records, metric, mode, best_n)}


def prune_checkpoints(cat: Catalog, experiment_id: str, *, keep: str, best_n: int = 5) -> list[str]:
    """Delete the checkpoint folders of an experiment's trials that ``keep`` does not keep.

    A pruned trial with a checkpoint gets a new version of its row, ``checkpoint_pruned``
    true, its ``checkpoint_uri`` and SHA-256 kept for provenance; that row is written
    (atomically, one part) before any folder goes, so a crash in between leaves a row that
    says pruned next to a folder that still exists, never a row pointing at nothing. Trials
    pruned earlier (a resumed experiment), and a warm start's reused trials (their folders are
    their source experiment's), are left as they are. Returns the pruned trial ids, those
    whose rows were marked.
    """
    if keep == "all":
        return []
    exp = cat.experiment(experiment_id)
    records = cat.trial_records(exp)
    keep_ids = kept(records, keep, best_n, exp["objective"], exp["mode"])
    rows = cat.table("trials", experiment_id)
    pruned = pc.fill_null(rows.column("checkpoint_pruned"), False)
    before = set(pc.filter(rows.column("trial_id"), pruned).to_pylist())
    # a warm start's reused trial points at the checkpoint of the experiment that ran it: never ours to delete
    gone = [r.trial_id for r in records
            if r.trial_id not in keep_ids and r.trial_id not in before and not r.reused_from]
    marked = _mark(cat, experiment_id, rows, set(gone))
    for trial_id in gone:
        cat.storage.delete_tree(trial_folder(experiment_id, trial_id))
    return marked


def _mark(cat: Catalog, experiment_id: str, rows: pa.Table, trial_ids: set[str]) -> list[str]:
    """Append ``checkpoint_pruned`` versions of the rows of ``trial_ids`` that have a checkpoint."""
    picked: list[dict[str, Any]] = [
        r for r in rows.to_pylist() if r["trial_id"] in trial_ids and r.get("checkpoint_uri")]
    if not picked:
        return []
    stamp = now()
    for r in picked:
        r.update(checkpoint_pruned=True, updated_at=stamp)
    cat.storage.write_atomic(part_name("trials", experiment_id), parquet_bytes(to_table("trials", picked)))
    return sorted(r["trial_id"] for r in picked)
