"""Exports: round trips for every example spec, MLflow, the predict CLI, failures, S3."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SPECS, base_spec
from helpers.cli import tunehouse_main
from tunehouse import load_spec
from tunehouse.catalog import Catalog, CatalogError
from tunehouse.driver import run
from tunehouse.export import ExportError, export, load_export

pytestmark = pytest.mark.slow
EXAMPLES = sorted(SPECS.glob("*.yaml"))


@pytest.fixture(scope="module")
def searched(ray_session, tmp_path_factory):
    """Each example spec searched (3 trials) into one catalog: {stem: RunResult}."""
    cat = tmp_path_factory.mktemp("exports") / "catalog"
    out = {}
    for path in EXAMPLES:
        spec = load_spec(path)
        if spec.search.algorithm != "grid":
            spec = spec.override({"search.num_samples": 3})
        out[path.stem] = run(spec, catalog=cat)
    return cat, out


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_every_example_spec_runs_end_to_end(searched, stem):
    """Each example spec's search (the CLI's ``run`` as a process: tests/e2e/test_cli.py's
    quickstart): every trial ran to its end or until its scheduler stopped it, with usage and a
    checkpoint in the catalog's folder."""
    cat, results = searched
    result = results[stem]
    assert result.trials and {t.status for t in result.trials} <= {"terminated", "early_stopped"}
    assert result.objective in result.best.metrics
    assert result.best.usage["wall_s"] > 0 and result.best.usage["node_id"]
    assert Path(result.best.checkpoint).is_dir() and str(cat) in result.best.checkpoint


def _test_rows(cat_uri, exp_id) -> pd.DataFrame:
    from tunehouse.export import _data

    exp = Catalog(cat_uri).experiment(exp_id)
    _spec, _ds, splits = _data(exp)
    return splits.X_test if splits.X_test is not None else splits.X_train.head(20)


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_round_trip_equals_the_checkpointed_model(searched, stem, tmp_path):
    cat, results = searched
    result = results[stem]
    X = _test_rows(cat, result.experiment_id)
    out = tmp_path / "exp"
    meta = export(cat, result.experiment_id, out, refit=False)
    assert meta["trial_id"] == result.best.trial_id
    loaded = load_export(out)
    with open(Path(result.best.checkpoint) / "model.pkl", "rb") as f:
        ckpt = pickle.load(f)
    got, want = loaded.predict(X), ckpt.predict(X)
    if meta["classes"]:
        want = np.asarray(meta["classes"], dtype=object)[np.asarray(want).astype(int)]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if meta["task"] == "classification" and hasattr(ckpt, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(X), ckpt.predict_proba(X))
    files = json.loads((out / "tunehouse.json").read_text())["files"]
    assert "MODEL_CARD.md" in files and any(f.startswith("mlflow/") for f in files)


#: The model families' example specs and the native format each family exports in.
NATIVE = {"xgboost_bayes": ("xgboost-ubj", "model.ubj"), "lightgbm_bayes_csv": ("lightgbm-txt", "model.txt")}


@pytest.mark.parametrize("stem", ["quickstart", "xgboost_bayes", "customers_csv", "lightgbm_bayes_csv", "histgb_diabetes"])
def test_refit_export_scores_the_test_split_once(searched, stem, tmp_path):
    cat, results = searched
    result = results[stem]
    meta = export(cat, result.experiment_id, tmp_path / "exp")
    assert meta["refit"] is True
    assert set(meta["metrics"]["test"]) == {m for m in result.test_metrics}
    for k, v in result.test_metrics.items():  # the same refit the run scored
        assert meta["metrics"]["test"][k] == pytest.approx(v)
    loaded = load_export(tmp_path / "exp")
    if stem in NATIVE:
        fmt, file = NATIVE[stem]
        assert meta["formats"]["model"]["format"] == fmt and (tmp_path / "exp" / file).is_file()
        X = _test_rows(cat, result.experiment_id)  # the native model predicts what the fitted one did
        np.testing.assert_allclose(_predictions(loaded, X), _predictions(_skops_copy(tmp_path / "exp"), X))
    else:
        assert meta["formats"]["model"]["format"] == "skops"
    assert loaded.metadata["features"] and loaded.metadata["dataset"]["fingerprint"] == result.dataset_fingerprint
    card = (tmp_path / "exp" / "MODEL_CARD.md").read_text()
    assert "Runners-up" in card and result.best.trial_id in card


def _predictions(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


def _skops_copy(folder):
    """The fitted pipeline as MLflow's skops copy holds it (the family's own estimator)."""
    import skops.io as sio

    path = folder / "mlflow" / "model.skops"
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


@pytest.mark.parametrize("stem", ["customers_csv", "xgboost_bayes", "lightgbm_bayes_csv", "histgb_diabetes"])
def test_mlflow_pyfunc_loads_and_predicts_the_same(searched, stem, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    cat, results = searched
    result = results[stem]
    export(cat, result.experiment_id, tmp_path / "exp")
    X = _test_rows(cat, result.experiment_id)
    ours = load_export(tmp_path / "exp")
    theirs = mlflow_pyfunc.load_model(str(tmp_path / "exp" / "mlflow"))
    if ours.metadata["task"] == "classification":
        np.testing.assert_array_equal(np.asarray(theirs.predict(X)).astype(int), ours.model.predict(X))
    else:
        np.testing.assert_allclose(np.asarray(theirs.predict(X), dtype=float), ours.predict(X))


def test_predict_cli_checks_columns_and_checksums(searched, tmp_path):
    cat, results = searched
    result = results["customers_csv"]
    out = tmp_path / "exp"
    export(cat, result.experiment_id, out, tag="production")
    X = _test_rows(cat, result.experiment_id)
    X.to_csv(tmp_path / "in.csv", index=False)

    def th(*args):
        return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)

    ok = th("predict", str(out), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "p.csv"))
    assert ok.returncode == 0, ok.stderr
    preds = pd.read_csv(tmp_path / "p.csv")
    assert len(preds) == len(X) and {"prediction", "proba_0", "proba_1"} <= set(preds.columns)
    np.testing.assert_array_equal(preds.prediction.to_numpy(), load_export(out).predict(X).astype(int))
    X.drop(columns=["plan"]).to_csv(tmp_path / "missing.csv", index=False)
    # the refusals' messages and exit codes through main(argv): a predict process takes seconds
    bad = tunehouse_main("predict", str(out), "--input", str(tmp_path / "missing.csv"))
    assert bad.returncode == 2 and "column 'plan' is missing" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    X.assign(extra=1).to_csv(tmp_path / "extra.csv", index=False)
    bad = tunehouse_main("predict", str(out), "--input", str(tmp_path / "extra.csv"))
    assert bad.returncode == 2 and "unexpected column(s) 'extra'" in bad.stderr
    listed = th("exports", "--catalog", str(cat), "--tag", "production", "--json")
    assert listed.returncode == 0, listed.stderr
    holders = json.loads(listed.stdout)
    assert holders[0]["path"] == str(out.resolve()) and holders[0]["current"] is True
    with open(out / "model.skops", "ab") as f:  # tamper
        f.write(b"\0")
    bad = tunehouse_main("predict", str(out), "--input", str(tmp_path / "in.csv"))
    assert bad.returncode == 1 and "checksum mismatch" in bad.stderr and "model.skops" in bad.stderr


def test_tags_move_and_history_keeps_rollback(searched, tmp_path):
    cat, results = searched
    a, b = results["quickstart"], results["xgboost_bayes"]
    export(cat, a.experiment_id, tmp_path / "a", tag="staging-x")
    export(cat, b.experiment_id, tmp_path / "b", tag="staging-x")
    c = Catalog(cat)
    now = c.exports(tag="staging-x")
    assert list(now.trial_id) == [b.best.trial_id] and now.current.all()
    hist = c.exports(tag="staging-x", history=True)
    assert list(hist.trial_id) == [b.best.trial_id, a.best.trial_id]
    assert list(hist.current) == [True, False]


def test_failures_are_clear_and_write_nothing(searched, ray_session, tmp_path, write_spec):
    cat, results = searched
    q = results["quickstart"]
    failing = run(load_spec(write_spec(base_spec(
        model="helpers.objectives:fails_when_big", metrics=[{"name": "loss", "mode": "min"}],
        search={"algorithm": "grid"}, space={"x": {"type": "grid", "values": [1, 9]}},
    ))), catalog=cat)
    bad = next(t for t in failing.trials if t.status == "error")
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"is error: ValueError: x too big"):
        export(cat, failing.experiment_id, out, trial=bad.trial_id)
    with pytest.raises(CatalogError, match="no trial 'nope'"):
        export(cat, q.experiment_id, out, trial="nope")
    with pytest.raises(ExportError, match="has no checkpoint"):  # a pure objective has no model
        export(cat, failing.experiment_id, out, refit=False)
    # checksum mismatch of the checkpoint
    victim = next(t for t in q.trials if t.trial_id != q.best.trial_id)
    model_file = Path(victim.checkpoint) / "model.pkl"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ExportError, match="checkpoint checksum mismatch"):
        export(cat, q.experiment_id, out, trial=victim.trial_id)
    # missing checkpoint
    shutil.rmtree(Path(victim.checkpoint))
    with pytest.raises(ExportError, match="checkpoint missing"):
        export(cat, q.experiment_id, out, trial=victim.trial_id)
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
    # an export from a newer tunehouse
    good = tmp_path / "good"
    export(cat, q.experiment_id, good)
    meta = json.loads((good / "tunehouse.json").read_text())
    meta["schema_version"] = 99
    (good / "tunehouse.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="schema_version 99 is newer"):
        load_export(good)
    with pytest.raises(ExportError, match="already exists"):
        export(cat, q.experiment_id, good)


def test_export_from_an_s3_catalog(ray_session, s3_server, tmp_path):
    uri = f"s3://tunehouse-test/exp-{uuid.uuid4().hex[:6]}"
    spec = load_spec(SPECS / "quickstart.yaml")
    spec = spec.override({"search.num_samples": 2})
    result = run(spec, catalog=uri)
    meta = export(uri, result.experiment_id, tmp_path / "exp", refit=False)
    assert meta["checkpoint"]["uri"].startswith("checkpoints/")
    loaded = load_export(tmp_path / "exp")
    X = _test_rows(uri, result.experiment_id)
    assert len(loaded.predict(X)) == len(X)
    assert list(Catalog(uri).exports().trial_id) == [result.best.trial_id]


def test_loading_refuses_widened_trust_and_outside_paths(searched, tmp_path):
    cat, results = searched
    result = results["quickstart"]
    good = tmp_path / "good"
    export(cat, result.experiment_id, good)
    for edit, match in [
        (lambda m: m["formats"]["model"]["trusted"].append("builtins.eval"), "refusing to trust 'builtins.eval'"),
        (lambda m: m["formats"]["model"].update(file="../../etc/passwd"), "points outside the export"),
    ]:
        bad = tmp_path / f"bad{len(match)}"
        shutil.copytree(good, bad)
        meta = json.loads((bad / "tunehouse.json").read_text())
        edit(meta)
        (bad / "tunehouse.json").write_text(json.dumps(meta))
        with pytest.raises(ExportError, match=match):
            load_export(bad)
    X = _test_rows(cat, result.experiment_id).astype(object)
    X.iloc[0, 0] = "abc"
    with pytest.raises(ExportError, match="cannot predict on this input"):
        load_export(good).predict(X)


def test_checkpoint_outside_the_catalog_is_refused(searched, tmp_path):
    from tunehouse.export import _checkpoint_model

    cat, _results = searched
    with pytest.raises(ExportError, match="outside the catalog's checkpoints"):
        _checkpoint_model(Catalog(cat), {"trial_id": "t", "checkpoint_uri": "/tmp/evil", "checkpoint_sha256": "x"})
    with pytest.raises(ExportError, match="no recorded SHA-256"):
        _checkpoint_model(Catalog(cat), {"trial_id": "t", "checkpoint_uri": "checkpoints/x", "checkpoint_sha256": None})


def test_the_final_refit_of_a_training_function_never_sees_the_test_rows(ray_session, tmp_path, write_spec):
    spec = load_spec(write_spec(base_spec(
        data={"sklearn": "breast_cancer"}, model="helpers.objectives:sees_valid",
        metrics=["accuracy"], evaluation={"holdout": 0.25, "test_size": 0.2},
        search={"algorithm": "random", "num_samples": 1}, space={"C": {"type": "uniform", "low": 0.1, "high": 1}},
    )))
    from tunehouse.trainable import FoldData

    seen = []
    import helpers.objectives as obj

    real = obj.sees_valid
    obj.sees_valid = lambda p, d: seen.append(isinstance(d, FoldData) and d.X_valid is None) or real(p, d)
    try:
        result = run(spec, catalog=tmp_path)
    finally:
        obj.sees_valid = real
    assert seen == [True]  # the driver-side refit: no validation (= test) rows
    assert "accuracy" in result.test_metrics


@pytest.mark.parametrize(("stem", "package"), [("xgboost_bayes", "xgboost"), ("lightgbm_bayes_csv", "lightgbm")])
def test_mlflow_requirements_of_a_family_s_model(searched, tmp_path, stem, package):
    pytest.importorskip("mlflow")
    from importlib.metadata import version

    cat, results = searched
    export(cat, results[stem].experiment_id, tmp_path / "exp")
    lines = (tmp_path / "exp" / "mlflow" / "requirements.txt").read_text().split()
    assert {line.split("==")[0] for line in lines} == {"mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas", package}
    assert f"{package}=={version(package)}" in lines


def test_a_run_records_what_a_checkpoint_export_needs_without_its_data(ray_session, tmp_path, write_spec):
    csv = tmp_path / "data" / "churn.csv"
    csv.parent.mkdir()
    shutil.copy(SPECS / "data" / "customers.csv", csv)
    spec = load_spec(write_spec(base_spec(
        data={"path": "data/churn.csv", "target": "churned"}, preprocess={"impute": "median", "onehot": True},
        model={"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
        search={"algorithm": "random", "num_samples": 2}, space={"C": {"type": "loguniform", "low": 0.1, "high": 10}},
    )))
    result = run(spec, catalog=tmp_path / "cat")
    csv.unlink()
    with pytest.warns(UserWarning, match="the training data could not be loaded"):
        meta = export(tmp_path / "cat", result.experiment_id, tmp_path / "exp", refit=False)
    assert [f["name"] for f in meta["features"]] == ["plan", "region", "tenure_months", "monthly_charges", "support_tickets"]
    assert meta["classes"] == [0, 1] and meta["target"] == "churned" and meta["dataset"]["verified"] is False
    X = pd.read_csv(SPECS / "data" / "customers.csv").drop(columns=["churned"])
    with open(Path(result.best.checkpoint) / "model.pkl", "rb") as f:
        ckpt = pickle.load(f)
    np.testing.assert_allclose(load_export(tmp_path / "exp").predict_proba(X), ckpt.predict_proba(X))


def test_training_function_experiment_exports_with_refit_like_the_run(searched, tmp_path):
    """The example training function (customers_function.yaml) refits at export as `run` did:
    same test metrics; the positive class is in the catalog, tunehouse.json and the card."""
    cat, results = searched
    result = results["customers_function"]
    assert result.positive_class == "yes" and result.test_metrics
    assert Catalog(cat).experiment(result.experiment_id)["positive_class"] == "yes"
    meta = export(cat, result.experiment_id, tmp_path / "exp")
    assert meta["refit"] is True and meta["positive_class"] == "yes" and meta["classes"] == ["no", "yes"]
    assert meta["metrics"]["test"] == pytest.approx(result.test_metrics, abs=1e-12)
    assert "positive class `'yes'`" in (tmp_path / "exp" / "MODEL_CARD.md").read_text()
    loaded = load_export(tmp_path / "exp")
    assert "tunehouse.models.FunctionModel" in loaded.metadata["formats"]["model"]["trusted"]
    X = _test_rows(cat, result.experiment_id)
    assert set(loaded.predict(X)) <= {"yes", "no"} and loaded.predict_proba(X).shape == (len(X), 2)
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    theirs = mlflow_pyfunc.load_model(str(tmp_path / "exp" / "mlflow"))
    np.testing.assert_array_equal(np.asarray(theirs.predict(X)).astype(int), loaded.model.predict(X))
