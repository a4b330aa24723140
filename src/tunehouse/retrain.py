"""Retraining when data changes: a champion export, new data, a warm-started child search, and
the decision to move the champion's tag, recorded in the catalog's ``promotions`` table.

The rules (one home for them):

- The champion is a tag's current holder (``exports`` table) or an export folder. Its
  experiment's recorded spec is the child's, with ``data.path`` replaced by the new file.
- Same fingerprint as the champion's training data: nothing to do, nothing written. A decision
  (promoted or kept) already recorded for this champion export and this fingerprint is given
  back as it is, so a cron job or a retried Ray job never searches twice for the same data.
- New data must pass the champion's data contract; a violation is a ``refused`` decision
  (recorded, nothing searched).
- Champion and challenger are scored on the same rows: the child's own test split of the new
  data (``evaluation.test_size`` and ``seed``), with the spec's objective (``models.score``).
  ``gain`` is challenger minus champion in the objective's direction; the challenger is
  promoted (the tag moves to its export) iff ``gain >= min_gain``.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunehouse.errors import DataError, InputError

#: The decisions ``retrain`` returns; the last three are recorded in ``promotions``.
DECISIONS = ("nothing_to_do", "promoted", "kept", "refused")


@dataclass
class Decision:
    """What ``retrain`` decided, and why (``line()`` is what the CLI prints)."""

    decision: str  # nothing_to_do | promoted | kept | refused
    reason: str
    tag: str | None
    champion_export_id: str | None
    champion_experiment_id: str
    champion_trial_id: str | None
    data_source: str
    data_fingerprint: str
    metric: str
    mode: str
    min_gain: float
    champion_score: float | None = None
    challenger_score: float | None = None
    gain: float | None = None
    challenger_experiment_id: str | None = None
    challenger_trial_id: str | None = None
    challenger_export_id: str | None = None
    export_path: str | None = None  # the challenger's export folder
    promotion_id: str | None = None
    decided_at: Any = None
    already_decided: bool = False  # given back from the promotions table, nothing rerun

    def line(self) -> str:
        """One line: the decision, both scores, the gain, min_gain and the reason."""
        head = f"{'already decided: ' if self.already_decided else ''}{self.decision.replace('_', ' ')}"
        if self.decision in ("nothing_to_do", "refused"):
            return f"{head}: {self.reason}"
        return (f"{head}: {self.metric} champion {_num(self.champion_score)} "
                f"({self.champion_experiment_id}/{self.champion_trial_id}), challenger "
                f"{_num(self.challenger_score)} ({self.challenger_experiment_id}/{self.challenger_trial_id}), "
                f"gain {_num(self.gain, sign=True)}, min_gain {_num(self.min_gain)}: {self.reason}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decided_at"] = None if self.decided_at is None else str(self.decided_at)
        return out

    @property
    def exit_code(self) -> int:
        """0 for nothing to do, promoted and kept; 1 for refused: the data broke the contract, a
        finding (recorded in ``promotions``) as ``check-data``'s exit 1 is, not bad input."""
        return 1 if self.decision == "refused" else 0


def _num(v: float | None, *, sign: bool = False) -> str:
    return "n/a" if v is None else (f"{v:+.4g}" if sign else f"{v:.4g}")


@dataclass
class _Champion:
    export_id: str | None
    tag: str | None
    path: Path
    model: Any  # export.ExportedModel
    experiment: dict[str, Any]


def retrain(
    champion: str,
    data: str | os.PathLike[str],
    *,
    catalog: Any = None,
    num_samples: int | None = None,
    min_gain: float = 0.0,
    out: str | os.PathLike[str] | None = None,
    experiment_id: str | None = None,
    **run_kwargs: Any,
) -> Decision:
    """Retrain ``champion`` on ``data`` and promote the challenger if it is better enough.

    Args:
        champion: a tag (its current holder in the catalog's exports) or an export folder.
        data: the new CSV or Parquet file (the same columns as the champion's data).
        catalog: a ``Catalog`` or its URI (default ``$TUNEHOUSE_CATALOG`` or ``./tunehouse-catalog``).
        num_samples: the child search's ``num_samples`` (default: the champion experiment's).
        min_gain: the challenger must beat the champion by at least this (>= 0), in the
            objective's direction, to be promoted.
        out: the challenger's export folder (default: ``<champion folder's parent>/<child id>``).
        experiment_id: fix the child experiment's id (``tunehouse submit`` chooses it).
        run_kwargs: ``driver.run``'s (backend, stop, on_progress, address, ...).

    Returns:
        The ``Decision``; ``promoted``, ``kept`` and ``refused`` are recorded in ``promotions``.

    Raises:
        InputError / DataError / SpecError: an unknown tag or folder, unreadable new data, a
            champion that cannot be retrained on a file (nothing is written then).
        RunError: the child search failed.
    """
    from tunehouse.catalog import Catalog
    from tunehouse.driver import DEFAULT_CATALOG

    if not (isinstance(min_gain, (int, float)) and math.isfinite(min_gain) and min_gain >= 0):
        raise InputError(f"--min-gain: expected a number >= 0, got {min_gain!r}")
    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog or os.environ.get("TUNEHOUSE_CATALOG",
                                                                                         DEFAULT_CATALOG))
    champ = resolve_champion(cat, champion)
    spec = child_spec(champ.experiment, data, num_samples)
    from tunehouse.validate import validate

    dataset, splits = validate(spec)  # the child's own load and split, so its fingerprint
    exp = champ.experiment
    metric, mode = exp["objective"], exp["mode"]
    base = Decision(
        decision="nothing_to_do", reason="", tag=champ.tag, champion_export_id=champ.export_id,
        champion_experiment_id=exp["experiment_id"], champion_trial_id=champ.model.metadata.get("trial_id"),
        data_source=dataset.source, data_fingerprint=dataset.fingerprint, metric=metric, mode=mode,
        min_gain=float(min_gain))
    if dataset.fingerprint == exp.get("dataset_fingerprint"):
        base.reason = (f"{Path(dataset.source).name} has the same fingerprint as the data "
                       f"{exp['experiment_id']} was trained on")
        return base
    earlier = _decided(cat, champ.export_id, dataset.fingerprint)
    if earlier is not None:
        return earlier
    _check_scorable(spec, splits, metric)
    violations = _check_contract(str(champ.path), cat, dataset.source, dataset.target)
    if violations:
        base.decision = "refused"
        base.reason = (f"{Path(dataset.source).name} breaks the data contract of {exp['experiment_id']}: "
                       + "; ".join(violations[:3]) + (f"; and {len(violations) - 3} more" if len(violations) > 3
                                                       else ""))
        return _record(cat, base)
    return _challenge(cat, champ, spec, dataset, splits, base, out=out, experiment_id=experiment_id,
                      run_kwargs=run_kwargs)


def resolve_champion(cat: Any, champion: str) -> _Champion:
    """The champion: a tag's current holder, or an export folder (``tunehouse.json``).

    Raises:
        InputError: no export holds the tag, the folder is not an export, or its experiment is
            not in this catalog.
    """
    from tunehouse.catalog import CatalogError
    from tunehouse.errors import did_you_mean
    from tunehouse.export import META, load_export

    folder = Path(champion)
    exports = cat.exports()
    if (folder / META).is_file():
        path = folder.resolve()
        rows = exports[exports.path == str(path)] if not exports.empty else exports
        row = rows.iloc[0].to_dict() if len(rows) else None
        tag = row["tag"] if row is not None and row["current"] and isinstance(row["tag"], str) else None
    else:
        if folder.exists() or os.sep in champion:
            raise InputError(f"{champion} is not an export folder (no {META}) nor a tag")
        held = exports[exports.tag == champion] if not exports.empty else exports
        if held.empty:
            tags = [] if exports.empty else sorted(set(exports.tag.dropna()))
            raise InputError(f"no export holds the tag {champion!r} in {cat.uri}{did_you_mean(champion, tags)}"
                             + (f"; tags: {', '.join(tags)}" if tags else ""))
        row = held.iloc[0].to_dict()
        path, tag = Path(row["path"]), champion
    model = load_export(path)
    try:
        exp = cat.experiment(model.metadata["experiment_id"])
    except CatalogError as e:
        raise InputError(f"the champion {champion}: {e}") from None
    return _Champion(export_id=None if row is None else row["export_id"], tag=tag, path=path, model=model,
                     experiment=exp)


def child_spec(exp: dict[str, Any], data: str | os.PathLike[str], num_samples: int | None = None) -> Any:
    """The champion experiment's recorded spec with ``data.path`` the new file (absolute), in its
    text too, so the child's recorded spec is the one it ran (``resume`` finds the new data).

    Raises:
        InputError: the champion was trained on a built-in data set, not a file.
        SpecError: a bad ``num_samples``.
    """
    import yaml

    from tunehouse.driver import recorded_spec
    from tunehouse.spec import override_num_samples, parse_spec

    recorded = recorded_spec(exp)
    if recorded.data.path is None:
        raise InputError(f"experiment {exp['experiment_id']} was trained on sklearn:{recorded.data.sklearn}, "
                         "not a file; retrain --data replaces a spec's data.path")
    path = Path(data).resolve()
    doc = yaml.safe_load(exp["spec_text"])
    doc["data"]["path"] = str(path)
    spec = parse_spec(yaml.safe_dump(doc, sort_keys=False), file=f"the spec of {exp['experiment_id']} with --data")
    if recorded.path is not None:
        spec = spec.located(recorded.path)  # a training function imports from where it was
    n = num_samples or recorded.search.num_samples  # default: what the champion's search ran
    return override_num_samples(spec, n) if n else spec


def _check_scorable(spec: Any, splits: Any, metric: str) -> None:
    """Both models are scored on the test rows with the objective: refuse what has neither."""
    from tunehouse.metrics import METRICS

    m = METRICS.get(metric)
    if spec.task == "clustering" or m is None or m.needs == "cost":
        raise InputError(f"retrain scores the objective {metric!r} on held-out rows, which a "
                         f"{'clustering search' if spec.task == 'clustering' else 'measured or unknown metric'} "
                         "cannot be; compare such experiments with tunehouse compare")
    if splits.X_test is None or not len(splits.X_test):
        raise DataError("is 0: retrain needs held-out rows of the new data to score both models on",
                        field="evaluation.test_size")


def _check_contract(where: str, cat: Any, source: str, target: str | None) -> list[str]:
    """The new data's violations of the champion's data contract, one line each (none: it
    passes; its values' problems and drift do not stop a retrain: new data moves)."""
    from tunehouse import contract
    from tunehouse.data import read_table

    result = contract.load_contract(where, cat).check(read_table(Path(source)), target=target)
    return [p.message for p in result.violations]


def _decided(cat: Any, export_id: str | None, fingerprint: str) -> Decision | None:
    """A promoted or kept decision already recorded for this champion export and this data."""
    if export_id is None:
        return None
    df = cat.promotions()
    if df.empty:
        return None
    hit = df[(df.champion_export_id == export_id) & (df.data_fingerprint == fingerprint)
             & df.decision.isin(["promoted", "kept"])]
    if hit.empty:
        return None
    row = hit.iloc[0].to_dict()
    fields = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
              if k in Decision.__dataclass_fields__}
    return Decision(**fields, already_decided=True)


def _challenge(cat: Any, champ: _Champion, spec: Any, dataset: Any, splits: Any, base: Decision, *,
               out: Any, experiment_id: str | None, run_kwargs: dict[str, Any]) -> Decision:
    """Run the warm-started child search, export its best, score both, decide, record."""
    from tunehouse.driver import continue_experiment
    from tunehouse.export import export, load_export, move_tag

    exp_id = base.champion_experiment_id
    result = continue_experiment(exp_id, spec=spec, catalog=cat.uri, experiment_id=experiment_id, **run_kwargs)
    folder = Path(out) if out is not None else champ.path.parent / result.experiment_id
    export(cat, result.experiment_id, folder, trial=result.best.trial_id)
    challenger = load_export(folder)
    exports = cat.exports()
    row = exports[exports.path == str(folder.resolve())].iloc[0]
    base.challenger_experiment_id, base.challenger_trial_id = result.experiment_id, result.best.trial_id
    base.challenger_export_id, base.export_path = row["export_id"], str(folder.resolve())
    base.champion_score = _score(champ.model, spec, dataset, splits, base.metric)
    base.challenger_score = _score(challenger, spec, dataset, splits, base.metric)
    diff = base.challenger_score - base.champion_score
    base.gain = diff if base.mode == "max" else -diff
    n = len(splits.X_test)
    if base.gain >= base.min_gain:
        base.decision = "promoted"
        if champ.tag:
            move_tag(cat, base.challenger_export_id, champ.tag)
            moved = f"tag {champ.tag!r} moved to {base.export_path}"
        else:
            moved = f"the champion held no tag, so none moved; the challenger is {base.export_path}"
        base.reason = f"the challenger is better by at least min_gain on {n} held-out rows; {moved}"
    else:
        base.decision = "kept"
        base.reason = (f"the challenger is not better by min_gain on {n} held-out rows; "
                       + (f"tag {champ.tag!r} stays on {champ.path}" if champ.tag else f"the champion stays {champ.path}"))
    return _record(cat, base)


def _score(model: Any, spec: Any, dataset: Any, splits: Any, metric: str) -> float:
    """An export's ``metric`` on the held-out rows of the new data (``models.score``).

    The new data's class codes are translated into the model's own (its recorded classes), so
    a champion trained on other labels is scored on what its codes mean.
    """
    import numpy as np
    import pandas as pd

    from tunehouse.models import score

    X = model.check_columns(splits.X_test, ignore_extra=True)
    y = splits.y_test
    classes = model.metadata.get("classes")
    if spec.task == "classification" and classes is not None:
        labels = np.asarray(dataset.classes, dtype=object)[np.asarray(y, dtype=int)]
        index = {str(c): i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in labels if str(v) not in index})
        if unknown:
            raise DataError(f"the new data has class label(s) {', '.join(unknown[:5])} that the champion "
                            f"({model.metadata['experiment_id']}) never saw; its labels: "
                            f"{', '.join(map(str, classes))}", field="data.target")
        y = pd.Series([index[str(v)] for v in labels], index=y.index, name=y.name)
        n_classes = len(classes)
    else:
        n_classes = len(dataset.classes or [])
    return float(score(model.model, X, y, [metric], task=spec.task, n_classes=n_classes)[metric])


def _record(cat: Any, decision: Decision) -> Decision:
    """Append the decision to the ``promotions`` table (one atomic part) and return it."""
    from tunehouse.catalog.schema import now, to_table
    from tunehouse.catalog.writer import parquet_bytes, part_name

    decision.promotion_id = uuid.uuid4().hex[:12]
    decision.decided_at = now()
    row = {k: v for k, v in asdict(decision).items() if k not in ("export_path", "already_decided")}
    row["updated_at"] = decision.decided_at
    cat.storage.write_atomic(part_name("promotions", decision.champion_experiment_id),
                             parquet_bytes(to_table("promotions", [row])))
    return decision
