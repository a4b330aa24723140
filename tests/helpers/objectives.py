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


def sees_valid(params, data):
    """Records whether the fit was shown validation rows (None at the final refit)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=200).fit(data.X_train, data.y_train)
    model.saw_valid_ = data.X_valid is not None
    return model


def flaky(params, data):
    """Fails on a config's first attempt, and on every attempt when x >= 9; x <= 1 never fails.

    Each call appends a line to ``<params["marker_dir"]>/x<x>``, so a test counts the attempts
    that really ran (one call per attempt with a hold-out split). ``params["how"]``: ``raise``
    an exception, or ``exit``: the worker process dies.
    """
    import os
    from pathlib import Path

    x = params["x"]
    marker = Path(params["marker_dir"]) / f"x{x}"
    with marker.open("a") as f:
        f.write("attempt\n")
    attempt = len(marker.read_text().splitlines())
    if x >= 9 or (x > 1 and attempt == 1):
        if params["how"] == "exit":
            os._exit(3)
        raise RuntimeError(f"attempt {attempt} of x={x} fails")
    return {"loss": float(x)}


def allocates(params, data):
    """Allocates (and touches) 1.5 GB when ``params["big"]`` is true, for memory-limit tests."""
    import numpy as np

    if params["big"]:
        block = np.ones(1500 * 2**20 // 8)
        return {"loss": float(block[0])}
    return {"loss": 0.0}


#: What ``records`` was given, call by call (in-process tests only, no Ray).
SEEN: list = []


def records(params, data):
    """Records the fold it is given, then fits a small pipeline that takes raw or preprocessed
    columns (text one-hot encoded here when it is still text) on the original labels."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    SEEN.append(data)
    text = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    prepare = make_column_transformer(
        (text, make_column_selector(dtype_include=object)),
        remainder=SimpleImputer(strategy="median"),
    )
    model = make_pipeline(prepare, LogisticRegression(C=params.get("C", 1.0), max_iter=500))
    return model.fit(data.X_train, data.y_train)


def fits_booleans(params, data):
    """A user's mistake: fits on ``y == "yes"`` (booleans), so its model predicts True/False."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent").fit(data.X_train.select_dtypes("number"), data.y_train == "yes")


def clusters(params, data):
    """A clustering function returning its own pipeline (scaling, then k-means)."""
    from sklearn.cluster import KMeans
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), KMeans(n_clusters=params["k"], n_init=3, random_state=0)).fit(data.X_train)


def paced(params, data):
    """0.3 s per trial, so a small search lasts long enough to be watched from another process."""
    import time

    time.sleep(0.3)
    return {"loss": (params["x"] - 2.0) ** 2}


def learns(params, data):
    """A training function that learns in steps: its loss falls towards ``params["x"] ** 2``.

    It reports every step through ``data.report`` (early stopping; a no-op otherwise) and
    returns the final metrics. ``data.budget`` (the spec's ``max_resource``) sets its steps.
    """
    steps = data.budget or int(params.get("steps", 4))
    loss = None
    for step in range(1, steps + 1):
        loss = float(params["x"]) ** 2 + 1.0 / step
        data.report(step, {"loss": loss})
    return {"loss": loss}


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier


class DyingForest(_forest()):
    """A random forest whose worker dies (``os._exit``) the first time it grows past ``die_at``
    trees; every fit appends its tree count to ``<marker>/fits`` (the test reads the attempts)."""

    def __init__(self, n_estimators=100, *, max_depth=None, random_state=None, warm_start=False,
                 marker="", die_at=10**9):
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, random_state=random_state,
                         warm_start=warm_start)
        self.marker, self.die_at = marker, die_at

    def fit(self, X, y, sample_weight=None):
        import os

        with open(os.path.join(self.marker, "fits"), "a") as f:
            f.write(f"{self.n_estimators}\n")
        died = os.path.join(self.marker, "died")
        if self.n_estimators > self.die_at and not os.path.exists(died):
            open(died, "w").close()
            os._exit(1)
        return super().fit(X, y, sample_weight)
