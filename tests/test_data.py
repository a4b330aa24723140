"""Data validation without Ray: the positive class, identifier/free-text/date columns,
``data.drop``, the one-hot cap, and spec hashes that must not move."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SPECS, base_spec
from helpers.cli import tunehouse_main
from tunehouse.costs import COSTS
from tunehouse.data import split
from tunehouse.errors import DataError, SpecError
from tunehouse.spec import parse_spec
from tunehouse.trainable import evaluate, make_payload
from tunehouse.validate import load_checked

CHURN = SPECS / "data" / "churn_yes_no.csv"
IDS = ROOT / "tests" / "data" / "csv" / "ids_and_dates.csv"
BINARY = ["f1", "precision", "recall", "roc_auc", "accuracy"]


def _churn_spec(write_spec, csv, **data) -> dict:
    return base_spec(
        data={"path": str(csv), "target": "churned", "drop": ["customer_id", "email", "signup_date"], **data},
        model={"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        preprocess={"impute": "median", "scale": "standard", "onehot": True},
        evaluation={"cv": 4, "test_size": 0.2},
        metrics=BINARY,
        space={"C": {"type": "loguniform", "low": 0.01, "high": 10}},
    )


def _scores(spec_path) -> tuple[dict[str, float], dict[str, float], object]:
    """CV metrics of one configuration, and the test metrics of its refit (what `run` reports)."""
    from tunehouse.models import score

    spec, ds = load_checked(spec_path)
    s = split(ds, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)
    p = make_payload(spec, ds, s)
    cv = evaluate({"C": 0.3}, p).metrics
    model = p.factory.build({"C": 0.3}).fit(p.X, p.y)  # the final refit on all training rows
    test = score(model, s.X_test, s.y_test, p.metrics, task=p.task, n_classes=p.n_classes)
    return cv, test, ds


# -- item 1: the positive class ---------------------------------------------------------------
def test_relabelled_copy_with_positive_class_gives_identical_metrics(write_spec, tmp_path):
    frame = pd.read_csv(CHURN)
    relabelled = tmp_path / "relabelled.csv"
    frame.assign(churned=frame.churned.map({"yes": "leave", "no": "stay"})).to_csv(relabelled, index=False)
    cv, test, ds = _scores(write_spec(_churn_spec(write_spec, CHURN), "a.yaml"))
    cv2, test2, ds2 = _scores(write_spec(_churn_spec(write_spec, relabelled, positive_class="leave"), "b.yaml"))
    assert ds.positive_class == "yes" and ds2.positive_class == "leave"
    assert ds2.classes == ["stay", "leave"]  # code order: the positive class has code 1
    assert set(BINARY) <= set(cv) and set(BINARY) <= set(test)
    scores = lambda m: {k: v for k, v in m.items() if k not in COSTS}  # noqa: E731  (timings vary)
    assert scores(cv2) == scores(cv) and test2 == test  # exactly, every score
    # without positive_class the relabelled copy scores 'stay' (the later label) as positive
    cv3, _, ds3 = _scores(write_spec(_churn_spec(write_spec, relabelled), "c.yaml"))
    assert ds3.positive_class == "stay" and cv3["f1"] != pytest.approx(cv["f1"])


def test_positive_class_metrics_equal_scikit_learns_with_pos_label(write_spec):
    """positive_class 'no' (the earlier label) is what f1/precision/recall/roc_auc score."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    spec, ds = load_checked(write_spec(_churn_spec(write_spec, CHURN, positive_class="no")))
    assert ds.classes == ["yes", "no"] and ds.positive_class == "no"
    s = split(ds, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)
    p = make_payload(spec, ds, s)
    model = p.factory.build({"C": 0.3}).fit(p.X, p.y)
    from tunehouse.models import score

    got = score(model, s.X_test, s.y_test, p.metrics, task=p.task, n_classes=2)
    truth = np.asarray(ds.classes, dtype=object)[s.y_test.to_numpy()]
    pred = np.asarray(ds.classes, dtype=object)[model.predict(s.X_test)]
    p_no = model.predict_proba(s.X_test)[:, 1]
    assert got["f1"] == pytest.approx(f1_score(truth, pred, pos_label="no"), abs=1e-12)
    assert got["precision"] == pytest.approx(precision_score(truth, pred, pos_label="no"), abs=1e-12)
    assert got["recall"] == pytest.approx(recall_score(truth, pred, pos_label="no"), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(truth == "no", p_no), abs=1e-12)


@pytest.mark.parametrize(("written", "expected"), [("yes", "yes"), ('"yes"', "yes"), ("no", "no"), ("Yes", "yes")])
def test_positive_class_unquoted_yes_no_matches_the_label(write_spec, written, expected):
    """YAML reads unquoted yes/no as booleans; they still name the label 'yes'/'no'."""
    text = (
        f"name: t\ntask: classification\ndata:\n  path: {CHURN}\n  target: churned\n"
        f"  drop: [customer_id, email, signup_date]\n  positive_class: {written}\n"
        "preprocess: {impute: median, onehot: true}\nmodel: sklearn.tree.DecisionTreeClassifier\n"
        "metrics: [f1]\nsearch: {algorithm: random, num_samples: 2}\nspace:\n  max_depth: [2, 3]\n"
    )
    assert load_checked(write_spec(text))[1].positive_class == expected


def test_integer_labels_take_an_integer_or_quoted_positive_class(write_spec):
    for value in (0, "0"):
        _, ds = load_checked(write_spec(base_spec(data={"sklearn": "breast_cancer", "positive_class": value})))
        assert ds.classes == [1, 0] and ds.positive_class == 0
    _, default = load_checked(write_spec(base_spec(data={"sklearn": "breast_cancer"})))
    assert default.positive_class == 1  # the later label in sorted order, as before
    assert load_checked(write_spec(base_spec()))[1].positive_class is None  # iris: 3 classes


def test_validate_and_run_summary_show_the_positive_class():
    from tunehouse.cli import _print_run
    from tunehouse.driver import RunResult

    proc = tunehouse_main("validate", str(SPECS / "quickstart.yaml"), str(SPECS / "wine_kmeans.yaml"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(", positive class 1)") and "positive class" not in lines[1]  # breast cancer: 0/1
    import io

    out = io.StringIO()
    _print_run(RunResult("e", "n", "random", "f1", "max", "fp", "cat", "sp", [], None, {}, 1.0, 2.0,
                         positive_class="yes"), out)
    assert "positive class: 'yes'" in out.getvalue().splitlines()[1]


# -- item 2: identifiers, free text, dates; data.drop; the one-hot cap -------------------------
def _spec_on(write_spec, frame: pd.DataFrame, tmp_path, name="d.csv", **data):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return write_spec(base_spec(data={"path": str(path), "target": "label", **data},
                                preprocess={"impute": "median", "onehot": True}))


def test_every_identifier_and_date_column_is_named_in_one_line(write_spec, tmp_path):
    frame = pd.read_csv(CHURN).rename(columns={"churned": "label"})
    frame["notes"] = [f"called on day {i}, said something" for i in range(len(frame))]
    frame["stamp"] = pd.date_range("2024-01-01", periods=len(frame), freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    with pytest.raises(DataError) as info:
        load_checked(_spec_on(write_spec, frame, tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and info.value.field == "data.drop"
    for col, why in [("customer_id", "text, unique per row"), ("email", "text, unique per row"),
                     ("signup_date", "dates"), ("notes", "text, unique per row"), ("stamp", "dates")]:
        assert f"{col!r} ({why})" in msg
    assert "data.drop: [customer_id, email, signup_date, notes, stamp]" in msg
    for ok in ("plan", "region", "tenure_months"):
        assert repr(ok) not in msg
    # dropped, the same data validates; named in data.features, a column is taken as asked
    _, ds = load_checked(_spec_on(write_spec, frame, tmp_path, drop=["customer_id", "email", "signup_date", "notes", "stamp"]))
    assert "email" not in ds.features and "plan" in ds.categorical
    _, ds = load_checked(_spec_on(write_spec, frame, tmp_path, features=["plan", "email", "tenure_months"]))
    assert ds.features == ["plan", "email", "tenure_months"]


def test_date_dtypes_and_day_first_dates_are_refused_and_small_or_repetitive_text_is_not(write_spec, tmp_path):
    n = 40
    frame = pd.DataFrame({
        "when": pd.date_range("2024-01-01", periods=n, freq="D"),  # a datetime dtype (Parquet)
        "day": pd.date_range("2024-01-13", periods=n, freq="D").strftime("%d/%m/%Y"),
        "month": ["May", "June"] * (n // 2),  # month names are categories, not dates
        "code": [f"K{i % 30}" for i in range(n)],  # 30 of 40 distinct: below 0.9
        "x": np.arange(n, dtype=float),
        "label": ["a", "b"] * (n // 2),
    })
    with pytest.raises(DataError) as info:
        load_checked(_spec_on(write_spec, frame, tmp_path, name="d.parquet"))
    msg = str(info.value)
    assert "'when' (dates), 'day' (dates) look like" in msg and "month" not in msg and "code" not in msg
    small = frame.drop(columns=["when", "day"]).head(20).assign(uid=[f"u{i}" for i in range(20)])
    assert "uid" in load_checked(_spec_on(write_spec, small, tmp_path, name="s.csv"))[1].categorical


def test_drop_works_on_builtin_data_sets_too(write_spec):
    _, ds = load_checked(write_spec(base_spec(data={"sklearn": "iris", "drop": ["petal width (cm)"]})))
    assert "petal width (cm)" not in ds.features and len(ds.features) == 3
    with pytest.raises(DataError, match=r"data.drop: column 'petal widht \(cm\)' not in the data \(did you mean"):
        load_checked(write_spec(base_spec(data={"sklearn": "iris", "drop": ["petal widht (cm)"]})))


def _onehot_width(write_spec, tmp_path, **prep) -> int:
    n = 600
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"city": [f"city{int(v)}" for v in rng.zipf(1.5, n) % 300], "x": rng.normal(size=n),
                          "label": rng.choice(["a", "b"], n)})
    path = tmp_path / "cities.csv"
    frame.to_csv(path, index=False)
    spec, ds = load_checked(write_spec(base_spec(data={"path": str(path), "target": "label"},
                                          preprocess={"onehot": True, **prep})))
    ds = ds
    assert ds.X["city"].nunique() > 50
    from tunehouse.models import make_factory

    pipe = make_factory(spec, ds).build({}).fit(ds.X, ds.y)
    return pipe.named_steps["prep"].transform(ds.X).shape[1] - 1  # less the numeric column


def test_one_hot_width_is_capped_by_default_and_configurable(write_spec, tmp_path):
    assert _onehot_width(write_spec, tmp_path) == 50  # the default cap, rare cities grouped in one
    assert _onehot_width(write_spec, tmp_path, max_categories=10) == 10
    assert _onehot_width(write_spec, tmp_path, max_categories=None) > 50
    few = _onehot_width(write_spec, tmp_path, max_categories=None, min_frequency=20)
    assert 1 < few < 20  # only cities seen 20+ times keep a column (plus one for the rest)


# -- spec hashes and metrics of every shipped example stay as they were ------------------------
#: computed at commit 29abbd7, before data.drop, data.positive_class and the one-hot cap existed
EXAMPLE_HASHES = {
    "customers_csv": "d60f4866fdbb666c931be8cb3d9a05eb9e926e3c11430299259e79b5b8f19e58",
    "diabetes_linear_grid": "86ff1df704e04a9ce350e44e547fd9792f8bbfe400b2a8921384674a3d03a1be",
    "quickstart": "f925f8c4702eb3634957bb139243025f96d3c381071c42cd2a79539a26b2faaf",
}


def test_new_data_and_preprocess_fields_at_their_defaults_keep_the_spec_hash():
    for stem, want in EXAMPLE_HASHES.items():
        text = (SPECS / f"{stem}.yaml").read_text(encoding="utf-8")
        assert parse_spec(text).spec_hash == want, stem
    text = (SPECS / "customers_csv.yaml").read_text(encoding="utf-8")
    same = text.replace("  onehot: true\n", "  onehot: true\n  max_categories: 50\n  min_frequency: null\n")
    assert same != text and parse_spec(same).spec_hash == EXAMPLE_HASHES["customers_csv"]
    assert parse_spec(same.replace("max_categories: 50", "max_categories: 20")).spec_hash != EXAMPLE_HASHES["customers_csv"]
    moved = text.replace("  target: churned\n", "  target: churned\n  positive_class: 0\n")
    assert parse_spec(moved).spec_hash != EXAMPLE_HASHES["customers_csv"]


def test_customers_csv_metrics_are_unchanged_by_the_one_hot_cap():
    """The example with text columns scores as it did before the cap (values from commit 29abbd7)."""
    spec, ds = load_checked(SPECS / "customers_csv.yaml")
    s = split(ds, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)
    got = evaluate({"C": 0.003, "class_weight": None, "prep__num__impute__strategy": "mean"},
                   make_payload(spec, ds, s)).metrics
    got = {k: v for k, v in got.items() if k not in COSTS}  # the measured costs vary run to run
    want = {"roc_auc": 0.7996687512214188, "roc_auc_std": 0.039848282562529536,
            "accuracy": 0.7145833333333333, "accuracy_std": 0.0036084391824351483}
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_positive_class_on_a_spec_without_data_is_checked_at_load(write_spec):
    with pytest.raises(SpecError, match="positive_class applies to classification only"):
        load_checked(write_spec(base_spec(task="clustering", data={"sklearn": "wine", "positive_class": 1},
                                       model="sklearn.cluster.KMeans", metrics=["silhouette"],
                                       space={"n_clusters": [2, 3]})))
