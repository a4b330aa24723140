"""The trial bookkeeping without Ray: TrialTracker and SearchLimits driven by plain calls,
recording into a real catalog, as Tune's callback and stopper drive them in a run."""

from __future__ import annotations

import time
from types import SimpleNamespace

from tunehouse.catalog import Catalog, CatalogWriter, ExperimentRecorder
from tunehouse.driver import describe
from tunehouse.spec import parse_spec
from tunehouse.tracking import SearchLimits, TrialTracker, clean_traceback, error_line

SPEC = """
name: tracked
task: classification
data: {sklearn: iris}
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy, {name: log_loss}]
search: {algorithm: random, num_samples: 4}
space: {max_depth: {type: int, low: 1, high: 9}}
"""


def _tracker(tmp_path, *, limits=None, reuse=None):
    spec = parse_spec(SPEC)
    info = describe(spec, SimpleNamespace(fingerprint="fp", source="sklearn:iris"), "e1", {"python": "3"})
    recorder = ExperimentRecorder(CatalogWriter(str(tmp_path), "e1", flush_s=3600), info)
    recorder.start(cluster_cpus=2, cluster_nodes=1)
    notes: list[str] = []
    tracker = TrialTracker(recorder, limits or SearchLimits(None, None), mode_of=info.mode_of,
                           reuse_ids=reuse, note=notes.append)
    return tracker, recorder, notes


def _result(it, acc, loss, **extra):
    return {"training_iteration": it, "accuracy": acc, "log_loss": loss, "usage/wall_s": 0.1, "usage/pid": 7,
            "done": False, **extra}


def test_a_search_s_events_become_catalog_rows_and_records(tmp_path):
    tracker, recorder, notes = _tracker(tmp_path)
    tracker.start("a", {"max_depth": 3})
    tracker.result("a", _result(1, 0.8, 0.6))
    tracker.result("a", _result(2, 0.7, 0.4))  # accuracy got worse, log_loss better
    a = tracker.complete("a", None, "/cat/checkpoints/e1/trial_a/checkpoint_000000")
    tracker.start("b", {"max_depth": 9})
    b = tracker.error("b", None, "Traceback (most recent call last):\n  ...\n\x1b[36mValueError\x1b[0m: x too big")
    recorder.finish("completed")

    assert (a.status, a.metrics["accuracy"], a.iterations) == ("terminated", 0.7, 2)
    assert a.best_metrics == {"accuracy": 0.8, "log_loss": 0.4}  # each metric by its own direction
    assert a.usage["pid"] == 7 and "usage/pid" not in a.metrics
    assert (b.status, b.error) == ("error", "ValueError: x too big") and "\x1b" not in b.error_traceback
    assert notes == ["trial b failed: ValueError: x too big"]  # one line per failed trial
    assert [r.trial_id for r in tracker.records] == ["a", "b"]

    cat = Catalog(str(tmp_path))
    rows = cat.trials("e1").set_index("trial_id")
    assert rows.status.to_dict() == {"a": "terminated", "b": "error"}
    assert cat.experiment("e1")["trials_done"] == 1 and cat.experiment("e1")["best_trial_id"] == "a"
    assert len(cat.iterations("e1")) == 2
    assert "Traceback" in cat.trials("e1", raw=True).set_index("trial_id").error_traceback["b"]


def test_a_retry_keeps_one_row_its_first_start_and_counts_attempts(tmp_path):
    limits = SearchLimits(None, 2)
    tracker, _, notes = _tracker(tmp_path, limits=limits)
    tracker.start("a", {"max_depth": 3})
    first = tracker._live["a"].started_at
    tracker.retrying("a", "RuntimeError: attempt 1 fails")
    time.sleep(0.01)
    tracker.start("a", {"max_depth": 3})
    rec = tracker.complete("a", _result(1, 0.9, 0.2), None)
    assert rec.attempts == 2 and rec.started_at == first
    assert notes == ["trial a failed (attempt 1), retrying: RuntimeError: attempt 1 fails"]
    assert limits.failed == 0 and not limits.stop_all()  # a retried failure is not a failed trial


def test_a_resumed_configuration_runs_again_under_its_catalog_id(tmp_path):
    from tunehouse.records import config_key

    tracker, _, _ = _tracker(tmp_path, reuse={config_key({"max_depth": 3}): ["old_00001"]})
    tracker.start("new_1", {"max_depth": 3})
    tracker.start("new_2", {"max_depth": 3})  # the old id is taken once
    assert tracker.complete("new_1", _result(1, 0.9, 0.2), None).trial_id == "old_00001"
    assert tracker.complete("new_2", _result(1, 0.9, 0.2), None).trial_id == "new_2"


def test_limits_end_the_search_and_the_end_closes_running_trials(tmp_path):
    limits = SearchLimits(None, 1)
    tracker, _, _ = _tracker(tmp_path, limits=limits)
    tracker.start("a", {"max_depth": 1})
    tracker.start("b", {"max_depth": 2})
    tracker.result("b", _result(1, 0.5, 0.9))
    assert not limits.stop_all()
    tracker.error("a", None, "ValueError: boom")
    assert limits.stop_all() and limits.reason == "max_failed_trials: 1 trials failed"
    tracker.end()  # Tune's loop ended: b never finished
    b = tracker.records[-1]
    assert (b.trial_id, b.status, b.metrics["accuracy"]) == ("b", "stopped", 0.5)
    assert "max_failed_trials" in b.error
    assert Catalog(str(tmp_path)).experiment("e1")["stop_reason"] == limits.reason


def test_the_time_budget_counts_from_the_first_step():
    limits = SearchLimits(0.05, None)
    assert not limits.stop_all()  # the clock starts here
    time.sleep(0.06)
    assert limits.stop_all() and limits.reason == "time_budget_s: 0.05 s reached"


def test_error_lines_and_tracebacks():
    assert error_line("Traceback...\n  File x\nValueError: bad value\n") == "ValueError: bad value"
    assert error_line(None) == "unknown error"
    assert clean_traceback("\x1b[31mboom\x1b[0m") == "boom" and clean_traceback("") is None
