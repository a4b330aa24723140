"""What differs between model families: the base class and its rules."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Resource:
    """What a model learns in, for early stopping: the parameter that sets it, its unit, and how
    the model grows in steps (``tunehouse.stepping``): ``warm_start`` (set the parameter, fit
    again), ``partial_fit`` (one call per epoch) or ``callback`` (the family's ``fit_in_steps``)."""

    param: str  # e.g. n_estimators, max_iter
    unit: str  # e.g. "boosting rounds", "trees", "iterations", "epochs"
    how: str = "warm_start"


class ModelFamily:
    """One family of estimators (scikit-learn, XGBoost, LightGBM, ...): what differs per family.

    Rules for an implementation (one module in ``tunehouse/families/``):

    - It owns the import paths that start with one of its ``prefixes`` (the longest matching
      prefix wins), and may offer a ``shorthand`` for the spec (``estimator: xgboost``) that
      ``estimator_path`` turns into a class for the task.
    - It imports its library lazily (inside methods): every family module is imported when a
      spec loads, whether or not that library is installed or used.
    - ``defaults`` are keyword arguments for a trial under Ray: threads = the trial's CPUs,
      never all of the node's; quiet; seeded. The spec's fixed ``params`` override them.
    - Export stores the final estimator in the family's native format when it has one
      (``save_native`` / ``load_native``, named by ``native_format``); otherwise the whole
      pipeline goes to skops. ``trusted`` lists the type prefixes export lets skops load.
    - ``resource`` names what a class learns in (boosting rounds, trees, epochs) so a trial
      can report as it learns and be stopped early; None when it cannot grow. A family whose
      resource grows by ``callback`` implements ``fit_in_steps``; grown in steps, a model must
      equal the one a single fit with the same resource gives.
    """

    name: ClassVar[str]
    prefixes: ClassVar[tuple[str, ...]] = ()
    shorthand: ClassVar[str | None] = None
    #: distribution name, recorded in the environment and in exported requirements
    package: ClassVar[str | None] = None
    #: whether its estimators accept missing values (NaN) without an imputer
    handles_missing: ClassVar[bool] = False
    #: type prefixes an export of this family may ask skops to trust
    trusted: ClassVar[tuple[str, ...]] = ()
    #: the format name written into tunehouse.json for ``save_native`` (None: skops only)
    native_format: ClassVar[str | None] = None

    def owns(self, path: str) -> int:
        """How strongly this family claims an import path: its longest matching prefix's length,
        -1 when none matches (the scikit-learn family's empty prefix matches everything)."""
        return max((len(p) for p in self.prefixes if path.startswith(p)), default=-1)

    def estimator_path(self, task: str) -> str:
        """The class behind ``shorthand`` for a task (families without one never get here)."""
        raise NotImplementedError(self.name)

    def defaults(self, cls: type, *, cpus: int, seed: int) -> dict[str, Any]:
        """Keyword arguments for one trial: ``random_state`` = the seed where the class takes one."""
        return {"random_state": seed} if "random_state" in init_params(cls) else {}

    @contextlib.contextmanager
    def threads(self, cpus: int) -> Iterator[None]:
        """Around a fit: keep a family's native thread pool to the trial's CPUs."""
        yield

    def resource(self, cls: type) -> Resource | None:
        return None

    def fit_in_steps(self, estimator: Any, X: Any, y: Any, X_valid: Any, *, steps: set[int],
                     reached: Any, resume: Any = None, start: int = 0, rows: Any = None) -> None:
        """``callback`` families: fit ``estimator`` to its full budget, calling
        ``reached(rounds, predictions on X_valid, snapshot)`` after each round in ``steps``.

        ``predictions`` are what the library predicts (P(class 1) for a binary classifier, a
        column per class, or values); ``snapshot()`` returns the model so far, which ``resume``
        (with ``start`` rounds done) continues from. ``reached`` may raise ``StopTraining``.
        ``rows`` (hashable, or None) names ``X``/``y``: a later call with the same ``rows`` has
        the same rows, so a family may keep what it derived from them for the next trial in
        this process, provided the model it fits is the one it would fit without.
        """
        raise NotImplementedError(self.name)

    def save_native(self, estimator: Any, folder: Path) -> dict[str, Any]:
        """Write ``estimator`` in the native format; return its entry for ``tunehouse.json``."""
        raise NotImplementedError(self.name)

    def load_native(self, entry: dict[str, Any], folder: Path) -> Any:
        """Load what ``save_native`` wrote (``entry`` is untrusted metadata: check it)."""
        raise NotImplementedError(self.name)


def init_params(cls: type) -> set[str]:
    """The constructor parameters of an estimator class."""
    try:
        return set(cls().get_params(deep=False))
    except Exception:
        return {p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")}
