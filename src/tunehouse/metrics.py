"""The metric registry: each metric's tasks, direction and what it scores.

A plain table (scikit-learn is imported when a metric is computed, not before), so the
spec, the catalog and the trial tracker can all ask a metric's direction without models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Metric:
    """A named score: which tasks it applies to, its direction, and what it consumes."""

    name: str
    tasks: frozenset[str]
    greater_is_better: bool
    needs: Literal["label", "proba", "cluster", "value", "cost"]  # cost: measured, not scored (costs.py)
    fn: Callable[..., float]


def _avg(n_classes: int) -> str:
    return "binary" if n_classes == 2 else "macro"


def _accuracy(y, p, k):
    from sklearn.metrics import accuracy_score

    return accuracy_score(y, p)


def _balanced_accuracy(y, p, k):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, p)


def _prf(kind: str):
    def score(y, p, k):
        from sklearn import metrics

        fn = getattr(metrics, f"{kind}_score")
        return fn(y, p, average=_avg(k), zero_division=0)

    return score


def _roc_auc(y, proba, k):
    from sklearn.metrics import roc_auc_score

    if k == 2:
        return roc_auc_score(y, proba[:, 1])
    return roc_auc_score(y, proba, multi_class="ovr", labels=list(range(k)))


def _log_loss(y, proba, k):
    from sklearn.metrics import log_loss

    return log_loss(y, proba, labels=list(range(k)))


def _reg(kind: str):
    def score(y, p, k):
        from sklearn import metrics

        if kind == "rmse":
            return math.sqrt(metrics.mean_squared_error(y, p))
        fn = {
            "mse": metrics.mean_squared_error,
            "mae": metrics.mean_absolute_error,
            "r2": metrics.r2_score,
            "mape": metrics.mean_absolute_percentage_error,
        }[kind]
        return fn(y, p)

    return score


def _cluster(kind: str):
    def score(X, labels, k):
        import numpy as np
        from sklearn import metrics

        if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
            return float("nan")  # undefined for one cluster (or one point per cluster)
        fn = {
            "silhouette": metrics.silhouette_score,
            "calinski_harabasz": metrics.calinski_harabasz_score,
            "davies_bouldin": metrics.davies_bouldin_score,
        }[kind]
        return fn(X, labels)

    return score


def _measured(y, p, k):
    raise TypeError("a cost metric is measured as the trial runs (tunehouse.costs), not scored")


_C, _R, _K = frozenset({"classification"}), frozenset({"regression"}), frozenset({"clustering"})
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", _C, True, "label", _accuracy),
        Metric("balanced_accuracy", _C, True, "label", _balanced_accuracy),
        Metric("precision", _C, True, "label", _prf("precision")),
        Metric("recall", _C, True, "label", _prf("recall")),
        Metric("f1", _C, True, "label", _prf("f1")),
        Metric("roc_auc", _C, True, "proba", _roc_auc),
        Metric("log_loss", _C, False, "proba", _log_loss),
        Metric("rmse", _R, False, "label", _reg("rmse")),
        Metric("mse", _R, False, "label", _reg("mse")),
        Metric("mae", _R, False, "label", _reg("mae")),
        Metric("mape", _R, False, "label", _reg("mape")),
        Metric("r2", _R, True, "label", _reg("r2")),
        Metric("silhouette", _K, True, "cluster", _cluster("silhouette")),
        Metric("calinski_harabasz", _K, True, "cluster", _cluster("calinski_harabasz")),
        Metric("davies_bouldin", _K, False, "cluster", _cluster("davies_bouldin")),
        # every trial's costs (tunehouse.costs), usable as metrics and objectives
        Metric("fit_s", _C | _R | _K, False, "cost", _measured),
        Metric("predict_ms", _C | _R | _K, False, "cost", _measured),
        Metric("model_kb", _C | _R | _K, False, "cost", _measured),
    ]
}


def direction(name: str) -> Literal["min", "max"] | None:
    """A known metric's direction (``<name>_std`` too), or None for a metric we do not know."""
    known = METRICS.get(name.removesuffix("_std"))
    if known is None:
        return None
    return "max" if known.greater_is_better else "min"


def metric_mode(m: Any) -> Literal["min", "max"]:
    """A spec metric's mode: its own ``mode`` if given, else its direction ('max' if unknown)."""
    return m.mode or direction(m.name) or "max"


def mode_for(metric: str, metrics: Iterable[Any]) -> Literal["min", "max"]:
    """A reported metric's direction: its spec entry's mode, else the registry's ('_std' too)."""
    for m in metrics:
        if m.name == metric:
            return metric_mode(m)
    return direction(metric) or "max"
