"""The trainable as a plain function, without Ray."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SPECS, base_spec
from tunehouse.data import split
from tunehouse.driver import _test_score  # noqa: F401  (import check)
from tunehouse.models import FoldEnsemble
from tunehouse.spec import load_spec
from tunehouse.trainable import TrialPayload, _folds, evaluate, make_payload, run_trial


def payload_for(spec_path) -> tuple[TrialPayload, object]:
    spec = load_spec(spec_path)
    ds = spec._dataset
    s = split(ds, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)
    return make_payload(spec, ds, s), s


def test_cv_trial_reports_mean_and_spread_and_keeps_fold_models():
    p, s = payload_for(SPECS / "quickstart.yaml")
    out = evaluate({"n_estimators": 10, "max_depth": 3, "min_samples_leaf": 2, "max_features": "sqrt"}, p)
    assert set(out.metrics) >= {"roc_auc", "roc_auc_std", "accuracy", "f1"}
    assert 0.85 < out.metrics["roc_auc"] <= 1.0
    assert isinstance(out.model, FoldEnsemble) and len(out.model) == 3
    # the fold ensemble is a usable model on unseen rows
    acc = (out.model.predict(s.X_test) == s.y_test.to_numpy()).mean()
    assert acc > 0.85


def test_params_reach_the_estimator():
    p, _ = payload_for(SPECS / "quickstart.yaml")
    out = evaluate({"n_estimators": 7, "max_depth": 2, "min_samples_leaf": 1, "max_features": "log2"}, p)
    rf = out.model.models[0].named_steps["model"]
    assert (rf.n_estimators, rf.max_depth, rf.max_features) == (7, 2, "log2")
    assert rf.random_state == 42 and rf.n_jobs in (None, 1)  # the spec's seed, the trial's CPUs


def test_preprocessing_is_fitted_inside_each_fold(write_spec):
    """Leakage check: each fold's imputer saw only that fold's training rows."""
    p, _ = payload_for(SPECS / "customers_csv.yaml")
    out = evaluate({"C": 1.0, "class_weight": None, "prep__num__impute__strategy": "median"}, p)
    folds = _folds(p)
    assert len(out.model) == len(folds) == 4
    full_median = p.X["monthly_charges"].median()
    seen = []
    for model, (tr, _va) in zip(out.model.models, folds):
        imputer = model.named_steps["prep"].named_transformers_["num"].named_steps["impute"]
        cols = list(model.named_steps["prep"].transformers_[0][2])
        got = imputer.statistics_[cols.index("monthly_charges")]
        assert got == pytest.approx(p.X["monthly_charges"].iloc[tr].median())
        seen.append(got)
    assert any(abs(v - full_median) > 1e-9 for v in seen)  # would all equal it if fitted on all rows


def test_holdout_trial_checkpoints_one_model():
    p, _ = payload_for(SPECS / "xgboost_bayes.yaml")
    out = evaluate({"n_estimators": 20, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9, "reg_lambda": 1.0}, p)
    assert not isinstance(out.model, FoldEnsemble)
    assert out.metrics["log_loss"] > 0 and "log_loss_std" not in out.metrics


def test_clustering_scores_silhouette_on_preprocessed_features():
    p, _ = payload_for(SPECS / "wine_kmeans.yaml")
    m3 = evaluate({"n_clusters": 3, "init": "k-means++"}, p).metrics
    assert -1 <= m3["silhouette"] <= 1 and m3["davies_bouldin"] > 0
    # wine has 3 cultivars: 3 clusters separate better than 8
    assert m3["silhouette"] > evaluate({"n_clusters": 8, "init": "k-means++"}, p).metrics["silhouette"]


def test_training_function_returning_metrics(write_spec):
    spec = write_spec(base_spec(
        model="helpers.objectives:quadratic", metrics=[{"name": "loss", "mode": "min"}],
        space={"x": {"type": "uniform", "low": -5, "high": 5}, "y": {"type": "uniform", "low": -5, "high": 5}},
    ))
    p, _ = payload_for(spec)
    assert evaluate({"x": 2.0, "y": -1.0}, p).metrics["loss"] == pytest.approx(0.0)
    assert evaluate({"x": 0.0, "y": 0.0}, p).metrics["loss"] == pytest.approx(5.0)


def test_run_trial_adds_usage():
    p, _ = payload_for(SPECS / "quickstart.yaml")
    metrics, _model = run_trial({"n_estimators": 5, "max_depth": 2, "min_samples_leaf": 1, "max_features": "sqrt"}, p)
    assert metrics["usage/wall_s"] > 0 and metrics["usage/cpu_s"] > 0
    assert metrics["usage/peak_rss_mb"] > 10 and metrics["usage/pid"] > 0
    assert np.isfinite(metrics["roc_auc"])
