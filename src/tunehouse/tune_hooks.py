"""Ray Tune's side of the bookkeeping: its callback and stopper, forwarding to ``tracking``.

Imported by the driver once Ray is up (it imports ``ray.tune``). Nothing is decided here:
``TrialTracker`` and ``SearchLimits`` hold the logic, and a unit test drives them without Ray.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ray.tune import Callback, Stopper

from tunehouse.tracking import SearchLimits, TrialTracker


class CatalogCallback(Callback):
    """Forwards Tune's trial events to a ``TrialTracker`` (and so to the catalog).

    Tune pickles its callbacks with the experiment state, and under Ray Client ships them to
    run ``fit()`` on the cluster: the tracker travels along and its recorder's writer opens
    the same catalog there.
    """

    def __init__(self, tracker: TrialTracker) -> None:
        self.tracker = tracker

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

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Only a final failure comes here: a failure that is retried fires on_trial_recover
        # instead (TuneController._process_trial_failure), so each trial gets one final row.
        self.tracker.error(trial.trial_id, trial.last_result, _error_text(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.retrying(trial.trial_id, _error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.tracker.end()


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
