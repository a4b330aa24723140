"""Reproducing a trial without Ray: an early-stopped trial re-run to its resource, the equality rule."""

from __future__ import annotations

import math
import threading

import pytest

from test_early_stopping import _payload, _steps
from tunehouse.reproduce import compare_metrics, rerun, same


def test_an_early_stopped_trial_is_rerun_to_the_resource_it_reached():
    p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}")
    got, out = _steps(p, {"max_depth": 3})
    threads = threading.active_count()
    at10 = rerun(p, {"max_depth": 3}, resource=10)
    assert at10 == got[0][1]  # the report it made at 10 rounds, exactly
    assert at10 != got[1][1]
    assert threading.active_count() == threads  # the stopped fold trainings ended
    full = rerun(p, {"max_depth": 3}, resource=None)
    assert full["roc_auc"] == out.metrics["roc_auc"] and "fit_s" in full


def test_equality_is_relative_to_1e9_and_costs_are_not_compared():
    assert same(0.5, 0.5 + 4e-10) and not same(0.5, 0.5 + 2e-9)
    assert same(1e6, 1e6 + 1e-4) and not same(1e6, 1e6 + 1e-2)  # relative above 1
    assert same(math.nan, math.nan) and not same(1.0, None)
    checks = {m.name: m for m in compare_metrics({"accuracy": 0.9, "fit_s": 1.0, "f1": 0.8}, {"accuracy": 0.9,
                                                                                             "fit_s": 3.0})}
    assert checks["accuracy"].equal and checks["fit_s"].measured and checks["fit_s"].equal is None
    assert checks["f1"].equal is False  # recorded but not reproduced


@pytest.mark.parametrize("status", ["error", "running"])
def test_only_a_finished_trial_is_reproduced(status, tmp_path):
    from catalog.helpers import FakeTrial, record_experiment
    from tunehouse.errors import InputError
    from tunehouse.reproduce import reproduce

    uri = str(tmp_path / "cat")
    record_experiment(uri, "e1", [FakeTrial("t1", status, {"max_depth": 2}, {"accuracy": 0.5})])
    with pytest.raises(InputError, match=f"trial t1 is {status}"):
        reproduce(uri, "e1", "t1")
