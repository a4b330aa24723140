"""The run's final refit, started on a core the search has left idle (no Ray)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tunehouse.records import TrialRecord, best_of

#: ``model_for``'s answer when this refit is not the one the run needs.
NOT_AHEAD = object()


class RefitAhead:
    """Refit the leading configuration while the search's last trials still run.

    Once every trial of the search has started, each trial that ends leaves its CPUs idle
    until the search ends. The first such end starts the run's final refit (``fit(params,
    resource)``, i.e. ``trainable.refit``) in a thread of the driver, for the best trial so far
    by the run's own rule (``records.best_of`` over the earlier and this run's trials). When the
    search ends with that trial still the best, ``model_for`` hands its model to the run, which
    then refits nothing: the same call on the same rows, so the same model. When another trial
    overtook it, ``model_for`` says ``NOT_AHEAD`` and the run refits the new best as before.

    Rules: at most one refit at a time, and ``model_for`` joins it before saying anything, so
    two fits never run at once in the driver (a family's thread limits are process-wide); a
    trial that takes the lead while one runs is refitted at the next trial end after it, or by
    the run. The caller creates one only for an estimator (a training function may need the
    main thread) and only where Tune's loop runs in this process (the tracker calls
    ``trial_ended`` and never pickles it). A refit that raised is not the run's: ``model_for``
    says ``NOT_AHEAD`` and the run's own refit raises as it would have.
    """

    def __init__(self, fit: Callable[[dict[str, Any], int | None], Any], *, planned: int,
                 earlier: list[TrialRecord], objective: str, mode: str) -> None:
        self._fit, self.planned, self._earlier = fit, planned, list(earlier)
        self._objective, self._mode = objective, mode
        self._thread: threading.Thread | None = None
        self._trial_id: str | None = None  # whose refit the thread runs or ran
        self._model: Any = NOT_AHEAD

    def trial_ended(self, records: list[TrialRecord], running: int) -> None:
        """A trial of this run ended; ``records``: this run's finished trials, ``running``: those
        still going. Starts the refit when every planned trial has started and some still run."""
        if running == 0 or len(records) + running < self.planned:
            return  # trials still to start (their slot is not idle), or the search is ending now
        if self._thread is not None and self._thread.is_alive():
            return
        best = best_of([*self._earlier, *records], self._objective, self._mode)
        if best is None or best.trial_id == self._trial_id:
            return
        self._trial_id, self._model = best.trial_id, NOT_AHEAD
        self._thread = threading.Thread(target=self._run, args=(dict(best.params), best.resource),
                                        name="tunehouse-refit-ahead", daemon=True)
        self._thread.start()

    def _run(self, params: dict[str, Any], resource: int | None) -> None:
        try:
            self._model = self._fit(params, resource)
        except BaseException:  # the run's own refit of this trial raises it again, where it is said
            self._model = NOT_AHEAD

    @property
    def started(self) -> str | None:
        """The trial whose refit was started last (None: none was)."""
        return self._trial_id

    def model_for(self, best: TrialRecord) -> Any:
        """The refitted model of ``best`` if it is the one refitted here, else ``NOT_AHEAD``.
        Waits for a refit still running, whichever trial it is for."""
        if self._thread is not None:
            self._thread.join()
        return self._model if best.trial_id == self._trial_id else NOT_AHEAD
