"""What every trial measures (tunehouse.costs): fit_s, predict_ms, model_kb, with real fits."""

from __future__ import annotations

import pytest

from conftest import base_spec
from tunehouse.errors import SpecError
from tunehouse.metrics import direction
from tunehouse.spec import load_spec, parse_spec
from tunehouse.trainable import evaluate, make_payload
from tunehouse.validate import validate

COSTS = ("fit_s", "predict_ms", "model_kb")


def _payload(text: str):
    spec = parse_spec(text)
    dataset, splits = validate(spec)
    return make_payload(spec, dataset, splits)


FOREST = """
name: c
seed: 1
task: classification
data: {sklearn: breast_cancer}
model: sklearn.ensemble.RandomForestClassifier
evaluation: {cv: 3, test_size: 0.2}
metrics: [roc_auc]
search: {algorithm: random, num_samples: 2}
space: {n_estimators: {type: int, low: 5, high: 200}}
"""


def test_every_trial_measures_its_costs_and_a_bigger_forest_costs_more():
    p = _payload(FOREST)
    small = evaluate({"n_estimators": 5}, p).metrics
    big = evaluate({"n_estimators": 200}, p).metrics
    for m in (small, big):
        assert all(m[c] > 0 for c in COSTS), m
        assert not any(f"{c}_std" in m for c in COSTS)  # a cost's mean, no spread
    assert big["model_kb"] > 10 * small["model_kb"]
    assert big["fit_s"] > small["fit_s"]
    assert big["predict_ms"] > 3 * small["predict_ms"]  # 40 times the trees: several times the time
    assert small["predict_ms"] < 1000 and big["fit_s"] < 60  # plausible: ms per 1,000 rows, seconds


def test_a_pure_objective_gets_fit_s_only():
    p = _payload("""
name: q
task: classification
data: {sklearn: iris}
model: helpers.objectives:quadratic
evaluation: {holdout: 0.3}
metrics: [{name: loss, mode: min}]
search: {algorithm: random, num_samples: 2}
space: {x: {type: uniform, low: 0, high: 1}, y: {type: uniform, low: 0, high: 1}}
""")
    m = evaluate({"x": 1.0, "y": 0.0}, p).metrics
    assert m["fit_s"] >= 0 and "predict_ms" not in m and "model_kb" not in m


def test_early_stopping_trials_measure_their_final_models():
    p = _payload("""
name: es
seed: 3
task: classification
data: {sklearn: breast_cancer}
model: xgboost
evaluation: {cv: 3, test_size: 0.2}
metrics: [roc_auc]
search:
  algorithm: random
  num_samples: 2
  early_stopping: {scheduler: asha, max_resource: 60, report_every: 20}
space: {max_depth: {type: int, low: 2, high: 4}}
""")
    out = evaluate({"max_depth": 3}, p, report=lambda r, m, s: None)
    assert out.resource == 60
    assert all(out.metrics[c] > 0 for c in COSTS)
    kb = sum(len(__import__("pickle").dumps(m)) for m in out.model.models) / 3 / 1024
    assert out.metrics["model_kb"] == pytest.approx(kb, rel=0.01)  # the final (60-round) models


def test_clustering_trials_measure_costs_on_all_rows():
    p = _payload("""
name: k
task: clustering
data: {sklearn: wine}
model: sklearn.cluster.KMeans
metrics: [silhouette]
search: {algorithm: random, num_samples: 2}
space: {n_clusters: {type: int, low: 2, high: 4}}
""")
    m = evaluate({"n_clusters": 3}, p).metrics
    assert all(m[c] > 0 for c in COSTS)


def test_costs_are_metrics_that_lower_is_better(write_spec):
    assert {c: direction(c) for c in COSTS} == dict.fromkeys(COSTS, "min")
    from tunehouse.validate import load_checked

    spec, _ = load_checked(write_spec(base_spec(metrics=["accuracy", "predict_ms"])))
    assert spec.metric_modes["predict_ms"] == "min"
    with pytest.raises(SpecError, match=r"metrics\.1\.mode.*contradicts 'model_kb'"):
        load_checked(write_spec(base_spec(metrics=["accuracy", {"name": "model_kb", "mode": "max"}]), "b.yaml"))
    assert load_spec(write_spec(base_spec(metrics=["fit_s"]), "c.yaml")).mode == "min"


# -- what a search cost ------------------------------------------------------------------------
def test_the_price_is_the_flag_else_the_environment_else_the_spec(monkeypatch):
    from tunehouse.costs import PRICE_ENV, price_per_cpu_hour
    from tunehouse.errors import InputError

    monkeypatch.delenv(PRICE_ENV, raising=False)
    assert price_per_cpu_hour(None, None) is None
    assert price_per_cpu_hour(None, 0.05) == 0.05
    monkeypatch.setenv(PRICE_ENV, "0.5")
    assert price_per_cpu_hour(None, 0.05) == 0.5
    assert price_per_cpu_hour("2", 0.05) == 2.0
    for bad in ("0", "-1", "abc", "inf", "nan"):
        with pytest.raises(InputError, match="--price-per-cpu-hour: expected a price per CPU-hour > 0"):
            price_per_cpu_hour(bad)
    monkeypatch.setenv(PRICE_ENV, "free")
    with pytest.raises(InputError, match=f"{PRICE_ENV}: expected .* got 'free'"):
        price_per_cpu_hour(None, 0.05)


def test_search_cost_prices_trials_and_driver_and_the_points_gained():
    from tunehouse.costs import search_cost

    row = {"cpu_hours_trials": 2.0, "cpu_hours_driver": 0.5, "wall_s": 60.0, "price_per_cpu_hour": 0.1,
           "best_value": 0.93}
    f = search_cost(row, first_value=0.88)
    assert f["cpu_hours"] == 2.5 and f["cost"] == pytest.approx(0.25)
    assert f["cost_per_point"] == pytest.approx(0.25 / 5)  # 0.05 gained: 5 points
    assert search_cost(row, price=2.0, first_value=0.88)["cost"] == pytest.approx(5.0)  # priced after the fact
    assert search_cost(row, first_value=0.93)["cost_per_point"] is None  # no gain
    assert search_cost({**row, "price_per_cpu_hour": None})["cost"] is None
    assert search_cost({"best_value": 0.9})["cpu_hours"] is None  # a row from before the columns existed


def test_a_price_in_the_spec_keeps_the_spec_hash():
    from conftest import SPECS

    text = (SPECS / "quickstart.yaml").read_text()
    spec = parse_spec(text + "cost: {per_cpu_hour: 0.05}\n")
    assert spec.cost.per_cpu_hour == 0.05 and spec.spec_hash == parse_spec(text).spec_hash
    with pytest.raises(SpecError, match=r"cost\.per_cpu_hour"):
        parse_spec(text + "cost: {per_cpu_hour: -1}\n")
