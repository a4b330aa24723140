"""Trial schedulers for early stopping: Ray Tune's, compared at equal training resource.

This module imports no Ray (the spec reads its table); ``_ray_schedulers`` holds the two
subclasses of Ray's schedulers.

Each trial reports ``resource`` (boosting rounds, trees, epochs or folds so far) with its
metrics; a scheduler compares trials at the same ``resource`` and stops those behind. The
metric and mode come from the Tuner (the spec's objective), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: What trials report as their progress (the scheduler's clock).
RESOURCE = "resource"


def _asha(spec: Any) -> Any:
    """Asynchronous successive halving, one bracket; promotions reviewed (``ReviewedASHA``)."""
    from tunehouse.search._ray_schedulers import ReviewedASHA

    es = spec.search.early_stopping
    return ReviewedASHA(time_attr=RESOURCE, max_t=spec.max_resource, grace_period=spec.min_resource,
                        reduction_factor=es.reduction_factor)


def _hyperband(spec: Any) -> Any:
    """HyperBand's brackets, run asynchronously (Li et al.'s ASHA paper, section 3): several
    brackets of different grace periods, so an aggressive cut is hedged; promotions reviewed as
    in ``asha``. Tune's synchronous HyperBand pauses trials and needs a searcher-free space; this
    one works with all three search algorithms."""
    from tunehouse.search._ray_schedulers import ReviewedASHA

    es = spec.search.early_stopping
    lo, hi, rf = spec.min_resource, spec.max_resource, es.reduction_factor
    brackets, r = 1, lo * rf
    while r <= hi and brackets < 4:  # as many brackets as rungs fit between min and max
        brackets, r = brackets + 1, r * rf
    return ReviewedASHA(time_attr=RESOURCE, max_t=hi, grace_period=lo, reduction_factor=rf, brackets=brackets)


def _median(spec: Any) -> Any:
    """Stop a trial whose best result so far is below the median of the others' running
    averages at the same resource (Google Vizier's median stopping rule); it never pauses a
    trial (``NonPausingMedianRule``)."""
    from tunehouse.search._ray_schedulers import NonPausingMedianRule

    return NonPausingMedianRule(time_attr=RESOURCE, grace_period=spec.min_resource, min_samples_required=3)


#: ``search.early_stopping.scheduler`` values -> how to build it from the spec.
SCHEDULERS: dict[str, Callable[[Any], Any]] = {"asha": _asha, "hyperband": _hyperband, "median": _median}


def scheduler_for(spec: Any) -> Any:
    """The Ray Tune trial scheduler a spec asks for; None (Tune's FIFO: every trial runs to its end)."""
    es = spec.search.early_stopping
    return None if es is None else SCHEDULERS[es.scheduler](spec)
