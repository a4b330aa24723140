"""The data contract: what a run's data looked like, and whether new data still looks like it.

``infer`` reads a data set's features (and target) once, when a run starts: each column's kind
(numeric or categorical) and dtype, whether it held nulls, its range or the categories seen,
the row count, and reference statistics for drift (numeric deciles, category frequencies).
The contract is JSON: stored in the experiment's catalog row (``experiments.contract``) and in
every export folder (``contract.json``, covered by the checksums).

``Contract.check`` builds a pandera ``DataFrameSchema`` from it (required columns, no extra
ones, nullability, ``in_range``, ``isin``) and validates lazily, so every failing column is
one ``Problem``; a column whose kind changed (numbers now text) is one ``dtype`` problem and
its other checks are skipped. Drift is the population stability index (PSI) of each column
against its reference bins: below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above
significant; moderate and significant are ``drift`` problems (computed from 500 new rows on). ``tunehouse check-data``
reports them all (exit 1). A missing or extra column or a changed kind is a *violation*,
which ``predict`` and ``retrain`` refuse; nulls, values outside the seen range, unseen
categories and drift are about the values (new data moves), and there they are warnings.

ARCHITECTURE.md puts the contract in ``data.py``'s remit; it is a module of its own so that
``data.py`` stays about loading and splitting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunehouse.errors import InputError

VERSION = 1
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
MAX_CATEGORIES = 1000  # a column with more distinct values gets no ``isin`` check
_EPS = 1e-4  # an empty bin's share, so the PSI stays finite
_EXAMPLES = 3
#: Fewer new rows than this get no drift figure: PSI over 10 bins of a small sample is mostly
#: noise (about 9/n when nothing moved: 0.075 at 120 rows).
MIN_DRIFT_ROWS = 500
#: Problems of the data's shape, which no model can take: the rest are about its values.
VIOLATIONS = ("missing_column", "extra_column", "dtype")


@dataclass
class Problem:
    """One thing wrong with new data: ``kind`` is missing_column | extra_column | dtype | nulls |
    range | categories | drift; ``message`` is one line."""

    kind: str
    column: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "message": self.message, **self.details}


@dataclass
class CheckResult:
    rows: int
    problems: list[Problem]

    @property
    def violations(self) -> list[Problem]:
        """The data's shape broke: ``predict`` and ``retrain`` refuse it."""
        return [p for p in self.problems if p.kind in VIOLATIONS]

    @property
    def warnings(self) -> list[Problem]:
        """Its values moved (nulls, range, categories, drift): ``predict`` and ``retrain`` warn."""
        return [p for p in self.problems if p.kind not in VIOLATIONS]

    @property
    def drift(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "drift"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "ok": self.ok, "violations": len(self.violations),
                "warnings": len(self.warnings), "drift": len(self.drift),
                "problems": [p.to_dict() for p in self.problems]}


def _kind(s: pd.Series) -> str:
    return "numeric" if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) else "categorical"


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _column(s: pd.Series) -> dict[str, Any]:
    col: dict[str, Any] = {"kind": _kind(s), "dtype": str(s.dtype), "nullable": bool(s.isna().any())}
    values = s.dropna()
    if col["kind"] == "numeric":
        v = values.astype(float)
        col["min"], col["max"] = (float(v.min()), float(v.max())) if len(v) else (None, None)
        edges = np.unique(np.quantile(v, np.linspace(0, 1, 11))) if len(v) else np.array([])
        col["bins"] = [float(e) for e in edges[1:-1]]  # inner decile edges
        col["ref"] = _shares(v.to_numpy(), col["bins"])
    else:
        freq = values.astype(str).value_counts(normalize=True)
        if len(freq) <= MAX_CATEGORIES:
            col["categories"] = sorted({_py(x) for x in values.unique()}, key=str)
        col["freq"] = {str(k): float(f) for k, f in freq.items()}
    return col


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    return [float(c) / max(1, len(values)) for c in counts]


def infer(X: pd.DataFrame, y: pd.Series | None = None, *, target: str | None = None,
          classes: list[Any] | None = None, ignore: list[str] | None = None,
          listed: bool = False) -> Contract:
    """The contract of the rows ``X`` (features) and ``y`` (the target, label-encoded with
    ``classes`` for classification: the contract keeps the labels). ``ignore``: source columns
    the spec drops (``data.drop``), never extra; ``listed``: the spec lists its features
    (``data.features``), so no other column is extra."""
    columns = {str(c): _column(X[c]) for c in X.columns}
    if y is not None and target is not None:
        labels = y if classes is None else pd.Series(np.asarray(classes, dtype=object)[y.to_numpy()], index=y.index)
        columns[target] = {**_column(labels.infer_objects()), "target": True}
    return Contract({"version": VERSION, "rows": len(X), "target": target, "columns": columns,
                     "ignore": list(ignore or []), "listed": bool(listed)})


class Contract:
    """A data contract (see the module's docstring); ``data`` is its JSON form."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return self.data["columns"]

    @property
    def target(self) -> str | None:
        return self.data.get("target")

    def to_json(self) -> str:
        return json.dumps(self.data, default=str, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        return cls(json.loads(text))

    def check(self, frame: pd.DataFrame, *, target: str | None = None, extra: bool = True) -> CheckResult:
        """Every problem of ``frame`` against the contract. The target column is checked when
        ``frame`` has it; ``extra=False`` ignores columns the contract does not name."""
        target = target or self.target
        problems: list[Problem] = []
        checked: dict[str, dict[str, Any]] = {}
        for name, col in self.columns.items():
            if name not in frame.columns:
                if not col.get("target"):
                    problems.append(Problem("missing_column", name, f"column {name!r} is missing"))
                continue
            if _kind(frame[name]) != col["kind"] and not frame[name].isna().all():
                problems.append(Problem("dtype", name, f"column {name!r}: {frame[name].dtype} values where the "
                                        f"contract has {col['kind']} ({col['dtype']})",
                                        {"expected": col["dtype"], "found": str(frame[name].dtype)}))
                continue
            checked[name] = col
        if extra and not self.data.get("listed"):
            known = {*self.columns, *self.data.get("ignore", []), target}
            problems += [Problem("extra_column", str(c), f"column {c!r} is not in the contract")
                         for c in frame.columns if str(c) not in known]
        problems += _validate(frame, checked)
        problems += [p for name, col in checked.items() if (p := _drift(name, col, frame[name])) is not None]
        return CheckResult(len(frame), problems)


def _validate(frame: pd.DataFrame, columns: dict[str, dict[str, Any]]) -> list[Problem]:
    """Nulls, ranges and categories, checked by pandera (lazily: every failure at once)."""
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    schema = pa.DataFrameSchema({name: pa.Column(nullable=col["nullable"], checks=_checks(pa, col), required=True)
                                 for name, col in columns.items()}, strict=False)
    try:
        schema.validate(frame[list(columns)], lazy=True)
    except SchemaErrors as e:
        return _problems(e.failure_cases, columns, len(frame))
    return []


def _checks(pa: Any, col: dict[str, Any]) -> list[Any]:
    if col["kind"] == "numeric" and col.get("min") is not None:
        return [pa.Check.in_range(col["min"], col["max"])]
    if col.get("categories") is not None:
        cats = col["categories"]
        return [pa.Check(lambda s, cats=cats: s.astype(str).isin([str(c) for c in cats]), name="categories")]
    return []


def _problems(cases: pd.DataFrame, columns: dict[str, dict[str, Any]], rows: int) -> list[Problem]:
    out = []
    for (name, check), group in cases.groupby(["column", "check"], sort=False):
        col, n = columns[name], len(group)
        examples = [_py(v) for v in pd.unique(group["failure_case"].dropna())[:_EXAMPLES]]
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else repr(v) for v in examples)
        if check == "not_nullable":
            out.append(Problem("nulls", name, f"column {name!r}: {n} null value(s) where the training data had none",
                               {"count": n}))
        elif str(check).startswith("in_range"):
            out.append(Problem("range", name, f"column {name!r}: {n} value(s) outside the seen range "
                               f"{col['min']:g}..{col['max']:g} (e.g. {shown})", {"count": n, "examples": examples}))
        elif str(check) == "categories":
            unseen = list(pd.unique(group["failure_case"].astype(str)))
            out.append(Problem("categories", name, f"column {name!r}: {n} value(s) in {len(unseen)} unseen "
                               f"categor{'y' if len(unseen) == 1 else 'ies'} (e.g. {shown})",
                               {"count": n, "unseen": len(unseen), "examples": examples}))
        else:
            out.append(Problem("dtype", name, f"column {name!r}: failed {check} ({n} of {rows} rows; e.g. {shown})",
                               {"count": n}))
    return out


def psi(expected: list[float], actual: list[float]) -> float:
    """The population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift(name: str, col: dict[str, Any], s: pd.Series) -> Problem | None:
    values = s.dropna()
    if len(values) < MIN_DRIFT_ROWS:
        return None
    if col["kind"] == "numeric":
        if "bins" not in col:
            return None
        value = psi(col["ref"], _shares(values.astype(float).to_numpy(), col["bins"]))
    else:
        ref = col.get("freq") or {}
        now = values.astype(str).value_counts(normalize=True)
        keys = sorted(set(ref) | set(now.index))
        value = psi([ref.get(k, 0.0) for k in keys], [float(now.get(k, 0.0)) for k in keys])
    if not math.isfinite(value) or value < PSI_MODERATE:
        return None
    level = "significant" if value >= PSI_SIGNIFICANT else "moderate"
    return Problem("drift", name, f"column {name!r}: {level} drift (PSI {value:.3f}; "
                   f"{PSI_MODERATE} moderate, {PSI_SIGNIFICANT} significant)", {"psi": round(value, 6), "level": level})


def load_contract(where: str, catalog: Any = None) -> Contract:
    """The contract of an export folder (``contract.json``) or of an experiment in ``catalog``."""
    folder = Path(where)
    if (folder / "tunehouse.json").is_file():
        path = folder / "contract.json"
        if not path.is_file():
            raise InputError(f"{folder}: this export has no contract.json (exported before data contracts); "
                             "export the trial again")
        return Contract.from_json(path.read_text())
    if catalog is None:
        raise InputError(f"{where}: not an export folder (no tunehouse.json), and no catalog to find an experiment in")
    from tunehouse.catalog import CatalogError

    try:
        exp = catalog.experiment(where)
    except CatalogError as e:
        raise InputError(str(e)) from None
    text = exp.get("contract")
    if not isinstance(text, str) or not text:
        raise InputError(f"experiment {exp['experiment_id']} has no data contract (it ran before contracts); "
                         "run it again")
    return Contract.from_json(text)


def check_file(where: str, path: str, catalog: Any = None) -> CheckResult:
    """``tunehouse check-data``: the file at ``path`` against the contract of ``where`` (an
    experiment id or an export folder)."""
    from tunehouse.data import read_table
    from tunehouse.errors import TunehouseError

    contract = load_contract(where, catalog)
    try:
        frame = read_table(Path(path))
    except TunehouseError as e:
        raise InputError(f"--input: {getattr(e, 'reason', e)}") from None
    return contract.check(frame)
