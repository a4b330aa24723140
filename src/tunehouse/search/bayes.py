"""Bayesian search: an Optuna sampler through Ray Tune's ``OptunaSearch``, concurrency-limited."""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunehouse.search._base import History, Plan, SearchAlgorithm, remaining


@dataclass(frozen=True)
class Sampler:
    """An Optuna sampler: how to build it from the seed, and the package it needs, if any."""

    build: Callable[[int], Any]
    needs: tuple[str, str] | None = None  # (module to import, what to pip install)
    multi_objective: bool = True  # whether it can run a multi-objective (Pareto) study


def _samplers() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.samplers


#: ``search.sampler`` values. Optuna is imported when a sampler is built, not before.
SAMPLERS: dict[str, Sampler] = {
    "tpe": Sampler(lambda seed: _samplers().TPESampler(seed=seed)),
    "gp": Sampler(lambda seed: _samplers().GPSampler(seed=seed), needs=("torch", "tunehouse[gp]")),
    "cmaes": Sampler(lambda seed: _samplers().CmaEsSampler(seed=seed, warn_independent_sampling=False),
                     needs=("cmaes", "cmaes"), multi_objective=False),
    "random": Sampler(lambda seed: _samplers().RandomSampler(seed=seed)),
    "nsga2": Sampler(lambda seed: _picklable(_samplers().NSGAIISampler(seed=seed))),  # made for Pareto searches
}


class _Lock:
    """A ``threading.Lock`` that pickles as a fresh lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._lock.__exit__(*exc)

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()


def _picklable(sampler: Any) -> Any:
    """Optuna 5's genetic samplers (NSGA-II) hold a plain ``threading.Lock`` without a
    ``__getstate__``, and Ray Tune pickles the searcher with its sampler."""
    if hasattr(sampler, "_thread_lock"):
        sampler._thread_lock = _Lock()
    return sampler


class BayesSearch(SearchAlgorithm):
    """Optuna (TPE by default) suggests each trial from the results so far.

    At most one trial per free CPU runs at once (``search.max_concurrent`` to change it): a
    model-based sampler learns nothing from trials that are still running.
    """

    name = "bayes"
    order = 2

    def validate(self, spec) -> None:
        needs = SAMPLERS[spec.search.sampler].needs
        if needs and importlib.util.find_spec(needs[0]) is None:  # installed? (importing torch takes seconds)
            raise ValueError(f"search.sampler: sampler {spec.search.sampler!r} needs the {needs[0]} "
                             f"package: pip install '{needs[1]}'")

    def plan(self, spec, history: History, *, cluster_cpus: float) -> Plan:
        from ray.tune.search import ConcurrencyLimiter

        searcher = study_searcher(spec, history)
        limit = spec.search.max_concurrent or max(1, int(cluster_cpus) // max(1, int(spec.resources.cpus)))
        n = max(0, spec.search.num_samples - len(history.finished))
        return Plan(ConcurrencyLimiter(searcher, max_concurrent=limit), {}, n)


    def told(self, plan: Plan) -> dict[str, int] | None:
        """Optuna's study's trials by state (COMPLETE, PRUNED, FAIL, ...): every trial of the
        search must be there, early-stopped ones with their last result (ray#15283 lost them)."""
        study = getattr(getattr(plan.searcher, "searcher", None), "_ot_study", None)
        if study is None:
            return None
        counts: dict[str, int] = {}
        for t in study.trials:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return counts


def study_searcher(spec, history: History):
    """OptunaSearch over the space's distributions, told about the history's trials.

    Given a space and metric, OptunaSearch creates its study at once, so finished trials are
    added to it (failed or non-finite ones as failed, as Tune tells Optuna) and unfinished
    ones are enqueued to run first, then a warm start's ``history.first`` configurations (on
    other data). Ray's own warm start takes one kind or the other, not both.
    """
    from ray.tune.search.optuna import OptunaSearch

    from tunehouse.space import to_optuna

    objectives = spec.objective_modes  # several: a multi-objective study (lists of metrics and modes)
    names, modes = list(objectives), list(objectives.values())
    searcher = OptunaSearch(
        space=to_optuna(spec.space).distributions(),
        metric=names if spec.pareto else names[0],
        mode=modes if spec.pareto else modes[0],
        sampler=SAMPLERS[spec.search.sampler].build(spec.seed),
    )
    for t in history.finished:
        values = [t.metrics.get(n) for n in names]
        # an early-stopped trial with its last result, as Tune told the study when it stopped
        failed = t.status not in ("terminated", "early_stopped") or not all(
            v is not None and math.isfinite(v) for v in values)
        if spec.pareto:
            _add_multi(searcher, dict(t.params), None if failed else values)
        else:
            searcher.add_evaluated_point(dict(t.params), 0.0 if failed else values[0], error=failed)
    again = [json.loads(key) for key, ids in history.unfinished.items() for _ in ids]
    for config in again:
        searcher._ot_study.enqueue_trial(config)
    # a resumed warm-started search ran (or is about to rerun) some of its first configurations
    for config in remaining(history.first, [*history.finished, *again]):
        searcher._ot_study.enqueue_trial(dict(config))
    return searcher


def _add_multi(searcher, params: dict[str, Any], values: list[float] | None) -> None:
    """A finished trial told to a multi-objective study (OptunaSearch's ``add_evaluated_point``
    takes one value): complete with its values, or failed (None)."""
    import optuna

    state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
    searcher._ot_study.add_trial(optuna.trial.create_trial(
        state=state, values=values, params=params, distributions=searcher._space))
