"""records.best_n_of: the n best by best_of's one rule (full budget before early-stopped)."""

from __future__ import annotations

import math

from tunehouse.records import TrialRecord, best_n_of, best_of


def _t(tid: str, status: str, value: float | None) -> TrialRecord:
    return TrialRecord(tid, status, {}, {} if value is None else {"auc": value})


def test_terminated_rank_before_early_stopped_then_by_value():
    rows = [_t("a", "early_stopped", 0.99), _t("b", "terminated", 0.7), _t("c", "terminated", 0.9),
            _t("d", "error", 1.0), _t("e", "terminated", math.nan), _t("f", "early_stopped", 0.8),
            _t("g", "running", 0.95), _t("h", "terminated", None)]
    assert [r.trial_id for r in best_n_of(rows, "auc", "max", 10)] == ["c", "b", "a", "f"]
    assert [r.trial_id for r in best_n_of(rows, "auc", "max", 3)] == ["c", "b", "a"]
    assert [r.trial_id for r in best_n_of(rows, "auc", "min", 3)] == ["b", "c", "f"]
    assert best_n_of(rows, "auc", "max", 1) == [best_of(rows, "auc", "max")]
    assert best_n_of(rows, "auc", "max", 0) == []


def test_ties_keep_record_order_and_mappings_work():
    rows = [{"trial_id": "x", "status": "terminated", "auc": 0.5}, {"trial_id": "y", "status": "terminated", "auc": 0.5},
            {"trial_id": "z", "status": "terminated", "auc": 0.4}]
    assert [r["trial_id"] for r in best_n_of(rows, "auc", "max", 2)] == ["x", "y"]
    assert best_of(rows, "auc", "max") is rows[0]
    assert best_n_of([], "auc", "max", 5) == [] and best_of([], "auc", "max") is None
