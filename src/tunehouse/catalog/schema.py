"""The catalog's tables: Arrow schemas, the schema version and row builders.

Changes are additive only: a new column is appended and readers fill it with nulls for old
parts, so a catalog written by any earlier version stays readable.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
TABLES = ("experiments", "trials", "iterations", "exports", "promotions")

_ts = pa.timestamp("us", tz="UTC")
_num_map = pa.map_(pa.string(), pa.float64())
_str_map = pa.map_(pa.string(), pa.string())

EXPERIMENTS = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("experiment_id", pa.string()),
        ("name", pa.string()),
        ("status", pa.string()),  # running | completed | failed | interrupted | stopped
        ("task", pa.string()),
        ("algorithm", pa.string()),
        ("sampler", pa.string()),
        ("objective", pa.string()),
        ("mode", pa.string()),
        ("num_samples", pa.int64()),
        ("seed", pa.int64()),
        ("spec_text", pa.string()),
        ("spec_hash", pa.string()),
        ("dataset_fingerprint", pa.string()),
        ("dataset_source", pa.string()),
        ("environment", _str_map),  # python, packages, git commit, host, platform
        ("cluster_cpus", pa.float64()),
        ("cluster_nodes", pa.int64()),
        ("driver_host", pa.string()),
        ("driver_pid", pa.int64()),
        ("best_trial_id", pa.string()),
        ("best_value", pa.float64()),
        ("trials_done", pa.int64()),
        ("trials_failed", pa.int64()),
        ("trials_early_stopped", pa.int64()),  # stopped by their scheduler (search.early_stopping)
        ("max_resource", pa.int64()),  # early stopping: a trial's full budget
        ("test_metrics", _num_map),
        ("error", pa.string()),
        ("started_at", _ts),
        ("ended_at", _ts),
        ("heartbeat_at", _ts),
        ("updated_at", _ts),
        ("stop_reason", pa.string()),  # why a 'stopped' search ended early, e.g. its time budget
        # what a --no-refit export needs when the training file is gone
        ("features", _str_map),  # feature name -> dtype, in training (column) order
        ("target", pa.string()),  # the target column (null for clustering)
        ("classes", pa.string()),  # JSON list of the class labels, in class-index order
        ("positive_class", pa.string()),  # binary classification: the label scored as positive
        ("metric_modes", _str_map),  # each listed metric -> min | max (what "best" means for it)
        ("parent_id", pa.string()),  # tunehouse continue: the experiment this one continues (lineage)
        ("warm_start", pa.string()),  # JSON {"sources": [ids], "first": [configs run first]}: what resume replans
        ("objectives", pa.list_(pa.string())),  # a multi-objective (Pareto) search's objectives; else null
        ("contract", pa.string()),  # JSON: the data contract of the training rows (tunehouse.contract)
        # what the search cost (set when a run ends; a resumed run adds its own): costs.search_cost
        ("cpu_hours_trials", pa.float64()),  # the trials' CPU seconds summed (reused trials not), in hours
        ("cpu_hours_driver", pa.float64()),  # the driver process's CPU time over its run(s)
        ("wall_s", pa.float64()),  # from the run's start to its end (a resumed run's time added)
        ("price_per_cpu_hour", pa.float64()),  # --price-per-cpu-hour, $TUNEHOUSE_PRICE_PER_CPU_HOUR or cost:
        ("cost", pa.float64()),  # (cpu_hours_trials + cpu_hours_driver) x price_per_cpu_hour
    ]
)

TRIALS = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("experiment_id", pa.string()),
        ("trial_id", pa.string()),
        ("status", pa.string()),  # running | terminated | early_stopped | error | stopped | interrupted
        ("params", _str_map),  # name -> JSON value (exact types survive)
        ("params_num", _num_map),  # numeric params, for SQL: params_num['max_depth'] > 3
        ("metrics", _num_map),  # final metrics
        ("best_metrics", _num_map),  # best value of each metric over the trial's reports
        ("objective", pa.string()),
        ("objective_value", pa.float64()),
        ("mode", pa.string()),
        ("iterations", pa.int64()),
        ("wall_s", pa.float64()),
        ("cpu_s", pa.float64()),
        ("cpu_user_s", pa.float64()),
        ("cpu_sys_s", pa.float64()),
        ("peak_rss_mb", pa.float64()),
        ("cpus", pa.float64()),
        ("gpus", pa.float64()),
        ("node_id", pa.string()),
        ("node_ip", pa.string()),
        ("hostname", pa.string()),
        ("pid", pa.int64()),
        ("error", pa.string()),
        ("checkpoint_uri", pa.string()),  # relative to the catalog root
        ("checkpoint_sha256", pa.string()),
        ("seed", pa.int64()),
        ("dataset_fingerprint", pa.string()),
        ("started_at", _ts),
        ("ended_at", _ts),
        ("updated_at", _ts),
        ("attempts", pa.int64()),  # 1 + retries (failure.max_retries)
        ("memory_mb", pa.float64()),  # memory requested per trial (resources.memory_mb)
        ("error_traceback", pa.string()),  # a failed trial's full traceback (`error` is its last line)
        ("params_text", _str_map),  # name -> plain text, for SQL: params_text['max_features'] = 'log2'
        ("resource", pa.int64()),  # early stopping: the rounds / trees / epochs / folds it reached
        ("checkpoint_pruned", pa.bool_()),  # its checkpoint folder was deleted (spec checkpoints.keep)
        ("reused_from", pa.string()),  # a warm start: "<experiment>/<trial>" that ran it (metrics copied)
        ("pareto", pa.bool_()),  # multi-objective: on the Pareto front (records.pareto_front); else null
    ]
)

ITERATIONS = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("experiment_id", pa.string()),
        ("trial_id", pa.string()),
        ("iteration", pa.int64()),
        ("resource", pa.int64()),  # early stopping: the resource this report is at
        ("metrics", _num_map),
        ("updated_at", _ts),
    ]
)

EXPORTS = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("export_id", pa.string()),
        ("experiment_id", pa.string()),
        ("trial_id", pa.string()),
        ("path", pa.string()),
        ("tag", pa.string()),  # e.g. production: the newest export with a tag holds it
        ("refit", pa.bool_()),
        ("test_metrics", _num_map),
        ("checksums", _str_map),  # file -> SHA-256
        ("exported_at", _ts),
        ("updated_at", _ts),
    ]
)

#: ``tunehouse retrain``'s decisions: one row per decision (promoted, kept or refused), in the
#: champion experiment's partition. Nothing-to-do (the same data) writes no row.
PROMOTIONS = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("promotion_id", pa.string()),
        ("tag", pa.string()),  # the tag moved on promotion (null: the champion held none)
        ("decided_at", _ts),
        ("updated_at", _ts),
        ("champion_export_id", pa.string()),
        ("champion_experiment_id", pa.string()),
        ("champion_trial_id", pa.string()),
        ("challenger_experiment_id", pa.string()),  # the child search (null when refused)
        ("challenger_trial_id", pa.string()),
        ("challenger_export_id", pa.string()),
        ("data_source", pa.string()),  # the new data file, absolute
        ("data_fingerprint", pa.string()),  # data.fingerprint of the new data (features and target)
        ("metric", pa.string()),  # the spec's objective, scored on the held-out rows of the new data
        ("mode", pa.string()),
        ("champion_score", pa.float64()),
        ("challenger_score", pa.float64()),
        ("gain", pa.float64()),  # challenger - champion in the objective's direction
        ("min_gain", pa.float64()),
        ("decision", pa.string()),  # promoted | kept | refused
        ("reason", pa.string()),
    ]
)

SCHEMAS = {"experiments": EXPERIMENTS, "trials": TRIALS, "iterations": ITERATIONS, "exports": EXPORTS,
           "promotions": PROMOTIONS}
#: The key of each table: readers keep the row with the latest ``updated_at`` per key.
KEYS = {
    "experiments": ("experiment_id",),
    "trials": ("experiment_id", "trial_id"),
    "iterations": ("experiment_id", "trial_id", "iteration"),
    "exports": ("experiment_id", "export_id"),
    "promotions": ("promotion_id",),
}


def now() -> datetime:
    return datetime.now(timezone.utc)


def ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def encode_params(params: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
    """Params as (name, JSON) pairs, plus the numeric ones as floats for SQL."""
    as_json = [(k, json.dumps(v, default=str)) for k, v in params.items()]
    numeric = [
        (k, float(v))
        for k, v in params.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    ]
    return as_json, numeric


def text_params(as_json: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """Params as plain text for SQL, from their JSON pairs (``encode_params``): a string as
    it is (``log2``), anything else as its JSON text (``3``, ``0.1``, ``true``); null stays null."""
    out = []
    for k, text in as_json:
        v = json.loads(text)
        out.append((k, v if isinstance(v, str) else None if v is None else text))
    return out


def decode_params(pairs: list[tuple[str, str]] | None) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in (pairs or [])}


def num_map(d: dict[str, float] | None) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in (d or {}).items() if isinstance(v, (int, float))]


def to_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[table]
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    for r in rows:
        r.setdefault("schema_version", SCHEMA_VERSION)
    cols["schema_version"] = [SCHEMA_VERSION] * len(rows)
    return pa.Table.from_pydict(cols, schema=schema)
