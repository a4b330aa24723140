"""Data sources, validation, splits and the dataset fingerprint.

A ``Dataset`` is loaded once by the driver (and shared with every trial through Ray's
object store). Nothing here fits a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunehouse.errors import DataError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.spec import Spec

#: Built-in data sets that ship inside scikit-learn (no download).
SKLEARN_DATASETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
    "digits": "load_digits",
}


@dataclass
class Dataset:
    """Features, target and what we know about them.

    For classification the target is label-encoded to 0..k-1 and ``classes`` keeps the
    original labels, so every model family sees the same integer labels.
    """

    X: pd.DataFrame
    y: pd.Series | None
    source: str
    target: str | None
    fingerprint: str
    classes: list[Any] | None = None
    categorical: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return list(self.X.columns)

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.X.columns if c not in self.categorical]


@dataclass
class Splits:
    """Training rows (searched over) and test rows (scored once, for the best trial)."""

    X_train: pd.DataFrame
    y_train: pd.Series | None
    X_test: pd.DataFrame | None = None
    y_test: pd.Series | None = None


def load_dataset(spec: Spec) -> Dataset:
    """Read and validate the data a spec names.

    Raises:
        DataError: naming the ``data.*`` field and what was expected.
    """
    d = spec.data
    if d.sklearn is not None:
        from sklearn import datasets

        bunch = getattr(datasets, SKLEARN_DATASETS[d.sklearn])(as_frame=True)
        frame = bunch.frame
        target = d.target or "target"
        source = f"sklearn:{d.sklearn}"
        if target not in frame.columns:
            raise DataError(
                f"column {target!r} not in {source}{did_you_mean(target, frame.columns)}",
                field="data.target",
            )
    else:
        path = Path(d.path)
        if not path.is_absolute():
            path = spec.base_dir / path
        frame = read_table(path)
        source = str(path)
        target = d.target
        if target is None and spec.task != "clustering":
            raise DataError(f"a target column is needed for {spec.task}", field="data.target")
        if target is not None and target not in frame.columns:
            raise DataError(
                f"column {target!r} not in {path.name}{did_you_mean(target, frame.columns)}; "
                f"columns: {', '.join(map(str, frame.columns[:20]))}",
                field="data.target",
            )
    return _prepare(frame, target, spec, source)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame with a clear error for every failure."""
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as e:  # e.g. a file name longer than the file system allows
        raise DataError(f"bad data path: {e.strerror or e}", field="data.path") from None
    if not exists:
        raise DataError(f"file not found: {path}", field="data.path")
    if is_dir:
        raise DataError(f"{path} is a directory, expected a .csv or .parquet file", field="data.path")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(
                f"unsupported file type {suffix or '(none)'!r} for {path.name}; expected .csv or .parquet",
                field="data.path",
            )
    except DataError:
        raise
    except Exception as e:  # pandas/pyarrow raise many types for a bad file
        raise DataError(f"cannot read {path.name}: {str(e).splitlines()[0]}", field="data.path") from None
    if frame.empty:
        raise DataError(f"{path.name} has no rows", field="data.path")
    return frame


def _prepare(frame: pd.DataFrame, target: str | None, spec: Spec, source: str) -> Dataset:
    task = spec.task
    if spec.data.features is not None:
        missing = [c for c in spec.data.features if c not in frame.columns]
        if missing:
            raise DataError(
                f"feature column {missing[0]!r} not in the data{did_you_mean(missing[0], frame.columns)}",
                field="data.features",
            )
        feats = list(spec.data.features)
    else:
        feats = [c for c in frame.columns if c != target]
    if target in feats:
        raise DataError(f"the target {target!r} is also listed as a feature", field="data.features")
    if not feats:
        raise DataError("no feature columns", field="data.features")
    X = frame[feats].copy()
    X.columns = [str(c) for c in X.columns]
    categorical = _check_columns(X)
    if categorical and not (spec.preprocess and spec.preprocess.onehot):
        raise DataError(
            f"column {categorical[0]!r} holds text; set preprocess.onehot: true to encode it "
            "or drop it from data.features",
            field="data.features",
        )
    numeric_cols = [c for c in X.columns if c not in categorical]
    if X[numeric_cols].isna().any().any() and not (spec.preprocess and spec.preprocess.impute):
        if spec.model.estimator != "xgboost" and not spec.model.is_function:
            col = X[numeric_cols].columns[X[numeric_cols].isna().any()][0]
            raise DataError(
                f"column {col!r} has missing values; set preprocess.impute (mean, median, "
                "most_frequent) or use model: xgboost",
                field="preprocess.impute",
            )

    y = None
    classes = None
    if target is not None and task != "clustering":
        y = frame[target]
        if y.isna().any():
            raise DataError(
                f"target {target!r} has {int(y.isna().sum())} missing values", field="data.target"
            )
        if task == "regression":
            if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
                raise DataError(
                    f"regression needs a numeric target; {target!r} is {y.dtype}", field="data.target"
                )
            y = y.astype(float)
        else:
            codes, uniques = pd.factorize(y, sort=True)
            if len(uniques) < 2:
                raise DataError(
                    f"classification needs at least 2 classes; target {target!r} has "
                    f"{len(uniques)} ({list(uniques)[:3]})",
                    field="data.target",
                )
            if len(uniques) > max(50, len(y) // 2) and pd.api.types.is_float_dtype(y):
                raise DataError(
                    f"target {target!r} looks continuous ({len(uniques)} distinct floats); "
                    "did you mean task: regression?",
                    field="task",
                )
            classes = [_py(u) for u in uniques]
            y = pd.Series(codes, index=y.index, name=target)
    fp = fingerprint(X, y)
    return Dataset(X=X, y=y, source=source, target=target, fingerprint=fp, classes=classes,
                   categorical=categorical)


def _check_columns(X: pd.DataFrame) -> list[str]:
    """Return the text columns; refuse a column that mixes numbers and text."""
    categorical = []
    for c in X.columns:
        col = X[c]
        if pd.api.types.is_bool_dtype(col):
            X[c] = col.astype(float)
        elif pd.api.types.is_numeric_dtype(col):
            continue
        elif isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            values = col.dropna()
            numeric = pd.to_numeric(values, errors="coerce").notna()
            if 0 < numeric.sum() < len(values):
                bad = values[~numeric].iloc[0]
                raise DataError(
                    f"column {c!r} mixes numbers and text (e.g. {bad!r} among numbers); "
                    "clean it or give it one type",
                    field="data.features",
                )
            if len(values) and numeric.all():
                X[c] = pd.to_numeric(col)
            else:
                X[c] = col.astype(object)
                categorical.append(c)
        else:
            raise DataError(
                f"column {c!r} has unsupported type {col.dtype}", field="data.features"
            )
    return categorical


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def fingerprint(X: pd.DataFrame, y: pd.Series | None) -> str:
    """Content hash of features and target: same rows, columns and values, same fingerprint."""
    h = hashlib.sha256()
    h.update("\x1f".join(f"{c}:{X[c].dtype}" for c in X.columns).encode())
    h.update(pd.util.hash_pandas_object(X, index=False).values.tobytes())
    if y is not None:
        h.update(pd.util.hash_pandas_object(y, index=False).values.tobytes())
    return h.hexdigest()


def split(dataset: Dataset, *, task: str, test_size: float, seed: int) -> Splits:
    """Hold out the test rows (stratified for classification), seeded."""
    if task == "clustering" or test_size == 0 or dataset.y is None:
        return Splits(dataset.X, dataset.y)
    from sklearn.model_selection import train_test_split

    stratify = dataset.y if task == "classification" else None
    try:
        X_tr, X_te, y_tr, y_te = train_test_split(
            dataset.X, dataset.y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as e:
        raise DataError(f"cannot split off a test set: {e}", field="evaluation.test_size") from None
    return Splits(X_tr, y_tr, X_te, y_te)


def check_data(spec: Spec) -> Dataset:
    """Load and validate the data once; the driver reuses what validation loaded."""
    if spec._dataset is None:
        ds = load_dataset(spec)
        _check_evaluation(spec, ds)
        spec._dataset = ds
    return spec._dataset


def _check_evaluation(spec: Spec, ds: Dataset) -> None:
    """The folds and splits must be possible on these rows (else every trial would fail)."""
    ev = spec.evaluation
    if spec.task == "clustering" or ds.y is None:
        return
    n_train = int(len(ds.y) * (1 - ev.test_size))
    if ev.cv is not None:
        if spec.task == "classification":
            train_counts = (ds.y.value_counts() * (1 - ev.test_size)).astype(int)
            smallest = int(train_counts.min())
            if smallest < ev.cv:
                raise DataError(
                    f"cv={ev.cv} folds need at least {ev.cv} training rows of every class; the "
                    f"smallest class has {smallest}",
                    field="evaluation.cv",
                )
        elif n_train < ev.cv:
            raise DataError(f"cv={ev.cv} folds need at least {ev.cv} training rows; there are {n_train}",
                            field="evaluation.cv")
    if ev.holdout is not None and int(n_train * ev.holdout) < 1:
        raise DataError(f"holdout={ev.holdout} leaves no validation rows of {n_train}", field="evaluation.holdout")
