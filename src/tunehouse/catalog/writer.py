"""Append-only, buffered writer of one experiment's rows.

Rows are buffered and written as new part files (by count and by time), never rewritten:
``<table>/experiment=<id>/part-<utc time>-<uuid>.parquet``. A status change appends a newer
row; readers keep the latest per key. Files grow with flushes, not with trials, and the
driver's memory stays flat in the number of trials (only the unflushed buffer is held).
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import threading
import time
import uuid
from typing import Any

import pyarrow.parquet as pq

from tunehouse.catalog.schema import (
    encode_params,
    now,
    num_map,
    text_params,
    to_table,
    ts,
)
from tunehouse.catalog.storage import Storage, open_storage
from tunehouse.records import RunInfo, TrialRecord, better, pareto_front

#: Which finished trial may be the best: a full-budget one before an early-stopped one (``best_of``).
_RANK = {"terminated": 2, "early_stopped": 1}

#: A running experiment refreshes its row this often; readers call it interrupted when the
#: heartbeat is older than HEARTBEAT_STALE_S (or, on the same host, when its driver is gone).
HEARTBEAT_S = 30.0
HEARTBEAT_STALE_S = 120.0


#: Partition of the catalog-wide experiments index that ``compact_catalog`` writes.
ALL = "_all"
#: Prefix of parts written by compaction: one latest row per key, nothing to deduplicate.
COMPACTED = "compacted-"


def part_name(table: str, experiment_id: str, *, compacted: bool = False) -> str:
    stamp = now().strftime("%Y%m%dT%H%M%S%fZ")
    kind = COMPACTED if compacted else "part-"
    return f"{table}/experiment={experiment_id}/{kind}{stamp}-{uuid.uuid4().hex[:12]}.parquet"


def parquet_bytes(table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class CatalogWriter:
    """Buffers rows of one experiment and writes them as immutable parts.

    Thread-safe. ``flush()`` writes everything buffered; ``maybe_flush()`` does so when
    ``flush_rows`` rows are waiting or ``flush_s`` seconds have passed since the last flush.
    """

    def __init__(
        self,
        catalog: str | os.PathLike[str] | Storage,
        experiment_id: str,
        *,
        flush_rows: int = 200,
        flush_s: float = 2.0,
    ) -> None:
        self.storage = catalog if isinstance(catalog, Storage) else open_storage(catalog)
        self.experiment_id = experiment_id
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self._buf: dict[str, list[dict[str, Any]]] = {"experiments": [], "trials": [], "iterations": []}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._last_beat = 0.0
        self.experiment: dict[str, Any] = {}
        self._experiment_written: dict[str, Any] = {}  # the fields of the last experiment row added
        self.parts_written = 0

    def __getstate__(self) -> dict[str, Any]:
        # Under Ray Client (ray://) Tune runs fit() on the cluster and ships our callback there:
        # the copy writes to the same catalog (which every node must reach anyway). Buffered
        # rows stay with the original.
        return {"uri": self.storage.uri, "experiment_id": self.experiment_id, "flush_rows": self.flush_rows,
                "flush_s": self.flush_s, "experiment": dict(self.experiment)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["experiment_id"], flush_rows=state["flush_rows"], flush_s=state["flush_s"])
        self.experiment = state["experiment"]
        self._experiment_written = _progress(self.experiment)

    # -- rows -----------------------------------------------------------------------------
    def add(self, table: str, row: dict[str, Any]) -> None:
        row = dict(row)
        row.setdefault("experiment_id", self.experiment_id)
        row.setdefault("updated_at", now())
        with self._lock:
            self._buf[table].append(row)

    def set_experiment(self, **fields: Any) -> None:
        """Append a new version of the experiment row with ``fields`` changed."""
        self.experiment.update(fields)
        self.experiment["heartbeat_at"] = now()
        self.add("experiments", {**self.experiment, "updated_at": now()})
        self._experiment_written = _progress(self.experiment)
        self._last_beat = time.monotonic()

    def pending(self) -> int:
        return sum(len(v) for v in self._buf.values())

    def maybe_flush(self) -> None:
        t = time.monotonic()
        if self.experiment and t - self._last_beat >= HEARTBEAT_S:
            self.set_experiment()
        n = self.pending()
        if n and (n >= self.flush_rows or t - self._last_flush >= self.flush_s):
            self.flush()

    def flush(self) -> int:
        """Write every buffered row; returns the number of part files written.

        Trial rows go out with the experiment row as it stands after them (when it changed
        since the last one), so the experiment's progress and best never lag the trials.
        """
        if self.experiment and self._buf["trials"] and _progress(self.experiment) != self._experiment_written:
            self.set_experiment()
        with self._lock:
            buf, self._buf = self._buf, {k: [] for k in self._buf}
            self._last_flush = time.monotonic()
        written = 0
        # trials before the experiment row: a reader that sees the final experiment row
        # also sees every trial it counts
        order = ("iterations", "trials", "experiments")
        for i, table in enumerate(order):
            rows = buf[table]
            if not rows:
                continue
            try:
                data = parquet_bytes(to_table(table, rows))
                self.storage.write_atomic(part_name(table, self.experiment_id), data)
            except BaseException:
                with self._lock:  # keep what was not written, ahead of newer rows; retry later
                    for t in order[i:]:
                        self._buf[t][:0] = buf[t]
                raise
            written += 1
        self.parts_written += written
        return written


def _label_text(label: Any) -> str | None:
    """A class label as the catalog's text column holds it (``1``, ``yes``)."""
    return None if label is None else str(label)


def _progress(experiment: dict[str, Any]) -> dict[str, Any]:
    """An experiment row's fields but its timestamps: what a new version of it would change."""
    return {k: v for k, v in experiment.items() if k not in ("heartbeat_at", "updated_at")}


class ExperimentRecorder:
    """Turns a run's events (start, trial start / result / finish, end) into catalog rows.

    It is given plain values (``records.RunInfo``), never the spec: the catalog imports
    neither ``spec`` nor ``models``.
    """

    def __init__(self, writer: CatalogWriter, info: RunInfo) -> None:
        self.writer, self.info = writer, info
        self.done = self.failed = self.early_stopped = 0
        self.best_value: float | None = None
        self.best_trial: str | None = None
        self.best_status: str | None = None
        self.started = now()
        # what the search costs: its trials' CPU, and this driver's CPU and wall time from
        # ``run_t0`` / ``cpu_t0`` (the driver sets its run's start); ``earlier``: a resumed run's
        # recorded (driver CPU-hours, wall seconds)
        self.trial_cpu_s = 0.0
        self.run_t0, self.cpu_t0 = time.time(), time.process_time()
        self.earlier = (0.0, 0.0)
        self.front: list[TrialRecord] = []  # a multi-objective search's Pareto front so far
        writer.experiment = {
            "experiment_id": writer.experiment_id,
            "name": info.name,
            "status": "running",
            "task": info.task,
            "algorithm": info.algorithm,
            "sampler": info.sampler,
            "objective": info.objective,
            "mode": info.mode,
            "metric_modes": sorted(info.metric_modes.items()),
            "objectives": list(info.objectives) if info.objectives else None,
            "num_samples": info.num_samples,
            "seed": info.seed,
            "spec_text": info.spec_text,
            "spec_hash": info.spec_hash,
            "dataset_fingerprint": info.dataset_fingerprint,
            "dataset_source": info.dataset_source,
            "positive_class": _label_text(info.positive_class),
            "environment": sorted(info.environment.items()),
            "driver_host": socket.gethostname(),
            "driver_pid": os.getpid(),
            "trials_done": 0,
            "trials_failed": 0,
            "trials_early_stopped": 0,
            "max_resource": info.max_resource,
            "started_at": self.started,
            "features": info.features,
            "target": info.target,
            "classes": None if info.classes is None else json.dumps(info.classes, default=str),
            "parent_id": info.parent_id,
            "warm_start": None if info.warm_start is None else json.dumps(info.warm_start, default=str),
        }

    def carry_over(self, records: list[TrialRecord]) -> None:
        """A resumed experiment: count the trials its earlier drivers finished (and know their front)."""
        for r in records:
            self._count(r)
        if self.info.objectives:
            self.front = pareto_front([*self.front, *records], self.info.objectives)

    def recount(self, records: list[TrialRecord]) -> None:
        """Count afresh from ``records`` (all the experiment's trials, as the catalog holds them)."""
        self.done = self.failed = self.early_stopped = 0
        self.best_value = self.best_trial = self.best_status = None
        self.trial_cpu_s = 0.0
        self.front = []
        self.carry_over(records)

    def _count(self, record: Any) -> None:
        value = record.metrics.get(self.info.objective)
        status = record.status
        cpu = (record.usage or {}).get("cpu_s")
        if not getattr(record, "reused_from", None) and isinstance(cpu, (int, float)) and math.isfinite(cpu):
            self.trial_cpu_s += float(cpu)  # a reused trial's CPU was spent by its own experiment
        if status == "error":
            self.failed += 1
        elif status in _RANK:
            if status == "terminated":
                self.done += 1
            else:
                self.early_stopped += 1
            # best_of's rule: a trial that ran its full budget beats any early-stopped one
            rank, best_rank = _RANK[status], _RANK.get(self.best_status, 0)
            if math.isfinite(value if isinstance(value, (int, float)) else math.nan) and (
                    rank > best_rank or (rank == best_rank and better(value, self.best_value, self.info.mode))):
                self.best_value, self.best_trial, self.best_status = float(value), record.trial_id, status
        self.writer.experiment.update(
            trials_done=self.done, trials_failed=self.failed, trials_early_stopped=self.early_stopped,
            best_value=self.best_value, best_trial_id=self.best_trial,
        )

    def start(self, cluster_cpus: float, cluster_nodes: int) -> None:
        self.writer.set_experiment(cluster_cpus=cluster_cpus, cluster_nodes=cluster_nodes)
        self.writer.flush()  # the experiment is visible as soon as it starts

    def trial_started(
        self, trial_id: str, params: dict[str, Any], started_at: float, attempts: int = 1
    ) -> None:
        row = self._trial_row(trial_id, "running", params, started_at=started_at, attempts=attempts)
        self.writer.add("trials", row)
        self.writer.maybe_flush()

    def trial_result(self, trial_id: str, iteration: int, metrics: dict[str, float], *,
                     resource: int | None = None) -> None:
        self.writer.add("iterations", {"trial_id": trial_id, "iteration": iteration, "metrics": num_map(metrics),
                                       "resource": None if resource is None else int(resource)})

    def trial_finished(self, record: TrialRecord) -> None:
        self.writer.add("trials", self._finished_row(record, pareto=self._joins_front(record)))
        self._count(record)
        self.writer.maybe_flush()

    def _joins_front(self, record: TrialRecord) -> bool | None:
        """Keep the Pareto front right as trials end: whether ``record`` is on it (None: one
        objective), and a new row (``pareto`` false) for each trial it pushes off.

        The front of (front so far + the new trial) is the front of all trials so far: a trial
        dominated by one off the front is dominated by one on it.
        """
        objectives = self.info.objectives
        if not objectives:
            return None
        front = pareto_front([*self.front, record], objectives)
        ids = {r.trial_id for r in front}
        for old in self.front:
            if old.trial_id not in ids:
                self.writer.add("trials", self._finished_row(old, pareto=False))
        self.front = front
        return record.trial_id in ids

    def _finished_row(self, record: TrialRecord, *, pareto: bool | None) -> dict[str, Any]:
        row = self._trial_row(
            record.trial_id,
            record.status,
            record.params,
            started_at=record.started_at,
            ended_at=record.ended_at,
            metrics=record.metrics,
            usage=record.usage,
            error=record.error,
            error_traceback=record.error_traceback,
            checkpoint=record.checkpoint,
            checkpoint_sha256=record.checkpoint_sha256,
            iterations=record.iterations,
            best_metrics=record.best_metrics,
            attempts=record.attempts,
            resource=record.resource,
            reused_from=record.reused_from,
            checkpoint_pruned=getattr(record, "checkpoint_pruned", None),
        )
        return {**row, "pareto": pareto}

    def finish(
        self,
        status: str,
        *,
        test_metrics: dict[str, float] | None = None,
        error: str | None = None,
        stop_reason: str | None = None,
    ) -> None:
        self.writer.set_experiment(
            status=status,
            ended_at=now(),
            **self.spent(),
            test_metrics=num_map(test_metrics),
            error=error,
            stop_reason=stop_reason,
        )
        self.writer.flush()

    def spent(self) -> dict[str, Any]:
        """What the search cost so far: the experiments row's cost columns (``costs.search_cost``)."""
        from tunehouse.costs import search_cost

        driver_h = self.earlier[0] + (time.process_time() - self.cpu_t0) / 3600.0
        row = {"cpu_hours_trials": self.trial_cpu_s / 3600.0, "cpu_hours_driver": driver_h,
               "wall_s": self.earlier[1] + (time.time() - self.run_t0),
               "price_per_cpu_hour": self.info.price_per_cpu_hour}
        return {**row, "cost": search_cost(row)["cost"]}

    def _trial_row(self, trial_id: str, status: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        as_json, numeric = encode_params(params)
        usage = kw.get("usage") or {}
        metrics = kw.get("metrics") or {}
        info = self.info
        obj = info.objective
        checkpoint = kw.get("checkpoint")
        return {
            "trial_id": trial_id,
            "status": status,
            "params": as_json,
            "params_num": numeric,
            "params_text": text_params(as_json),
            "metrics": num_map(metrics),
            "best_metrics": num_map(kw.get("best_metrics") or metrics),
            "objective": obj,
            "objective_value": metrics.get(obj),
            "mode": info.mode,
            "iterations": kw.get("iterations"),
            "wall_s": usage.get("wall_s"),
            "cpu_s": usage.get("cpu_s"),
            "cpu_user_s": usage.get("cpu_user_s"),
            "cpu_sys_s": usage.get("cpu_sys_s"),
            "peak_rss_mb": usage.get("peak_rss_mb"),
            "cpus": float(info.cpus),
            "gpus": float(info.gpus),
            "node_id": usage.get("node_id") or None,
            "node_ip": usage.get("node_ip") or None,
            "hostname": usage.get("hostname") or None,
            "pid": int(usage["pid"]) if usage.get("pid") else None,
            "error": kw.get("error"),
            "error_traceback": kw.get("error_traceback"),
            "checkpoint_uri": self._relative(checkpoint),
            "checkpoint_sha256": kw.get("checkpoint_sha256"),
            "seed": info.seed,
            "dataset_fingerprint": info.dataset_fingerprint,
            "started_at": ts(kw.get("started_at")),
            "ended_at": ts(kw.get("ended_at")),
            "attempts": kw.get("attempts"),
            "memory_mb": info.memory_mb,
            "resource": kw.get("resource"),
            # checkpoint retention marks a pruned trial with a newer row; a reused trial whose
            # source was pruned says so from its first row
            "checkpoint_pruned": bool(kw.get("checkpoint_pruned")),
            "reused_from": kw.get("reused_from"),
        }

    def _relative(self, path: str | None) -> str | None:
        """Checkpoint paths are stored relative to the catalog root, so a catalog can move."""
        if not path:
            return None
        root = self.writer.storage.uri.rstrip("/")
        for prefix in (root + "/", root.split("://", 1)[-1] + "/"):
            if path.startswith(prefix):
                return path[len(prefix):]
        return path
