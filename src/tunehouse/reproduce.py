"""Reproducing one trial from the catalog alone: its spec, params and seed, its data checked
against the recorded fingerprint, re-run in this process (no Ray), metrics compared.

The re-run calls what the trainable runs per trial (``trainable.evaluate``); an early-stopped
trial is re-run to the resource it reached and compared with its last report there.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from tunehouse.costs import COSTS
from tunehouse.errors import InputError, did_you_mean

#: Two values of a metric are equal when ``|a - b| <= RTOL * max(1, |a|)``.
RTOL = 1e-9
#: Statuses whose metrics can be reproduced (a failed or unfinished trial has none to compare).
REPRODUCIBLE = ("terminated", "early_stopped")


@dataclass
class MetricCheck:
    """One metric, recorded against reproduced; ``measured`` costs are shown, never compared."""

    name: str
    recorded: float | None
    reproduced: float | None
    measured: bool  # a measured cost (fit_s, predict_ms, model_kb): not deterministic
    equal: bool | None  # None for a measured cost


@dataclass
class Reproduction:
    """What ``reproduce`` found; ``equal`` is the verdict (same data and every metric equal)."""

    experiment_id: str
    trial_id: str
    status: str
    params: dict[str, Any]
    seed: int
    resource: int | None  # early stopping: the resource the trial was re-run to
    fingerprint_recorded: str
    fingerprint_found: str
    packages: list[tuple[str, str | None, str | None]]  # (name, recorded, now) of each that differs
    metrics: list[MetricCheck] = field(default_factory=list)

    @property
    def data_matches(self) -> bool:
        return self.fingerprint_found == self.fingerprint_recorded

    @property
    def equal(self) -> bool:
        compared = [m for m in self.metrics if not m.measured]
        return self.data_matches and bool(compared) and all(m.equal for m in compared)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "data_matches": self.data_matches, "equal": self.equal}


def reproduce(catalog: Any, experiment: str, trial_id: str) -> Reproduction:
    """Re-run one finished trial of an experiment from what the catalog recorded of it.

    Args:
        catalog: a ``Catalog`` or its URI.
        experiment: experiment id, id prefix or name.
        trial_id: the trial's id.

    Returns:
        The recorded and reproduced metrics, both fingerprints, and the packages whose versions
        differ from the run's. A changed data set is still re-run (``equal`` is then false).

    Raises:
        InputError: no such experiment or trial, or the trial did not finish.
        DataError: the data cannot be loaded any more.
    """
    from tunehouse.catalog import Catalog, CatalogError
    from tunehouse.catalog.schema import decode_params
    from tunehouse.recorded import experiment_data, experiment_spec, function_dirs
    from tunehouse.trainable import make_payload

    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    try:
        exp = cat.experiment(experiment)
    except CatalogError as e:
        raise InputError(f"EXP: {e}") from None
    row = _trial_row(cat, exp, trial_id)
    spec = experiment_spec(exp)
    seed = int(row["seed"]) if _present(row.get("seed")) else spec.seed
    if seed != spec.seed:
        spec = spec.override({"seed": seed})
    dataset, splits = experiment_data(spec)
    if spec.model.is_function:
        function_dirs(exp)
    params = decode_params(row["params"])
    resource = int(row["resource"]) if row["status"] == "early_stopped" and _present(row.get("resource")) else None
    got = rerun(make_payload(spec, dataset, splits), params, resource)
    return Reproduction(
        experiment_id=exp["experiment_id"], trial_id=trial_id, status=row["status"], params=params, seed=seed,
        resource=resource, fingerprint_recorded=exp["dataset_fingerprint"], fingerprint_found=dataset.fingerprint,
        packages=package_differences(dict(exp.get("environment") or {})),
        metrics=compare_metrics(dict(row["metrics"] or []), got),
    )


class _Reached(Exception):
    """Raised from the step report once an early-stopped trial's resource is reached."""


def rerun(payload: Any, params: dict[str, Any], resource: int | None = None) -> dict[str, float]:
    """The metrics one configuration gets from the trainable's own code, in this process.

    With ``resource`` (an early-stopped trial's), the folds learn in steps up to it and the
    metrics are that step's report, as the trial reported it before its scheduler stopped it.
    """
    from tunehouse.trainable import evaluate

    if resource is None or payload.steps is None or resource >= payload.steps.max_resource:
        return dict(evaluate(params, payload).metrics)
    at: dict[str, float] = {}

    def report(r: int, metrics: dict[str, float], state: Any) -> None:
        if r >= resource:
            at.update(metrics)
            raise _Reached()

    try:
        return dict(evaluate(params, payload, report=report).metrics)  # never stopped: its end
    except _Reached:
        return at


def compare_metrics(recorded: dict[str, float], reproduced: dict[str, float]) -> list[MetricCheck]:
    """Each recorded metric against its reproduced value (``RTOL``); measured costs not compared."""
    out = []
    for name in sorted(recorded):
        a, b = recorded[name], reproduced.get(name)
        measured = name in COSTS
        out.append(MetricCheck(name, a, b, measured, None if measured else same(a, b)))
    return out


def same(a: float | None, b: float | None) -> bool:
    """Whether two metric values are equal to ``RTOL`` (NaN equals NaN; a missing value never equals)."""
    if a is None or b is None:
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= RTOL * max(1.0, abs(a))


def package_differences(recorded: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """Python and the packages whose versions differ between the run's environment and this one."""
    from tunehouse.provenance import environment

    now = environment(os.getcwd())
    keys = sorted({k for k in (*recorded, *now) if k == "python" or k.startswith("package.")})
    return [(k.removeprefix("package."), recorded.get(k), now.get(k)) for k in keys if recorded.get(k) != now.get(k)]


def _trial_row(cat: Any, exp: dict[str, Any], trial_id: str) -> dict[str, Any]:
    raw = cat.trials(exp, raw=True)
    hit = raw[raw.trial_id == trial_id] if not raw.empty else raw
    if hit.empty:
        ids = [] if raw.empty else list(raw.trial_id)
        raise InputError(f"TRIAL: no trial {trial_id!r} in experiment {exp['experiment_id']}{did_you_mean(trial_id, ids)}")
    row = hit.iloc[0].to_dict()
    if row["status"] not in REPRODUCIBLE:
        raise InputError(f"TRIAL: trial {trial_id} is {row['status']}; only a finished trial "
                         f"({' or '.join(REPRODUCIBLE)}) has metrics to reproduce")
    return row


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))
