"""XGBoost (``estimator: xgboost``): threads = the trial's CPUs, quiet, its own UBJ format in exports."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunehouse.families._base import ModelFamily, Resource

_CLASSES = {"xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor"}


class XGBoostFamily(ModelFamily):
    name = "xgboost"
    prefixes = ("xgboost.",)
    shorthand = "xgboost"
    package = "xgboost"
    handles_missing = True
    trusted = ("xgboost.",)
    native_format = "xgboost-ubj"

    def estimator_path(self, task: str) -> str:
        return "xgboost.XGBRegressor" if task == "regression" else "xgboost.XGBClassifier"

    def defaults(self, cls: type, *, cpus: int, seed: int) -> dict[str, Any]:
        # XGBoost defaults to every core of the node
        return {**super().defaults(cls, cpus=cpus, seed=seed), "n_jobs": cpus, "verbosity": 0}

    def resource(self, cls: type) -> Resource | None:
        return Resource("n_estimators", "boosting rounds", "callback")

    def fit_in_steps(self, estimator: Any, X: Any, y: Any, X_valid: Any, *, steps: set[int],
                     reached: Any, resume: Any = None, start: int = 0, rows: Any = None) -> None:
        import xgboost

        # One DMatrix of the validation rows for the whole fit: XGBoost caches its predictions
        # and adds only the trees grown since the last step (an inplace_predict recomputes every
        # tree at every step: quadratic in the rounds, 43% of a 500-round fit reporting every 10).
        # The model holds exactly ``rounds`` rounds in after_iteration, so its full-range
        # prediction is the one at ``rounds``, bit for bit.
        valid = xgboost.DMatrix(X_valid, missing=estimator.missing, nthread=estimator.n_jobs,
                                enable_categorical=bool(estimator.enable_categorical),
                                feature_types=estimator.feature_types)

        class AtSteps(xgboost.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                rounds = epoch + 1  # epochs count on from a resumed model's rounds
                if rounds in steps:
                    reached(rounds, model.predict(valid), lambda: bytes(model.save_raw("ubj")))
                return False

        booster = None
        if resume is not None:
            booster = xgboost.Booster()
            booster.load_model(bytearray(resume))
            estimator.set_params(n_estimators=estimator.get_params()["n_estimators"] - start)
        estimator.set_params(callbacks=[AtSteps()])
        try:
            with _reused_matrix(estimator, rows):
                estimator.fit(X, y, xgb_model=booster)
        finally:
            estimator.set_params(callbacks=None)  # a fitted model pickles without our callback

    def save_native(self, estimator: Any, folder: Path) -> dict[str, Any]:
        estimator.save_model(str(folder / "model.ubj"))
        return {"format": self.native_format, "file": "model.ubj",
                "class": f"{type(estimator).__module__}.{type(estimator).__name__}"}

    def load_native(self, entry: dict[str, Any], folder: Path) -> Any:
        if entry.get("class") not in _CLASSES:
            raise ValueError(f"unexpected XGBoost class {entry.get('class')!r}")
        module, _, name = entry["class"].rpartition(".")
        est = getattr(importlib.import_module(module), name)()
        est.load_model(str(folder / entry["file"]))
        return est


#: A worker's quantized training matrices: per fold (``rows``), the newest (how it was built, matrix).
_MATRICES: dict[Any, tuple[tuple, Any]] = {}
_MATRICES_LOCK = threading.Lock()
#: What ``fit`` may pass that makes the rows more than X and y: such a matrix is never reused.
_NOT_REUSED = ("weight", "base_margin", "group", "qid", "feature_weights")


@contextlib.contextmanager
def _reused_matrix(estimator: Any, rows: Any) -> Iterator[None]:
    """Around ``estimator.fit``: the training ``QuantileDMatrix`` of ``rows`` built once per
    process and reused by the next trials on the same fold.

    XGBoost's scikit-learn ``fit`` quantizes its training rows again at every fit (33 ms of a
    10,667 x 20 fold's 85 ms at 20 rounds, measured): the same cut points every time, since they
    depend only on the rows and on how the matrix is built (``max_bin``, ``missing``, threads,
    tree method, device, booster, categorical handling), all of which are in the key. The model
    is the one a fresh matrix gives, bit for bit (``tests/test_early_stopping.py``). Only a
    ``QuantileDMatrix`` is kept (read-only once built; a plain ``DMatrix`` builds pages on demand),
    never one with weights, margins, groups or feature weights, nor one whose feature types are
    not a plain list. One matrix per fold: a trial that builds it differently (``max_bin`` in the
    space) replaces it, so a worker holds at most one search's k matrices, and those of another
    search (another ``rows[0]``) are dropped when a new one comes. ``fit`` builds its matrices
    through ``XGBModel._create_dmatrix``; an XGBoost without it is left alone.
    """
    import xgboost

    build = getattr(estimator, "_create_dmatrix", None)
    if rows is None or build is None:
        yield
        return

    def create(ref: Any = None, **kw: Any) -> Any:
        types = kw.get("feature_types")
        if (ref is not None or any(kw.get(k) is not None for k in _NOT_REUSED)
                or not (types is None or isinstance(types, (list, tuple)))):
            return build(ref=ref, **kw)  # an evaluation matrix, or rows with more than X and y
        how = (estimator.max_bin, estimator.n_jobs, estimator.tree_method, estimator.device, estimator.booster,
               repr(kw.get("missing")), bool(kw.get("enable_categorical")), None if types is None else tuple(types))
        with _MATRICES_LOCK:
            for old in [r for r in _MATRICES if r[0] != rows[0]]:
                del _MATRICES[old]
            kept = _MATRICES.get(rows)
            if kept is not None and kept[0] == how:
                return kept[1]
            matrix = build(ref=ref, **kw)
            if isinstance(matrix, xgboost.QuantileDMatrix):
                _MATRICES[rows] = (how, matrix)
            else:
                _MATRICES.pop(rows, None)
        return matrix

    estimator._create_dmatrix = create
    try:
        yield
    finally:
        del estimator._create_dmatrix  # back to the class's: the fitted model pickles without it
