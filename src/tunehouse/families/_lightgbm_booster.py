"""A LightGBM booster loaded from its text model file, as a fitted scikit-learn estimator.

Imported only when an export is loaded (it imports scikit-learn; family modules must not).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class BoosterModel(BaseEstimator):
    """What an exported LightGBM model predicts with: exactly the fitted estimator's answers.

    LightGBM's scikit-learn classes cannot load a model file, and pickling them would defeat
    the point of a native format, so the booster gets the scikit-learn predict API here.
    """

    def __init__(self, booster: Any = None, task: str = "classification", n_classes: int = 2) -> None:
        self.booster, self.task, self.n_classes = booster, task, n_classes

    def __sklearn_is_fitted__(self) -> bool:
        return self.booster is not None

    def fit(self, X: Any, y: Any = None) -> BoosterModel:
        raise NotImplementedError("a LightGBM model loaded from an export predicts; refit it with tunehouse")

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(self.n_classes)

    @property
    def predict_proba(self):
        if self.task != "classification":
            raise AttributeError("predict_proba")  # a regressor has none (as scikit-learn's)
        return self._predict_proba

    def _predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(self.booster.predict(X))
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return np.argmax(self._predict_proba(X), axis=1)
        return np.asarray(self.booster.predict(X))
