"""scikit-learn's histogram gradient boosting (``estimator: histgb``): native missing values."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tunehouse.families._base import Resource
from tunehouse.families.sklearn import SklearnFamily


class HistGBFamily(SklearnFamily):
    """HistGradientBoostingClassifier / Regressor: NaN-aware, OpenMP threads, grows by iterations."""

    name = "histgb"
    prefixes = ("sklearn.ensemble.HistGradientBoosting", "sklearn.ensemble._hist_gradient_boosting")
    shorthand = "histgb"
    handles_missing = True

    def estimator_path(self, task: str) -> str:
        kind = "Regressor" if task == "regression" else "Classifier"
        return f"sklearn.ensemble.HistGradientBoosting{kind}"

    @contextlib.contextmanager
    def threads(self, cpus: int) -> Iterator[None]:
        # no n_jobs: its OpenMP pool would take every core of the node
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=cpus, user_api="openmp"):
            yield

    def resource(self, cls: type) -> Resource | None:
        return Resource("max_iter", "iterations")
