"""Estimators used by tests (imported by Ray workers through PYTHONPATH)."""

from __future__ import annotations

from sklearn.tree import DecisionTreeClassifier


class PacedTree(DecisionTreeClassifier):
    """A decision tree whose ``fit`` first waits ``pause`` seconds: a trial as slow as a test needs,
    the model that of a plain ``DecisionTreeClassifier`` (the pause changes nothing else)."""

    def __init__(self, *, pause: float = 0.0, max_depth: int | None = None, random_state: int | None = None) -> None:
        super().__init__(max_depth=max_depth, random_state=random_state)
        self.pause = pause

    def fit(self, X, y, sample_weight=None, check_input=True):
        import time

        time.sleep(self.pause)
        return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)
