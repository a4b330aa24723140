"""Exports of experiments recorded without Ray (tests/helpers/offline.py): predict's input
handling (--keep, --ignore-extra, dtypes, arrays, exit codes), the model card, exports whose
training file has moved, and the MLflow model's requirements.

A ``predict`` process spends seconds importing skops (which imports all of scikit-learn), so
messages and exit codes are checked through ``main(argv)`` in this process (``thm``); real
``tunehouse`` processes (``th``) remain where the process is the point: predictions on stdout
with a warning line on stderr, and an export refused with exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SPECS
from helpers.cli import tunehouse_main as thm
from helpers.offline import record
from tunehouse.catalog import Catalog, CatalogWriter
from tunehouse.errors import DataError
from tunehouse.export import ExportError, ExportInputError, ExportWarning, export, load_export

FEATURES = ["plan", "region", "tenure_months", "monthly_charges", "support_tickets"]


def th(*args: str) -> subprocess.CompletedProcess:
    """``tunehouse ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


def churn_project(root: Path, **evaluation) -> SimpleNamespace:
    """A user's project: data/churn.csv (an id column, text, missing values, a yes/no target)
    and specs/churn.yaml naming it as ../data/churn.csv; two trials recorded into root/catalog."""
    frame = pd.read_csv(SPECS / "data" / "customers.csv")
    frame.insert(0, "customer_id", range(1000, 1000 + len(frame)))
    frame["churned"] = frame["churned"].map({1: "yes", 0: "no"})
    (root / "data").mkdir(parents=True)
    (root / "specs").mkdir()
    csv = root / "data" / "churn.csv"
    frame.to_csv(csv, index=False)
    spec = {
        "name": "churn", "seed": 1, "task": "classification",
        "data": {"path": "../data/churn.csv", "target": "churned", "features": FEATURES},
        "preprocess": {"impute": "median", "onehot": True},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
        "evaluation": {"test_size": 0.2, **(evaluation or {"cv": 3})},
        "metrics": ["roc_auc", "accuracy"],
        "search": {"algorithm": "random", "num_samples": 2},
        "space": {"C": {"type": "loguniform", "low": 0.01, "high": 10}},
    }
    path = root / "specs" / "churn.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog = root / "catalog"
    exp_id = record(path, catalog, [{"C": 0.1}, {"C": 1.0}])
    return SimpleNamespace(root=root, csv=csv, frame=frame, catalog=catalog, exp_id=exp_id)


@pytest.fixture(scope="module")
def churn(tmp_path_factory) -> SimpleNamespace:
    """The churn project, exported from its checkpoint (a 3-fold ensemble) and refitted."""
    p = churn_project(tmp_path_factory.mktemp("churn"))
    p.ckpt = p.root / "ckpt"
    p.refit = p.root / "refit"
    export(p.catalog, p.exp_id, p.ckpt, refit=False)
    export(p.catalog, p.exp_id, p.refit, mlflow=False)
    p.rows = p.frame.head(40)
    p.rows.to_csv(p.root / "rows.csv", index=False)  # id, features and target: as a user has them
    return p


# -- item 8: --keep and --ignore-extra ---------------------------------------------------------
def test_keep_copies_columns_first_and_ignore_extra_drops_the_rest(churn):
    want = load_export(churn.ckpt).predict(churn.rows[FEATURES])
    rows = str(churn.root / "rows.csv")
    refused = thm("predict", str(churn.ckpt), "--input", rows)
    assert refused.returncode == 2
    assert _lines(refused.stderr) == [
        "error: input has unexpected column(s) 'customer_id', 'churned'; expected plan, region, tenure_months, "
        "monthly_charges, support_tickets (--ignore-extra drops the others, --keep COL copies one)"]

    out = thm("predict", str(churn.ckpt), "--input", rows, "--keep", "customer_id", "--ignore-extra")
    assert out.returncode == 0, out.stderr
    got = pd.read_csv(pd.io.common.StringIO(out.stdout))
    assert list(got.columns) == ["customer_id", "prediction", "proba_no", "proba_yes"]
    assert got.customer_id.tolist() == churn.rows.customer_id.tolist()
    assert got.prediction.tolist() == list(want)

    both = thm("predict", str(churn.ckpt), "--input", rows, "--keep", "churned", "--keep", "customer_id",
              "--output", str(churn.root / "both.csv"))
    assert both.returncode == 0, both.stderr
    got = pd.read_csv(churn.root / "both.csv")
    assert list(got.columns)[:3] == ["churned", "customer_id", "prediction"]
    assert got.churned.tolist() == churn.rows.churned.tolist()

    nope = thm("predict", str(churn.ckpt), "--input", rows, "--keep", "custmer_id", "--ignore-extra")
    assert nope.returncode == 2
    assert _lines(nope.stderr) == ["error: cannot keep column 'custmer_id': not in the input (did you mean 'customer_id'?)"]


def test_keep_and_ignore_extra_in_python(churn):
    model = load_export(churn.ckpt)
    want = model.predict(churn.rows[FEATURES])
    # a kept feature column is copied and still used by the model
    table = model.predictions(churn.rows, keep=["customer_id", "plan"], ignore_extra=True)
    assert list(table.columns) == ["customer_id", "plan", "prediction", "proba_no", "proba_yes"]
    assert table.prediction.tolist() == list(want) and table.plan.tolist() == churn.rows.plan.tolist()
    np.testing.assert_array_equal(model.predict(churn.rows, ignore_extra=True), want)
    with pytest.raises(ExportInputError, match=r"^input is missing column\(s\) 'plan'; expected plan, region"):
        model.predictions(churn.rows.drop(columns=["plan"]), keep=["customer_id"], ignore_extra=True)
    with pytest.raises(ExportInputError, match="output has a column of that name"):
        model.predictions(churn.rows.assign(prediction=1), keep=["prediction"], ignore_extra=True)


# -- item 9: bad values named; arrays ------------------------------------------------------------
def test_text_in_a_numeric_column_names_the_column_dtype_and_a_value(churn):
    bad = churn.rows[FEATURES].astype({"monthly_charges": object})
    bad.loc[bad.index[3], "monthly_charges"] = "80 EUR"
    bad.to_csv(churn.root / "bad.csv", index=False)
    msg = ("cannot predict on this input: column 'monthly_charges' expects float64 (numbers); "
           "1 row(s) hold text, e.g. '80 EUR'")
    out = thm("predict", str(churn.ckpt), "--input", str(churn.root / "bad.csv"))
    assert out.returncode == 2 and _lines(out.stderr) == [f"error: {msg}"]
    model = load_export(churn.refit)
    with pytest.raises(ExportInputError) as e:
        model.predict(bad)
    assert str(e.value) == msg
    with pytest.raises(ExportInputError, match="column 'monthly_charges' expects float64"):
        model.predict_proba(bad.to_numpy())
    # numbers given as text convert, as they did when the training data was read
    as_text = churn.rows[FEATURES].astype({"tenure_months": str})
    np.testing.assert_array_equal(model.predict(as_text), model.predict(churn.rows[FEATURES]))


def test_an_array_is_taken_in_training_order(churn):
    meta = json.loads((churn.ckpt / "tunehouse.json").read_text())
    assert [f["name"] for f in meta["features"]] == FEATURES
    for folder in (churn.ckpt, churn.refit):
        model = load_export(folder)
        X = churn.rows[FEATURES]
        np.testing.assert_array_equal(model.predict(X.to_numpy()), model.predict(X))
        np.testing.assert_allclose(model.predict_proba(X.to_numpy()), model.predict_proba(X))
        for shape_of in (X.to_numpy()[:, :4], X.to_numpy()[0]):
            with pytest.raises(ExportInputError) as e:
                model.predict(shape_of)
            assert str(e.value) == (
                "expected a DataFrame, or a 2-D array of 5 columns in training order (plan, region, tenure_months, "
                f"monthly_charges, support_tickets); got an array of shape {shape_of.shape}")


# -- item 10: bad input exits 2 --------------------------------------------------------------------
def test_bad_input_to_predict_and_a_bad_where_exit_2(churn, tmp_path):
    ok_rows = churn.rows[FEATURES]
    ok_rows.drop(columns=["plan"]).to_csv(tmp_path / "missing.csv", index=False)
    (tmp_path / "rows.json").write_text("{}")
    cases = [
        (["--input", str(tmp_path / "nope.csv")], f"error: --input: file not found: {tmp_path / 'nope.csv'}"),
        (["--input", str(tmp_path)], f"error: --input: {tmp_path} is a directory, expected a .csv or .parquet file"),
        (["--input", str(tmp_path / "rows.json")],
         "error: --input: unsupported file type '.json' for rows.json; expected .csv or .parquet"),
        (["--input", str(tmp_path / "missing.csv")], "error: input is missing column(s) 'plan'; expected plan, "
         "region, tenure_months, monthly_charges, support_tickets"),
        (["--input", str(churn.root / "rows.csv"), "--ignore-extra", "--output", str(tmp_path / "no" / "p.csv")],
         f"error: --output {tmp_path / 'no' / 'p.csv'}: Cannot save file into a non-existent directory: "
         f"'{tmp_path / 'no'}'"),
    ]
    for args, line in cases:
        out = thm("predict", str(churn.ckpt), *args)
        assert (out.returncode, _lines(out.stderr)) == (2, [line])
    out = thm("predict", str(tmp_path), "--input", str(churn.root / "rows.csv"))
    assert (out.returncode, _lines(out.stderr)) == (2, [f"error: {tmp_path} is not a tunehouse export (no tunehouse.json)"])
    out = thm("trials", churn.exp_id, "--catalog", str(churn.catalog), "--where", "C >")
    assert out.returncode == 2 and len(_lines(out.stderr)) == 1 and out.stderr.startswith("error: --where 'C >': ")
    good = thm("trials", churn.exp_id, "--catalog", str(churn.catalog), "--where", "C > 0.5", "--json")
    assert good.returncode == 0 and [r["C"] for r in json.loads(good.stdout)] == [1.0]


# -- item 11: the model card ---------------------------------------------------------------------
def test_the_card_says_how_metrics_were_measured_and_on_how_many_rows(churn, tmp_path):
    card = (churn.ckpt / "MODEL_CARD.md").read_text()
    assert f"- Data: `{churn.csv.resolve()}`" in card and ".." not in card.split("- Data: ")[1].splitlines()[0]
    assert "- Rows: 480 training (3-fold cross-validation), 120 test" in card
    assert "| metric | cross-validation, mean ± std over 3 folds | test |" in card
    assert "Predicting `churned`" in card
    meta = json.loads((churn.ckpt / "tunehouse.json").read_text())
    assert meta["dataset"]["source"] == str(churn.csv.resolve()) and meta["dataset"]["rows"] == {"train": 480, "test": 120}

    holdout = churn_project(tmp_path / "h", holdout=0.25)
    export(holdout.catalog, holdout.exp_id, tmp_path / "h" / "out", refit=False, mlflow=False)
    card = (tmp_path / "h" / "out" / "MODEL_CARD.md").read_text()
    assert "| metric | hold-out validation (25 % of the training rows) | test |" in card
    assert "- Rows: 480 training (25 % of them held out for validation), 120 test" in card
    assert "cross-validation" not in card

    kmeans = record(SPECS / "wine_kmeans.yaml", tmp_path / "k", [{"n_clusters": 3, "init": "k-means++"}])
    export(tmp_path / "k", kmeans, tmp_path / "k" / "out", refit=False, mlflow=False)
    card = (tmp_path / "k" / "out" / "MODEL_CARD.md").read_text()
    assert "- Data: `sklearn:wine`" in card and "- Rows: 178, all used to fit and score" in card
    assert "| metric | all rows |" in card
    for wrong in ("target", "None", "Predicting", "cross-validation", "test"):
        assert wrong not in card.replace("no test split", ""), wrong


def test_an_edited_card_warns_while_model_files_stay_verified(churn, tmp_path):
    folder = tmp_path / "exp"
    shutil.copytree(churn.ckpt, folder)
    with open(folder / "MODEL_CARD.md", "a") as f:
        f.write("\nReviewed by the risk team.\n")
    with pytest.warns(ExportWarning, match=r"MODEL_CARD.md was edited since export .*the model, whose files are verified, loads"):
        model = load_export(folder)
    np.testing.assert_array_equal(model.predict(churn.rows[FEATURES]), load_export(churn.ckpt).predict(churn.rows[FEATURES]))
    # a real process: predictions on its stdout, the warning line as a fresh interpreter shows it
    out = th("predict", str(folder), "--input", str(churn.root / "rows.csv"), "--ignore-extra")
    assert out.returncode == 0 and len(_lines(out.stdout)) == 41
    assert len(_lines(out.stderr)) == 1 and out.stderr.startswith(f"warning: {folder / 'MODEL_CARD.md'} was edited")
    for victim in ("model.skops", "mlflow/MLmodel"):
        bad = tmp_path / victim.replace("/", "_")
        shutil.copytree(churn.ckpt, bad)
        with open(bad / victim, "a") as f:
            f.write("\n")
        with pytest.raises(ExportError, match=f"{victim}: checksum mismatch"):
            load_export(bad)
        out = thm("predict", str(bad), "--input", str(churn.root / "rows.csv"), "--ignore-extra")
        assert out.returncode == 1 and "checksum mismatch" in out.stderr


# -- item 12: --no-refit without the training file --------------------------------------------
def test_a_checkpoint_exports_when_the_training_file_has_moved(tmp_path):
    p = churn_project(tmp_path / "p")
    exp = Catalog(p.catalog).experiment(p.exp_id)
    assert list(exp["features"]) == [(c, str(p.frame[c].dtype) if c.endswith(("months", "charges", "tickets"))
                                       else "object") for c in FEATURES]
    assert (exp["target"], json.loads(exp["classes"])) == ("churned", ["no", "yes"])
    with_data = tmp_path / "with-data"
    export(p.catalog, p.exp_id, with_data, refit=False)
    p.csv.rename(p.csv.with_name("moved.csv"))

    out = thm("export", p.exp_id, "--catalog", str(p.catalog), "--out", str(tmp_path / "ckpt"), "--no-refit")
    assert out.returncode == 0, out.stderr
    assert _lines(out.stderr) == [
        f"warning: the training data could not be loaded (file not found: {p.root}/specs/../data/churn.csv): "
        "exporting the checkpoint with the features recorded in the catalog, without test metrics and "
        "without checking the data's fingerprint"]
    assert "test: not scored, no data" in out.stdout
    model = load_export(tmp_path / "ckpt")
    ref = load_export(with_data)
    for key in ("features", "target", "classes", "params", "task"):
        assert model.metadata[key] == ref.metadata[key], key
    assert model.metadata["dataset"]["verified"] is False and model.metadata["metrics"]["test"] == {}
    X = p.frame[FEATURES]
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X))
    assert "- Rows: not known: the training data was not found at export" in (tmp_path / "ckpt" / "MODEL_CARD.md").read_text()
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    theirs = mlflow_pyfunc.load_model(str(tmp_path / "ckpt" / "mlflow"))
    np.testing.assert_array_equal(np.asarray(theirs.predict(X)), ref.model.predict(X))

    refit = th("export", p.exp_id, "--catalog", str(p.catalog), "--out", str(tmp_path / "refit"))  # a process
    assert refit.returncode == 2 and _lines(refit.stderr) == [
        f"error: data.path: file not found: {p.root}/specs/../data/churn.csv; a refit needs the training data "
        "(restore it, or export the trial's checkpoint as it is with --no-refit)"]
    assert not (tmp_path / "refit").exists() and not list(tmp_path.glob(".refit.tmp-*"))


def test_an_older_catalog_without_the_features_needs_the_data_as_before(tmp_path):
    p = churn_project(tmp_path / "p")
    writer = CatalogWriter(str(p.catalog.resolve()), p.exp_id)
    writer.experiment = {k: v for k, v in Catalog(p.catalog).experiment(p.exp_id).items()
                         if k not in ("features", "target", "classes", "duration_s")}
    writer.set_experiment()  # the experiment row as tunehouse wrote it before these columns
    writer.flush()
    assert Catalog(p.catalog).experiment(p.exp_id)["features"] is None
    meta = export(p.catalog, p.exp_id, tmp_path / "a", refit=False, mlflow=False)
    assert [f["name"] for f in meta["features"]] == FEATURES and meta["dataset"]["verified"] is True
    p.csv.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "exporting without the data" warning: it cannot
        with pytest.raises(DataError, match="file not found"):
            export(p.catalog, p.exp_id, tmp_path / "b", refit=False, mlflow=False)
    assert not (tmp_path / "b").exists()


# -- item 13: the MLflow model's requirements ------------------------------------------------
def _requirements(folder: Path) -> dict[str, str]:
    lines = _lines((folder / "mlflow" / "requirements.txt").read_text())
    return dict(line.split("==") for line in lines)


def test_mlflow_requirements_list_what_the_model_needs(churn, tmp_path):
    pytest.importorskip("mlflow")
    base = {"mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas"}
    ckpt = _requirements(churn.ckpt)  # the fold models in tunehouse's FoldEnsemble
    assert set(ckpt) == base | {"tunehouse"}
    assert all(v == version(k) for k, v in ckpt.items())
    export(churn.catalog, churn.exp_id, tmp_path / "refit")  # one scikit-learn pipeline
    assert set(_requirements(tmp_path / "refit")) == base
