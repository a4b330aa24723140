"""A trial -> a self-describing, verifiable export folder, and loading it back.

The folder holds the model in its family's native format (``tunehouse.families``; skops for
scikit-learn and anything without one), an MLflow model layout, ``tunehouse.json`` (provenance and the SHA-256
of every file) and ``MODEL_CARD.md``. Loading verifies every checksum before it reads a
model, and loads skops files with exactly the types recorded at export.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunehouse.errors import InputError, TunehouseError, TunehouseWarning, did_you_mean

EXPORT_SCHEMA_VERSION = 1
META = "tunehouse.json"
CARD = "MODEL_CARD.md"


class ExportError(TunehouseError):
    """An export cannot be written or loaded (the message says which file and why)."""


class CheckpointPrunedError(ExportError):
    """A ``--no-refit`` export of a trial whose checkpoint the retention policy deleted."""

    exit_code = 2  # the request, not the catalog, is at fault: a refit export works


class ExportInputError(ExportError, InputError):
    """Bad input to an export's ``predict``: the rows (columns, values, shape) or the folder."""


class ExportWarning(TunehouseWarning):
    """An export was written or loaded with a caveat the message names (it still works)."""


@dataclass
class _Training:
    """What an export records of its training data: read from the data, or from the catalog."""

    features: list[dict[str, str]]  # name and dtype, in training order
    target: str | None
    classes: list[Any] | None
    source: str
    fingerprint: str
    verified: bool  # the data was loaded and matched the recorded fingerprint
    rows: dict[str, int]  # train and test rows; empty when the data was not found
    positive_class: Any = None  # binary classification: the label scored as positive


# -- writing ---------------------------------------------------------------------------------
def export(
    catalog: Any,
    experiment: str,
    out: str | os.PathLike[str],
    *,
    trial: str | None = None,
    metric: str | None = None,
    where: str | None = None,
    refit: bool | None = None,
    joblib_copy: bool = False,
    tag: str | None = None,
    mlflow: bool = True,
) -> dict[str, Any]:
    """Export one trial (the best by default) of an experiment into the folder ``out``.

    Args:
        catalog: a ``Catalog`` or its URI.
        experiment: experiment id, id prefix or name.
        out: the export folder; must not exist yet (it appears whole, or not at all).
        trial: a trial id (default: the best by the objective, or by ``metric``).
        where: pick the best among the trials meeting this SQL condition over the trials'
            columns (``"predict_ms < 5"``); not with ``trial``.
        refit: refit on all training rows (default: the spec's ``refit``, true unless set).
        joblib_copy: also write ``model.joblib``.
        tag: move this tag (e.g. ``production``) to the export in the catalog.
        mlflow: write an MLflow model layout in ``mlflow/`` when mlflow is installed.

    Returns:
        The metadata written to ``tunehouse.json``.

    Raises:
        ExportError / CatalogError: unknown or failed trial, missing checkpoint, checksum
            mismatch, changed data. Nothing is written then.
        DataError: the training data is gone and a refit needs it.

    Without a refit, training data that cannot be loaded is not needed: the features are
    taken from the catalog, and an ``ExportWarning`` says that nothing was scored or checked.
    """
    from tunehouse.catalog import Catalog

    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ExportError(f"{out} already exists; choose a new --out folder")
    exp = cat.experiment(experiment)
    if where and trial is not None:
        from tunehouse.errors import InputError

        raise InputError("--where picks a trial; give it or --trial, not both")
    row = _trial_row(cat, exp, trial, metric, where)
    spec = _spec(exp)
    params = row["_param_values"]
    do_refit = spec.refit if refit is None else refit
    resource = _resource(row)
    model = _trial_model(cat, row, spec, refit=do_refit)
    dataset, splits = _data_if_any(exp, spec, refit=do_refit)
    if do_refit:  # the same refit as the run's final one
        from tunehouse.trainable import make_payload

        model = _refit(exp, spec, make_payload(spec, dataset, splits), params, resource)
    test_metrics = _test_metrics(model, spec, dataset, splits)
    training = _training(exp, spec, dataset, splits)

    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        formats = _save_model(model, tmp, joblib_copy=joblib_copy)
        if mlflow:
            example = splits.X_train.head(5) if splits is not None else None
            formats.update(_save_mlflow(model, tmp, example, training.features, formats["model"].get("trusted", [])))
        meta = _metadata(exp, row, spec, training, params, do_refit, test_metrics, formats)
        (tmp / CARD).write_text(_model_card(cat, exp, row, meta))
        if isinstance(exp.get("contract"), str) and exp["contract"]:  # checked by `predict`, `check-data`
            (tmp / "contract.json").write_text(exp["contract"])
        meta["files"] = {p: _sha256(tmp / p) for p in _files(tmp)}
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
        if out.exists():
            out.rmdir()  # an empty folder given as --out
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _record(cat, exp, row, out, meta, tag)
    return meta


def _test_metrics(model: Any, spec: Any, dataset: Any, splits: Any) -> dict[str, float]:
    """The exported model scored once on the test rows (none without a test split or data)."""
    if splits is None or splits.X_test is None or spec.task == "clustering":
        return {}
    from tunehouse.models import score

    return score(model, splits.X_test, splits.y_test, [m.name for m in spec.metrics], task=spec.task,
                 n_classes=len(dataset.classes or []))


def _trial_model(cat: Any, row: dict[str, Any], spec: Any, *, refit: bool) -> Any:
    """The trial's checkpointed model (None when it is refitted): verified always, unpickled only
    when it is what we export. An early-stopped trial kept no final model, and a pruned one's
    (``checkpoints.keep``) is deleted: they are only refitted."""
    if _pruned(row):
        if not refit:
            keep = spec.checkpoints
            policy = f"checkpoints.keep: {keep.keep}" + (f", best_n: {keep.best_n}" if keep.keep == "best" else "")
            raise CheckpointPrunedError(f"trial {row['trial_id']}'s checkpoint was pruned ({policy}); "
                                        "export it refitted (without --no-refit)")
        return None
    if row["status"] != "early_stopped":
        return _checkpoint_model(cat, row, load=not refit)
    if not refit:
        raise ExportError(f"trial {row['trial_id']} was stopped early at resource {_resource(row)}, so no model "
                          "of it was kept; export it refitted (without --no-refit)")
    return None


def _pruned(row: dict[str, Any]) -> bool:
    """Whether retention deleted the trial's checkpoint (null in rows written before the column)."""
    value = row.get("checkpoint_pruned")
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _resource(row: dict[str, Any]) -> int | None:
    """The resource a trial reached (early stopping), None without early stopping."""
    value = row.get("resource")
    return None if value is None or value != value else int(value)


def _refit(exp: dict[str, Any], spec: Any, payload: Any, params: dict[str, Any], resource: int | None) -> Any:
    """Refit the chosen configuration on all training rows, as the run's final refit did (with
    early stopping: at the trial's own resource)."""
    from tunehouse.trainable import refit

    if not spec.model.is_function:
        return refit(payload, params, resource)
    from tunehouse.recorded import function_dirs

    function_dirs(exp)  # where the run imported it
    try:
        model = refit(payload, params, resource)
    except ImportError as e:
        raise ExportError(f"cannot import the training function {spec.model.estimator!r}: {e}; export "
                          "from the spec's folder or put its module on PYTHONPATH (or use --no-refit)") from None
    except Exception as e:  # the user's function failed: one line, like a failed trial
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(f"refitting with {spec.model.estimator} failed: {type(e).__name__}: {first}") from None
    if model is None:
        raise ExportError(f"{spec.model.estimator} returns only metrics, so there is no model to refit "
                          "and export")
    return model


def _trial_row(cat: Any, exp: dict[str, Any], trial: str | None, metric: str | None,
               where: str | None = None) -> dict[str, Any]:
    from tunehouse.catalog import CatalogError
    from tunehouse.catalog.schema import decode_params

    raw = cat.trials(exp, raw=True)
    if trial is None:
        best = cat.best(exp["experiment_id"], metric=metric, where=where)
        trial = best["trial_id"]
    hit = raw[raw.trial_id == trial]
    if hit.empty:
        raise CatalogError(f"no trial {trial!r} in experiment {exp['experiment_id']}{did_you_mean(trial, raw.trial_id)}")
    row = hit.iloc[0].to_dict()
    if row["status"] not in ("terminated", "early_stopped"):
        why = f": {row['error']}" if isinstance(row.get("error"), str) else ""
        raise ExportError(f"trial {trial} is {row['status']}{why}; only a finished trial can be exported")
    row["_param_values"] = decode_params(row["params"])
    row["metrics"] = dict(row["metrics"] or [])
    return row


def _checkpoint_model(cat: Any, row: dict[str, Any], *, load: bool = True) -> Any:
    """Read a trial's checkpoint and check it against the SHA-256 the trial recorded.

    The catalog is a trust boundary: a checkpoint is a pickle, so it is only read from
    inside the catalog's ``checkpoints/`` and only unpickled when its hash matches.
    """
    uri = row.get("checkpoint_uri")
    if not isinstance(uri, str) or not uri:
        raise ExportError(f"trial {row['trial_id']} has no checkpoint (a training function that returned only metrics?)")
    if not uri.startswith("checkpoints/") or ".." in uri.split("/"):
        raise ExportError(f"trial {row['trial_id']}: checkpoint URI {uri!r} is outside the catalog's checkpoints/; refusing it")
    if not isinstance(row.get("checkpoint_sha256"), str):
        raise ExportError(f"trial {row['trial_id']}: no recorded SHA-256 for its checkpoint; refusing to unpickle it")
    from tunehouse.trainable import MODEL_FILE

    rel = f"{uri}/{MODEL_FILE}"
    try:
        data = cat.storage.read(rel)
    except (FileNotFoundError, OSError):
        raise ExportError(f"checkpoint missing: {cat.storage.full_uri(rel)}") from None
    want = row.get("checkpoint_sha256")
    got = hashlib.sha256(data).hexdigest()
    if want != got:
        raise ExportError(
            f"checkpoint checksum mismatch for {cat.storage.full_uri(rel)}: recorded {want[:12]}..., "
            f"found {got[:12]}...; the file changed since the trial wrote it"
        )
    return pickle.loads(data) if load else None  # verified against the hash the trial recorded


def _spec(exp: dict[str, Any]) -> Any:
    """The experiment's spec (``recorded.experiment_spec``)."""
    from tunehouse.recorded import experiment_spec

    return experiment_spec(exp)


def _data(exp: dict[str, Any], spec: Any = None):
    """Load the experiment's data (refused if its fingerprint changed) and split it as the run did."""
    from tunehouse.recorded import experiment_data

    spec = spec if spec is not None else _spec(exp)
    dataset, splits = experiment_data(spec)  # the rows and the split the run used
    if dataset.fingerprint != exp["dataset_fingerprint"]:
        raise ExportError(
            f"the data changed since the experiment ran ({dataset.source}: fingerprint "
            f"{dataset.fingerprint[:12]}... != recorded {exp['dataset_fingerprint'][:12]}...); re-run the search"
        )
    return spec, dataset, splits


def _data_if_any(exp: dict[str, Any], spec: Any, *, refit: bool) -> tuple[Any, Any]:
    """(dataset, splits); (None, None) when the data is gone and nothing needs it.

    A checkpoint export needs only the feature names and dtypes, which the catalog records; an
    experiment recorded before the catalog kept them still needs its data.
    """
    from tunehouse.errors import DataError

    try:
        _, dataset, splits = _data(exp, spec)
        return dataset, splits
    except DataError as e:
        if refit:
            raise DataError(f"{e.reason}; a refit needs the training data (restore it, or export the "
                            "trial's checkpoint as it is with --no-refit)", field=e.field) from None
        if not _recorded_features(exp):
            raise
        warnings.warn(ExportWarning(
            f"the training data could not be loaded ({e.reason}): exporting the checkpoint with the "
            "features recorded in the catalog, without test metrics and without checking the data's fingerprint"),
            stacklevel=3)
        return None, None


def _recorded_features(exp: dict[str, Any]) -> list[dict[str, str]]:
    pairs = exp.get("features")
    if pairs is None or isinstance(pairs, float):  # null: recorded before the column existed
        return []
    return [{"name": str(k), "dtype": str(v)} for k, v in pairs]


def _training(exp: dict[str, Any], spec: Any, dataset: Any, splits: Any) -> _Training:
    if dataset is not None:
        return _Training(
            features=[{"name": c, "dtype": str(dataset.X[c].dtype)} for c in dataset.X.columns],
            target=dataset.target if spec.task != "clustering" else None,
            classes=dataset.classes,
            source=_resolved(dataset.source),
            fingerprint=dataset.fingerprint,
            verified=True,
            rows={"train": len(splits.X_train), "test": 0 if splits.X_test is None else len(splits.X_test)},
            positive_class=dataset.positive_class,
        )
    target, classes = exp.get("target"), exp.get("classes")
    return _Training(
        features=_recorded_features(exp),
        target=target if isinstance(target, str) and spec.task != "clustering" else None,
        classes=json.loads(classes) if isinstance(classes, str) else None,
        source=_resolved(exp.get("dataset_source") or ""),
        fingerprint=exp["dataset_fingerprint"],
        verified=False,
        rows={},
        positive_class=_positive_class(exp, classes),
    )


def _positive_class(exp: dict[str, Any], classes: Any) -> Any:
    """The recorded positive class, typed as the labels are (the catalog keeps it as text)."""
    label = exp.get("positive_class")
    if not isinstance(label, str):
        return None
    for c in json.loads(classes) if isinstance(classes, str) else []:
        if str(c) == label:
            return c
    return label


def _resolved(source: str) -> str:
    """A file path without ``..`` or symlinks; a built-in data set or a URI as it is."""
    if not source or source.startswith("sklearn:") or "://" in source:
        return source
    return str(Path(source).resolve())


def _native_step(model: Any) -> tuple[Any, Any] | None:
    """(family, estimator) when a pipeline's estimator has a native format of its family's."""
    from tunehouse.families import family_for

    steps = getattr(model, "steps", None)
    if not steps:
        return None
    est = steps[-1][1]
    family = family_for(f"{type(est).__module__}.{type(est).__name__}")
    return (family, est) if family.native_format else None


def _save_model(model: Any, folder: Path, *, joblib_copy: bool) -> dict[str, Any]:
    """The model in its family's native format (plus the preprocessing in skops), else all skops."""
    import skops.io as sio

    formats: dict[str, Any] = {}
    native = _native_step(model)
    if native is not None:
        family, est = native
        entry = family.save_native(est, folder)
        sio.dump(_without_last_step(model), folder / "preprocess.skops")
        entry.update(preprocess="preprocess.skops", trusted=sio.get_untrusted_types(file=folder / "preprocess.skops"))
        formats["model"] = entry
    else:
        sio.dump(model, folder / "model.skops")
        formats["model"] = {"format": "skops", "file": "model.skops",
                            "trusted": sio.get_untrusted_types(file=folder / "model.skops")}
    if joblib_copy:
        import joblib

        joblib.dump(model, folder / "model.joblib")
        formats["joblib"] = {"format": "joblib", "file": "model.joblib"}
    return formats


def _untrusted(model: Any) -> list[str]:
    import skops.io as sio

    return sio.get_untrusted_types(data=sio.dumps(model))


def _without_last_step(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([*model.steps[:-1], ("model", "passthrough")])


def _save_mlflow(model: Any, folder: Path, example: pd.DataFrame | None, features: list[dict[str, str]],
                 trusted: list[str]) -> dict[str, Any]:
    try:
        import mlflow.sklearn
    except ImportError:
        return {}
    with warnings.catch_warnings():  # MLflow's schema hints are advice for its own users
        warnings.simplefilter("ignore")

        trusted = sorted(set(trusted) | set(_untrusted(model)))
        if example is not None:
            typed: dict[str, Any] = {"input_example": example}
        else:  # no data at hand: the signature from the recorded dtypes
            from mlflow.models import infer_signature

            empty = pd.DataFrame({f["name"]: pd.Series(dtype=f["dtype"]) for f in features})
            typed = {"signature": infer_signature(empty)}
        mlflow.sklearn.save_model(model, str(folder / "mlflow"), serialization_format="skops",
                                  skops_trusted_types=trusted, pip_requirements=_pip_requirements(trusted),
                                  **typed)
    return {"mlflow": {"format": "mlflow", "path": "mlflow", "version": mlflow.__version__}}


def _pip_requirements(trusted: list[str]) -> list[str]:
    """What the MLflow model needs to load and predict, pinned to the versions that wrote it.

    MLflow's own inference lists whatever this process has imported (pytest and polars, seen
    once). The skops flavor needs scikit-learn, skops and their NumPy, SciPy and pandas; a model
    holding a model family's types (its package) or tunehouse's own (``FoldEnsemble``) needs those too. MLflow adds itself.
    """
    from importlib.metadata import PackageNotFoundError, version

    from tunehouse.families import FAMILIES

    needs = ["scikit-learn", "skops", "numpy", "scipy", "pandas"]
    for family in FAMILIES.values():  # a family's package when the model holds its types
        if family.package and family.package not in needs and any(str(t).startswith(family.trusted) for t in trusted):
            needs.append(family.package)
    if any(str(t).startswith("tunehouse.") for t in trusted):
        needs.append("tunehouse")
    pinned = []
    for dist in needs:
        try:
            pinned.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:  # e.g. tunehouse run from a source tree
            pinned.append(dist)
    return pinned


def _metadata(exp, row, spec, training: _Training, params, refit, test_metrics, formats) -> dict[str, Any]:
    metrics = {k: v for k, v in row["metrics"].items()}
    ev = spec.evaluation
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "experiment_id": exp["experiment_id"],
        "experiment_name": exp["name"],
        "trial_id": row["trial_id"],
        # a warm-started experiment's reused trial: the "<experiment>/<trial>" that actually ran it
        "reused_from": row.get("reused_from") if isinstance(row.get("reused_from"), str) else None,
        "task": spec.task,
        "objective": exp["objective"],
        "mode": exp["mode"],
        "params": params,
        "fixed_params": dict(spec.model.params),
        "estimator": spec.model.estimator,
        "metrics": {"cv": metrics, "test": test_metrics},
        "evaluation": {"cv": ev.cv, "holdout": ev.holdout, "test_size": ev.test_size},
        "refit": refit,
        # early stopping: the resource the trial reached (and the refit used), of max_resource
        "resource": None if _resource(row) is None else {"reached": _resource(row), "max": _int(exp.get("max_resource")),
                                                          "status": row["status"]},
        "dataset": {"source": training.source, "fingerprint": training.fingerprint,
                    "verified": training.verified, "rows": training.rows},
        "features": training.features,
        "target": training.target,
        "classes": training.classes,
        "positive_class": training.positive_class,  # classes[1] of a binary target, else None
        "environment": dict(exp.get("environment") or []),
        "spec_hash": exp["spec_hash"],
        "checkpoint": {"uri": row["checkpoint_uri"], "sha256": row.get("checkpoint_sha256"), "pruned": _pruned(row)},
        "formats": formats,
    }


def _int(v: Any) -> int | None:
    return None if v is None or v != v else int(v)


def _card_resource(meta: dict[str, Any]) -> list[str]:
    """Early stopping: the resource the model was trained to (the trial's own, refit included)."""
    res = meta.get("resource")
    if not res:
        return []
    how = "stopped early by its scheduler at" if res["status"] == "early_stopped" else "ran its full budget,"
    return [f"- Early stopping: the trial {how} resource {res['reached']} of {res['max']}; the model is "
            f"{'refitted' if meta['refit'] else 'trained'} at resource {res['reached']}"]


def _model_card(cat: Any, exp: dict[str, Any], row: dict[str, Any], meta: dict[str, Any]) -> str:
    wide = cat.trials(exp)
    obj, mode = exp["objective"], exp["mode"]
    ok = wide[wide.status == "terminated"].sort_values(obj, ascending=mode == "min")
    runners = ok[ok.trial_id != row["trial_id"]].head(5)
    params = wide.attrs.get("params", [])
    lines = [
        f"# Model card: {exp['name']} / trial {row['trial_id']}",
        "",
        f"- Experiment `{exp['experiment_id']}`, {meta['task']}, estimator `{meta['estimator']}`",
        f"- Search: {exp['algorithm']}{f' ({s})' if isinstance(s := exp.get('sampler'), str) else ''}, "
        f"{exp['trials_done']} trials finished, "
        f"{exp['trials_failed']} failed; objective: {mode} `{obj}`",
        f"- Cost of the search: {_card_cost(cat, exp)}",
        *_card_data(meta),
        f"- Model: {'refitted on all training rows' if meta['refit'] else 'the checkpointed model of the trial'}",
        *_card_resource(meta),
        f"- Environment: Python {meta['environment'].get('python')}, git {meta['environment'].get('git_commit', 'n/a')}",
        "",
        "## Best parameters",
        "",
        *[f"- `{k}` = `{v!r}`" for k, v in meta["params"].items()],
        "",
        "## Metrics",
        "",
        *_card_metrics(meta),
    ]
    n = len(meta["features"])
    use = (f"Assigning rows to the clusters found in the training rows, for rows shaped like them (the same {n} "
           if meta["task"] == "clustering" else f"Predicting `{meta['target']}` for rows shaped like the training data (the same {n} ")
    lines += [
        "",
        "## Intended use",
        "",
        use + "columns and types, from the same population). It was selected on the metric above only; check it "
        "against your own criteria (fairness, calibration, drift) before use.",
        "",
        "## Runners-up",
        "",
        "| trial | " + " | ".join([obj, *params]) + " |",
        "| --- | " + " | ".join(["---"] * (1 + len(params))) + " |",
    ]
    for _, r in runners.iterrows():
        lines.append(f"| {r.trial_id} | {r[obj]:.4g} | " + " | ".join(str(r[p]) for p in params) + " |")
    return "\n".join(lines) + "\n"


def _card_cost(cat: Any, exp: dict[str, Any]) -> str:
    """The search's CPU-hours, wall time and (priced) cost (``costs.search_cost``)."""
    from tunehouse.costs import cost_line
    from tunehouse.report import search_costs

    return cost_line(search_costs(cat, exp, cat.trials(exp, raw=True)))


def _card_data(meta: dict[str, Any]) -> list[str]:
    """The card's lines on the data: source, features and target, rows and how they were used."""
    ds, ev, rows = meta["dataset"], meta["evaluation"], meta["dataset"]["rows"]
    clustering = meta["task"] == "clustering"
    lines = [f"- Data: `{ds['source']}`, fingerprint `{ds['fingerprint'][:16]}`, {len(meta['features'])} features"
             + ("" if clustering else f", target `{meta['target']}`")
             + (f", positive class `{meta['positive_class']!r}`" if meta.get("positive_class") is not None else "")]
    if not rows:
        lines.append("- Rows: not known: the training data was not found at export, so its fingerprint was not "
                     "checked and no test rows were scored")
    elif clustering:
        lines.append(f"- Rows: {rows['train']}, all used to fit and score (clustering has no test split)")
    else:
        how = (f"{ev['cv']}-fold cross-validation" if ev.get("cv") else
               f"{_percent(ev['holdout'])} of them held out for validation")
        lines.append(f"- Rows: {rows['train']} training ({how}), {rows['test']} test")
    return lines


def _card_metrics(meta: dict[str, Any]) -> list[str]:
    """The metrics table: the trial's own scores, and the exported model's on the test rows."""
    clustering = meta["task"] == "clustering"  # no test split: one column
    lines = [f"| metric | {_measured_by(meta)} |" + ("" if clustering else " test |"),
             "| --- | --- |" + ("" if clustering else " --- |")]
    cv = meta["metrics"]["cv"]
    for name in [k for k in cv if not k.endswith("_std")]:
        spread = f" ± {cv[name + '_std']:.4g}" if name + "_std" in cv else ""
        test = meta["metrics"]["test"].get(name)
        lines.append(f"| {name} | {cv[name]:.4g}{spread} |"
                     + ("" if clustering else f" {'' if test is None else f'{test:.4g}'} |"))
    return lines


def _measured_by(meta: dict[str, Any]) -> str:
    """How the trial's metrics were measured (the header of the card's metrics column)."""
    ev = meta["evaluation"]
    if meta["task"] == "clustering":
        return "all rows"
    if ev.get("cv"):
        return f"cross-validation, mean ± std over {ev['cv']} folds"
    return f"hold-out validation ({_percent(ev['holdout'])} of the training rows)"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g} %"


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != META)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(cat: Any, exp: dict[str, Any], row: dict[str, Any], out: Path, meta: dict[str, Any], tag: str | None) -> None:
    from tunehouse.catalog.schema import now, num_map, to_table
    from tunehouse.catalog.writer import parquet_bytes, part_name

    record = {
        "export_id": uuid.uuid4().hex[:12],
        "experiment_id": exp["experiment_id"],
        "trial_id": row["trial_id"],
        "path": str(out.resolve()),
        "tag": tag,
        "refit": bool(meta["refit"]),
        "test_metrics": num_map(meta["metrics"]["test"]),
        "checksums": sorted(meta["files"].items()),
        "exported_at": now(),
        "updated_at": now(),
    }
    cat.storage.write_atomic(part_name("exports", exp["experiment_id"]), parquet_bytes(to_table("exports", [record])))
    return record["export_id"]


def move_tag(catalog: Any, export_id: str, tag: str) -> None:
    """Move ``tag`` to an export already recorded (a newer version of its ``exports`` row).

    Raises:
        ExportError: no export ``export_id`` in the catalog.
    """
    from tunehouse.catalog import Catalog
    from tunehouse.catalog.schema import EXPORTS, now, to_table
    from tunehouse.catalog.writer import parquet_bytes, part_name

    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    rows = cat.table("exports").to_pylist()
    hit = [r for r in rows if r["export_id"] == export_id]
    if not hit:
        raise ExportError(f"no export {export_id!r} in {cat.uri}")
    record = {k: hit[0][k] for k in EXPORTS.names}
    record.update(tag=tag, updated_at=now())
    cat.storage.write_atomic(part_name("exports", record["experiment_id"]),
                             parquet_bytes(to_table("exports", [record])))


# -- loading -------------------------------------------------------------------------------
@dataclass
class ExportedModel:
    """A loaded export: ``predict``, ``predict_proba`` (classifiers), ``predictions`` and ``metadata``.

    Input is a DataFrame with the training columns (any order; a missing or an extra column is
    an error unless ``ignore_extra``), or a 2-D array with one column per feature in training
    order (``features``). Values are checked against the dtypes recorded at export.
    """

    model: Any
    metadata: dict[str, Any]
    contract: Any = None  # tunehouse.contract.Contract of the training rows (contract.json), if exported with one

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.metadata["features"]]

    def check_columns(self, X: Any, *, ignore_extra: bool = False, keep: Any = ()) -> pd.DataFrame:
        """The model's columns of ``X``, in training order, with the recorded dtypes.

        ``keep`` columns are allowed besides the features (they are copied, not predicted on).

        Raises:
            ExportInputError: a missing or unexpected column, a value of the wrong type, an
                array of the wrong shape (one line naming the column and what was expected).
        """
        X = self._frame(X)
        missing = [c for c in self.features if c not in X.columns]
        extra = [c for c in X.columns if c not in self.features and c not in keep]
        if missing:
            raise ExportInputError(f"input is missing column(s) {', '.join(map(repr, missing))}; expected {', '.join(self.features)}")
        if extra and not ignore_extra:
            raise ExportInputError(f"input has unexpected column(s) {', '.join(map(repr, extra))}; expected "
                                   f"{', '.join(self.features)} (--ignore-extra drops the others, --keep COL copies one)")
        return self._typed(X[self.features])

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X)
        n = len(self.features)
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ExportInputError(f"expected a DataFrame, or a 2-D array of {n} columns in training order "
                                   f"({', '.join(self.features)}); got an array of shape {arr.shape}")
        return pd.DataFrame(arr, columns=self.features)

    def _typed(self, X: pd.DataFrame) -> pd.DataFrame:
        """Give each column its training dtype, as loading the training data did (numbers stay
        numbers, text becomes ``object``), or name the column and a value that does not fit."""
        X = X.copy()
        for f in self.metadata["features"]:
            name, want, col = f["name"], f["dtype"], X[f["name"]]
            if not _is_numeric(want):
                if pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col):
                    X[name] = col.astype(object)
                continue
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                continue
            numbers = pd.to_numeric(col, errors="coerce")
            bad = col[numbers.isna() & col.notna()]
            if len(bad):
                raise ExportInputError(f"cannot predict on this input: column {name!r} expects {want} (numbers); "
                                       f"{len(bad)} row(s) hold text, e.g. {bad.iloc[0]!r}")
            X[name] = numbers.astype(float)
        return X

    def _call(self, fn: Any, X: pd.DataFrame) -> np.ndarray:
        try:
            return np.asarray(fn(X))
        except (ValueError, TypeError) as e:  # what the checks above cannot foresee
            raise ExportInputError(f"cannot predict on this input: {str(e).splitlines()[0]}") from None

    def _labels(self, pred: np.ndarray) -> np.ndarray:
        classes = self.metadata.get("classes")
        if self.metadata["task"] == "classification" and classes:
            return np.asarray(classes, dtype=object)[pred.astype(int)]
        return pred

    def predict(self, X: Any, *, ignore_extra: bool = False) -> np.ndarray:
        """Predictions for ``X`` (class labels for a classifier, cluster ids for a clusterer)."""
        return self._labels(self._call(self.model.predict, self.check_columns(X, ignore_extra=ignore_extra)))

    def predict_proba(self, X: Any, *, ignore_extra: bool = False) -> np.ndarray:
        """Class probabilities, one column per entry of ``metadata["classes"]``."""
        if not hasattr(self.model, "predict_proba"):
            raise ExportError("this model has no predict_proba")
        return self._call(self.model.predict_proba, self.check_columns(X, ignore_extra=ignore_extra))

    def predictions(self, X: Any, *, keep: Any = (), ignore_extra: bool = False) -> pd.DataFrame:
        """A table: the ``keep`` columns of ``X`` (first, in order), ``prediction``, and for a
        classifier ``proba_<class>`` per class. What ``tunehouse predict`` writes.

        Raises:
            ExportInputError: a ``keep`` column not in ``X``, or what ``check_columns`` raises.
        """
        X = self._frame(X)
        keep = list(dict.fromkeys(keep))
        for c in keep:
            if c not in X.columns:
                raise ExportInputError(f"cannot keep column {c!r}: not in the input{did_you_mean(c, X.columns)}")
        rows = self.check_columns(X, ignore_extra=ignore_extra, keep=keep)
        out = {"prediction": self._labels(self._call(self.model.predict, rows))}
        if self.metadata["task"] == "classification" and hasattr(self.model, "predict_proba"):
            proba = self._call(self.model.predict_proba, rows)
            for i, cls in enumerate(self.metadata.get("classes") or range(proba.shape[1])):
                out[f"proba_{cls}"] = proba[:, i]
        clash = [c for c in keep if c in out]
        if clash:
            raise ExportInputError(f"cannot keep column {clash[0]!r}: the output has a column of that name")
        return pd.concat([X[keep].reset_index(drop=True), pd.DataFrame(out)], axis=1)


def _is_numeric(dtype: str) -> bool:
    try:
        kind = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return False
    return pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)


def load_export(folder: str | os.PathLike[str]) -> ExportedModel:
    """Verify and load an export folder.

    The model and metadata files must match the SHA-256 that ``tunehouse.json`` records;
    ``MODEL_CARD.md`` is documentation, so an edited or missing card is an ``ExportWarning``.

    Raises:
        ExportInputError: the folder is not an export (no ``tunehouse.json``).
        ExportError: unreadable metadata, a newer schema, a model or metadata file whose SHA-256
            differs from the one recorded (tampered or corrupt), an unknown model format.
    """
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise ExportInputError(f"{folder} is not a tunehouse export (no {META})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{meta_path}: unreadable metadata: {e}") from None
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > EXPORT_SCHEMA_VERSION:
        raise ExportError(
            f"{meta_path}: export schema_version {version!r} is newer than this tunehouse reads "
            f"({EXPORT_SCHEMA_VERSION}); upgrade tunehouse"
        )
    for rel, want in (meta.get("files") or {}).items():
        p = folder / rel
        if p.is_file() and _sha256(p) == want:
            continue
        if rel == CARD:  # the card does not change what the model does
            what = "was edited since export (its SHA-256 differs from" if p.is_file() else "is missing (listed in"
            warnings.warn(ExportWarning(f"{p} {what} {META}); it is documentation, so the model, whose "
                                        "files are verified, loads anyway"), stacklevel=2)
        elif not p.is_file():
            raise ExportError(f"{p}: listed in {META} but missing")
        else:
            raise ExportError(f"{p}: checksum mismatch (SHA-256 differs from {META}); refusing to load a modified file")
    try:
        spec = meta["formats"]["model"]
        _check_paths(meta, spec, meta_path)
        _check_trusted(spec.get("trusted", []), meta_path)
        return ExportedModel(_load_model(folder, spec, meta_path), meta, _load_contract(folder))
    except ExportError:
        raise
    except Exception as e:  # a malformed or hand-edited tunehouse.json
        raise ExportError(f"{meta_path}: cannot load the model: {type(e).__name__}: {e}") from None


#: tunehouse's own types an export may hold (a CV trial's fold models, a training function's model).
_OWN_TYPES = ("tunehouse.models.FoldEnsemble", "tunehouse.models.FunctionModel")


def _load_contract(folder: Path) -> Any:
    """The export's data contract (its checksum is verified with the other files), if it has one."""
    if not (folder / "contract.json").is_file():
        return None
    from tunehouse.contract import Contract

    return Contract.from_json((folder / "contract.json").read_text())


def _trusted_prefixes() -> tuple[str, ...]:
    """What an export may ask skops to trust: the model families' types and our own. The
    metadata is not signed, so it cannot widen this list."""
    from tunehouse.families import trusted_prefixes

    return trusted_prefixes() + _OWN_TYPES


def _check_trusted(trusted: list[str], meta_path: Path) -> None:
    allowed = _trusted_prefixes()
    bad = [t for t in trusted if not str(t).startswith(allowed)]
    if bad:
        raise ExportError(f"{meta_path}: refusing to trust {', '.join(map(repr, bad))} (only types of "
                          f"{', '.join(p.rstrip('.') for p in allowed)})")


def _check_paths(meta: dict[str, Any], spec: dict[str, Any], meta_path: Path) -> None:
    names = [*(meta.get("files") or {}), spec.get("file", ""), spec.get("preprocess", "") or ""]
    for n in names:
        if n and (n.startswith("/") or ".." in n.split("/")):
            raise ExportError(f"{meta_path}: file name {n!r} points outside the export")


def _load_model(folder: Path, spec: dict[str, Any], meta_path: Path) -> Any:
    import skops.io as sio

    from tunehouse.families import family_of_format

    if spec["format"] == "skops":
        return sio.load(folder / spec["file"], trusted=spec["trusted"])
    family = family_of_format(spec["format"])
    if family is None:
        raise ExportError(f"{meta_path}: unknown model format {spec['format']!r}")
    try:
        est = family.load_native(spec, folder)
    except ValueError as e:  # the metadata names a class the family does not make
        raise ExportError(f"{meta_path}: {e}") from None
    model = sio.load(folder / spec["preprocess"], trusted=spec["trusted"])
    model.steps[-1] = ("model", est)
    return model
