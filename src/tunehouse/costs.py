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


# -- what a whole search cost -----------------------------------------------------------------
#: The environment variable that prices CPU-hours when no ``--price-per-cpu-hour`` is given.
PRICE_ENV = "TUNEHOUSE_PRICE_PER_CPU_HOUR"


def price_per_cpu_hour(flag: Any = None, spec_price: float | None = None) -> float | None:
    """The price of a CPU-hour: ``--price-per-cpu-hour``, else ``$TUNEHOUSE_PRICE_PER_CPU_HOUR``,
    else the spec's ``cost.per_cpu_hour``; None when none is set.

    Raises:
        InputError: a flag or environment value that is not a finite number > 0 (one line).
    """
    import math
    import os

    from tunehouse.errors import InputError

    for where, value in (("--price-per-cpu-hour", flag), (PRICE_ENV, os.environ.get(PRICE_ENV))):
        if value is None or (where == PRICE_ENV and not str(value).strip()):
            continue
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = math.nan
        if not (math.isfinite(price) and price > 0):
            raise InputError(f"{where}: expected a price per CPU-hour > 0 (e.g. 0.05), got {value!r}")
        return price
    return spec_price


def search_cost(row: dict[str, Any], *, price: float | None = None, first_value: float | None = None) -> dict[str, Any]:
    """A search's cost figures from its experiments row: the one home of every figure that
    ``experiments``, ``compare``, the HTML report and the model card show.

    Args:
        row: the experiments row (``cpu_hours_trials``, ``cpu_hours_driver``, ``wall_s``,
            ``price_per_cpu_hour``, ``best_value``).
        price: price after the fact; default the price the run recorded.
        first_value: the first trial's objective (what a search that stopped there had).

    Returns:
        ``cpu_hours`` (trials + driver), ``cpu_hours_trials``, ``cpu_hours_driver``, ``wall_s``,
        ``price_per_cpu_hour``, ``cost`` (None without a price) and ``cost_per_point``: the cost
        per 0.01 of the objective gained by the best trial over the first (None without a
        price or without a gain).
    """
    trials, driver = _num(row.get("cpu_hours_trials")), _num(row.get("cpu_hours_driver"))
    cpu = None if trials is None and driver is None else (trials or 0.0) + (driver or 0.0)
    price = price if price is not None else _num(row.get("price_per_cpu_hour"))
    cost = None if price is None or cpu is None else cpu * price
    best = _num(row.get("best_value"))
    gain = None if best is None or first_value is None else abs(best - float(first_value))
    per_point = cost / (100.0 * gain) if cost is not None and gain else None
    return {"cpu_hours": cpu, "cpu_hours_trials": trials, "cpu_hours_driver": driver, "wall_s": _num(row.get("wall_s")),
            "price_per_cpu_hour": price, "cost": cost, "cost_per_point": per_point}


def _num(v: Any) -> float | None:
    """A finite number from a catalog value (null, NaN and missing columns are None)."""
    import math

    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def money(v: float | None) -> str:
    """A cost as the listings print it (``-`` when there is none)."""
    return "-" if v is None else f"{v:.4g}"


def cost_line(f: dict[str, Any]) -> str:
    """``search_cost``'s figures in one line (the report's and the model card's)."""
    if f.get("cpu_hours") is None:
        return "not recorded (a run before tunehouse recorded costs)"
    parts = [f"{f['cpu_hours']:.4g} CPU-hours (trials {f['cpu_hours_trials'] or 0:.4g} + driver "
             f"{f['cpu_hours_driver'] or 0:.4g})"]
    if f.get("wall_s") is not None:
        parts.append(f"wall {f['wall_s']:.1f} s")
    if f.get("cost") is None:
        parts.append(f"no price (--price-per-cpu-hour, {PRICE_ENV} or cost: in the spec)")
    else:
        parts.append(f"at {f['price_per_cpu_hour']:g} per CPU-hour: cost {money(f['cost'])}, "
                     f"{money(f['cost_per_point'])} per point (0.01) of the objective gained over the first trial")
    return ", ".join(parts)
