"""Catalog benchmark: tunehouse's Parquet catalog at 1M trials, and next to MLflow at equal counts.

What it measures
----------------
1. **Generation.** A tunehouse catalog of ``--experiments`` x ``--trials-per-exp`` trials
   (default 1000 x 1000 = 1,000,000) is written straight with pyarrow, through the catalog's
   own schemas and helpers (``schema.SCHEMAS`` / ``schema.to_table``, ``writer.parquet_bytes``,
   ``writer.part_name``, ``LocalStorage.write_atomic``): one compacted part per experiment per
   table, as ``tunehouse catalog compact`` leaves it. Rows are realistic: 4-6 params per
   model family (int, float and str), 3 metrics (accuracy, f1, roc_auc; the objective is
   accuracy, mode max), usage columns, checkpoint URIs and hashes, a few errored and
   early-stopped trials, one iteration row per finished trial, and dataset fingerprints from
   20 data sets (each in up to 3 versions). The time it took is printed.
2. **tunehouse operations** (``tunehouse.catalog.Catalog``; a fresh ``Catalog`` per call):
   (a) appending ``--append-trials`` (default 10,000) trials into a new experiment through the
   real ``CatalogWriter`` (default buffering: 200 rows / 2 s) driven by ``ExperimentRecorder``
   exactly as the driver does (trial_started, trial_result, trial_finished -> maybe_flush,
   finish -> flush); (b) ``Catalog.experiments()``; (c) ``Catalog.best(exp_id)``; (d) the top 10
   trials across all experiments, by ``Catalog.sql(...)`` and by plain DuckDB straight over the
   files (``read_parquet('<root>/trials/**/*.parquet', hive_partitioning=true)``: what a tool
   without tunehouse gets; it does not dedup, which is right only on a compacted catalog).
   The reads are timed before any append, so they see exactly the generated catalog. Also
   ``best`` of one appended, uncompacted experiment (many small parts, every trial twice).
3. **MLflow** (``MlflowClient`` on a local SQLite backend): ``--mlflow-runs`` (default 10,000)
   runs over 10 experiments with the same params/metrics (the fast path: create_run +
   log_batch + set_terminated per run); ``search_experiments()``; the best run of one
   experiment (``search_runs([id], order_by=["metrics.accuracy DESC"], max_results=1)``); the
   top 10 over all experiments (``max_results=10``).
4. The same tunehouse operations on a catalog of the *same* size as the MLflow store
   (10 experiments x ``--mlflow-runs / 10`` trials), so the ratio column compares equal counts.
   Nothing is extrapolated.

Every read is the median of ``--repeats`` (default 3) timed calls after 1 warm-up call, in
milliseconds. Writes: the tunehouse append is a median too (warm-up into a scratch catalog);
MLflow's logging of all runs is timed once (it is also what fills the store), after a warm-up
in a scratch database that absorbs MLflow's import and schema migrations.

It prints a markdown table (operation | tunehouse at N | tunehouse at equal count | MLflow |
ratio MLflow/tunehouse at equal count), a breakdown of where the time of each tunehouse read
goes at the largest size, and PASS/FAIL for the targets: best-of-experiment < 200 ms and list
experiments < 200 ms at 1M trials; top-10 at least 10x faster than MLflow's search_runs at
equal counts. It is a report: it exits 0 whatever the numbers.

How to run
----------
    .venv/bin/python scripts/bench_catalog.py                  # 1M trials + 10k MLflow runs
    .venv/bin/python scripts/bench_catalog.py --quick          # smoke: 100x100, 1000 runs
    .venv/bin/python scripts/bench_catalog.py --out /tmp/bench --json

MLflow is not a tunehouse dependency: ``.venv/bin/pip install mlflow`` first (or
``--no-mlflow`` to skip that part). Progress goes to stderr, the report to stdout.
Logging 10,000 MLflow runs to SQLite takes minutes on a small machine (about 10 ms to
100 ms a run, most of it SQLite commits).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunehouse.catalog import Catalog, CatalogWriter, ExperimentRecorder, LocalStorage
from tunehouse.catalog.schema import SCHEMA_VERSION, SCHEMAS, to_table
from tunehouse.catalog.writer import parquet_bytes, part_name

TARGET_BEST_MS = 200.0
TARGET_LIST_MS = 200.0
TARGET_TOP10_SPEEDUP = 10.0
MLFLOW_EXPERIMENTS = 10
OBJECTIVE = "accuracy"
METRIC_NAMES = ("accuracy", "f1", "roc_auc")
TOP10_COLS = "experiment_id, trial_id, objective_value, params, metrics"
BASE_TIME = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)

#: model families: (estimator, [(param, kind, a, b)]); kind int/float/logfloat: range, str: choices
FAMILIES: list[tuple[str, list[tuple[str, str, Any, Any]]]] = [
    ("sklearn.ensemble.RandomForestClassifier", [
        ("n_estimators", "int", 50, 500),
        ("max_depth", "int", 2, 32),
        ("min_samples_leaf", "int", 1, 16),
        ("max_features", "str", ["sqrt", "log2", "auto"], None),
        ("criterion", "str", ["gini", "entropy", "log_loss"], None),
    ]),
    ("xgboost.XGBClassifier", [
        ("learning_rate", "logfloat", 1e-3, 0.3),
        ("max_depth", "int", 2, 12),
        ("subsample", "float", 0.5, 1.0),
        ("colsample_bytree", "float", 0.4, 1.0),
        ("n_estimators", "int", 50, 1000),
        ("booster", "str", ["gbtree", "dart"], None),
    ]),
    ("sklearn.linear_model.LogisticRegression", [
        ("C", "logfloat", 1e-4, 1e2),
        ("penalty", "str", ["l1", "l2"], None),
        ("solver", "str", ["liblinear", "saga"], None),
        ("max_iter", "int", 100, 2000),
    ]),
    ("sklearn.svm.SVC", [
        ("C", "logfloat", 1e-3, 1e3),
        ("gamma", "logfloat", 1e-5, 1.0),
        ("kernel", "str", ["rbf", "poly", "sigmoid"], None),
        ("degree", "int", 2, 5),
        ("shrinking", "str", ["true", "false"], None),
    ]),
]

DATASETS = [
    "credit-default", "adult-income", "bank-marketing", "telco-churn", "customers-churn",
    "fraud-card", "heart-disease", "breast-cancer", "diabetes-readmit", "spam-mail",
    "loan-approval", "hotel-cancel", "insurance-claims", "employee-attrition", "mushrooms",
    "higgs-sample", "covertype-bin", "kdd-intrusion", "phishing-urls", "wine-quality-bin",
]

ENVIRONMENT = {
    "python": "3.11.9",
    "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
    "host": "driver-01",
    "git.commit": "5e25a7c1f0a4d2b9c8e7f6a5b4c3d2e1f0a9b8c7",
    "package.ray": "2.50.1",
    "package.scikit-learn": "1.5.2",
    "package.xgboost": "2.1.3",
    "package.optuna": "4.1.0",
    "package.pyarrow": "26.0.1",
}

SPEC_TEMPLATE = """\
name: {name}
seed: {seed}
task: classification
data:
  path: data/{dataset}.csv
  target: label
model:
  estimator: {estimator}
evaluation: {{cv: 5, test_size: 0.2}}
metrics: [accuracy, f1, roc_auc]
search:
  algorithm: {algorithm}
  num_samples: {trials}
resources: {{cpus: 1}}
space:
{space}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- one experiment's rows, vectorised ---------------------------------------------------------
def _hex_strings(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    """``n`` random lowercase hex strings of ``2 * nbytes`` characters, without a Python loop."""
    raw = rng.integers(0, 256, size=n * nbytes, dtype=np.uint8).tobytes().hex().encode()
    offsets = np.arange(n + 1, dtype=np.int32) * (2 * nbytes)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(raw))


def _ts_array(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.timestamp("us", tz="UTC"))


def _map(keys: list[str], values: list[pa.Array], n: int, mask: np.ndarray | None,
         map_type: pa.DataType) -> pa.Array:
    """A map column: row i holds ``keys[j] -> values[j][i]`` for every j (or nothing where
    ``mask`` is False)."""
    k = len(keys)
    rows = np.arange(n) if mask is None else np.flatnonzero(mask)
    if not k:
        return pa.MapArray.from_arrays(np.zeros(n + 1, np.int32), pa.array([], pa.string()),
                                       pa.array([], map_type.item_type), type=map_type)
    counts = np.zeros(n, np.int32)
    counts[rows] = k
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    idx = (np.arange(k)[None, :] * n + rows[:, None]).ravel()  # row-major interleave
    items = pa.concat_arrays([v.cast(map_type.item_type) for v in values]).take(pa.array(idx))
    key_arr = pa.array(np.tile(np.array(keys, dtype=object), len(rows)), pa.string())
    return pa.MapArray.from_arrays(pa.array(offsets), key_arr, items, type=map_type)


def _json_float(a: pa.Array) -> pa.Array:
    """Floats as JSON text that still reads back as a float (``2`` -> ``2.0``)."""
    s = pc.cast(a, pa.string())
    return pc.if_else(pc.match_substring_regex(s, r"[.eEn]"), s, pc.binary_join_element_wise(s, ".0", ""))


def sample_params(rng: np.random.Generator, family: list[tuple[str, str, Any, Any]], n: int
                  ) -> tuple[list[str], list[pa.Array], list[pa.Array], list[str], list[pa.Array]]:
    """Values of one family's params for ``n`` trials: (names, python-typed arrays, JSON text
    arrays, numeric names, numeric arrays as float64)."""
    names, values, as_json, num_names, num_values = [], [], [], [], []
    for name, kind, a, b in family:
        if kind == "int":
            v = pa.array(rng.integers(a, b + 1, size=n), pa.int64())
            j = pc.cast(v, pa.string())
        elif kind in ("float", "logfloat"):
            x = (np.exp(rng.uniform(np.log(a), np.log(b), size=n)) if kind == "logfloat"
                 else rng.uniform(a, b, size=n))
            v = pa.array(np.round(x, 6), pa.float64())
            j = _json_float(v)
        else:
            choices = np.array(a, dtype=object)
            v = pa.array(choices[rng.integers(0, len(a), size=n)], pa.string())
            j = pc.binary_join_element_wise('"', v, '"', "")
        names.append(name)
        values.append(v)
        as_json.append(j)
        if kind != "str":
            num_names.append(name)
            num_values.append(v.cast(pa.float64()))
    return names, values, as_json, num_names, num_values


def experiment_tables(i: int, n: int, *, seed: int, tag: str = "") -> tuple[str, dict[str, pa.Table]]:
    """Experiment ``i`` with ``n`` trials: its id and its three tables (one part each)."""
    rng = np.random.default_rng([seed, i])
    estimator, family = FAMILIES[i % len(FAMILIES)]
    ds = DATASETS[i % len(DATASETS)]
    version = int(rng.integers(0, 3))
    fingerprint = hashlib.sha256(f"{ds}:v{version}".encode()).hexdigest()
    started = BASE_TIME + timedelta(hours=6 * i, seconds=int(rng.integers(0, 3600)))
    algorithm = ("random", "bayes", "grid")[i % 3]
    name = f"{ds}-{estimator.rsplit('.', 1)[-1].lower()}{tag}"
    exp_id = f"{name}-{started:%Y%m%d-%H%M%S}-{rng.bytes(3).hex()}"
    exp_seed = int(rng.integers(0, 2**31))

    # params
    pnames, _values, pjson, num_names, num_values = sample_params(rng, family, n)
    params = _map(pnames, pjson, n, None, SCHEMAS["trials"].field("params").type)
    params_num = _map(num_names, num_values, n, None, SCHEMAS["trials"].field("params_num").type)

    # status and metrics
    u = rng.random(n)
    status = np.where(u < 0.02, "error", np.where(u < 0.05, "early_stopped", "terminated"))
    ok = status != "error"
    base = rng.uniform(0.62, 0.93)
    acc = np.clip(base + rng.normal(0, 0.03, n) - 0.02 * (status == "early_stopped"), 0, 1)
    f1 = np.clip(acc - rng.uniform(0.0, 0.08, n), 0, 1)
    auc = np.clip(acc + rng.uniform(0.0, 0.06, n), 0, 1)
    mvals = [pa.array(np.round(m, 6), pa.float64()) for m in (acc, f1, auc)]
    mtype = SCHEMAS["trials"].field("metrics").type
    metrics = _map(list(METRIC_NAMES), mvals, n, ok, mtype)
    objective_value = pa.array(np.round(acc, 6), pa.float64(), mask=~ok)

    # usage and times
    concurrency = int(rng.choice([4, 8, 16, 32]))
    wall = np.round(rng.lognormal(np.log(20.0), 0.6, n), 3)
    wall[~ok] = np.round(wall[~ok] * 0.1, 3)
    start_us = int(started.timestamp() * 1e6)
    t0 = start_us + (np.cumsum(wall) / concurrency * 1e6).astype(np.int64) - int(wall[0] / concurrency * 1e6)
    t1 = t0 + (wall * 1e6).astype(np.int64)
    cpu_user = np.round(wall * rng.uniform(0.7, 0.98, n), 3)
    cpu_sys = np.round(wall * rng.uniform(0.005, 0.05, n), 3)
    node = rng.integers(0, 8, n)
    node_pool = _hex_strings(np.random.default_rng([seed, 10**9]), 64, 28)  # 56-hex Ray node ids
    nodes = pa.array((node + 8 * (i % 8)).astype(np.int64))
    ray_prefix = rng.bytes(3).hex()[:5]
    trial_ids = [f"{ray_prefix}_{k:05d}" for k in range(n)]
    ckpt = pa.array([f"checkpoints/{exp_id}/trial_{t}/checkpoint_000000" for t in trial_ids], pa.string())
    errors = pa.array(np.where(ok, None, "ValueError: Input contains NaN (fold 3 of 5)"), pa.string())

    s = SCHEMAS["trials"]
    trials = pa.Table.from_arrays(
        [
            pa.array(np.full(n, SCHEMA_VERSION, np.int16)),
            pa.array([exp_id] * n, pa.string()),
            pa.array(trial_ids, pa.string()),
            pa.array(status, pa.string()),
            params,
            params_num,
            metrics,
            metrics,  # best_metrics: one report per trial, so the same
            pa.array([OBJECTIVE] * n, pa.string()),
            objective_value,
            pa.array(["max"] * n, pa.string()),
            pa.array(np.where(ok, 1, 0), pa.int64()),
            pa.array(wall),
            pa.array(np.round(cpu_user + cpu_sys, 3)),
            pa.array(cpu_user),
            pa.array(cpu_sys),
            pa.array(np.round(rng.uniform(150, 900, n), 1)),
            pa.array(np.ones(n)),
            pa.array(np.zeros(n)),
            node_pool.take(nodes),
            pc.binary_join_element_wise("10.0.", pc.cast(nodes, pa.string()), ".17", ""),
            pc.binary_join_element_wise("worker-", pc.cast(nodes, pa.string()), ""),
            pa.array(rng.integers(2000, 400000, n), pa.int64()),
            errors,
            pc.if_else(pa.array(ok), ckpt, pa.nulls(n, pa.string())),
            pc.if_else(pa.array(ok), _hex_strings(rng, n, 32), pa.nulls(n, pa.string())),
            pa.array(np.full(n, exp_seed), pa.int64()),
            pa.array([fingerprint] * n, pa.string()),
            _ts_array(t0),
            _ts_array(t1),
            _ts_array(t1 + 50_000),
            pa.array(np.ones(n, np.int64)),  # attempts
            pa.nulls(n, pa.float64()),  # memory_mb
        ],
        schema=s,
    )

    okr = np.flatnonzero(ok)
    it_metrics = _map(list(METRIC_NAMES), [m.take(pa.array(okr)) for m in mvals], len(okr), None,
                      SCHEMAS["iterations"].field("metrics").type)
    iterations = pa.Table.from_arrays(
        [
            pa.array(np.full(len(okr), SCHEMA_VERSION, np.int16)),
            pa.array([exp_id] * len(okr), pa.string()),
            pa.array(trial_ids, pa.string()).take(pa.array(okr)),
            pa.array(np.ones(len(okr), np.int64)),
            it_metrics,
            _ts_array(t1[okr]),
        ],
        schema=SCHEMAS["iterations"],
    )

    best = int(np.flatnonzero(ok)[np.argmax(acc[ok])]) if ok.any() else None
    ended = datetime.fromtimestamp(int(t1.max()) / 1e6 + 1, timezone.utc)
    space = "\n".join(
        f"  {p}: {{type: {k if k != 'str' else 'choice'}, "
        + (f"values: {a}}}" if k == "str" else f"low: {a}, high: {b}}}")
        for p, k, a, b in family
    )
    spec_text = SPEC_TEMPLATE.format(name=name, seed=exp_seed, dataset=ds, estimator=estimator,
                                     algorithm=algorithm, trials=n, space=space)
    exp_row = {
        "experiment_id": exp_id,
        "name": name,
        "status": "completed",
        "task": "classification",
        "algorithm": algorithm,
        "sampler": "tpe" if algorithm == "bayes" else None,
        "objective": OBJECTIVE,
        "mode": "max",
        "num_samples": n,
        "seed": exp_seed,
        "spec_text": spec_text,
        "spec_hash": hashlib.sha256(spec_text.encode()).hexdigest(),
        "dataset_fingerprint": fingerprint,
        "dataset_source": f"data/{ds}.csv",
        "environment": sorted(ENVIRONMENT.items()),
        "cluster_cpus": float(concurrency),
        "cluster_nodes": 8,
        "driver_host": "driver-01",
        "driver_pid": int(rng.integers(1000, 60000)),
        "best_trial_id": trial_ids[best] if best is not None else None,
        "best_value": float(np.round(acc[best], 6)) if best is not None else None,
        "trials_done": int(ok.sum()),
        "trials_failed": int((~ok).sum()),
        "test_metrics": [(m, float(np.round(v[best], 6))) for m, v in zip(METRIC_NAMES, (acc, f1, auc))]
        if best is not None else [],
        "error": None,
        "started_at": started,
        "ended_at": ended,
        "heartbeat_at": ended,
        "updated_at": ended,
    }
    experiments = to_table("experiments", [exp_row])  # the catalog's own row helper
    return exp_id, {"experiments": experiments, "trials": trials, "iterations": iterations}


def generate_catalog(root: Path, experiments: int, trials_per_exp: int, *, seed: int = 0) -> dict[str, Any]:
    """Write the catalog; returns ids, timing and sizes."""
    if root.exists():
        shutil.rmtree(root)
    storage = LocalStorage(root)
    t = time.perf_counter()
    build_s = 0.0

    def write_one(i: int) -> str:
        nonlocal build_s
        b = time.perf_counter()
        exp_id, tables = experiment_tables(i, trials_per_exp, seed=seed)
        build_s += time.perf_counter() - b
        for name, table in tables.items():
            storage.write_atomic(part_name(name, exp_id, compacted=True), parquet_bytes(table))
        return exp_id

    # two threads: zstd, Parquet encoding and fsync release the GIL
    with ThreadPoolExecutor(max_workers=2) as ex:
        ids = []
        for k, exp_id in enumerate(ex.map(write_one, range(experiments)), 1):
            ids.append(exp_id)
            if k % max(1, experiments // 10) == 0:
                log(f"  {k}/{experiments} experiments ({time.perf_counter() - t:.1f} s)")
    elapsed = time.perf_counter() - t
    size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
    return {"ids": ids, "seconds": elapsed, "bytes": size, "files": 3 * experiments}


def check_schema_against_writer() -> None:
    """The generated trial rows must have exactly the schema the real writer produces."""
    _, tables = experiment_tables(0, 5, seed=1)
    rows = tables["trials"].to_pylist()
    for r in rows:
        r.pop("schema_version")
    assert to_table("trials", rows).schema.equals(tables["trials"].schema), "trials schema drift"
    rows = tables["iterations"].to_pylist()
    assert to_table("iterations", rows).equals(tables["iterations"]), "iterations rows differ"
    from tunehouse.catalog.schema import decode_params

    decoded = decode_params(tables["trials"].column("params")[0].as_py())
    kinds = {p: k for p, k, *_ in FAMILIES[0][1]}
    want = {"int": int, "float": float, "logfloat": float, "str": str}
    assert decoded and all(type(v) is want[kinds[k]] for k, v in decoded.items()), decoded


# -- timing ------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return {"ms": statistics.median(runs), "runs_ms": [round(x, 1) for x in runs]}


def _run_info(exp_id: str, n: int, fingerprint: str) -> Any:
    from tunehouse.records import RunInfo

    return RunInfo(
        experiment_id=exp_id, name="bench-append", task="classification", algorithm="random", sampler=None,
        objective=OBJECTIVE, mode="max", metric_modes={OBJECTIVE: "max"}, num_samples=n, seed=7,
        spec_text="name: bench-append\n", spec_hash=hashlib.sha256(b"bench-append").hexdigest(),
        dataset_fingerprint=fingerprint, dataset_source="data/x.csv", environment=dict(ENVIRONMENT),
    )


def append_trials(root: Path, n: int, seed: int) -> dict[str, Any]:
    """``n`` trials through ExperimentRecorder + CatalogWriter (default buffering), as the
    driver feeds them; only the recorder/writer calls are timed."""
    exp_id, tables = experiment_tables(10_000 + seed, n, seed=seed, tag="-append")
    exp_id = f"bench-append-{uuid.uuid4().hex[:8]}"
    tr = tables["trials"].to_pylist()
    records = []
    for r in tr:
        params = {k: json.loads(v) for k, v in r["params"]}
        metrics = dict(r["metrics"] or [])
        usage = {k: r[k] for k in ("wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb",
                                   "node_id", "node_ip", "hostname", "pid")}
        status = "error" if r["status"] == "error" else "terminated"
        records.append(SimpleNamespace(
            trial_id=r["trial_id"], status=status, params=params, metrics=metrics, usage=usage,
            checkpoint=str(root / r["checkpoint_uri"]) if r["checkpoint_uri"] else None,
            checkpoint_sha256=r["checkpoint_sha256"], iterations=r["iterations"],
            best_metrics=metrics, error=r["error"],
            started_at=r["started_at"].timestamp(), ended_at=r["ended_at"].timestamp(),
            attempts=r["attempts"], error_traceback=None,
        ))
    t = time.perf_counter()
    writer = CatalogWriter(root, exp_id)
    rec = ExperimentRecorder(writer, _run_info(exp_id, n, hashlib.sha256(b"append").hexdigest()))
    rec.start(cluster_cpus=16.0, cluster_nodes=1)
    for r in records:
        rec.trial_started(r.trial_id, r.params, r.started_at)
        if r.status != "error":
            rec.trial_result(r.trial_id, 1, r.metrics)
        rec.trial_finished(r)
    rec.finish("completed")
    return {"ms": (time.perf_counter() - t) * 1000, "parts": writer.parts_written, "experiment_id": exp_id}


def bench_append(root: Path, scratch: Path, n: int, repeats: int) -> dict[str, Any]:
    append_trials(scratch, min(n, 1000), seed=99)  # warm-up, elsewhere
    shutil.rmtree(scratch, ignore_errors=True)
    runs = [append_trials(root, n, seed=100 + k) for k in range(repeats)]
    return {"ms": statistics.median(r["ms"] for r in runs), "runs_ms": [round(r["ms"], 1) for r in runs],
            "parts": runs[0]["parts"], "experiment_ids": [r["experiment_id"] for r in runs]}


def tunehouse_reads(root: Path, best_exp: str, repeats: int) -> dict[str, Any]:
    import duckdb

    q_sql = f"select {TOP10_COLS} from trials order by objective_value desc limit 10"
    q_raw = (f"select {TOP10_COLS} from read_parquet('{root}/trials/**/*.parquet', "
             "hive_partitioning=true) order by objective_value desc limit 10")
    out = {
        "list": timed(lambda: Catalog(root).experiments(), repeats),
        "best": timed(lambda: Catalog(root).best(best_exp), repeats),
        "top10_sql": timed(lambda: Catalog(root).sql(q_sql).fetchall(), repeats),
        "top10_duckdb": timed(lambda: duckdb.sql(q_raw).fetchall(), repeats),
    }
    # sanity: both top-10s agree, and best() is the experiment's max
    a = [(r[0], r[1], r[2]) for r in Catalog(root).sql(q_sql).fetchall()]
    b = [(r[0], r[1], r[2]) for r in duckdb.sql(q_raw).fetchall()]
    assert [x[2] for x in a] == [x[2] for x in b], (a, b)
    best = Catalog(root).best(best_exp)
    exp = Catalog(root).table("trials", best_exp)
    done = exp.filter(pc.equal(exp.column("status"), "terminated"))
    assert best[OBJECTIVE] == pc.max(done.column("objective_value")).as_py()
    out["top10_value"] = a[0][2]
    return out


def breakdown(root: Path, best_exp: str) -> dict[str, dict[str, float]]:
    """Where the time of each tunehouse read goes: the stages of Catalog.table() and the
    pandas work on top, timed one by one with the same calls the reader makes."""
    from tunehouse.catalog import reader as R

    def clock(fn: Callable[[], Any]) -> tuple[float, Any]:
        t = time.perf_counter()
        v = fn()
        return (time.perf_counter() - t) * 1000, v

    def table_stages(cat: Catalog, table: str, exp: str | None) -> tuple[dict[str, float], pa.Table]:
        st: dict[str, float] = {}
        st["list files"], parts = clock(lambda: cat.parts(table, exp))

        def read_all() -> list[pa.Table]:
            if len(parts) > 4:
                with ThreadPoolExecutor(max_workers=8) as ex:
                    return list(ex.map(lambda p: cat._read_part(p, table), parts))
            return [cat._read_part(p, table) for p in parts]

        st[f"read+conform {len(parts)} parts"], tables = clock(read_all)
        st["concat"], t = clock(lambda: pa.concat_tables([x for x in tables if x is not None]))
        st[f"dedup _latest ({t.num_rows} rows)"], t = clock(lambda: R._latest(t, R.KEYS[table]))
        return st, t

    out: dict[str, dict[str, float]] = {}
    cat = Catalog(root)
    st, t = table_stages(cat, "experiments", None)
    st["to_pandas"], df = clock(t.to_pandas)
    st["infer_status + duration (to_dict x2)"], _ = clock(
        lambda: ([R.infer_status(r) for r in df.to_dict("records")],
                 [r["started_at"] for r in df.to_dict("records")]))
    st["total experiments()"], _ = clock(cat.experiments)
    out["list experiments"] = st

    st = {}
    st["experiment() #1 (= experiments())"], exp = clock(lambda: cat.experiment(best_exp))
    st["experiment() #2 in trials()"], _ = clock(lambda: cat.experiment(exp["experiment_id"]))
    s2, t = table_stages(cat, "trials", best_exp)
    st.update({f"trials: {k}": v for k, v in s2.items()})
    st["trials: to_pandas"], df = clock(t.to_pandas)
    st["widen (json.loads params, dict metrics)"], w = clock(lambda: R.widen(df))
    st["filter + idxmax"], _ = clock(lambda: w.loc[w[w.status == "terminated"][OBJECTIVE].idxmax()])
    st["total best()"], _ = clock(lambda: cat.best(best_exp))
    out["best of experiment"] = st

    st = {}
    for table in ("experiments", "trials", "iterations"):
        s2, _ = table_stages(cat, table, None)
        st.update({f"{table}: {k}": v for k, v in s2.items()})
    st["experiments() for the status view"], _ = clock(cat.experiments)
    q = f"select {TOP10_COLS} from trials order by objective_value desc limit 10"
    st["total sql() + fetchall"], _ = clock(lambda: cat.sql(q).fetchall())
    out["top-10 via Catalog.sql"] = st
    return {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in out.items()}


# -- MLflow -----------------------------------------------------------------------------------
def _mlflow_runs(n_exp: int, per_exp: int, seed: int) -> list[list[dict[str, Any]]]:
    """The same params/metrics as the tunehouse generator, as Python rows per experiment."""
    out = []
    for i in range(n_exp):
        _, tables = experiment_tables(i, per_exp, seed=seed)
        t = tables["trials"].select(["status", "params", "metrics", "dataset_fingerprint",
                                     "started_at", "ended_at"]).to_pylist()
        out.append(t)
    return out


def _log_mlflow(client: Any, exp_rows: list[list[dict[str, Any]]], prefix: str) -> tuple[list[str], float]:
    from mlflow.entities import Metric, Param, RunTag

    ids = [client.create_experiment(f"{prefix}-{i}") for i in range(len(exp_rows))]
    t = time.perf_counter()
    done = 0
    total = sum(len(r) for r in exp_rows)
    for exp_id, rows in zip(ids, exp_rows):
        for r in rows:
            start = int(r["started_at"].timestamp() * 1000)
            end = int(r["ended_at"].timestamp() * 1000)
            run = client.create_run(exp_id, start_time=start)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(k, v, end, 0) for k, v in (r["metrics"] or [])],
                params=[Param(k, v.strip('"')) for k, v in r["params"]],
                tags=[RunTag("dataset_fingerprint", r["dataset_fingerprint"])],
            )
            client.set_terminated(run.info.run_id, "FAILED" if r["status"] == "error" else "FINISHED", end)
            done += 1
            if total >= 2000 and done % (total // 10) == 0:
                el = time.perf_counter() - t
                log(f"  mlflow: {done}/{total} runs logged ({el:.0f} s, {el / done * 1000:.1f} ms/run)")
    return ids, (time.perf_counter() - t) * 1000


def bench_mlflow(workdir: Path, runs: int, repeats: int, seed: int) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging

    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    workdir.mkdir(parents=True, exist_ok=True)
    per_exp = runs // MLFLOW_EXPERIMENTS
    # warm-up in a scratch database: imports, schema creation/migrations, first queries
    scratch = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'warmup.db'}")
    wids, _ = _log_mlflow(scratch, _mlflow_runs(2, 20, seed + 1), "warmup")
    scratch.search_experiments()
    scratch.search_runs(wids, order_by=["metrics.accuracy DESC"], max_results=10)

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    t = time.perf_counter()
    client = MlflowClient()
    client.search_experiments()  # creates the database and runs the migrations
    init_ms = (time.perf_counter() - t) * 1000
    rows = _mlflow_runs(MLFLOW_EXPERIMENTS, per_exp, seed)
    ids, log_ms = _log_mlflow(client, rows, "bench")
    best_exp = ids[len(ids) // 2]
    order = ["metrics.accuracy DESC"]
    out = {
        "db_init_ms": init_ms,
        "log": {"ms": log_ms, "runs_ms": [round(log_ms, 1)], "runs": per_exp * MLFLOW_EXPERIMENTS},
        "list": timed(lambda: client.search_experiments(), repeats),
        "best": timed(lambda: client.search_runs([best_exp], order_by=order, max_results=1), repeats),
        "top10": timed(lambda: client.search_runs(ids, order_by=order, max_results=10), repeats),
        "version": mlflow.__version__,
        "db_bytes": (workdir / "mlflow.db").stat().st_size,
    }
    top = client.search_runs(ids, order_by=order, max_results=10)
    out["top10_value"] = top[0].data.metrics[OBJECTIVE]
    assert len(top) == 10 and all(a.data.metrics[OBJECTIVE] >= b.data.metrics[OBJECTIVE]
                                  for a, b in itertools.pairwise(top))
    return out


# -- report -----------------------------------------------------------------------------------
def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f} ms" if x >= 100 else f"{x:,.1f} ms"


def report(res: dict[str, Any]) -> str:
    big, eq, ml = res["tunehouse_big"], res["tunehouse_equal"], res.get("mlflow")
    nb, ne = res["sizes"]["big_trials"], res["sizes"]["equal_trials"]
    nm = ml["log"]["runs"] if ml else None
    head_ml = f"MLflow {nm:,} runs (SQLite)" if ml else "MLflow (skipped)"
    lines = [
        f"| operation | tunehouse {nb:,} trials | tunehouse {ne:,} trials | {head_ml} | "
        "ratio MLflow/tunehouse (equal count) |",
        "|---|---|---|---|---|",
    ]
    na = res["sizes"]["append_trials"]
    rows = [
        (f"append {na:,} trials (ExperimentRecorder+CatalogWriter) / log {nm or 0:,} runs (log_batch)",
         big["append"]["ms"], eq["append"]["ms"], ml["log"]["ms"] if ml else None, na == nm),
        ("list experiments (experiments() / search_experiments())",
         big["list"]["ms"], eq["list"]["ms"], ml["list"]["ms"] if ml else None, True),
        ("best of one experiment (best() / search_runs max_results=1)",
         big["best"]["ms"], eq["best"]["ms"], ml["best"]["ms"] if ml else None, True),
        ("top 10 across experiments (Catalog.sql / search_runs max_results=10)",
         big["top10_sql"]["ms"], eq["top10_sql"]["ms"], ml["top10"]["ms"] if ml else None, True),
        ("top 10 across experiments, plain DuckDB over the files (no tunehouse)",
         big["top10_duckdb"]["ms"], eq["top10_duckdb"]["ms"], ml["top10"]["ms"] if ml else None, True),
        (f"best of one appended, uncompacted experiment ({na:,} trials, {big['append']['parts']} parts)",
         big["best_uncompacted"]["ms"], eq["best_uncompacted"]["ms"], None, False),
    ]
    for name, b, e, m, comparable in rows:
        ratio = f"{m / e:.1f}x" if (m is not None and e and comparable) else "-"
        if m is not None and not comparable:
            ratio = f"{m / e:.1f}x (unequal counts)"
        lines.append(f"| {name} | {fmt_ms(b)} | {fmt_ms(e)} | {fmt_ms(m)} | {ratio} |")
    return "\n".join(lines)


def verdicts(res: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    big, eq, ml = res["tunehouse_big"], res["tunehouse_equal"], res.get("mlflow")
    nb = res["sizes"]["big_trials"]
    at = f"at {nb:,} trials" + ("" if nb >= 1_000_000 else " (below the 1M the target names)")
    out: list[tuple[str, bool | None, str]] = [
        (f"best-of-experiment < {TARGET_BEST_MS:.0f} ms {at}", big["best"]["ms"] < TARGET_BEST_MS,
         fmt_ms(big["best"]["ms"])),
        (f"list experiments < {TARGET_LIST_MS:.0f} ms {at}", big["list"]["ms"] < TARGET_LIST_MS,
         fmt_ms(big["list"]["ms"])),
    ]
    if ml:
        sp = ml["top10"]["ms"] / eq["top10_sql"]["ms"]
        sp_raw = ml["top10"]["ms"] / eq["top10_duckdb"]["ms"]
        out.append((f"top-10 (Catalog.sql) >= {TARGET_TOP10_SPEEDUP:.0f}x faster than MLflow search_runs "
                    f"at {res['sizes']['equal_trials']:,}", sp >= TARGET_TOP10_SPEEDUP,
                    f"{sp:.2f}x ({fmt_ms(eq['top10_sql']['ms'])} vs {fmt_ms(ml['top10']['ms'])}); "
                    f"plain DuckDB over the files: {sp_raw:.2f}x"))
    else:
        out.append(("top-10 vs MLflow", None, "MLflow skipped"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--trials-per-exp", type=int, default=1000)
    ap.add_argument("--mlflow-runs", type=int, default=10_000,
                    help="MLflow runs (over 10 experiments); also the size of the equal-count catalog")
    ap.add_argument("--append-trials", type=int, default=None, help="default: --mlflow-runs")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per operation (after 1 warm-up)")
    ap.add_argument("--quick", action="store_true", help="100 x 100 trials and 1000 MLflow runs")
    ap.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    ap.add_argument("--breakdown", action="store_true", help="also time the reader's per-part stages one by one")
    ap.add_argument("--out", type=Path,
                    help="work folder to keep, with results.json (default: a temp dir, removed)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.experiments, args.trials_per_exp, args.mlflow_runs = 100, 100, 1000
    if args.mlflow_runs % MLFLOW_EXPERIMENTS:
        ap.error(f"--mlflow-runs must be a multiple of {MLFLOW_EXPERIMENTS}")
    n_append = args.append_trials or args.mlflow_runs
    work = args.out or Path(tempfile.mkdtemp(prefix="tunehouse-bench-catalog-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "sizes": {"big_trials": args.experiments * args.trials_per_exp, "big_experiments": args.experiments,
                  "equal_trials": args.mlflow_runs, "equal_experiments": MLFLOW_EXPERIMENTS,
                  "append_trials": n_append},
        "repeats": args.repeats, "cores": os.cpu_count(),
    }
    try:
        check_schema_against_writer()
        catalogs = {
            "tunehouse_big": (work / f"catalog-{args.experiments}x{args.trials_per_exp}",
                              args.experiments, args.trials_per_exp),
            "tunehouse_equal": (work / f"catalog-{MLFLOW_EXPERIMENTS}x{args.mlflow_runs // MLFLOW_EXPERIMENTS}",
                                MLFLOW_EXPERIMENTS, args.mlflow_runs // MLFLOW_EXPERIMENTS),
        }
        for key, (root, n_exp, per) in catalogs.items():
            log(f"generating {n_exp} x {per} = {n_exp * per:,} trials in {root} ...")
            gen = generate_catalog(root, n_exp, per, seed=args.seed)
            log(f"  generated in {gen['seconds']:.1f} s ({gen['bytes'] / 1e6:.0f} MB, {gen['files']} files)")
            c0 = time.perf_counter()
            Catalog(root).compact_catalog()  # the catalog-wide experiments index, as `tunehouse catalog compact` writes
            gen["index_s"] = time.perf_counter() - c0
            log(f"  experiments index (tunehouse catalog compact) in {gen['index_s']:.1f} s")
            best_exp = gen["ids"][len(gen["ids"]) // 2]
            log(f"timing reads on {root.name} ...")
            r = tunehouse_reads(root, best_exp, args.repeats)
            log("  " + ", ".join(f"{k} {v['ms']:.0f} ms" for k, v in r.items() if isinstance(v, dict)))
            if key == "tunehouse_big" and args.breakdown:
                log("breaking down the reads ...")
                res["breakdown"] = breakdown(root, best_exp)
            log(f"timing the append of {n_append:,} trials ...")
            r["append"] = bench_append(root, work / "append-warmup", n_append, args.repeats)
            log(f"  append {r['append']['ms']:.0f} ms ({r['append']['parts']} parts)")
            appended = r["append"]["experiment_ids"][0]
            r["best_uncompacted"] = timed(lambda root=root, appended=appended: Catalog(root).best(appended),
                                          args.repeats)
            r["generation"] = {k: v for k, v in gen.items() if k != "ids"}
            r["best_experiment"] = best_exp
            res[key] = r
        if not args.no_mlflow:
            log(f"MLflow: logging {args.mlflow_runs:,} runs over {MLFLOW_EXPERIMENTS} experiments ...")
            res["mlflow"] = bench_mlflow(work / "mlflow", args.mlflow_runs, args.repeats, args.seed)
            log(f"  logged in {res['mlflow']['log']['ms'] / 1000:.1f} s")
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)

    res["verdicts"] = [{"target": t, "pass": p, "value": v} for t, p, v in verdicts(res)]
    if args.out is not None:
        (work / "results.json").write_text(json.dumps(res, indent=2, default=str))
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    big = res["tunehouse_big"]["generation"]
    print(f"Generated {res['sizes']['big_trials']:,} trials ({res['sizes']['big_experiments']} experiments, "
          f"{big['files']} files, {big['bytes'] / 1e6:.0f} MB) in {big['seconds']:.1f} s; "
          f"median of {args.repeats} after 1 warm-up, {res['cores']} cores"
          + (f"; MLflow {res['mlflow']['version']}" if "mlflow" in res else ""))
    print()
    print(report(res))
    print()
    if "breakdown" in res:
        print(f"Where the time goes at {res['sizes']['big_trials']:,} trials (one call each, ms; the stages "
              "of the reader's per-part path, re-timed one by one):")
        for op, stages in res["breakdown"].items():
            print(f"  {op}: " + "; ".join(f"{k} {v:,.1f}" for k, v in stages.items()))
        print()
    for target, ok, value in verdicts(res):
        print(f"{'SKIP' if ok is None else 'PASS' if ok else 'FAIL'}: {target}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
