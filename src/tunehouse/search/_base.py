"""What a search algorithm is: the base class, its rules, and the plan it returns."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tunehouse.records import TrialRecord, config_key

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.spec import Spec


@dataclass
class History:
    """What a search has behind it: its finished trials, and the ones that never finished.

    A new search has an empty history; ``tunehouse resume`` rebuilds one from the catalog; a
    warm start (``tunehouse.warm``) fills ``finished`` with reused trials of earlier
    experiments (same data), or ``first`` with their best configurations (other data).
    """

    finished: list[TrialRecord] = field(default_factory=list)  # terminated, early_stopped or error: not run again
    unfinished: dict[str, list[str]] = field(default_factory=dict)  # config key -> trial ids to reuse
    first: list[dict[str, Any]] = field(default_factory=list)  # configurations to try before any other


@dataclass
class Plan:
    """What the driver hands Ray Tune: a searcher, its param space, how many trials, a scheduler."""

    searcher: Any  # a ray.tune Searcher
    param_space: dict[str, Any]
    num_samples: int  # trials still to start (a resumed search may have none left)
    scheduler: Any = None  # a ray.tune TrialScheduler; None: every trial runs to its end


class SearchAlgorithm(abc.ABC):
    """A search strategy: turns a spec and its history into a ``Plan``.

    Rules for an implementation (one module in ``tunehouse/search/``, registered by ``name``):

    - ``plan`` is a pure function of ``(spec, history)``: the same spec and the same finished
      trials give the same plan. That is what lets ``tunehouse resume`` rebuild a search from
      the catalog alone (Ray Tune's own restore lost OptunaSearch, ray#30861).
    - Trials in ``history.finished`` are never planned again, and count toward the search's
      trials (``num_samples``); configurations in ``history.unfinished`` are planned again
      (the driver gives them back their catalog ids); ``history.first`` runs first.
    - It decides what to try, nothing else: it never reads or writes the catalog, never
      starts Ray, and imports Ray and Optuna inside ``plan`` only (the spec imports this
      package to learn the algorithms' names, and must stay light).
    - ``validate`` raises ``ValueError("field: why")`` for a spec this algorithm cannot run;
      the spec turns it into a located ``SpecError``.
    """

    #: The spec's ``search.algorithm`` value.
    name: ClassVar[str]
    #: Whether the space must be discrete (every domain enumerable).
    discrete_only: ClassVar[bool] = False
    #: Where it is listed among the algorithms (messages, docs): simplest first.
    order: ClassVar[int] = 100

    def validate(self, spec: Spec) -> None:  # noqa: B027  (optional hook)
        """Checks of a spec that only this algorithm has; the default accepts everything."""

    @abc.abstractmethod
    def plan(self, spec: Spec, history: History, *, cluster_cpus: float) -> Plan:
        """The searcher, param space and trial count for what is left of the search."""

    def told(self, plan: Plan) -> dict[str, int] | None:
        """After the search: what the searcher itself was told, e.g. a model-based searcher's
        trial count by state (None when it keeps nothing, or ran on a cluster)."""
        return None


def remaining(points: Sequence[dict[str, Any]], finished: Sequence[TrialRecord | dict[str, Any]]) -> list[dict[str, Any]]:
    """``points`` minus those already finished (each finished configuration cancels one point);
    ``finished`` holds trials, or plain configurations."""
    left: dict[str, int] = {}
    for t in finished:
        key = config_key(t.params if isinstance(t, TrialRecord) else t)
        left[key] = left.get(key, 0) + 1
    todo = []
    for p in points:
        k = config_key(p)
        if left.get(k):
            left[k] -= 1
        else:
            todo.append(p)
    return todo


def explicit_plan(spec: Spec, points: list[dict[str, Any]], history: History) -> Plan:
    """Run ``points`` minus the finished ones, through Tune's basic variant generator.

    Rules: ``history.first`` goes to the front of ``points``, replacing as many points as it
    adds (a grid's own points are reordered; a random sample's last points give way); every
    finished trial counts as one of the points, so at most ``len(points) - len(finished)``
    run (a warm start's reused trials outside a random sample still use up its budget).
    Every point sets every parameter, so the param space only names them. The generator itself
    holds ``search.max_concurrent``: Tune ignores ``max_concurrent_trials`` for a search
    algorithm that is not a ``Searcher`` (with only a log warning).
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from tunehouse.space import to_tune

    if history.first:
        points = [*history.first, *remaining(points, history.first)][:len(points)]
    todo = remaining(points, history.finished)[:max(0, len(points) - len(history.finished))]
    return Plan(BasicVariantGenerator(points_to_evaluate=todo, max_concurrent=spec.search.max_concurrent or 0),
                to_tune(spec.space, grid=False), len(todo))
