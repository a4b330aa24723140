"""The live progress of a run without Ray: TrialTracker's listener and rows, the driver's
snapshots (RunSnapshots) and their display (RunProgress), on a real catalog and real displays."""

from __future__ import annotations

import io
import pickle
from dataclasses import asdict
from types import SimpleNamespace

from helpers.catalogs import ONE_PARAM
from tunehouse.catalog import CatalogWriter, ExperimentRecorder
from tunehouse.driver import describe
from tunehouse.records import TrialRecord
from tunehouse.report import PlainDisplay, Progress, RunProgress, RunSnapshots
from tunehouse.spec import parse_spec
from tunehouse.tracking import SearchLimits, TrialTracker

SPEC = ONE_PARAM.replace("name: single", "name: live")


def _tracker(tmp_path):
    spec = parse_spec(SPEC)
    info = describe(spec, SimpleNamespace(fingerprint="fp", source="sklearn:iris"), "e1", {"python": "3"})
    recorder = ExperimentRecorder(CatalogWriter(str(tmp_path), "e1", flush_s=3600), info)
    recorder.start(cluster_cpus=2, cluster_nodes=1)
    notes: list[str] = []
    tracker = TrialTracker(recorder, SearchLimits(None, None), mode_of=info.mode_of, note=notes.append)
    return tracker, notes


def _snapshots(total: int = 5, earlier=()) -> RunSnapshots:
    return RunSnapshots(experiment_id="e1", name="live", total=total, objective="accuracy", mode="max",
                        earlier=earlier)


def _result(acc: float) -> dict:
    return {"training_iteration": 1, "accuracy": acc, "usage/wall_s": 0.1, "done": True}


def test_the_listener_sees_every_event_and_the_snapshot_counts_them(tmp_path):
    tracker, notes = _tracker(tmp_path)
    snap = _snapshots()
    seen: list[Progress] = []
    tracker.listener = lambda t: seen.append(snap(t.rows()))

    tracker.start("a", {"max_depth": 3})
    tracker.start("b", {"max_depth": 5})
    tracker.start("c", {"max_depth": 9})
    assert [(p.done, p.running, p.failed) for p in seen] == [(0, 1, 0), (0, 2, 0), (0, 3, 0)]
    tracker.result("a", _result(0.8))
    tracker.complete("a", None, None)
    tracker.result("b", _result(0.9))
    tracker.complete("b", None, None)
    tracker.error("c", None, "ValueError: max_depth 9 is too deep")
    tracker.start("d", {"max_depth": 4})
    tracker.end()  # the search ended: d is closed as stopped

    assert len(seen) == 3 + 2 + 2 + 1 + 1 + 1 + 1  # starts, results, ends, d's start, d stopped, end
    after_b = seen[6]
    assert (after_b.done, after_b.running, after_b.failed, after_b.finished) == (2, 1, 0, 2)
    assert (after_b.best_value, after_b.best_trial_id, after_b.best_params) == (0.9, "b", {"max_depth": 5})
    last = seen[-1]
    assert (last.done, last.running, last.failed, last.stopped, last.total) == (2, 0, 1, 1, 5)
    assert last.best_value == 0.9 and last.last_failure.endswith("ValueError: max_depth 9 is too deep")
    assert last.mean_trial_s is not None and last.status == "running"
    final = snap(tracker.rows(), status="completed")
    assert final.status == "completed" and final.eta_s is None and final.line().endswith(
        "; completed; last failure c: ValueError: max_depth 9 is too deep")
    assert notes == ["trial c failed: ValueError: max_depth 9 is too deep"]


def test_rows_are_plain_dicts_of_records_and_running_trials(tmp_path):
    tracker, _ = _tracker(tmp_path)
    tracker.start("a", {"max_depth": 3})
    rec = tracker.complete("a", _result(0.7), None)
    tracker.start("b", {"max_depth": 4})
    done, running = tracker.rows()
    assert done == asdict(rec) and done["status"] == "terminated" and done["metrics"]["accuracy"] == 0.7
    assert running == {"trial_id": "b", "status": "running", "started_at": tracker._live["b"].started_at,
                       "params": {"max_depth": 4}}
    assert tracker.rows() == [done, running]  # asked again: the same, nothing counted twice


def test_a_pickled_tracker_has_no_listener_and_the_original_keeps_it(tmp_path):
    tracker, _ = _tracker(tmp_path)
    calls: list[int] = []
    tracker.listener = lambda t: calls.append(len(t.rows()))  # a lambda: not picklable itself
    tracker.start("a", {"max_depth": 3})
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.listener is None and tracker.listener is not None
    assert [r["trial_id"] for r in copy.rows()] == ["a"]  # the bookkeeping travels
    copy.complete("a", _result(0.5), None)  # a copy's events reach no display
    assert calls == [1]


def test_a_failing_listener_is_said_once_and_dropped_and_the_search_goes_on(tmp_path):
    tracker, notes = _tracker(tmp_path)

    def broken(t):
        raise RuntimeError("terminal gone")

    tracker.listener = broken
    tracker.start("a", {"max_depth": 3})
    tracker.start("b", {"max_depth": 4})
    rec = tracker.complete("a", _result(0.6), None)
    assert rec.status == "terminated" and tracker.listener is None
    assert notes == ["live progress display failed, shown no more: RuntimeError: terminal gone"]


def test_a_resumed_run_counts_its_earlier_trials_but_times_only_its_own():
    earlier = [asdict(TrialRecord("old1", "terminated", {"max_depth": 2}, metrics={"accuracy": 0.95},
                                  started_at=0.0, ended_at=10.0)),
               asdict(TrialRecord("old2", "error", {"max_depth": 8}, error="ValueError: no",
                                  started_at=0.0, ended_at=10.0))]
    snap = _snapshots(total=4, earlier=earlier)
    now = snap.started_at
    ours = [{"trial_id": "new1", "status": "terminated", "params": {"max_depth": 3}, "metrics": {"accuracy": 0.9},
             "started_at": now, "ended_at": now + 2.0},
            {"trial_id": "new2", "status": "running", "params": {"max_depth": 4}, "started_at": now + 2.0}]
    p = snap(ours)
    assert (p.done, p.failed, p.running, p.finished, p.total) == (2, 1, 1, 3, 4)
    assert (p.best_value, p.best_trial_id) == (0.95, "old1")  # an earlier trial is still the best
    assert p.mean_trial_s == 2.0  # this run's trial only: the earlier ones ran before a pause
    # the whole experiment's trials (a Ray Client run's final list from the catalog): none twice
    whole = snap([*earlier, *ours], status="stopped")
    assert (whole.done, whole.failed, whole.running, whole.mean_trial_s) == (2, 1, 1, 2.0)


def test_run_progress_draws_running_snapshots_and_closes_once_with_the_final_one():
    out = io.StringIO()
    progress = RunProgress(PlainDisplay(out, every_s=0.0))
    snap = _snapshots(total=1)
    progress(snap([]))
    t = snap.started_at
    progress(snap([{"trial_id": "a", "status": "terminated", "params": {}, "metrics": {"accuracy": 0.5},
                    "started_at": t, "ended_at": t + 1}], status="completed"))
    assert len(out.getvalue().splitlines()) == 1  # the final snapshot is the summary, not a frame
    progress.close()
    progress.close()  # the CLI's finally after the driver's own end: still one summary
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[") and "0/1 finished" in lines[0] and "ETA" in lines[0]
    assert "1/1 finished: 1 done" in lines[1] and lines[1].endswith("; completed")
    nothing = io.StringIO()
    RunProgress(PlainDisplay(nothing)).close()  # an error before the first snapshot: no summary
    assert nothing.getvalue() == ""


def test_a_costly_listener_is_rationed_and_shown_the_missed_events_at_the_next_step_and_the_end(tmp_path):
    import time

    tracker, _ = _tracker(tmp_path)
    snap = _snapshots(total=200)
    seen: list[Progress] = []

    def slow(t):  # a snapshot of many trials: 5 ms a call
        time.sleep(0.005)
        seen.append(snap(t.rows()))

    tracker.listener = slow
    for i in range(40):  # 80 events in about 0.2 s: most within 20 x 5 ms of the last call
        tracker.start(f"t{i}", {"max_depth": 3})
        tracker.complete(f"t{i}", _result(0.5 + i / 100), None)
    assert 1 <= len(seen) < 20
    extra = not tracker._unheard
    if extra:  # the last event happened to be shown: one more, within the wait
        tracker.start("extra", {"max_depth": 3})
    calls, at, took = len(seen), tracker._heard_at, tracker.listener_cost()
    now = snap(tracker.rows())
    assert tracker._unheard and (seen[-1].done, seen[-1].running) != (now.done, now.running)
    tracker.step()  # right away: still within the wait, nothing shown
    assert len(seen) == calls
    time.sleep(max(0.0, at + took * 20 - time.perf_counter()) + 0.01)
    tracker.step()  # the wait is over: the missed events are shown
    assert len(seen) == calls + 1 and seen[-1].done == 40
    tracker.step()  # nothing missed since: no call
    assert len(seen) == calls + 1
    tracker.start("last", {"max_depth": 4})
    tracker.end()  # always called at the end, however recent the last call
    assert seen[-1].stopped == (2 if extra else 1) and seen[-1].done == 40


def test_a_cheap_listener_sees_every_event(tmp_path):
    tracker, _ = _tracker(tmp_path)
    calls: list[int] = []
    tracker.listener = lambda t: calls.append(len(t.rows()))
    for i in range(50):
        tracker.start(f"t{i}", {"max_depth": 3})
        tracker.complete(f"t{i}", _result(0.5), None)
    assert len(calls) == 100


def test_the_next_trial_is_chosen_from_the_pending_ones_in_order_without_scanning_every_trial():
    from ray.tune.experiment import Trial

    from tunehouse.tune_hooks import _pending_in_order

    class Counted(list):
        """A trial list that counts how many trials the scan looked at."""

        looked = 0

        def __reversed__(self):
            for t in super().__reversed__():
                Counted.looked += 1
                yield t

    trials = Counted(SimpleNamespace(status=Trial.TERMINATED, n=i) for i in range(10_000))
    trials += [SimpleNamespace(status=Trial.PENDING, n=10_000), SimpleNamespace(status=Trial.RUNNING, n=10_001),
               SimpleNamespace(status=Trial.PENDING, n=10_002)]
    got = _pending_in_order(trials, [t for t in trials if t.status == Trial.PENDING])
    assert [t.n for t in got] == [10_000, 10_002] and Counted.looked <= 4  # from the end, stopped early
    trials[5].status = Trial.PENDING  # a retried old trial: found too, first, as Tune's FIFO would
    got = _pending_in_order(trials, [t for t in trials if t.status == Trial.PENDING])
    assert [t.n for t in got] == [5, 10_000, 10_002]
    assert [t.n for t in _pending_in_order(trials, None)] == [5, 10_000, 10_002]  # another Tune: a whole scan


def test_an_ended_trials_running_statistics_in_tune_are_cut_to_the_objectives():
    from ray.tune.experiment import Trial

    from tunehouse.tune_hooks import _forget_running_stats

    trial = Trial("noop", stub=True, config={"x": 1})  # a real Tune trial; no Ray needed
    for i in (1, 2):
        trial.update_last_result({"loss": 0.5 / i, "accuracy": 0.9, "usage/cpu_s": 1.0 * i, "usage/wall_s": 2.0,
                                  "usage/peak_rss_mb": 300.0, "training_iteration": i})
    before = len(trial.run_metadata.get_json_state())
    assert {"loss", "usage/cpu_s", "usage/peak_rss_mb"} <= set(trial.run_metadata.metric_analysis)
    _forget_running_stats(trial, ("loss", "accuracy"))
    assert set(trial.run_metadata.metric_analysis) == set(trial.run_metadata.metric_n_steps) == {"loss", "accuracy"}
    assert trial.run_metadata.metric_analysis["loss"]["min"] == 0.25  # what is kept is intact
    assert trial.last_result["usage/cpu_s"] == 2.0  # the last result itself stays whole
    assert len(trial.run_metadata.get_json_state()) < 0.6 * before  # Tune's cached state was redone
