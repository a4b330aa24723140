"""Grid search: the exhaustive product of the space's values, times ``num_samples`` repeats."""

from __future__ import annotations

from tunehouse.search._base import History, Plan, SearchAlgorithm, explicit_plan


class GridSearch(SearchAlgorithm):
    """Every configuration of a discrete space, in a stable order (``space.grid_points``)."""

    name = "grid"
    order = 0
    discrete_only = True

    def plan(self, spec, history: History, *, cluster_cpus: float) -> Plan:
        from tunehouse.space import grid_points

        return explicit_plan(spec, grid_points(spec.space) * spec.search.num_samples, history)
