"""Random search: ``num_samples`` configurations drawn from ``seed``."""

from __future__ import annotations

from tunehouse.search._base import History, Plan, SearchAlgorithm, explicit_plan


class RandomSearch(SearchAlgorithm):
    """A seeded sample (``space.sample_points``): the same list for the same space and seed."""

    name = "random"
    order = 1

    def plan(self, spec, history: History, *, cluster_cpus: float) -> Plan:
        from tunehouse.space import sample_points

        return explicit_plan(spec, sample_points(spec.space, spec.search.num_samples, spec.seed), history)
