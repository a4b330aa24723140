"""LightGBM (``estimator: lightgbm``): threads = the trial's CPUs, quiet, its text model file in exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunehouse.families._base import ModelFamily, Resource

_TASKS = {"lightgbm.sklearn.LGBMClassifier": "classification", "lightgbm.sklearn.LGBMRegressor": "regression"}


class LightGBMFamily(ModelFamily):
    name = "lightgbm"
    prefixes = ("lightgbm.",)
    shorthand = "lightgbm"
    package = "lightgbm"
    handles_missing = True
    trusted = ("lightgbm.", "collections.OrderedDict")  # OrderedDict: its fitted models hold its params in one
    native_format = "lightgbm-txt"

    def estimator_path(self, task: str) -> str:
        return "lightgbm.LGBMRegressor" if task == "regression" else "lightgbm.LGBMClassifier"

    def defaults(self, cls: type, *, cpus: int, seed: int) -> dict[str, Any]:
        # LightGBM defaults to every core (OpenMP) and logs every fit
        return {**super().defaults(cls, cpus=cpus, seed=seed), "n_jobs": cpus, "verbose": -1}

    def resource(self, cls: type) -> Resource | None:
        return Resource("n_estimators", "boosting rounds", "callback")

    def fit_in_steps(self, estimator: Any, X: Any, y: Any, X_valid: Any, *, steps: set[int],
                     reached: Any, resume: Any = None, start: int = 0, rows: Any = None) -> None:
        import lightgbm

        def at_steps(env: Any) -> None:
            rounds = env.iteration + 1  # absolute: a resumed model's rounds count
            if rounds in steps:
                model = env.model
                out = model.predict(X_valid, num_iteration=rounds)
                reached(rounds, out, lambda: model.model_to_string())

        init = None
        if resume is not None:
            init = lightgbm.Booster(model_str=resume)
            estimator.set_params(n_estimators=estimator.get_params()["n_estimators"] - start)
        estimator.fit(X, y, callbacks=[at_steps], init_model=init)

    def save_native(self, estimator: Any, folder: Path) -> dict[str, Any]:
        estimator.booster_.save_model(str(folder / "model.txt"))
        cls = f"{type(estimator).__module__}.{type(estimator).__name__}"
        return {"format": self.native_format, "file": "model.txt", "class": cls,
                "classes": [int(c) for c in getattr(estimator, "classes_", [])]}

    def load_native(self, entry: dict[str, Any], folder: Path) -> Any:
        task = _TASKS.get(entry.get("class"))
        if task is None:
            raise ValueError(f"unexpected LightGBM class {entry.get('class')!r}")
        import lightgbm

        from tunehouse.families._lightgbm_booster import BoosterModel

        return BoosterModel(lightgbm.Booster(model_file=str(folder / entry["file"])), task,
                            len(entry.get("classes") or []))
