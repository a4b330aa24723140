"""The trainable as a plain function, without Ray."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SPECS, base_spec
from tunehouse.data import split
from tunehouse.driver import _test_score  # noqa: F401  (import check)
from tunehouse.models import FoldEnsemble
from tunehouse.trainable import (
    TrialPayload,
    evaluate,
    folds_of,
    make_payload,
    run_trial,
    split_folds,
)
from tunehouse.validate import load_checked


def payload_for(spec_path) -> tuple[TrialPayload, object]:
    spec, ds = load_checked(spec_path)
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
    folds = folds_of(p)
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


# -- a training function: original labels, raw or preprocessed columns, a scorable model --------
def _function_spec(write_spec, model="helpers.objectives:records", **over):
    """A training function on the example churn rows (text, gaps, a yes/no target), ids left out."""
    import pandas as pd

    csv = write_spec("").parent / "churn.csv"
    frame = pd.read_csv(SPECS / "data" / "churn_yes_no.csv")
    frame.drop(columns=["customer_id", "email", "signup_date"]).to_csv(csv, index=False)
    return write_spec(base_spec(
        data={"path": str(csv), "target": "churned", **over.pop("data", {})}, model=model,
        metrics=["f1", "roc_auc", "accuracy"], evaluation={"cv": 3, "test_size": 0.2},
        space={"C": {"type": "loguniform", "low": 0.01, "high": 10}}, **over,
    ))


def test_training_function_gets_the_original_labels_and_the_raw_columns(write_spec):
    """No preprocess: text and gaps reach the function as they are (and validation allows them)."""
    from helpers.objectives import SEEN

    p, _ = payload_for(_function_spec(write_spec))  # text columns, gaps, no preprocess: accepted
    SEEN.clear()
    out = evaluate({"C": 1.0}, p)
    assert len(SEEN) == 3 and 0.5 < out.metrics["roc_auc"] <= 1
    fold = SEEN[0]
    assert set(fold.y_train) == set(fold.y_valid) == {"yes", "no"}
    assert list(fold.X_train.columns) == ["plan", "region", "tenure_months", "monthly_charges", "support_tickets"]
    assert fold.X_train["plan"].isin(["basic", "plus", "premium"]).all()
    assert fold.X_train["monthly_charges"].isna().any() and fold.X_train["region"].isna().any()
    assert (fold.y_train.index == fold.X_train.index).all()
    SEEN.clear()
    from tunehouse.trainable import refit

    model = refit(p, {"C": 1.0})
    assert len(SEEN) == 1 and SEEN[0].X_valid is None and SEEN[0].y_valid is None
    assert len(SEEN[0].X_train) == len(p.X) and set(SEEN[0].y_train) == {"yes", "no"}
    assert set(np.unique(model.predict(p.X))) <= {0, 1}  # scored in class codes, like any model


def test_training_function_with_preprocess_gets_its_output_fitted_on_the_fold(write_spec):
    from helpers.objectives import SEEN

    p, _ = payload_for(_function_spec(write_spec, preprocess={"impute": "median", "onehot": True}))
    SEEN.clear()
    evaluate({"C": 1.0}, p)
    for fold, (tr, _va) in zip(SEEN, folds_of(p), strict=True):
        X = fold.X_train
        assert "plan_basic" in X.columns and "plan" not in X.columns  # one-hot, named columns
        assert not X.isna().any().any() and not fold.X_valid.isna().any().any()
        raw = p.X.iloc[tr]["monthly_charges"]
        assert (X.index == raw.index).all()
        filled = X.loc[raw.isna(), "monthly_charges"]
        assert len(filled) and (filled == raw.median()).all()  # the fold's own median
        assert set(fold.y_train) == {"yes", "no"}


def test_function_model_scores_in_code_order_whatever_its_classes_order(write_spec):
    """positive_class 'no' gives 'no' code 1 while the model's classes_ are sorted ['no', 'yes']:
    tunehouse's metrics equal scikit-learn's on the labels with pos_label='no'."""
    from sklearn.metrics import f1_score, roc_auc_score

    from tunehouse.models import FunctionModel, score
    from tunehouse.trainable import refit

    p, s = payload_for(_function_spec(write_spec, data={"positive_class": "no"}))
    assert p.factory.classes == ("yes", "no")
    model = refit(p, {"C": 0.5})
    assert isinstance(model, FunctionModel) and list(model.model.classes_) == ["no", "yes"]
    got = score(model, s.X_test, s.y_test, ["f1", "roc_auc"], task="classification", n_classes=2)
    truth = np.asarray(["yes", "no"], dtype=object)[s.y_test.to_numpy()]
    labels = model.model.predict(s.X_test)
    p_no = model.model.predict_proba(s.X_test)[:, 0]
    assert got["f1"] == pytest.approx(f1_score(truth, labels, pos_label="no"), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(truth == "no", p_no), abs=1e-12)
    np.testing.assert_allclose(model.predict_proba(s.X_test)[:, 1], p_no)


def test_function_model_predicting_other_values_than_the_labels_fails_clearly(write_spec):
    p, _ = payload_for(_function_spec(write_spec, model="helpers.objectives:fits_booleans"))
    with pytest.raises(ValueError, match=r"predicted False, which is not a label of the target \('no', 'yes'\)"):
        evaluate({"C": 1.0}, p)
    metrics_only, _ = payload_for(write_spec(base_spec(
        model="helpers.objectives:quadratic", metrics=[{"name": "loss", "mode": "min"}],
        space={"x": {"type": "uniform", "low": -5, "high": 5}, "y": {"type": "uniform", "low": -5, "high": 5}},
    ), "objective.yaml"))
    from tunehouse.trainable import refit

    assert refit(metrics_only, {"x": 1.0, "y": 1.0}) is None  # a pure objective: nothing to score


def test_clustering_function_is_scored_on_its_own_pipelines_features(write_spec):
    from sklearn.metrics import silhouette_score

    p, _ = payload_for(write_spec(base_spec(
        task="clustering", data={"sklearn": "wine"}, model="helpers.objectives:clusters",
        metrics=["silhouette"], evaluation={"holdout": 0.3, "test_size": 0.0}, space={"k": [3, 4]},
    )))
    out = evaluate({"k": 3}, p)
    _tr, va = folds_of(p)[0]
    pipe = out.model.model
    X_va = p.X.iloc[va]
    want = silhouette_score(pipe[:-1].transform(X_va), pipe.predict(X_va))
    assert out.metrics["silhouette"] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("spec_file", ["quickstart.yaml", "xgboost_bayes.yaml"])  # CV, hold-out
def test_folds_are_split_once_in_the_payload_as_a_fresh_split_would(spec_file):
    p, _ = payload_for(SPECS / spec_file)
    fresh = split_folds(p)
    assert p.folds is not None and folds_of(p) is p.folds  # trials reuse them, never re-split
    assert len(p.folds) == len(fresh) == (p.cv or 1)
    for (tr, va), (ftr, fva) in zip(p.folds, fresh, strict=True):
        assert np.array_equal(tr, ftr) and np.array_equal(va, fva)  # same rows, same order
        assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(p.X)


def test_a_training_function_trial_does_not_import_model_selection(tmp_path, write_spec):
    """A fresh worker's first trial of a training function imports no sklearn.model_selection
    (about 1 s of CPU per worker when it did: the folds come in the payload)."""
    import os
    import pickle
    import subprocess
    import sys

    # a module of its own: the tests' helpers package imports scikit-learn itself
    (tmp_path / "th_noop.py").write_text("def fit(params, fold):\n    return {'loss': params['x']}\n")
    spec_path = write_spec(base_spec(
        model="th_noop:fit", metrics=[{"name": "loss", "mode": "min"}],
        evaluation={"holdout": 0.2, "test_size": 0},
        space={"x": {"type": "uniform", "low": -1, "high": 1}, "y": {"type": "uniform", "low": -1, "high": 1}},
    ))
    p, _ = payload_for(spec_path)
    (tmp_path / "payload.pkl").write_bytes(pickle.dumps(p))
    code = (
        "import pickle, sys; from tunehouse.trainable import run_trial; "
        f"p = pickle.load(open({str(tmp_path / 'payload.pkl')!r}, 'rb')); "
        "m, _ = run_trial({'x': 0.5, 'y': 0.0}, p); assert m['loss'] == 0.5; "
        "print('sklearn.model_selection' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])})
    assert out.stdout.strip() == "False"
