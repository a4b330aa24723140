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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunehouse.models import FoldEnsemble, ModelFactory, score
from tunehouse.usage import ResourceMeter, memory_limit

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from tunehouse.data import Dataset, Splits
    from tunehouse.spec import Spec

MODEL_FILE = "model.pkl"
PARAMS_FILE = "params.json"


@dataclass
class FoldData:
    """What a user training function receives: one train/validation split.

    ``y_train``/``y_valid`` hold the target's original labels (``"yes"``/``"no"``, not class
    codes); ``X_train``/``X_valid`` the raw feature columns, or, when the spec sets
    ``preprocess``, its output as a DataFrame with named columns (fitted on ``X_train`` only).
    At the final refit ``X_valid``/``y_valid`` are None.
    """

    X_train: pd.DataFrame
    y_train: pd.Series | None
    X_valid: pd.DataFrame | None
    y_valid: pd.Series | None


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


def make_payload(spec: Spec, dataset: Dataset, splits: Splits) -> TrialPayload:
    """The payload of a spec's trials: its model factory, scoring scheme and training rows."""
    from tunehouse.models import make_factory

    return TrialPayload(
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
    )


@dataclass
class Outcome:
    metrics: dict[str, float]
    model: Any  # fitted model, FoldEnsemble, or None for a pure objective


def _folds(p: TrialPayload) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    idx = np.arange(len(p.X))
    if p.holdout is not None:
        strat = p.y if p.task == "classification" else None
        tr, va = train_test_split(idx, test_size=p.holdout, random_state=p.seed, stratify=strat)
        return [(tr, va)]
    kind = StratifiedKFold if p.task == "classification" else KFold
    splitter = kind(n_splits=p.cv, shuffle=True, random_state=p.seed)
    return list(splitter.split(p.X, p.y))


def evaluate(params: dict[str, Any], p: TrialPayload) -> Outcome:
    """Fit and score one configuration (CV or hold-out; clustering fits all rows once).

    Preprocessing is part of the pipeline, so every fold fits it on its own training rows.
    """
    if p.task == "clustering" and p.factory.kind == "estimator":
        model = p.factory.build(params)
        with p.factory.threads():
            labels = model.fit_predict(p.X) if hasattr(model, "fit_predict") else model.fit(p.X).predict(p.X)
        return Outcome(score(model, p.X, None, p.metrics, task=p.task, n_classes=0, labels=labels), model)

    fold_scores: list[dict[str, float]] = []
    models: list[Any] = []
    for tr, va in _folds(p):
        X_tr, X_va = p.X.iloc[tr], p.X.iloc[va]
        y_tr = p.y.iloc[tr] if p.y is not None else None
        y_va = p.y.iloc[va] if p.y is not None else None
        model = p.factory.fit(params, X_tr, y_tr, X_va, y_va)
        if isinstance(model, dict):  # a training function's own metrics (a pure objective)
            fold_scores.append(model)
            continue
        models.append(model)
        fold_scores.append(score(model, X_va, y_va, p.metrics, task=p.task, n_classes=p.n_classes))
    metrics = _aggregate(fold_scores)
    if not models:
        fitted = None
    elif len(models) == 1:
        fitted = models[0]
    else:
        fitted = FoldEnsemble(models, p.task, p.n_classes)
    return Outcome(metrics, fitted)


def refit(p: TrialPayload, params: dict[str, Any]) -> Any | None:
    """Fit ``params`` on all training rows (``p.X``, ``p.y``), as the run's final refit and a
    refitting export both do: a training function gets ``X_valid``/``y_valid`` None, so the
    test rows are only ever scored.

    Returns:
        A fitted model scorable with ``score`` (class codes), or None when a training function
        returns only metrics (a pure objective: nothing to score or export).
    """
    model = p.factory.fit(params, p.X, p.y)
    return None if isinstance(model, dict) else model


def _aggregate(folds: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in folds[0]:
        vals = np.array([f[name] for f in folds if name in f], dtype=float)
        out[name] = float(vals.mean())
        if len(vals) > 1:
            out[f"{name}_std"] = float(vals.std())
    return out


def run_trial(params: dict[str, Any], p: TrialPayload) -> tuple[dict[str, Any], Any]:
    """Evaluate under the resource meter; return (metrics + usage, fitted model)."""
    with ResourceMeter() as meter:
        outcome = evaluate(params, p)
    return {**outcome.metrics, **meter.usage.as_metrics()}, outcome.model


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
    """Ray Tune's function trainable: one report with metrics, usage and the model checkpoint."""
    from ray import tune

    with memory_limit(payload.memory_mb):  # the fit and scoring: the trial's own allocations
        metrics, model = run_trial(config, payload)
    if model is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="tunehouse-ckpt-") as d:
        metrics["checkpoint_sha256"] = save_model(model, config, d)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
