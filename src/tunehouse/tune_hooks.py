"""Ray Tune's side of the bookkeeping: its callback and stopper, forwarding to ``tracking``, and
the places where Tune's own execution is corrected (``keep_starting_actors``,
``count_callbacks_by_name``, ``_forget_running_stats``).

Imported by the driver once Ray is up (it imports ``ray.tune``). Nothing about the search is
decided here: ``TrialTracker`` and ``SearchLimits`` hold the logic, and a unit test drives them
without Ray.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from tunehouse.tracking import SearchLimits, TrialTracker


class CatalogCallback(Callback):
    """Forwards Tune's trial events to a ``TrialTracker`` (and so to the catalog).

    Tune pickles its callbacks with the experiment state, and under Ray Client ships them to
    run ``fit()`` on the cluster: the tracker travels along and its recorder's writer opens
    the same catalog there.

    Once a trial has ended and its row is recorded, Tune's running statistics of it are cut to
    ``keep`` (the objectives): for every number of every result Tune keeps max, min, average,
    last and two moving averages (``Trial.run_metadata``), about 20 kB per trial of a tunehouse
    result's 25 numbers, which the driver held for every trial and Tune rewrote into its
    experiment state at every snapshot. Nothing in tunehouse reads them (the catalog has the
    results); Tune's own best-trial lookup by an objective still works.
    """

    def __init__(self, tracker: TrialTracker, keep: tuple[str, ...] = ()) -> None:
        self.tracker, self.keep = tracker, tuple(keep)

    def setup(self, **info: Any) -> None:
        _quiet_tune_logs()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.tracker.step()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.start(trial.trial_id, dict(trial.config))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.tracker.result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        ckpt = trial.checkpoint
        self.tracker.complete(trial.trial_id, trial.last_result, ckpt.path if ckpt is not None else None)
        _forget_running_stats(trial, self.keep)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Only a final failure comes here: a failure that is retried fires on_trial_recover
        # instead (TuneController._process_trial_failure), so each trial gets one final row.
        self.tracker.error(trial.trial_id, trial.last_result, _error_text(trial))
        _forget_running_stats(trial, self.keep)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.retrying(trial.trial_id, _error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.tracker.end()


def _forget_running_stats(trial: Any, keep: tuple[str, ...]) -> None:
    """Cut an ended trial's per-metric statistics in Tune to the metrics in ``keep``."""
    meta = getattr(trial, "run_metadata", None)
    if meta is None or not hasattr(meta, "metric_analysis"):  # another Tune: left as it is
        return
    meta.metric_analysis = {k: v for k, v in meta.metric_analysis.items() if k in keep}
    meta.metric_n_steps = {k: v for k, v in meta.metric_n_steps.items() if k in keep}
    meta.invalidate_cache()


def _error_text(trial: Any) -> str | None:
    """A failed trial's traceback as Tune recorded it (None if it is gone)."""
    try:  # the local error file is written before the callbacks run; storage syncs later
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file, errors="replace") as f:
                return f.read()
        return trial.get_error()
    except Exception:  # storage may be gone; the status is what matters
        return None


class _DropTuneNoise(logging.Filter):
    """Tune's summary of the failed trials at the end (each already had its line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


def _quiet_tune_logs() -> None:
    """Silence what Tune prints about failed trials; the tracker says one line each."""
    tune_log = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _DropTuneNoise) for f in tune_log.filters):
        tune_log.addFilter(_DropTuneNoise())


class LimitStopper(Stopper):
    """Tune's stopper for ``SearchLimits``: ends the search, never a single trial."""

    def __init__(self, limits: SearchLimits) -> None:
        self.limits = limits

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.limits.stop_all()


class ReuseForWaitingTrials:
    """FIFO's choice of the next trial to run (Tune's default, and that of its ASHA, HyperBand and
    median schedulers), except that a pending trial whose own actor is already starting is left
    to that actor.

    With ``reuse_actors`` Tune gives a free actor to the trial it runs next and kills the actor it
    had started for that trial (ray#36020, ray#42951). When trials are shorter than an actor's
    start-up (a worker process and its imports, 2-4 s here), each new actor was killed as it came
    up and a 2-CPU search ran one trial at a time: 200 trials of 0.1 s on the local service ran in
    one actor, while Ray started and killed ten others. Choosing the first pending trial whose
    actor only waits for resources (or that has none) lets a starting actor through; when every
    pending trial's actor is starting, FIFO's choice stands. Paused trials come after pending
    ones, as in FIFO. Stateless, so it pickles with the scheduler (Ray Client ships it).
    """

    def __call__(self, tune_controller: Any) -> Any:
        trials = tune_controller.get_trials()
        inner = getattr(tune_controller, "_tune_controller", tune_controller)  # past Tune's access wrapper
        pending = _pending_in_order(trials, getattr(inner, "_pending_trials", None))
        if not pending:
            if not getattr(inner, "_paused_trials", True):
                return None
            return next((t for t in trials if t.status == Trial.PAUSED), None)
        try:
            actor_of = inner._trial_to_actor
            starting = inner._actor_manager._live_actors_to_ray_actors_resources
        except AttributeError:  # another Tune: its own choice
            return pending[0]
        for trial in pending:
            actor = actor_of.get(trial)
            if actor is None or actor not in starting:
                return trial
        return pending[0]


def _pending_in_order(trials: list, pending: Any) -> list:
    """The PENDING trials of ``trials``, in its order. With Tune's set of pending trials (a few,
    nearly always the newest) the list is scanned from its end until all are found, not whole:
    Tune asks for the next trial several times per trial, and a whole scan at every ask made
    a 10,000-trial search's bookkeeping quadratic."""
    if pending is None:
        return [t for t in trials if t.status == Trial.PENDING]
    want, found = len(pending), []
    for t in reversed(trials):
        if len(found) == want:
            break
        if t.status == Trial.PENDING:
            found.append(t)
    return found[::-1]


def keep_starting_actors(scheduler: Any) -> Any:
    """``scheduler`` (None: Tune's FIFO) choosing its next trial by ``ReuseForWaitingTrials``;
    a scheduler with a choice of its own is returned unchanged."""
    scheduler = scheduler if scheduler is not None else FIFOScheduler()
    if type(scheduler).choose_trial_to_run is FIFOScheduler.choose_trial_to_run:
        scheduler.choose_trial_to_run = ReuseForWaitingTrials()
    return scheduler


def count_callbacks_by_name() -> None:
    """Make Tune's callback telemetry count by class name, without importing its integrations.

    Before every search ``tune.run`` tags which callbacks it was given by comparing them with its
    W&B, MLflow, Comet and Aim callback classes, importing each integration and with it the
    library behind it: with mlflow installed that was 1.6 s on the driver's main thread before
    the first trial, whether usage stats are on or off. The same tag (``AIR_CALLBACKS``, class
    name or Custom[Logger]Callback -> count) is recorded from the names. Idempotent; a Ray
    without this function is left alone.
    """
    try:
        from ray._common.usage.usage_lib import TagKey, record_extra_usage_tag
        from ray.air._internal import usage
        from ray.tune.logger import LoggerCallback
        from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES
    except ImportError:
        return
    if getattr(usage.tag_callbacks, "_tunehouse", False):
        return
    builtin = {"WandbLoggerCallback", "MLflowLoggerCallback", "CometLoggerCallback", "AimLoggerCallback",
               *(c.__name__ for c in DEFAULT_CALLBACK_CLASSES)}

    def tag_callbacks(callbacks: list | None) -> bool:
        if not callbacks:
            return False
        counts: dict[str, int] = collections.defaultdict(int)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                continue
            name = type(cb).__name__
            counts[name if name in builtin else
                   "CustomLoggerCallback" if isinstance(cb, LoggerCallback) else "CustomCallback"] += 1
        if counts:
            record_extra_usage_tag(TagKey.AIR_CALLBACKS, json.dumps(counts))
        return True

    tag_callbacks._tunehouse = True  # type: ignore[attr-defined]
    usage.tag_callbacks = tag_callbacks
