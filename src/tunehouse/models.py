"""Building, checking and scoring the model of a trial: pipelines, the factory, the adapters.

Any estimator with the scikit-learn API (what differs per family, its threads, quiet flags,
native formats, lives in ``tunehouse.families``), or a user's training function.
Preprocessing is a step of the model's pipeline, so cross-validation fits it inside every
fold. This module never talks to Ray.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tunehouse.errors import SpecError, did_you_mean
from tunehouse.families import family_for, init_params, resolve_shorthand
from tunehouse.metrics import METRICS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from tunehouse.data import Dataset
    from tunehouse.spec import Spec


# -- the model of a trial ------------------------------------------------------------------
@dataclass
class ModelFactory:
    """How to build the model of one trial. Picklable: it travels to every trial."""

    kind: Literal["estimator", "function"]
    path: str
    fixed: dict[str, Any]
    task: str
    seed: int
    cpus: int
    preprocess: Any = None  # spec.Preprocess
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()  # classification: the labels in code order (Dataset.classes)
    # a training function's module may sit next to the spec or in the driver's working
    # directory: a worker of a Ray started earlier (a notebook, a second run) has neither on
    # its PYTHONPATH, so the trial adds them itself
    import_dirs: tuple[str, ...] = ()

    def target(self) -> Any:
        if self.kind == "function":
            add_function_dirs(*self.import_dirs)
        return _import(self.path)

    def fit(
        self,
        params: dict[str, Any],
        X_train: pd.DataFrame,
        y_train: pd.Series | None,
        X_valid: pd.DataFrame | None = None,
        y_valid: pd.Series | None = None,
        *,
        report: Any = None,
        budget: int | None = None,
    ) -> Any:
        """Fit one configuration on the training rows; ``y`` holds class codes for classification.

        An estimator's pipeline is fitted on (``X_train``, ``y_train``). A training function is
        called as ``fn(params, FoldData(...))`` with the original labels, and the raw columns
        or, when the spec sets ``preprocess``, the preprocessing's output (fitted on
        ``X_train`` only); the validation rows, if given, only go to the function, and so do
        ``report`` and ``budget`` (early stopping: see ``FoldData``).

        Returns:
            A fitted model that predicts class codes (a training function's model wrapped in a
            ``FunctionModel``), or the dict of metrics a training function returned.
        """
        if self.kind == "estimator":
            with self.threads():
                return self.build(params).fit(X_train, y_train)
        from tunehouse.trainable import FoldData

        prep = None
        if self.preprocess is not None:
            prep = self._preprocessor().set_output(transform="pandas")
            X_train = prep.fit_transform(X_train)
            X_valid = prep.transform(X_valid) if X_valid is not None else None
        data = FoldData(X_train, self._labels(y_train), X_valid, self._labels(y_valid), report=report, budget=budget)
        out = self.target()(dict(params), data)
        if isinstance(out, dict):
            return {k: float(v) for k, v in out.items()}
        if not hasattr(out, "predict"):
            raise TypeError(
                f"{self.path} returned {type(out).__name__}; expected a fitted model with predict "
                "or a dict of metrics"
            )
        return FunctionModel(out, self.task, self.classes, prep)

    def _labels(self, y: pd.Series | None) -> pd.Series | None:
        """Class codes back to the original labels (what a training function is given)."""
        if y is None or self.task != "classification" or not self.classes:
            return y
        import pandas as pd

        return pd.Series(pd.Index(list(self.classes)).take(y.to_numpy()), index=y.index, name=y.name)

    def build(self, params: dict[str, Any]):
        """A fresh, unfitted pipeline (preprocessing + estimator) for ``params``."""
        from sklearn.pipeline import Pipeline

        cls = self.target()
        est = cls(**self._estimator_kwargs(cls))
        steps = []
        prep = self._preprocessor()
        if prep is not None:
            steps.append(("prep", prep))
        steps.append(("model", est))
        pipe = Pipeline(steps)
        if params:
            pipe.set_params(**route_params(params))
        return pipe

    def _estimator_kwargs(self, cls: type) -> dict[str, Any]:
        """The family's defaults for a trial (threads, quiet, seed), then the spec's fixed params."""
        return {**family_for(self.path).defaults(cls, cpus=self.cpus, seed=self.seed), **self.fixed}

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        """Around a fit: the family keeps native thread pools to the trial's CPUs."""
        with family_for(self.path).threads(self.cpus):
            yield

    def _preprocessor(self):
        p = self.preprocess
        if p is None and not self.categorical:
            return None
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import (
            MinMaxScaler,
            OneHotEncoder,
            RobustScaler,
            StandardScaler,
        )

        num_steps: list[tuple[str, Any]] = []
        if p is not None and p.impute:
            num_steps.append(("impute", SimpleImputer(strategy=p.impute)))
        if p is not None and p.scale:
            scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
            num_steps.append(("scale", scaler[p.scale]()))
        parts = []
        if self.numeric:
            parts.append(("num", Pipeline(num_steps) if num_steps else "passthrough", list(self.numeric)))
        if self.categorical and self.kind == "function" and not (p is not None and p.onehot):
            parts.append(("cat", "passthrough", list(self.categorical)))  # a function takes text as is
        elif self.categorical:
            from tunehouse.spec import DEFAULT_MAX_CATEGORIES

            onehot = OneHotEncoder(
                handle_unknown="ignore",
                sparse_output=False,
                # rare categories share one column: a 3,000-category column cannot explode a search
                max_categories=p.max_categories if p is not None else DEFAULT_MAX_CATEGORIES,
                min_frequency=p.min_frequency if p is not None else None,
            )
            cat = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)])
            parts.append(("cat", cat, list(self.categorical)))
        return ColumnTransformer(parts, verbose_feature_names_out=False)


def route_params(params: dict[str, Any]) -> dict[str, Any]:
    """Space names address the estimator (``max_depth``) or a pipeline step (``prep__...``)."""
    return {(k if "__" in k else f"model__{k}"): v for k, v in params.items()}


def estimator_path(spec: Spec) -> str:
    """The class a spec's model names (a family's shorthand resolved by task)."""
    return resolve_shorthand(spec.model.estimator, spec.task)


def make_factory(spec: Spec, dataset: Dataset | None) -> ModelFactory:
    return ModelFactory(
        kind="function" if spec.model.is_function else "estimator",
        path=estimator_path(spec),
        fixed=dict(spec.model.params),
        task=spec.task,
        seed=spec.seed,
        cpus=max(1, int(spec.resources.cpus)),
        preprocess=spec.preprocess,
        numeric=tuple(dataset.numeric) if dataset is not None else (),
        categorical=tuple(dataset.categorical) if dataset is not None else (),
        classes=tuple(dataset.classes or ()) if dataset is not None else (),
        import_dirs=(str(spec.base_dir), os.getcwd()) if spec.model.is_function else (),
    )


def step_plan(spec: Spec) -> Any:
    """How a spec's trials learn in steps (``search.early_stopping``); None without it.

    Call after ``check_model``: it imports the model to ask its family what it learns in.
    """
    from tunehouse.stepping import StepPlan

    es = spec.search.early_stopping
    if es is None:
        return None
    common = {"max_resource": spec.max_resource, "checkpoint_every": es.checkpoint_every}
    if es.resource == "folds":
        return StepPlan("folds", **common)
    if spec.model.is_function:
        return StepPlan("auto", report_every=es.report_every, how="function", **common)
    res = family_for(estimator_path(spec)).resource(_import(estimator_path(spec)))
    return StepPlan("auto", report_every=es.report_every, param=res.param, how=res.how, **common)


def add_function_dirs(*dirs: str | os.PathLike[str] | None) -> None:
    """Let a training function next to its spec (``dirs``), or in the working directory, import
    in this process as it does in the workers (an embedded Ray puts both on their PYTHONPATH)."""
    for where in (*dirs, os.getcwd()):
        if where and str(where) not in sys.path:
            sys.path.append(str(where))


def _import(path: str) -> Any:
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ImportError(f"{path!r} is not of the form 'package.module.Class' or 'package.module:function'")
    mod = importlib.import_module(module)
    try:
        return getattr(mod, attr)
    except AttributeError:
        names = [n for n in dir(mod) if not n.startswith("_")]
        raise ImportError(f"module {module!r} has no {attr!r}{did_you_mean(attr, names)}") from None


# -- checks at load time ---------------------------------------------------------------------
def resolve_model(spec: Spec) -> Any:
    """Import the spec's model (an estimator class or a training function) and check its kind.

    Runs before the data checks, so ``model: mymodule.fit`` (a dot where a training function
    needs a colon) says so instead of asking for preprocessing that only an estimator needs.

    Raises:
        SpecError: on ``model.estimator``.
    """
    # a module next to the spec or in the working directory imports here as it does in the
    # workers (the driver puts both on their PYTHONPATH)
    for where in (str(spec.base_dir), os.getcwd()):
        if where not in sys.path:
            sys.path.append(where)
    path = spec.model.estimator
    try:
        target = _import(estimator_path(spec))
    except ImportError as e:
        raise SpecError(f"cannot import {path!r}: {e}", field="model.estimator") from None
    except Exception as e:
        raise SpecError(f"importing {path!r} failed: {e}", field="model.estimator") from None
    if spec.model.is_function:
        if not callable(target) or isinstance(target, type):
            raise SpecError(f"{path!r} is not a function (expected def train(params, fold))",
                            field="model.estimator")
    elif not isinstance(target, type) or not all(hasattr(target, a) for a in ("fit", "get_params")):
        if inspect.isfunction(target):
            raise SpecError(f"{path!r} is a function, not an estimator class; a training function is "
                            f"written module:function: model: {_colon_form(path)}", field="model.estimator")
        raise SpecError(
            f"{path!r} is not an estimator class (expected a class with fit, "
            "predict and get_params, e.g. sklearn.ensemble.RandomForestClassifier)",
            field="model.estimator",
        )
    return target


def check_model(spec: Spec, dataset: Dataset | None = None) -> ModelFactory:
    """Import the model and check the task, fixed params, space names and metrics against it.

    Raises:
        SpecError: naming the field (``model.estimator``, ``space.<name>``, ``metrics.<i>``).
    """
    _check_metrics(spec)
    target = resolve_model(spec)
    factory = make_factory(spec, dataset)
    if factory.kind == "function":
        return factory
    try:
        inst = target(**factory._estimator_kwargs(target))
    except TypeError as e:
        bad = next((k for k in spec.model.params if k not in init_params(target)), None)
        if bad is not None:
            raise SpecError(
                f"unknown parameter {bad!r} for {target.__name__}"
                f"{did_you_mean(bad, init_params(target))}",
                field=f"model.params.{bad}",
            ) from None
        raise SpecError(f"cannot build {target.__name__}: {e}", field="model.params") from None
    _check_task(spec, target, inst)
    pipe = factory.build({})
    valid = set(pipe.get_params(deep=True))
    for name in spec.space:
        routed = next(iter(route_params({name: None})))
        if routed not in valid:
            options = sorted(k.removeprefix("model__") for k in valid if "__" in k)
            raise SpecError(
                f"unknown parameter {name!r} for {target.__name__}{did_you_mean(name, options)}",
                field=f"space.{name}",
            )
    _check_values(spec, target, inst)
    _check_resource(spec, target)
    for i, m in enumerate(spec.metrics):
        if METRICS[m.name].needs == "proba" and not hasattr(inst, "predict_proba"):
            raise SpecError(
                f"metric {m.name!r} needs predicted probabilities but {target.__name__} has no "
                "predict_proba",
                field=f"{spec.metric_field(i)}.name",
            )
    return factory


def _check_resource(spec: Spec, cls: type) -> None:
    """Early stopping with resource ``auto`` needs a model that grows, and owns its parameter."""
    es = spec.search.early_stopping
    if es is None or es.resource != "auto":
        return
    res = family_for(estimator_path(spec)).resource(cls)
    if res is None:
        raise SpecError(
            f"{cls.__name__} cannot learn in steps (no boosting rounds, warm_start or partial_fit); "
            "use resource: folds to stop poor trials after their first CV folds",
            field="search.early_stopping.resource",
        )
    for where, names in (("space", spec.space), ("model.params", spec.model.params)):
        if res.param in names:
            raise SpecError(
                f"{res.param} is the early-stopping resource ({res.unit}): early_stopping sets it, up to "
                f"max_resource ({es.max_resource}); remove it from {where}",
                field=f"{where}.{res.param}",
            )


def _colon_form(path: str) -> str:
    module, _, attr = path.rpartition(".")
    return f"{module}:{attr}"


def _check_values(spec: Spec, cls: type, inst: Any) -> None:
    """Try the space's values on the estimator (choices, and the ends of ranges) with its own
    parameter validation, so a value it rejects fails here, not in every trial."""
    if not hasattr(inst, "_validate_params") or not hasattr(inst, "_parameter_constraints"):
        return  # not a scikit-learn estimator with declared constraints
    from sklearn.base import clone

    for name, d in spec.space.items():
        if "__" in name:
            continue  # a pipeline step's parameter
        values = list(getattr(d, "values", None) or [d.low, d.high])
        for v in values:
            est = clone(inst)
            try:
                est.set_params(**{name: v})
                est._validate_params()
            except Exception as e:  # sklearn's InvalidParameterError is a ValueError
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise SpecError(f"value {v!r} is not accepted by {cls.__name__}: {msg}", field=f"space.{name}") from None


def _check_metrics(spec: Spec) -> None:
    for i, m in enumerate(spec.metrics):
        if spec.model.is_function and m.name not in METRICS:
            if m.mode is None:  # never guess a direction: a loss maximised is a silent disaster
                raise SpecError(
                    f"custom metric {m.name!r} needs a mode: write {{name: {m.name}, mode: min}} or mode: max",
                    field=spec.metric_field(i),
                )
            continue  # a training function may report any metric it likes
        known = METRICS.get(m.name)
        valid = sorted(k for k, v in METRICS.items() if spec.task in v.tasks)
        if known is None or spec.task not in known.tasks:
            what = "unknown metric" if known is None else "metric"
            tail = "" if known is None else f" does not apply to {spec.task}"
            raise SpecError(
                f"{what} {m.name!r}{tail}{did_you_mean(m.name, valid) if known is None else ''}; "
                f"expected one of {', '.join(valid)} for {spec.task}",
                field=f"{spec.metric_field(i)}.name",
            )
        natural = "max" if known.greater_is_better else "min"
        if m.mode is not None and m.mode != natural:
            better = "higher" if known.greater_is_better else "lower"
            raise SpecError(
                f"mode {m.mode!r} contradicts {m.name!r}, where {better} is better: the search would "
                f"pick the worst model; write mode: {natural} or leave mode out",
                field=f"{spec.metric_field(i)}.mode",
            )


def _check_task(spec: Spec, cls: type, inst: Any) -> None:
    from sklearn.base import is_classifier, is_regressor

    name = cls.__name__
    if spec.task == "classification" and is_regressor(inst):
        raise SpecError(f"{name} is a regressor but task is classification", field="model.estimator")
    if spec.task == "regression" and is_classifier(inst):
        raise SpecError(f"{name} is a classifier but task is regression", field="model.estimator")
    if spec.task != "clustering" and not hasattr(inst, "predict"):
        raise SpecError(f"{name} has no predict method", field="model.estimator")
    if spec.task == "clustering" and (is_classifier(inst) or is_regressor(inst)):
        kind = "classifier" if is_classifier(inst) else "regressor"
        raise SpecError(f"{name} is a {kind}, not a clusterer, but task is clustering", field="model.estimator")
    if spec.task == "clustering" and not (hasattr(inst, "fit_predict") or hasattr(inst, "predict")):
        raise SpecError(f"{name} cannot assign clusters (no fit_predict)", field="model.estimator")


# -- scoring -------------------------------------------------------------------------------
def score(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series | None,
    metrics: list[str],
    *,
    task: str,
    n_classes: int,
    labels: np.ndarray | None = None,
) -> dict[str, float]:
    """Compute each named metric for a fitted model on (X, y)."""
    out: dict[str, float] = {}
    pred = proba = None
    for name in metrics:
        m = METRICS.get(name)
        if m is None or m.needs == "cost":  # costs are measured around the fit (tunehouse.costs)
            continue
        if m.needs == "cluster":
            Xt = _transformed(model, X)
            lab = labels if labels is not None else model.predict(X)
            out[name] = float(m.fn(Xt, lab, n_classes))
        elif m.needs == "proba":
            if proba is None:
                proba = model.predict_proba(X)
            out[name] = float(m.fn(y, proba, n_classes))
        else:
            if pred is None:
                pred = model.predict(X)
            out[name] = float(m.fn(y, pred, n_classes))
    return out


def _transformed(model: Any, X: pd.DataFrame) -> Any:
    """Features as the clusterer saw them (after the pipeline's preprocessing)."""
    if isinstance(model, FunctionModel):  # its preprocessing, then its own pipeline's
        return _transformed(model.model, model.features(X))
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        return model[:-1].transform(X)
    return X


class FoldEnsemble:
    """The k models of a cross-validated trial, usable as one model.

    Classifiers average probabilities (or vote), regressors average predictions. This is
    what a CV trial checkpoints: the models its score came from, at no extra fitting cost.
    """

    def __init__(self, models: list[Any], task: str, n_classes: int = 0) -> None:
        self.models, self.task, self.n_classes = models, task, n_classes

    def predict(self, X):
        if self.task == "classification":
            if all(hasattr(m, "predict_proba") for m in self.models):
                return np.argmax(self._predict_proba(X), axis=1)
            votes = np.stack([np.asarray(m.predict(X)) for m in self.models]).astype(int)
            return np.array([np.bincount(col).argmax() for col in votes.T])
        return np.mean([np.asarray(m.predict(X), dtype=float) for m in self.models], axis=0)

    @property
    def predict_proba(self):
        """Mean of the fold models' probabilities; absent (like sklearn's) for regressors."""
        if self.task != "classification" or not all(hasattr(m, "predict_proba") for m in self.models):
            raise AttributeError("predict_proba")
        return self._predict_proba

    def _predict_proba(self, X):
        return np.mean([m.predict_proba(X) for m in self.models], axis=0)

    def __len__(self) -> int:
        return len(self.models)


class FunctionModel:
    """A training function's fitted model, as tunehouse scores, checkpoints and exports it.

    It takes the raw feature columns (applying the fitted ``preprocess`` first, so the model
    sees what the function saw) and answers in class codes like every other model here:
    ``predict`` maps the model's labels to codes, and ``predict_proba`` puts its columns in
    code order by the model's ``classes_`` (by sorted label order when it has none).
    """

    def __init__(self, model: Any, task: str, classes: Any = (), prep: Any = None) -> None:
        self.model, self.task, self.classes, self.prep = model, task, list(classes), prep

    def features(self, X):
        """The columns as the function's model was given them."""
        return X if self.prep is None else self.prep.transform(X)

    def predict(self, X):
        pred = self.model.predict(self.features(X))
        if self.task != "classification" or not self.classes:
            return np.asarray(pred)
        return self._codes(pred)

    @property
    def predict_proba(self):
        """Probabilities in code order; absent when the model has none (or is not a classifier)."""
        if self.task != "classification" or not self.classes or not hasattr(self.model, "predict_proba"):
            raise AttributeError("predict_proba")
        return self._predict_proba

    def _predict_proba(self, X):
        proba = np.asarray(self.model.predict_proba(self.features(X)), dtype=float)
        order = getattr(self.model, "classes_", None)
        cols = self._codes(sorted(self.classes) if order is None else order)
        if proba.ndim != 2 or proba.shape[1] != len(cols):
            raise ValueError(
                f"the training function's model gave {proba.shape[-1]} probability columns for "
                f"{len(cols)} classes (its classes_)"
            )
        out = np.zeros((len(proba), len(self.classes)))
        out[:, cols] = proba
        return out

    def _codes(self, labels: Any) -> np.ndarray:
        import pandas as pd

        labels = np.asarray(labels, dtype=object)  # NumPy scalars as Python values (for the message)
        codes = pd.Index(self.classes).get_indexer(labels)
        if (codes < 0).any():
            raise ValueError(
                f"the training function's model predicted {labels[codes < 0][0]!r}, which is not a label of "
                f"the target ({', '.join(map(repr, self.classes[:10]))}); fit it on fold.y_train, "
                "which holds the original labels"
            )
        return codes
