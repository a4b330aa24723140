"""Trials that learn in steps: every fold's model grows to the next resource, then one report.

With early stopping a trial reports after every ``report_every`` units of its resource
(boosting rounds, trees, iterations, epochs), and the report is the mean over its k CV folds
at that resource, so trials are compared on equal footing. All k fold models advance
together: fold 1 grows to the next step, then fold 2, ..., then the report. How a model grows
is its family's (``Resource.how``):

- ``warm_start``: set the resource parameter and fit again (forests add trees, gradient
  boosting adds stages); grown in steps or at once, the model is the same.
- ``partial_fit``: one ``partial_fit`` call per epoch (SGD, MLP, Perceptron, ...).
- ``callback``: the library trains once, to the full budget, in a thread of its own; its
  per-round callback hands over predictions at each step and waits (a ``Gate``) until the
  trial asks for the next step, or tells it to stop (XGBoost, LightGBM). The model is the one
  a plain fit with that many rounds gives.
- a training function gets ``fold.report(step, metrics)``, gated the same way.

Resource ``folds`` instead runs the folds one after another and reports the running mean
after each, so a poor configuration can stop after its first fold. Nothing here knows Ray:
the caller's ``report`` callable is Tune's (or a test's).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.trainable import TrialPayload

#: report(resource, metrics, state): send one intermediate result; ``state()`` returns what a
#: checkpoint needs to resume from here (called only when a checkpoint is due).
Report = Callable[[int, dict[str, float], Callable[[], Any]], None]


@dataclass(frozen=True)
class StepPlan:
    """How the trials of a run learn in steps (from ``search.early_stopping``); picklable."""

    resource: str  # "auto" (the family's) | "folds"
    max_resource: int
    report_every: int = 1
    checkpoint_every: int | None = None
    param: str | None = None  # the estimator parameter the resource sets (n_estimators, max_iter)
    how: str | None = None  # warm_start | partial_fit | callback | function

    def schedule(self, after: int = 0) -> list[int]:
        """The resources at which a trial reports: every ``report_every`` units, and the maximum."""
        steps = list(range(self.report_every, self.max_resource, self.report_every)) + [self.max_resource]
        return [s for s in steps if s > after]


class StopTraining(Exception):
    """Raised inside a library's training loop (from its callback) to end it early."""


_STOP = object()


class Gate:
    """Runs ``train(reached)`` in a thread that pauses at each step until let go on.

    ``train`` calls ``reached(step, value, snapshot)`` at each step it reaches; that call blocks
    while the coordinator has what it asked for, returns when the coordinator wants more, and
    raises ``StopTraining`` when it wants the training to end. ``snapshot()`` (optional) is
    called only while the thread is paused, to save the model as it is at that step.
    """

    def __init__(self, train: Callable[[Callable[..., None]], Any], *, should_stop: Callable[[], bool]) -> None:
        self._train, self._should_stop = train, should_stop
        self._cond = threading.Condition()
        self._want: Any = None  # the step the coordinator waits for; _STOP
        self._at: tuple[int, Any, Any] | None = None  # (step, value, snapshot) last reached
        self._done, self._error, self._result = False, None, None
        self._thread = threading.Thread(target=self._run, name="tunehouse-fold", daemon=True)

    def _run(self) -> None:
        try:
            self._result = self._train(self._reached)
        except StopTraining:
            pass
        except BaseException as e:  # re-raised in the coordinator's thread
            self._error = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _reached(self, step: int, value: Any, snapshot: Callable[[], Any] | None = None) -> None:
        with self._cond:
            self._at = (int(step), value, snapshot)
            if self._want is _STOP:
                raise StopTraining()
            if self._want is not None and step < self._want:
                return  # not there yet: keep training
            self._cond.notify_all()
            while self._want is not _STOP and (self._want is None or self._want <= step):
                self._cond.wait()
            if self._want is _STOP:
                raise StopTraining()

    def until(self, step: int) -> tuple[int, Any] | None:
        """Let the training run until it reaches ``step`` (or more); its (step, value) there.

        None when the training ended without reaching it (a function that never reports).
        """
        with self._cond:
            self._want = step
            if not self._thread.is_alive() and not self._done:
                self._thread.start()
            self._cond.notify_all()
            while not self._done and (self._at is None or self._at[0] < step):
                self._cond.wait(timeout=0.05)
                if self._should_stop():
                    raise SystemExit(0)  # the scheduler stopped the trial: end it now
            if self._error is not None:
                raise self._error
            if self._at is None or self._at[0] < step:
                return None
            return self._at[0], self._at[1]

    def go_on(self, step: int) -> bool:
        """Let the training run on towards ``step`` without waiting for it (the coordinator is
        busy meanwhile: reporting); ``until(step)`` then waits for what is left. False when the
        training has ended or is being stopped (nothing goes on)."""
        with self._cond:
            if self._want is _STOP or self._done or not self._thread.is_alive():
                return False
            self._want = max(step, self._want or 0)
            self._cond.notify_all()
            return True

    def snapshot(self) -> Any:
        """The model at the last step reached (while the thread waits there)."""
        return self._at[2]() if self._at is not None and self._at[2] is not None else None

    def finish(self) -> Any:
        """Let the training run to its end; what ``train`` returned."""
        with self._cond:
            self._want = float("inf")
            if not self._thread.is_alive() and not self._done:
                self._thread.start()
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """End the training wherever it is (a stopped trial); never raises."""
        with self._cond:
            self._want = _STOP
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


@dataclass
class Fixed:
    """Predictions a model made at one step, standing in for the model when scoring it."""

    pred: np.ndarray
    proba: np.ndarray | None = None

    def predict(self, X: Any) -> np.ndarray:
        return self.pred

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.proba

    @classmethod
    def from_output(cls, out: Any, task: str) -> Fixed:
        """A library's prediction output -> class codes and probabilities, as its sklearn API gives.

        Binary classifiers output P(class 1) (one column), multi-class ones a column per class.
        """
        out = np.asarray(out)
        if task != "classification":
            return cls(out.reshape(-1))
        proba = np.column_stack([1.0 - out, out]) if out.ndim == 1 else out
        return cls(proba.argmax(axis=1), proba)


# -- one fold's model, growing ---------------------------------------------------------------
class FoldLearner(abc.ABC):
    """One fold's model as it grows. ``advance(r)`` grows it to resource ``r`` and returns
    something ``score`` takes with the fold's raw validation rows; ``finish()`` returns the
    fitted model (scorable on raw rows) at the full budget; ``state()`` what resuming needs;
    ``close()`` ends it."""

    @abc.abstractmethod
    def advance(self, resource: int) -> Any: ...

    def go_on(self, resource: int) -> bool:
        """Start growing towards ``resource`` in the background if this model can (True: it does)."""
        return False

    def finish(self, resource: int) -> Any:
        """Grow to ``resource`` (the full budget) and return the fitted model."""
        self.advance(resource)
        return self.model

    def state(self) -> Any:
        return self.model

    def close(self) -> None:  # noqa: B027
        pass


class _Grown(FoldLearner):
    """``warm_start`` and ``partial_fit``: the fold's own pipeline, its last step grown in place.

    The pipeline's preprocessing is fitted once, on the fold's training rows.
    """

    def __init__(self, p: TrialPayload, params: dict[str, Any], X: Any, y: Any, state: Any, done: int) -> None:
        self.p, self.y, self.done = p, y, done
        self.model = state if state is not None else p.factory.build(params)
        prep = self.model[:-1]
        with p.factory.threads():
            if len(prep) == 0:
                self.Xt = X
            elif state is None:
                self.Xt = prep.fit_transform(X, y)
            else:
                self.Xt = prep.transform(X)

    def advance(self, resource: int) -> Any:
        est, plan = self.model[-1], self.p.steps
        with self.p.factory.threads():
            if plan.how == "warm_start":
                est.set_params(warm_start=True, **{plan.param: resource})
                est.fit(self.Xt, self.y)
            else:  # partial_fit: one call per epoch
                classes = np.arange(self.p.n_classes) if self.p.task == "classification" else None
                for _ in range(resource - self.done):
                    if classes is None:
                        est.partial_fit(self.Xt, self.y)
                    else:
                        est.partial_fit(self.Xt, self.y, classes=classes)
        self.done = resource
        return self.model


class _Threaded(FoldLearner):
    """``callback`` families and training functions: the training runs behind a ``Gate``."""

    def __init__(self, gate: Gate, to_scorable: Callable[[Any], Any]) -> None:
        self.gate, self.to_scorable = gate, to_scorable
        self.model = None

    def advance(self, resource: int) -> Any:
        got = self.gate.until(resource)
        return None if got is None else self.to_scorable(got[1])

    def go_on(self, resource: int) -> bool:
        return self.gate.go_on(resource)

    def finish(self, resource: int) -> Any:
        self.model = self.gate.finish()
        return self.model

    def state(self) -> Any:
        return self.gate.snapshot()

    def close(self) -> None:
        self.gate.close()


def learner(p: TrialPayload, params: dict[str, Any], tr: np.ndarray, va: np.ndarray, *,
            state: Any = None, done: int = 0, should_stop: Callable[[], bool], fold: int = 0) -> FoldLearner:
    """The growing model of fold ``fold`` (``tr``/``va``: row positions), resumed from ``state`` at ``done``."""
    from tunehouse.families import family_for

    plan, f = p.steps, p.factory
    X_tr, X_va = p.X.iloc[tr], p.X.iloc[va]
    y_tr = p.y.iloc[tr] if p.y is not None else None
    y_va = p.y.iloc[va] if p.y is not None else None
    if plan.how in ("warm_start", "partial_fit"):
        return _Grown(p, params, X_tr, y_tr, state, done)
    if plan.how == "function":
        def train_function(reached: Callable[..., None]) -> Any:
            return f.fit(params, X_tr, y_tr, X_va, y_va, budget=plan.max_resource,
                         report=lambda step, metrics: reached(step, dict(metrics)))

        return _Threaded(Gate(train_function, should_stop=should_stop), lambda metrics: metrics)
    family = family_for(f.path)
    pipe = f.build({**params, plan.param: plan.max_resource})

    def train_callback(reached: Callable[..., None]) -> Any:
        with f.threads():
            prep = pipe[:-1]
            Xt = prep.fit_transform(X_tr, y_tr) if len(prep) else X_tr
            Xv = prep.transform(X_va) if len(prep) else X_va
            steps = set(plan.schedule(done))
            rows = None if len(prep) else (p.key, fold)  # the fold's rows reach the model as they are
            family.fit_in_steps(pipe[-1], Xt, y_tr, Xv, steps=steps, reached=reached, resume=state,
                                start=done, rows=rows)
        return pipe

    return _Threaded(Gate(train_callback, should_stop=should_stop), lambda out: Fixed.from_output(out, p.task))


# -- a trial ----------------------------------------------------------------------------------
def learn_in_steps(p: TrialPayload, params: dict[str, Any], report: Report | None, *,
                   resume: dict[str, Any] | None = None, should_stop: Callable[[], bool] = lambda: False) -> Any:
    """Fit one configuration in steps, reporting the mean over folds at each step before the last.

    Args:
        report: called at each step below ``max_resource`` (the caller reports the last one,
            with the fitted models); None to report nothing.
        resume: a state from an earlier attempt's checkpoint (``{"resource": r, ...}``).
        should_stop: polled while a fold trains; True ends the trial (``SystemExit``).

    Returns:
        The trial's ``Outcome`` at ``max_resource``: the folds' final metrics and models.
    """
    from tunehouse.costs import timed
    from tunehouse.trainable import Outcome, aggregate, fitted, folds_of, score_fold, valid_rows

    folds = folds_of(p)
    if p.steps.resource == "folds":
        return _fold_by_fold(p, params, folds, report, resume or {})
    done = int(resume["resource"]) if resume else 0
    states = resume["folds"] if resume else [None] * len(folds)
    rows = [valid_rows(p, va) for _, va in folds]  # scored at every step: taken once
    learners: list[FoldLearner] = []
    fit_s = [0.0] * len(folds)  # each fold's training time: its learner's calls, not the scoring
    try:
        for i, ((tr, va), state) in enumerate(zip(folds, states)):
            with timed() as took:
                learners.append(learner(p, params, tr, va, state=state, done=done, should_stop=should_stop, fold=i))
            fit_s[i] += took()
        schedule = p.steps.schedule(done)
        # while a report is sent (a round trip to Tune, ~3 ms) the first fold trains on; never when
        # a report may save the folds' state (each fold must be at the reported step then)
        overlap = p.steps.checkpoint_every is None
        for k, r in enumerate(schedule[:-1]):
            scores = []
            for i, ((_, va), lrn) in enumerate(zip(folds, learners)):
                with timed() as took:
                    got = lrn.advance(r)
                fit_s[i] += took()
                if got is None:
                    break  # a training function that reports no more
                scores.append(got if isinstance(got, dict) else score_fold(p, got, va, rows=rows[i]))
            if len(scores) < len(learners):
                break
            if report is not None:
                ahead = overlap and learners[0].go_on(schedule[k + 1])
                with timed() as took:
                    report(r, aggregate(scores), lambda r=r: {"resource": r, "folds": [lrn.state() for lrn in learners]})
                if ahead:
                    fit_s[0] += took()  # the first fold trained meanwhile (a step outlasts a report)
        models = []
        for i, lrn in enumerate(learners):
            with timed() as took:
                models.append(lrn.finish(p.steps.max_resource))
            fit_s[i] += took()
    finally:
        for lrn in learners:
            lrn.close()
    # the costs are the final models': a resumed trial's fit_s counts this attempt's training only
    scores = [{**m, "fit_s": t} if isinstance(m, dict) else score_fold(p, m, va, fit_s=t, rows=r)
              for m, (_, va), t, r in zip(models, folds, fit_s, rows)]
    return Outcome(aggregate(scores), fitted(p, [m for m in models if not isinstance(m, dict)]),
                   resource=p.steps.max_resource)


def _fold_by_fold(p: TrialPayload, params: dict[str, Any], folds: list[Any], report: Report | None,
                  resume: dict[str, Any]) -> Any:
    """Resource ``folds``: one fold after another, a report of the running mean after each."""
    from tunehouse.trainable import Outcome, aggregate, fit_fold, fitted

    scores: list[dict[str, float]] = list(resume.get("scores", []))
    models: list[Any] = list(resume.get("models", []))
    for i, (tr, va) in enumerate(folds):
        if i < len(scores):
            continue  # done before the retry
        metrics, model = fit_fold(p, params, tr, va)
        scores.append(metrics)
        if model is not None:
            models.append(model)
        if report is not None and i + 1 < len(folds):
            state = {"resource": i + 1, "scores": list(scores), "models": list(models)}
            report(i + 1, aggregate(scores), lambda state=state: state)
    return Outcome(aggregate(scores), fitted(p, models), resource=len(folds))

