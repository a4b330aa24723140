"""The one function Ray Tune runs per trial: build, fit, evaluate, report, checkpoint.

``evaluate`` is a plain function (testable without Ray); ``tune_trainable`` wraps it with
the resource meter and Tune's report/checkpoint calls. Nothing here writes the catalog.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tunehouse.costs import COSTS, model_costs, timed
from tunehouse.models import FoldEnsemble, ModelFactory, score
from tunehouse.search.schedulers import RESOURCE
from tunehouse.usage import ResourceMeter, memory_limit

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from tunehouse.data import Dataset, Splits
    from tunehouse.spec import Spec
    from tunehouse.stepping import StepPlan

MODEL_FILE = "model.pkl"
PARAMS_FILE = "params.json"
STATE_FILE = "state.pkl"  # early stopping: a trial's fold models mid-way, to resume from


@dataclass
class FoldData:
    """What a user training function receives: one train/validation split.

    ``y_train``/``y_valid`` hold the target's original labels (``"yes"``/``"no"``, not class
    codes); ``X_train``/``X_valid`` the raw feature columns, or, when the spec sets
    ``preprocess``, its output as a DataFrame with named columns (fitted on ``X_train`` only).
    At the final refit ``X_valid``/``y_valid`` are None.

    With ``search.early_stopping`` the function may call ``report(step, metrics)`` as it
    learns (``step`` counts up to ``budget``, the spec's ``max_resource``; ``metrics`` as the
    function would return them); the trial's scheduler may then end it early. ``report``
    does nothing otherwise, and at the final refit, where ``budget`` is the chosen trial's
    resource.
    """

    X_train: pd.DataFrame
    y_train: pd.Series | None
    X_valid: pd.DataFrame | None
    y_valid: pd.Series | None
    report: Any = None
    budget: int | None = None

    def __post_init__(self) -> None:
        if self.report is None:
            self.report = _ignore_report


def _ignore_report(step: int, metrics: dict[str, float]) -> None:
    """``FoldData.report`` of a run without early stopping: nothing to stop."""


@dataclass
class TrialPayload:
    """Everything a trial needs besides its params; put in the object store once per run."""

    factory: ModelFactory
    task: str
    metrics: list[str]
    cv: int | None
    holdout: float | None
    seed: int
    n_classes: int
    X: pd.DataFrame
    y: pd.Series | None
    memory_mb: float | None = None  # resources.memory_mb: enforced around each trial's fit
    steps: StepPlan | None = None  # search.early_stopping: how trials learn in steps
    # (train, valid) row indices of every fold, split once by make_payload: the same in every
    # trial, and a worker then never imports sklearn.model_selection (~1 s per cold worker)
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    # names these rows in a worker's caches (tunehouse.stepping): new for every payload made
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


def make_payload(spec: Spec, dataset: Dataset, splits: Splits) -> TrialPayload:
    """The payload of a spec's trials: its model factory, scoring scheme and training rows."""
    from tunehouse.models import make_factory, step_plan

    payload = TrialPayload(
        factory=make_factory(spec, dataset),
        task=spec.task,
        metrics=[m.name for m in spec.metrics],
        cv=spec.evaluation.cv,
        holdout=spec.evaluation.holdout,
        seed=spec.seed,
        n_classes=len(dataset.classes or []),
        X=splits.X_train,
        y=splits.y_train,
        memory_mb=spec.resources.memory_mb,
        steps=step_plan(spec),
    )
    payload.folds = split_folds(payload)
    return payload


@dataclass
class Outcome:
    metrics: dict[str, float]
    model: Any  # fitted model, FoldEnsemble, or None for a pure objective
    resource: int | None = None  # early stopping: the resource the metrics are at


def folds_of(p: TrialPayload) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, valid) row indices of the payload's folds: those ``make_payload`` split."""
    return p.folds if p.folds is not None else split_folds(p)


def split_folds(p: TrialPayload) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the payload's rows: a seeded hold-out, or seeded (stratified) k folds."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    idx = np.arange(len(p.X))
    if p.holdout is not None:
        strat = p.y if p.task == "classification" else None
        tr, va = train_test_split(idx, test_size=p.holdout, random_state=p.seed, stratify=strat)
        return [(tr, va)]
    kind = StratifiedKFold if p.task == "classification" else KFold
    splitter = kind(n_splits=p.cv, shuffle=True, random_state=p.seed)
    return list(splitter.split(p.X, p.y))


def evaluate(params: dict[str, Any], p: TrialPayload, *, report: Any = None, resume: dict[str, Any] | None = None,
             should_stop: Any = None) -> Outcome:
    """Fit and score one configuration (CV or hold-out; clustering fits all rows once).

    Preprocessing is part of the pipeline, so every fold fits it on its own training rows.
    With early stopping (``p.steps``) the folds learn in steps (``tunehouse.stepping``) and
    ``report(resource, metrics, state)`` gets each step's mean over folds; ``resume`` is a
    checkpoint's state to go on from.
    """
    if p.task == "clustering" and p.factory.kind == "estimator":
        model = p.factory.build(params)
        with p.factory.threads(), timed() as took:
            labels = model.fit_predict(p.X) if hasattr(model, "fit_predict") else model.fit(p.X).predict(p.X)
        metrics = score(model, p.X, None, p.metrics, task=p.task, n_classes=0, labels=labels)
        return Outcome({**metrics, **model_costs(model, p.X, took())}, model)  # no validation rows: all rows
    if p.steps is not None:
        from tunehouse.stepping import learn_in_steps

        return learn_in_steps(p, params, report, resume=resume, should_stop=should_stop or (lambda: False))
    scores, models = [], []
    for tr, va in folds_of(p):
        metrics, model = fit_fold(p, params, tr, va)
        scores.append(metrics)
        if model is not None:
            models.append(model)
    return Outcome(aggregate(scores), fitted(p, models))


def fit_fold(p: TrialPayload, params: dict[str, Any], tr: np.ndarray, va: np.ndarray) -> tuple[dict[str, float], Any]:
    """Fit one fold and score it on its validation rows: (metrics, model or None for a pure objective)."""
    X_tr = p.X.iloc[tr]
    y_tr = p.y.iloc[tr] if p.y is not None else None
    y_va = p.y.iloc[va] if p.y is not None else None
    with timed() as took:
        model = p.factory.fit(params, X_tr, y_tr, p.X.iloc[va], y_va)
    if isinstance(model, dict):  # a training function's own metrics (a pure objective)
        return {**model, **model_costs(None, None, took())}, None
    return score_fold(p, model, va, fit_s=took()), model


def score_fold(p: TrialPayload, model: Any, va: np.ndarray, *, fit_s: float | None = None,
               rows: tuple[Any, Any] | None = None) -> dict[str, float]:
    """A fold's model (or its step's predictions) scored on the fold's validation rows; with
    ``fit_s`` (a final model), its costs too (``tunehouse.costs``). ``rows``: the fold's
    ``valid_rows``, taken once by a caller that scores the fold at every step."""
    X_va, y_va = rows if rows is not None else valid_rows(p, va)
    metrics = score(model, X_va, y_va, p.metrics, task=p.task, n_classes=p.n_classes)
    if fit_s is None:
        return metrics
    return {**metrics, **model_costs(model, X_va, fit_s)}


def valid_rows(p: TrialPayload, va: np.ndarray) -> tuple[pd.DataFrame, Any]:
    """A fold's validation rows: the features, and the target as an array (None: clustering)."""
    return p.X.iloc[va], (p.y.iloc[va].to_numpy() if p.y is not None else None)


def fitted(p: TrialPayload, models: list[Any]) -> Any:
    """The trial's model: None (a pure objective), the one hold-out model, or the k fold models."""
    if not models:
        return None
    return models[0] if len(models) == 1 else FoldEnsemble(models, p.task, p.n_classes)


def refit(p: TrialPayload, params: dict[str, Any], resource: int | None = None) -> Any | None:
    """Fit ``params`` on all training rows (``p.X``, ``p.y``), as the run's final refit and a
    refitting export both do: a training function gets ``X_valid``/``y_valid`` None, so the
    test rows are only ever scored.

    With early stopping, ``resource`` is the chosen trial's (an early-stopped trial is refitted
    with the rounds / trees / epochs it reached; a training function gets it as ``budget``).

    Returns:
        A fitted model scorable with ``score`` (class codes), or None when a training function
        returns only metrics (a pure objective: nothing to score or export).
    """
    plan = p.steps
    budget = None
    if plan is not None and resource is not None and plan.resource == "auto":
        if plan.param is not None:
            params = {**params, plan.param: int(resource)}
        budget = int(resource)
    model = p.factory.fit(params, p.X, p.y, budget=budget)
    return None if isinstance(model, dict) else model


def aggregate(folds: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over folds, and its spread (``<name>_std``) with several folds
    (not for the costs: their mean is what a model costs)."""
    out: dict[str, float] = {}
    for name in folds[0]:
        vals = np.array([f[name] for f in folds if name in f], dtype=float)
        out[name] = float(vals.mean())
        if len(vals) > 1 and name not in COSTS:
            out[f"{name}_std"] = float(vals.std())
    return out


def run_trial(params: dict[str, Any], p: TrialPayload, *, report: Any = None, resume: dict[str, Any] | None = None,
              should_stop: Any = None) -> tuple[dict[str, Any], Any]:
    """Evaluate under the resource meter; return (metrics + usage, fitted model).

    With early stopping the metrics hold ``resource`` (the trial's budget: it ran to the end),
    and ``report(resource, metrics, state)`` gets the usage so far with each step's metrics.
    """
    with ResourceMeter() as meter:
        step_report = None
        if report is not None:
            def step_report(r: int, metrics: dict[str, float], state: Any) -> None:
                report({**metrics, RESOURCE: r, **meter.stop().as_metrics()}, state)

        outcome = evaluate(params, p, report=step_report, resume=resume, should_stop=should_stop)
    metrics = {**outcome.metrics, **meter.usage.as_metrics()}
    if outcome.resource is not None:
        metrics[RESOURCE] = outcome.resource
    return metrics, outcome.model


def save_model(model: Any, params: dict[str, Any], folder: str) -> str:
    """Write the checkpoint; return the SHA-256 of the model file (recorded in the catalog)."""
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    with open(os.path.join(folder, MODEL_FILE), "wb") as f:
        f.write(data)
    with open(os.path.join(folder, PARAMS_FILE), "w") as f:
        json.dump(params, f, default=str)
    return hashlib.sha256(data).hexdigest()


def load_model(folder: str) -> Any:
    with open(os.path.join(folder, MODEL_FILE), "rb") as f:
        return pickle.load(f)  # our own checkpoint, written by save_model


def tune_trainable(config: dict[str, Any], payload: TrialPayload) -> None:
    """Ray Tune's function trainable: the model checkpoint in its last report.

    Without early stopping a trial reports once. With it, it reports at every step (``resource``
    and the metrics so far), saving its fold models every ``checkpoint_every`` reports; a
    retried trial (``failure.max_retries``) goes on from its last such checkpoint.
    """
    from ray import tune

    resume, report = None, None
    if payload.steps is not None:
        resume = _resume_state(tune.get_checkpoint())
        report = _StepReporter(payload.steps.checkpoint_every)
    with memory_limit(payload.memory_mb):  # the fit and scoring: the trial's own allocations
        metrics, model = run_trial(config, payload, report=report, resume=resume, should_stop=_stop_requested)
    if model is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="tunehouse-ckpt-") as d:
        metrics["checkpoint_sha256"] = save_model(model, config, d)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


class _StepReporter:
    """One Tune report per step; every ``every``-th also saves the state to resume from."""

    def __init__(self, every: int | None) -> None:
        self.every, self.count = every, 0

    def __call__(self, metrics: dict[str, Any], state: Any) -> None:
        from ray import tune

        self.count += 1
        if not self.every or self.count % self.every:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="tunehouse-state-") as d:
            with open(os.path.join(d, STATE_FILE), "wb") as f:
                pickle.dump(state(), f, protocol=pickle.HIGHEST_PROTOCOL)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _resume_state(checkpoint: Any) -> dict[str, Any] | None:
    """The state an earlier attempt of this trial saved (None: start from zero)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        path = os.path.join(d, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return pickle.load(f)  # our own checkpoint, written by _StepReporter


def _stop_requested() -> bool:
    """Whether Tune asked this trial to stop (its scheduler did) while it trains between reports.

    Tune's function runner sets its session's stop event and waits two seconds for the trial's
    thread before it gives the actor up; checking it inside a long step ends the trial in time.
    """
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except Exception:  # another Ray version's internals: the trial ends at its next report
        return False
