"""The records a search produces: one trial, one run, and the one rule for "best".

Plain dataclasses, no Ray, no pandas: the driver builds them, the catalog's recorder writes
them, resume and Ray Client runs read them back from the catalog.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

#: Statuses of a trial that ran to its end (its row is final): ``early_stopped`` is a trial its
#: scheduler stopped (search.early_stopping) before its full budget.
FINISHED = ("terminated", "early_stopped", "error")


@dataclass
class TrialRecord:
    """One trial as the driver saw it end (or as the catalog holds it)."""

    trial_id: str
    status: str  # terminated | early_stopped | error | stopped | interrupted
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    iterations: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int | None = None  # 1 + the retries it took (failure.max_retries)
    error_traceback: str | None = None  # a failed trial's full traceback (``error`` is its last line)
    resource: int | None = None  # early stopping: the rounds / trees / epochs / folds it reached
    checkpoint_pruned: bool = False  # its checkpoint folder was deleted after the run (checkpoints.keep)
    reused_from: str | None = None  # a warm start: "<experiment>/<trial>" that ran it; its metrics are that trial's


@dataclass
class RunResult:
    """What a search produced; the CLI prints it (``--json``: all of it)."""

    experiment_id: str
    name: str
    algorithm: str
    objective: str
    mode: str
    dataset_fingerprint: str
    catalog: str
    storage_path: str
    trials: list[TrialRecord]
    best: TrialRecord | None
    test_metrics: dict[str, float]
    wall_s: float
    cluster_cpus: float
    phases: dict[str, float] = field(default_factory=dict)  # where the wall time went, seconds
    stop_reason: str | None = None  # why the search ended early (time budget, failed trials)
    positive_class: Any = None  # binary classification: the label f1, precision, recall, roc_auc score
    max_resource: int | None = None  # early stopping: a trial's full budget
    searcher: dict[str, int] | None = None  # what the searcher was told: Optuna's trials by state
    refit_ahead: bool = False  # the best's final refit ran while the search's last trials did

    @property
    def failed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "error"]

    @property
    def early_stopped(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "early_stopped"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunInfo:
    """What the catalog records of a run besides its trials, as plain values (no spec, no data).

    The driver builds it from the spec and the data set; the catalog's recorder writes it.
    """

    experiment_id: str
    name: str
    task: str
    algorithm: str
    sampler: str | None
    objective: str
    mode: str
    metric_modes: dict[str, str]  # every listed metric's mode (a custom metric's as the spec gives it)
    num_samples: int
    seed: int
    spec_text: str
    spec_hash: str
    dataset_fingerprint: str
    dataset_source: str
    environment: dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: float | None = None
    # what a model of this run takes and returns (a checkpoint export needs no more)
    features: list[tuple[str, str]] | None = None  # (name, dtype) in training order
    target: str | None = None
    classes: list[Any] | None = None
    positive_class: Any = None
    max_resource: int | None = None  # early stopping: a trial's full budget (None: no early stopping)
    parent_id: str | None = None  # tunehouse continue: the experiment this one continues
    warm_start: dict[str, Any] | None = None  # {"sources": [ids], "first": [configs]}: a warm start's inputs
    objectives: dict[str, str] | None = None  # a multi-objective search: each objective's mode, in order
    price_per_cpu_hour: float | None = None  # what a CPU-hour costs (costs.price_per_cpu_hour), if priced

    def mode_of(self, metric: str) -> str:
        """A reported metric's direction: the spec's mode, else the registry's ('_std' too)."""
        from tunehouse.metrics import direction

        return self.metric_modes.get(metric) or direction(metric) or "max"


T = TypeVar("T")


def best_of(records: Iterable[T], metric: str, mode: str) -> T | None:
    """The best finished record by its finite value of ``metric``.

    The one definition of "best" that the driver, the catalog's recorder and reader, and
    export share: the best ``terminated`` record (it ran its full budget); only when there is
    none, the best ``early_stopped`` one (its value is at a smaller resource, so it is never
    preferred to a trial that ran to the end). ``records`` are ``TrialRecord``s (the value is
    ``metrics[metric]``) or mappings holding ``status`` and ``metric`` directly (a row of the
    wide trials table). Ties go to the first record in order.
    """
    ranked = best_n_of(records, metric, mode, 1)
    return ranked[0] if ranked else None


def best_n_of(records: Iterable[T], metric: str, mode: str, n: int) -> list[T]:
    """The ``n`` best finished records, best first, by ``best_of``'s rule.

    Every ``terminated`` record with a finite value of ``metric`` ranks before every
    ``early_stopped`` one; within a status, by value (``mode``), ties in record order.
    Records of other statuses, or without a finite value, are never among them. So
    ``best_n_of(r, m, mode, 1) == [best_of(r, m, mode)]`` whenever there is a best.
    """
    sign = 1.0 if mode == "max" else -1.0
    ranked = []
    for i, r in enumerate(records):
        st, value = _status_value(r, metric)
        if st in _RANK and _finite(value):
            ranked.append((-_RANK[st], -sign * float(value), i, r))
    ranked.sort(key=lambda x: x[:3])
    return [r for *_, r in ranked[:max(n, 0)]]


def pareto_front(records: Iterable[T], objectives: Mapping[str, str]) -> list[T]:
    """The Pareto-optimal records of a multi-objective search, in record order.

    The one definition of "the front" that the catalog's recorder and reader, ``best`` and
    ``trials --pareto`` share: among the ``terminated`` records with a finite value of every
    objective (``objectives``: name -> ``min`` | ``max``, as ``best_of`` reads values), those
    that no other such record dominates (at least as good in every objective and better in
    one). Records with equal values are all on the front or all off it. Early-stopped trials
    are never on it: their values are at a smaller budget (and a multi-objective search
    refuses early stopping anyway).
    """
    signs = [1.0 if mode == "max" else -1.0 for mode in objectives.values()]
    cands: list[tuple[list[float], T]] = []
    for r in records:
        values = [_status_value(r, name) for name in objectives]
        if values and all(st == "terminated" and _finite(v) for st, v in values):
            cands.append(([s * float(v) for s, (_, v) in zip(signs, values)], r))
    return [r for v, r in cands if not any(_dominates(w, v) for w, _ in cands)]


def _dominates(a: list[float], b: list[float]) -> bool:
    """Whether ``a`` (values signed so that more is better) dominates ``b``."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


#: Which finished records may be the best, and in which order: full budget before early-stopped.
_RANK = {"terminated": 2, "early_stopped": 1}


def _status_value(r: Any, metric: str) -> tuple[Any, Any]:
    if isinstance(r, Mapping):
        return r.get("status"), r.get(metric)
    return r.status, r.metrics.get(metric)


def better(value: float | None, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (None or NaN never beats; anything beats None)."""
    if not _finite(value):
        return False
    if not _finite(than):
        return True
    return value > than if mode == "max" else value < than  # type: ignore[operator]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def config_key(config: Mapping[str, Any]) -> str:
    """A configuration's identity, for matching a planned list against the catalog."""
    return json.dumps(dict(config), sort_keys=True, default=str)
