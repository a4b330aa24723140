"""Following a search's trials as they start, report and end: catalog rows and records, no Ray.

``TrialTracker`` turns trial events into the recorder's rows and the driver's
``TrialRecord``s; ``SearchLimits`` decides when the whole search must end. Ray Tune's
callback and stopper (``tune_hooks``) only forward Tune's events here, so a unit test can
drive a whole search's bookkeeping without Ray.
"""

from __future__ import annotations

import collections
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tunehouse.records import TrialRecord, better, config_key

#: Keys of a Tune result that are Tune's own bookkeeping, not metrics.
_TUNE_KEYS = {"time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "iterations_since_restore",
              "time_since_restore", "done", "pid", "node_ip", "date", "hostname", "trial_id", "experiment_tag",
              "should_checkpoint", "checkpoint_dir_name", "resource"}


def split_result(result: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """A trial's reported result as (metrics, usage): ``usage/*`` keys are the resource meter's."""
    metrics, usage = {}, {}
    for k, v in result.items():
        if k.startswith("usage/"):
            usage[k.removeprefix("usage/")] = v
        elif k not in _TUNE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
            metrics[k] = float(v)
    return metrics, usage


def error_line(text: str | None) -> str:
    """The exception line of a trial's traceback (``ValueError: ...``)."""
    if not text:
        return "unknown error"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt", "Exit")) and " " not in head:
            return ln[:2000]
    return lines[-1][:2000] if lines else "unknown error"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # Ray colours the task name in its tracebacks
_TRACEBACK_MAX = 100_000  # characters kept of a trial's traceback (its end: the exception)


def clean_traceback(text: str | None) -> str | None:
    """A trial's traceback as the catalog keeps it: no terminal colours, at most its last 100 kB."""
    if not text:
        return None
    return _ANSI.sub("", str(text)).strip()[-_TRACEBACK_MAX:] or None


def say(line: str) -> None:
    """One line on stderr, at once (the run's notes; results go to stdout)."""
    print(line, file=sys.stderr, flush=True)


class SearchLimits:
    """Ends the whole search at the time budget or the failure limit, and keeps why.

    ``stop_all`` is asked on every step of the search loop, whether or not a trial reported,
    so trials that fail before their first report still end the search. The budget counts
    from the first step (after Ray's start-up and the data loading).
    """

    def __init__(self, time_budget_s: float | None, max_failed_trials: int | None, *, failed: int = 0) -> None:
        self.time_budget_s, self.max_failed_trials = time_budget_s, max_failed_trials
        self.failed = failed  # a resumed search's earlier failures count too
        self.reason: str | None = None
        self._spent, self._last = 0.0, None

    def trial_failed(self) -> None:
        self.failed += 1

    def stop_all(self) -> bool:
        now = time.monotonic()
        if self._last is not None:
            self._spent += now - self._last
        self._last = now
        if self.reason is None:
            if self.time_budget_s is not None and self._spent >= self.time_budget_s:
                self.reason = f"time_budget_s: {self.time_budget_s:g} s reached"
            elif self.max_failed_trials is not None and self.failed >= self.max_failed_trials:
                self.reason = f"max_failed_trials: {self.failed} trials failed"
        return self.reason is not None

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_last"] = None  # a monotonic clock does not travel to another process
        self.__dict__.update(state)


#: A listener costing more than this per call (seconds) is rationed to about this share of the driver.
_LISTENER_FREE_S, _LISTENER_SHARE = 0.001, 0.05


@dataclass
class _Live:
    """A trial that started and has not ended (yet)."""

    trial_id: str  # the catalog's id
    config: dict[str, Any]
    started_at: float
    attempts: int = 1
    last: dict[str, Any] = field(default_factory=dict)  # its last reported result
    best: dict[str, float] = field(default_factory=dict)  # best value of each metric so far


class TrialTracker:
    """Trial events -> catalog rows (through the recorder) and the ``TrialRecord``s of a run.

    Events are keyed by the runner's trial id (Ray Tune's); the catalog's id is the same,
    except for a resumed experiment's unfinished trials, whose configuration runs again under
    its old catalog id so the catalog ends with each trial once (latest row wins).

    ``listener`` (optional, e.g. a live display's) is called with the tracker after every start,
    result and finish, and at ``end``; it reads ``rows()``. A listener whose calls take more
    than a millisecond (the median of its last five: a snapshot of thousands of trials) is
    called again only when 20 times that has passed, the events in between shown by the next
    call (or the next ``step``): it keeps at most about 5% of the driver however many trials the
    search has (at 10,000 trials, a snapshot per event was 82% of it and made the bookkeeping
    quadratic). Its exception never reaches the search: the first one is said in one line and
    the listener is dropped. It is not pickled (Tune saves its callbacks with the experiment
    state, and Ray Client runs them on the cluster, where there is no display to call).
    """

    listener: Callable[[TrialTracker], None] | None = None
    #: Called with (this run's finished records, trials still running) after a trial completes
    #: or fails (not when a stop or Ctrl-C closes it): ``refit_ahead.RefitAhead.trial_ended``.
    #: Like the listener: never pickled, and its first exception drops it with one line.
    after_end: Callable[[list[TrialRecord], int], None] | None = None

    def __init__(self, recorder: Any, limits: SearchLimits, *, mode_of: Callable[[str], str],
                 reuse_ids: dict[str, list[str]] | None = None, note: Callable[[str], None] = say,
                 max_resource: int | None = None) -> None:
        self.recorder, self.limits, self.mode_of, self.note = recorder, limits, mode_of, note
        self.max_resource = max_resource  # early stopping: a trial that ends short of it was stopped
        self.records: list[TrialRecord] = []
        self._live: dict[str, _Live] = {}
        self._reuse = {k: list(v) for k, v in (reuse_ids or {}).items()}
        self._rows: list[dict[str, Any]] = []  # rows() of the finished records, made once each
        self._heard_at = 0.0  # when the listener was last called (perf_counter s)
        self._costs: collections.deque[float] = collections.deque(maxlen=5)  # its last calls' durations
        self._unheard = False  # events since that call the listener has not been called for

    def rows(self) -> list[dict[str, Any]]:
        """This run's trials as plain dicts (what ``report.Progress.from_trials`` reads): each
        finished ``TrialRecord``'s fields, and each running trial's id, start and params with
        status ``running``."""
        self._rows.extend(asdict(r) for r in self.records[len(self._rows):])
        running = [{"trial_id": live.trial_id, "status": "running", "started_at": live.started_at,
                    "params": live.config} for live in self._live.values()]
        return [*self._rows, *running]

    def _notify(self, *, force: bool = True) -> None:
        """Call the listener, unless (``force`` False) its calls are costly and the last was recent."""
        if self.listener is None:
            return
        now = time.perf_counter()
        if not force and now - self._heard_at < self.listener_cost() / _LISTENER_SHARE:
            self._unheard = True
            return
        try:
            self.listener(self)
        except Exception as e:  # a display must never end a search
            self.listener = None
            self.note(f"live progress display failed, shown no more: {type(e).__name__}: {e}")
        self._costs.append(time.perf_counter() - now)
        self._heard_at, self._unheard = now, False

    def listener_cost(self) -> float:
        """What a listener call typically costs, in seconds: the median of its last five (one slow
        call, a GC pause, is no trend); 0 while it stays under a millisecond (never rationed)."""
        cost = statistics.median(self._costs) if self._costs else 0.0
        return cost if cost > _LISTENER_FREE_S else 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "listener": None, "after_end": None}  # they stay with this driver

    def start(self, key: str, config: dict[str, Any]) -> None:
        """A trial (re)starts. A retry (failure.max_retries) keeps its first start and its id."""
        live = self._live.get(key)
        if live is None:
            old = self._reuse.get(config_key(config))
            live = self._live[key] = _Live(old.pop(0) if old else key, dict(config), time.time())
        else:
            live.attempts += 1
        self.recorder.trial_started(live.trial_id, live.config, live.started_at, attempts=live.attempts)
        self._notify(force=False)

    def result(self, key: str, result: dict[str, Any]) -> None:
        live = self._live[key]
        live.last = dict(result)
        metrics, _ = split_result(result)
        self.recorder.trial_result(live.trial_id, int(result.get("training_iteration", 1)), metrics,
                                   resource=result.get("resource"))
        for k, v in metrics.items():
            if k not in live.best or better(v, live.best[k], self.mode_of(k)):
                live.best[k] = v
        self._notify(force=False)

    def complete(self, key: str, result: dict[str, Any] | None, checkpoint: str | None) -> TrialRecord:
        last = result or self._live[key].last
        status = "terminated"
        reached = last.get("resource")
        if self.max_resource is not None and reached is not None and reached < self.max_resource:
            status = "early_stopped"  # its scheduler ended it; the checkpoint (if any) is mid-way state
            checkpoint = None
        record = self._finish(key, status, last, checkpoint=checkpoint,
                              checkpoint_sha256=last.get("checkpoint_sha256"))
        self._ended()
        return record

    def error(self, key: str, result: dict[str, Any] | None, error_text: str | None) -> TrialRecord:
        """A trial's final failure: one line said, the whole traceback kept for the catalog."""
        self.limits.trial_failed()
        text = clean_traceback(error_text)
        line = error_line(text)
        self.note(f"trial {self._live[key].trial_id} failed: {line}")
        record = self._finish(key, "error", result or self._live[key].last, error=line, error_traceback=text)
        self._ended()
        return record

    def _ended(self) -> None:
        if self.after_end is None:
            return
        try:
            self.after_end(self.records, len(self._live))
        except Exception as e:  # an optimisation must never end a search
            self.after_end = None
            self.note(f"refitting the best trial ahead failed (it is refitted at the end): {type(e).__name__}: {e}")

    def retrying(self, key: str, error_text: str | None) -> None:
        """A failed attempt that ``failure.max_retries`` runs again: one line, no traceback."""
        live = self._live[key]
        self.note(f"trial {live.trial_id} failed (attempt {live.attempts}), retrying: "
                  f"{error_line(clean_traceback(error_text))}")

    def close_unfinished(self, status: str, why: str) -> None:
        """Record every started, unfinished trial as ``status`` (stopped / interrupted), saying why."""
        for key in list(self._live):
            self._finish(key, status, self._live[key].last, error=f"{status} before it finished ({why})")

    def step(self) -> None:
        """Between the runner's steps: flush the catalog when its buffer says so, and show the
        listener the events it was not called for, once their wait is over."""
        self.recorder.writer.maybe_flush()
        if self._unheard:
            self._notify(force=False)

    def end(self) -> None:
        """The runner's loop ended: trials cut short by a limit or a stop get their final row."""
        reason = self.limits.reason
        self.close_unfinished("stopped", reason or "the search was stopped")
        if reason:  # a remote loop's driver reads it back from the experiment row
            self.recorder.writer.set_experiment(stop_reason=reason)
        self.recorder.writer.flush()
        self._notify()

    def _finish(self, key: str, status: str, last: dict[str, Any], **kw: Any) -> TrialRecord:
        live = self._live.pop(key)
        metrics, usage = split_result(last)
        record = TrialRecord(
            trial_id=live.trial_id, status=status, params=live.config, metrics=metrics, usage=usage,
            iterations=last.get("training_iteration"), best_metrics=live.best, started_at=live.started_at,
            ended_at=time.time(), attempts=live.attempts,
            resource=int(last["resource"]) if last.get("resource") is not None else None, **kw,
        )
        self.records.append(record)
        self.recorder.trial_finished(record)
        self._notify(force=False)
        return record
