"""The final refit started ahead (``refit_ahead.RefitAhead``) and the tracker's hook that starts
it, without Ray: real scikit-learn fits, a real tracker recording into a real catalog."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from tunehouse.records import TrialRecord
from tunehouse.refit_ahead import NOT_AHEAD, RefitAhead

X, Y = load_iris(return_X_y=True)


class Fits:
    """A real refit (a decision tree on iris), recording what it was asked; ``gate`` holds it."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, int | None]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, params: dict, resource: int | None) -> DecisionTreeClassifier:
        self.calls.append((dict(params), resource))
        self.gate.wait(30)
        if params.get("max_depth") == -1:
            raise ValueError("max_depth must be >= 1")
        return DecisionTreeClassifier(random_state=0, **params).fit(X, Y)


def _rec(trial_id: str, acc: float, depth: int, status: str = "terminated", resource: int | None = None) -> TrialRecord:
    return TrialRecord(trial_id, status, {"max_depth": depth}, metrics={"accuracy": acc}, resource=resource)


def _ahead(fits: Fits, planned: int = 4, earlier: list[TrialRecord] | None = None) -> RefitAhead:
    return RefitAhead(fits, planned=planned, earlier=earlier or [], objective="accuracy", mode="max")


def test_nothing_starts_while_trials_wait_for_a_slot_or_when_none_still_runs():
    fits = Fits()
    ahead = _ahead(fits)
    ahead.trial_ended([_rec("a", 0.9, 3)], running=2)  # 1 + 2 < 4: a trial still to start
    ahead.trial_ended([_rec("a", 0.9, 3), _rec("b", 0.8, 2), _rec("c", 0.7, 1), _rec("d", 0.6, 4)], running=0)
    assert fits.calls == [] and ahead.started is None
    assert ahead.model_for(_rec("a", 0.9, 3)) is NOT_AHEAD


def test_the_leader_is_refitted_once_every_trial_has_started_and_its_model_is_the_runs():
    fits = Fits()
    ahead = _ahead(fits)
    done = [_rec("a", 0.9, 3), _rec("b", 0.95, 2, resource=9)]
    ahead.trial_ended(done, running=2)  # all 4 started: b leads
    assert ahead.started == "b"
    model = ahead.model_for(done[1])
    assert fits.calls == [({"max_depth": 2}, 9)]  # at the trial's own resource
    expected = DecisionTreeClassifier(random_state=0, max_depth=2).fit(X, Y)
    np.testing.assert_array_equal(model.predict_proba(X), expected.predict_proba(X))
    ahead.trial_ended([*done, _rec("c", 0.5, 5)], running=1)  # b still leads: not refitted again
    assert len(fits.calls) == 1


def test_a_new_leader_is_refitted_after_the_running_refit_and_the_old_one_is_not_the_runs():
    fits = Fits()
    fits.gate.clear()  # a's refit stays running
    ahead = _ahead(fits)
    ahead.trial_ended([_rec("a", 0.9, 3), _rec("b", 0.8, 2)], running=2)
    ahead.trial_ended([_rec("a", 0.9, 3), _rec("b", 0.8, 2), _rec("c", 0.99, 1)], running=1)
    assert ahead.started == "a" and len(fits.calls) == 1  # one refit at a time
    fits.gate.set()
    assert ahead.model_for(_rec("c", 0.99, 1)) is NOT_AHEAD  # waits for a's, which is not c's
    ahead = _ahead(fits)
    ahead.trial_ended([_rec("a", 0.9, 3), _rec("b", 0.8, 2)], running=2)
    ahead.model_for(_rec("a", 0.9, 3))
    ahead.trial_ended([_rec("a", 0.9, 3), _rec("b", 0.8, 2), _rec("c", 0.99, 1)], running=1)
    assert ahead.started == "c"  # the refit ended: the new leader's starts at the next end
    assert ahead.model_for(_rec("c", 0.99, 1)) is not NOT_AHEAD


def test_the_run_s_rule_for_best_decides_earlier_trials_included():
    fits = Fits()
    # a trial that ran its full budget beats a better early-stopped one; an earlier run's best counts
    ahead = _ahead(fits, planned=2, earlier=[_rec("old", 0.97, 6)])
    ahead.trial_ended([_rec("a", 0.99, 3, status="early_stopped", resource=20), _rec("b", 0.9, 2)], running=1)
    assert ahead.started == "old"
    ahead = _ahead(fits, planned=2)
    ahead.trial_ended([_rec("a", 0.99, 3, status="early_stopped", resource=20), _rec("b", 0.9, 2)], running=1)
    assert ahead.started == "b"


def test_a_refit_that_raised_is_not_the_runs():
    fits = Fits()
    ahead = _ahead(fits, planned=1)
    bad = _rec("a", 0.9, -1)
    ahead.trial_ended([bad], running=1)
    assert ahead.started == "a" and ahead.model_for(bad) is NOT_AHEAD


@pytest.fixture
def tracker(tmp_path):
    from test_tracking import _tracker

    return _tracker(tmp_path)


def test_the_tracker_calls_its_hook_after_a_trial_completes_or_fails_not_when_closing(tracker):
    tracker, _, _ = tracker
    heard: list[tuple[list[str], int]] = []
    tracker.after_end = lambda records, running: heard.append(([r.trial_id for r in records], running))
    for key in "abcd":
        tracker.start(key, {"max_depth": 3})
    tracker.complete("a", {"accuracy": 0.9, "log_loss": 0.3, "training_iteration": 1}, None)
    tracker.error("b", None, "ValueError: x")
    tracker.close_unfinished("interrupted", "Ctrl-C")
    assert heard == [(["a"], 3), (["a", "b"], 2)]
    assert pickle.loads(pickle.dumps(tracker)).after_end is None  # never leaves this driver


def test_a_failing_hook_is_dropped_with_one_line_and_the_search_goes_on(tracker):
    tracker, _, notes = tracker

    def broken(records, running):
        raise RuntimeError("boom")

    tracker.after_end = broken
    tracker.start("a", {"max_depth": 3})
    tracker.start("b", {"max_depth": 4})
    tracker.complete("a", {"accuracy": 0.9, "log_loss": 0.3, "training_iteration": 1}, None)
    tracker.complete("b", {"accuracy": 0.8, "log_loss": 0.4, "training_iteration": 1}, None)
    assert tracker.after_end is None and [r.trial_id for r in tracker.records] == ["a", "b"]
    assert len(notes) == 1 and "RuntimeError: boom" in notes[0]
