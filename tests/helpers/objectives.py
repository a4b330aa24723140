"""Training functions used by tests (imported by Ray workers through PYTHONPATH)."""

from __future__ import annotations


def quadratic(params, data):
    """A pure objective with its minimum 0 at x=2, y=-1; ignores the data."""
    return {"loss": (params["x"] - 2.0) ** 2 + (params["y"] + 1.0) ** 2}


def fails_when_big(params, data):
    """Raise for x > 5 so a search has both failed and successful trials."""
    if params["x"] > 5:
        raise ValueError(f"x too big: {params['x']}")
    return {"loss": float(params["x"])}


def sleepy(params, data):
    """Half a second per trial, for time-budget tests."""
    import time

    time.sleep(0.5)
    return {"loss": float(params["x"])}
