"""Search algorithms: one module each, found by name (``search.algorithm`` in a spec).

Add an algorithm by adding one module here that defines a ``SearchAlgorithm`` subclass with
a new ``name``; the spec's allowed values come from this registry. No module here imports
Ray at import time.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

from tunehouse.search._base import History, Plan, SearchAlgorithm, remaining

__all__ = ["ALGORITHMS", "History", "Plan", "SearchAlgorithm", "algorithm", "plan_for", "remaining"]


def _discover() -> dict[str, SearchAlgorithm]:
    found: dict[str, SearchAlgorithm] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "schedulers":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, SearchAlgorithm) and obj.__module__ == module.__name__:
                found[obj.name] = obj()
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


#: name -> the algorithm (instances are stateless).
ALGORITHMS: dict[str, SearchAlgorithm] = _discover()


def algorithm(name: str) -> SearchAlgorithm:
    return ALGORITHMS[name]


def plan_for(spec: Any, history: History, *, cluster_cpus: float) -> Plan:
    """The spec's algorithm's plan, with the spec's trial scheduler in its slot."""
    from tunehouse.search.schedulers import scheduler_for

    plan = algorithm(spec.search.algorithm).plan(spec, history, cluster_cpus=cluster_cpus)
    return dataclasses.replace(plan, scheduler=scheduler_for(spec))
