"""scikit-learn estimators, and any other class with fit/predict/get_params (the default family)."""

from __future__ import annotations

from typing import Any

from tunehouse.families._base import ModelFamily, Resource, init_params

#: Classes that grow by ``warm_start`` (more trees / iterations on the same model), by class name.
_WARM = {
    "RandomForestClassifier": Resource("n_estimators", "trees"),
    "RandomForestRegressor": Resource("n_estimators", "trees"),
    "ExtraTreesClassifier": Resource("n_estimators", "trees"),
    "ExtraTreesRegressor": Resource("n_estimators", "trees"),
    "GradientBoostingClassifier": Resource("n_estimators", "iterations"),
    "GradientBoostingRegressor": Resource("n_estimators", "iterations"),
}


class SklearnFamily(ModelFamily):
    """Everything with the scikit-learn estimator API, saved whole with skops."""

    name = "sklearn"
    prefixes = ("",)  # the fallback: any import path no other family claims
    package = "scikit-learn"
    trusted = ("sklearn.", "numpy.", "scipy.")

    def defaults(self, cls: type, *, cpus: int, seed: int) -> dict[str, Any]:
        kwargs = super().defaults(cls, cpus=cpus, seed=seed)
        if cpus > 1 and "n_jobs" in init_params(cls):
            kwargs["n_jobs"] = cpus  # exactly the trial's CPUs (the default, 1, already is)
        return kwargs

    def resource(self, cls: type) -> Resource | None:
        for base in cls.__mro__:  # a subclass of a forest grows like the forest
            if base.__name__ in _WARM:
                return _WARM[base.__name__]
        if hasattr(cls, "partial_fit") and "max_iter" in init_params(cls):
            return Resource("max_iter", "epochs", "partial_fit")  # SGD, MLP, Perceptron, passive-aggressive
        return None
