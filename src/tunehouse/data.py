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
from tunehouse.spec import SKLEARN_DATASETS

if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.spec import Spec

@dataclass
class Dataset:
    """Features, target and what we know about them.

    For classification the target is label-encoded to 0..k-1 and ``classes`` keeps the
    original labels in code order, so every model family sees the same integer labels: sorted
    order, except that a binary target's positive class always has code 1.
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

    @property
    def positive_class(self) -> Any:
        """Binary classification: the label with code 1 (``data.positive_class``, else the
        later label in sorted order), which precision, recall, f1 and roc_auc score; else None."""
        return self.classes[1] if self.classes is not None and len(self.classes) == 2 else None


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
    X = frame[_feature_columns(frame, target, spec)].copy()
    X.columns = [str(c) for c in X.columns]
    # columns tunehouse chose itself are screened for identifiers and dates; a column the spec
    # lists in data.features is the user's choice
    categorical = _check_columns(X, screen=spec.data.features is None, dropped=spec.data.drop or [])
    _check_preprocess(spec, X, categorical)
    if spec.data.positive_class is not None and task != "classification":
        raise DataError(f"positive_class applies to classification only (task: {task})",
                        field="data.positive_class")
    y = None
    classes = None
    if target is not None and task != "clustering":
        y, classes = _target(frame[target], target, spec)
    fp = fingerprint(X, y)
    return Dataset(X=X, y=y, source=source, target=target, fingerprint=fp, classes=classes,
                   categorical=categorical)


def _feature_columns(frame: pd.DataFrame, target: str | None, spec: Spec) -> list[Any]:
    """The feature columns: ``data.features``, else every column but the target and ``data.drop``."""
    drop = spec.data.drop or []
    for c in drop:
        if c not in frame.columns:
            raise DataError(f"column {c!r} not in the data{did_you_mean(c, frame.columns)}", field="data.drop")
        if c == target:
            raise DataError(f"{c!r} is the target; data.drop lists feature columns to leave out",
                            field="data.drop")
    if spec.data.features is not None:
        missing = [c for c in spec.data.features if c not in frame.columns]
        if missing:
            raise DataError(
                f"feature column {missing[0]!r} not in the data{did_you_mean(missing[0], frame.columns)}",
                field="data.features",
            )
        feats = list(spec.data.features)
    else:
        feats = [c for c in frame.columns if c != target and c not in drop]
    if target in feats:
        raise DataError(f"the target {target!r} is also listed as a feature", field="data.features")
    if not feats:
        raise DataError("no feature columns", field="data.features")
    return feats


def _check_preprocess(spec: Spec, X: pd.DataFrame, categorical: list[str]) -> None:
    """Text needs one-hot and gaps need an imputer, unless the model can take them as they are."""
    if spec.model.is_function:
        return  # a training function gets the raw columns (or preprocess's output) and copes itself
    if categorical and not (spec.preprocess and spec.preprocess.onehot):
        raise DataError(
            f"column {categorical[0]!r} holds text; set preprocess.onehot: true to encode it "
            "or drop it from data.features",
            field="data.features",
        )
    numeric_cols = [c for c in X.columns if c not in categorical]
    if X[numeric_cols].isna().any().any() and not (spec.preprocess and spec.preprocess.impute):
        from tunehouse.families import FAMILIES, family_for, resolve_shorthand

        if not family_for(resolve_shorthand(spec.model.estimator, spec.task)).handles_missing:
            col = X[numeric_cols].columns[X[numeric_cols].isna().any()][0]
            takes = " or ".join(f.shorthand for f in FAMILIES.values() if f.handles_missing and f.shorthand)
            raise DataError(
                f"column {col!r} has missing values; set preprocess.impute (mean, median, "
                f"most_frequent) or use a model that takes them (model: {takes})",
                field="preprocess.impute",
            )


def _target(y: pd.Series, target: str, spec: Spec) -> tuple[pd.Series, list[Any] | None]:
    """The target as the models see it: floats (regression) or class codes 0..k-1 (and the labels)."""
    if y.isna().any():
        raise DataError(f"target {target!r} has {int(y.isna().sum())} missing values", field="data.target")
    if spec.task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"regression needs a numeric target; {target!r} is {y.dtype}", field="data.target")
        return y.astype(float), None
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
    if spec.data.positive_class is not None:
        positive = _positive_index(classes, spec.data.positive_class, target)
        if positive == 0:  # the positive class gets code 1, whatever its place in sorted order
            classes, codes = classes[::-1], 1 - codes
    return pd.Series(codes, index=y.index, name=target), classes


def _positive_index(classes: list[Any], wanted: Any, target: str) -> int:
    """Where ``data.positive_class`` is among the labels (YAML's unquoted yes/no read as booleans)."""
    shown = ", ".join(repr(c) for c in classes[:20]) + (", ..." if len(classes) > 20 else "")
    if len(classes) != 2:
        raise DataError(
            f"positive_class needs a binary target; {target!r} has {len(classes)} classes: {shown}",
            field="data.positive_class",
        )
    spellings = {True: ("yes", "true", "on", "y"), False: ("no", "false", "off", "n")}
    for i, c in enumerate(classes):
        if c == wanted and isinstance(c, bool) == isinstance(wanted, bool):
            return i
    for i, c in enumerate(classes):
        if isinstance(wanted, str) and not isinstance(c, str) and str(c) == wanted:
            return i  # positive_class: "1" for integer labels
        if isinstance(wanted, bool) and isinstance(c, str) and c.lower() in spellings[wanted]:
            return i  # positive_class: yes (a boolean to YAML) for the label 'yes'
    raise DataError(
        f"positive_class {wanted!r} is not a label of {target!r}; labels seen: {shown}",
        field="data.positive_class",
    )


#: A text column is refused as an identifier or free text when it has at least this share of
#: distinct values among its non-empty rows (and more than ``_ID_MIN_ROWS`` of them): one-hot
#: would give every row its own column, and a model could learn the rows by heart.
_ID_DISTINCT_SHARE = 0.9
_ID_MIN_ROWS = 20


def _check_columns(X: pd.DataFrame, *, screen: bool = False, dropped: list[str] | None = None) -> list[str]:
    """Return the text columns; refuse a column that mixes numbers and text.

    With ``screen``, also refuse (all in one message) the columns that look like identifiers,
    free text or dates, which one-hot encoding would turn into a column per value.
    """
    categorical, suspects = [], []
    for c in X.columns:
        col = X[c]
        if pd.api.types.is_bool_dtype(col):
            X[c] = col.astype(float)
        elif pd.api.types.is_numeric_dtype(col):
            continue
        elif screen and (pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col)):
            suspects.append((c, "dates"))
        elif _is_text(col):
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
                continue
            X[c] = col.astype(object)
            categorical.append(c)
            if screen and _looks_like_dates(values):
                suspects.append((c, "dates"))
            elif screen and len(values) > _ID_MIN_ROWS and values.nunique() >= _ID_DISTINCT_SHARE * len(values):
                suspects.append((c, "text, unique per row"))
        else:
            raise DataError(
                f"column {c!r} has unsupported type {col.dtype}", field="data.features"
            )
    if suspects:
        listed = ", ".join(f"{c!r} ({why})" for c, why in suspects)
        drop = ", ".join([*(dropped or []), *(c for c, _ in suspects)])
        raise DataError(
            f"column(s) {listed} look like identifiers, free text or dates (a model can learn the "
            "rows by heart from them, and one-hot encoding makes a column per value); leave them "
            f"out with data.drop: [{drop}] (or name the columns to use in data.features)",
            field="data.drop",
        )
    return categorical


def _is_text(col: pd.Series) -> bool:
    return (
        isinstance(col.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(col)
        or pd.api.types.is_string_dtype(col)
    )


def _looks_like_dates(values: pd.Series) -> bool:
    """Do (almost) all of these strings parse as dates in one format with a year and a month?"""
    import warnings

    from pandas.tseries.api import guess_datetime_format

    sample = values.head(1000).astype(str)
    formats = set()
    with warnings.catch_warnings():  # pandas warns about each format it considers
        warnings.simplefilter("ignore")
        for v in sample.drop_duplicates().head(20):
            for dayfirst in (False, True):
                fmt = guess_datetime_format(v, dayfirst=dayfirst)
                if fmt and ("%Y" in fmt or "%y" in fmt) and any(m in fmt for m in ("%m", "%b", "%B")):
                    formats.add(fmt)
        for fmt in sorted(formats):
            try:
                parsed = pd.to_datetime(sample, format=fmt, errors="coerce", utc=True)
            except (ValueError, TypeError):
                continue
            if parsed.notna().mean() >= 0.95:
                return True
    return False


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


def load_split(spec: Spec) -> tuple[Dataset, Splits]:
    """Load a spec's data, check its folds are possible, and hold out the test rows: what a run
    searches on and what an export refits on are the same rows, split the same way.

    Raises:
        DataError: naming the ``data.*`` or ``evaluation.*`` field and what was expected.
    """
    dataset = load_dataset(spec)
    check_evaluation(spec, dataset)
    return dataset, split(dataset, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)


def check_evaluation(spec: Spec, ds: Dataset) -> None:
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
