"""What a model costs, measured in every trial: fit seconds, prediction latency, size.

``fit_s`` is a fold's fit time; ``predict_ms`` the time to predict 1,000 of the fold's validation
rows; ``model_kb`` the fitted model's pickled size. The trial reports each one's mean over folds
(no ``_std``: they are costs, not scores). A training function that returns only metrics has no
model to time or weigh, so it gets ``fit_s`` alone.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The cost metrics, in report order; all three are "lower is better" (the metric registry's).
COSTS = ("fit_s", "predict_ms", "model_kb")


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """Seconds spent inside the block: ``with timed() as took: ...; took()``."""
    t0 = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - t0
    end.append(time.perf_counter())


def model_costs(model: Any, X_valid: Any, fit_s: float) -> dict[str, float]:
    """One fold's costs: ``fit_s`` as measured, and the model's latency on ``X_valid`` and size.

    ``predict_ms`` is one ``predict`` call over the validation rows, scaled to 1,000 rows; it is
    left out for a model without ``predict`` (a clusterer that only has ``fit_predict``) or
    without rows to time. ``model_kb`` is the model's pickle (what the checkpoint holds).
    """
    out = {"fit_s": float(fit_s)}
    if model is None or isinstance(model, dict):
        return out
    n = 0 if X_valid is None else len(X_valid)
    if n and hasattr(model, "predict"):
        with timed() as took:
            model.predict(X_valid)
        out["predict_ms"] = took() * 1000.0 * 1000.0 / n
    out["model_kb"] = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1024.0
    return out
