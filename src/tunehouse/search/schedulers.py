"""Trial schedulers for early stopping: Ray Tune's, compared at equal training resource.

Each trial reports ``resource`` (boosting rounds, trees, epochs or folds so far) with its
metrics; a scheduler compares trials at the same ``resource`` and stops those behind. The
metric and mode come from the Tuner (the spec's objective), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: What trials report as their progress (the scheduler's clock).
RESOURCE = "resource"


def _reviewed_asha() -> type:
    """Ray's ``AsyncHyperBandScheduler`` whose promotions stay under review (built on first use:
    Ray is imported only when a search runs).

    Asynchronous successive halving judges a trial once, when it reaches a rung, against the
    results that rung holds so far; the first trials at a rung have nothing to beat and go on.
    Measured on ``scripts/bench_early_stopping.py`` (60 trials, 2 at a time, rungs 20/60/180 of
    500 rounds): 8 of 60 trials trained all 500 rounds, 59% of the search's CPU. Here, at every
    later report, each rung a trial passed is judged again with what it holds now, and a trial
    that has fallen below that rung's cutoff (the top ``1/reduction_factor`` of its results) is
    stopped there. A trial's first judgement at a rung is Ray's own, unchanged; a trial that stays
    in the top fraction of every rung it passed runs to ``max_t`` as before.
    """
    global _REVIEWED
    if _REVIEWED is not None:
        return _REVIEWED
    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

    class ReviewedASHA(AsyncHyperBandScheduler):
        __doc__ = _reviewed_asha.__doc__
        __qualname__ = "ReviewedASHA"  # pickled by reference: this module's __getattr__ finds it

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            bracket = self._trial_info.get(trial.trial_id)
            passed = [] if bracket is None else [rec for _, rec in bracket._rungs if trial.trial_id in rec]
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.CONTINUE and _behind_in_any(bracket, passed, trial.trial_id):
                self._num_stopped += 1
                return TrialScheduler.STOP
            return action

    _REVIEWED = ReviewedASHA
    return ReviewedASHA


_REVIEWED: type | None = None


def __getattr__(name: str) -> Any:
    """``ReviewedASHA`` for pickle (Tune's experiment state, Ray Client) without Ray at import."""
    if name == "ReviewedASHA":
        return _reviewed_asha()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _behind_in_any(bracket: Any, rungs: list[dict], trial_id: str) -> bool:
    """Whether ``trial_id``'s recorded result is below the current cutoff of any of ``rungs``."""
    for recorded in rungs:
        cutoff = bracket.cutoff(recorded)
        if cutoff is not None and recorded[trial_id] < cutoff:
            return True
    return False


def _asha(spec: Any) -> Any:
    """Asynchronous successive halving, one bracket; promotions reviewed (``_reviewed_asha``)."""
    es = spec.search.early_stopping
    return _reviewed_asha()(time_attr=RESOURCE, max_t=spec.max_resource, grace_period=spec.min_resource,
                            reduction_factor=es.reduction_factor)


def _hyperband(spec: Any) -> Any:
    """HyperBand's brackets, run asynchronously (Li et al.'s ASHA paper, section 3): several
    brackets of different grace periods, so an aggressive cut is hedged; promotions reviewed as
    in ``asha``. Tune's synchronous HyperBand pauses trials and needs a searcher-free space; this
    one works with all three search algorithms."""
    es = spec.search.early_stopping
    lo, hi, rf = spec.min_resource, spec.max_resource, es.reduction_factor
    brackets, r = 1, lo * rf
    while r <= hi and brackets < 4:  # as many brackets as rungs fit between min and max
        brackets, r = brackets + 1, r * rf
    return _reviewed_asha()(time_attr=RESOURCE, max_t=hi, grace_period=lo, reduction_factor=rf, brackets=brackets)


def _median(spec: Any) -> Any:
    """Stop a trial whose best result so far is below the median of the others' running
    averages at the same resource (Google Vizier's median stopping rule)."""
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(time_attr=RESOURCE, grace_period=spec.min_resource, min_samples_required=3)


#: ``search.early_stopping.scheduler`` values -> how to build it from the spec.
SCHEDULERS: dict[str, Callable[[Any], Any]] = {"asha": _asha, "hyperband": _hyperband, "median": _median}


def scheduler_for(spec: Any) -> Any:
    """The Ray Tune trial scheduler a spec asks for; None (Tune's FIFO: every trial runs to its end)."""
    es = spec.search.early_stopping
    return None if es is None else SCHEDULERS[es.scheduler](spec)
