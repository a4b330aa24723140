"""Early-stopping benchmark: one XGBoost search, run with and without stopping poor trials.

What it measures
----------------
One 60-trial random search (seed 0) of an XGBoost classifier with up to 500 boosting rounds
(``tree_method: hist``, ``n_jobs: 1``, ``random_state: 0``) over

    learning_rate     loguniform 0.01 .. 0.3
    max_depth         int 3 .. 10 (both ends included)
    min_child_weight  loguniform 1 .. 20
    subsample         uniform 0.5 .. 1
    colsample_bytree  uniform 0.5 .. 1

on a generated binary classification set: scikit-learn's ``make_classification(n_samples=
20000, n_features=20, n_informative=10, random_state=0)`` with the generator's other settings
at their defaults (``n_redundant=2``, ``n_repeated=0``, ``n_classes=2``, ``flip_y=0.01``,
``class_sep=1.0``, ``shuffle=True``), written once to a Parquet file (columns ``f00`` ..
``f19`` and the target ``y``) that every way reads. Each configuration is scored by 3-fold CV
``roc_auc`` on the training rows, and the best is refitted on all training rows and scored
once on the test rows. Six ways:

1. ``tunehouse-full``   -- ``python -m tunehouse run SPEC --catalog TMP --json`` with
   ``n_estimators: 500`` fixed in ``model.params``: every trial runs all its rounds;
2. ``tunehouse-asha``   -- the same spec without ``n_estimators`` and with
   ``search.early_stopping: {scheduler: asha, resource: auto, min_resource: 20,
   max_resource: 500, reduction_factor: 3, report_every: 10}``;
3. ``halving``          -- scikit-learn's ``HalvingRandomSearchCV`` (resource ``n_estimators``,
   ``min_resources=20``, ``max_resources=500``, ``factor=3``, ``n_candidates=60``,
   ``n_jobs=<cores>``, ``refit=True``) with the same distributions from ``scipy.stats``;
4. ``optuna-hyperband`` -- Optuna with ``RandomSampler(seed=0)`` and ``HyperbandPruner(
   min_resource=20, max_resource=500, reduction_factor=3)``, ``n_jobs=<cores>`` threads; the
   objective keeps one booster per fold and advances the 3 together 10 rounds at a time
   (``Booster.update``, the loop inside ``xgb.train``: the models equal an uninterrupted
   ``xgb.train``), reporting the mean fold roc_auc at each step (``trial.report`` /
   ``trial.should_prune``); the best trial is refitted at the rounds it reached;
5. ``tunehouse-full-warm``, 6. ``tunehouse-asha-warm`` -- ways 1 and 2 on the local service
   (``tunehouse up --cpus <cores>`` once before the rounds, in a private ``TUNEHOUSE_HOME``,
   ``tunehouse down`` after; idle while the other ways run): each still a fresh ``tunehouse
   run`` process, without Ray's start-up.

Every way scores the same test rows and the same CV folds: tunehouse reads the whole file and
holds out ``evaluation.test_size: 0.2`` itself (``tunehouse.data.split``:
``train_test_split(test_size=0.2, random_state=seed, stratify=y)``) and cuts its folds with
``StratifiedKFold(3, shuffle=True, random_state=seed)`` (``tunehouse.trainable._folds``); the
other ways reproduce both with the same seed 0. The configurations sampled differ between
tools (the same distributions, each tool's own random stream).

Every way runs in its own fresh subprocess, and the parent times that subprocess end to end
(Python start-up, imports, Ray start-up and shutdown, the refit and the test score included).
It prints, per way, wall seconds, the best CV roc_auc, the refitted best's test roc_auc and
the trials stopped early, then the issue's four checks, each PASS/FAIL: tunehouse-full /
tunehouse-asha wall (target >= 3), halving / tunehouse-asha wall (target > 1), the test-score
difference asha vs full (target within 0.005) and asha vs halving (asha >= halving), and the
same four for the warm ways (``*_warm``). It is a report: it exits 0 whatever the numbers, and
1 only if a child fails.

How to run
----------
    .venv/bin/python scripts/bench_early_stopping.py                  # full run, tens of minutes
    .venv/bin/python scripts/bench_early_stopping.py --quick          # smoke: 8 trials, 4,000 rows, 60 rounds
    .venv/bin/python scripts/bench_early_stopping.py --ways tunehouse-full,halving --json
    .venv/bin/python scripts/bench_early_stopping.py --trials 30 --rows 10000 --rounds 300

Ray is kept local and fresh: ``RAY_ADDRESS`` is removed from the children's environment,
``RAY_TMPDIR`` points at the child's private temp dir (so ``ray.init()`` cannot find and join
a cluster some ``ray start`` left behind) and ``RAY_USAGE_STATS_ENABLED=0`` is set.

Run it on an otherwise idle machine: it warns when the CPUs were busy before it started, and
the ``load1`` column shows the 1-minute load average as each way finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _bench as bench

WAYS: tuple[str, ...] = ("tunehouse-full", "tunehouse-asha", "halving", "optuna-hyperband",
                         "tunehouse-full-warm", "tunehouse-asha-warm")
TUNEHOUSE_WAYS = ("tunehouse-full", "tunehouse-asha", "tunehouse-full-warm", "tunehouse-asha-warm")
WARM = "-warm"  # the ways run on the local service (``tunehouse up`` once, before the rounds)
TIMEOUT_S = 3600
SEED = 0
CV = 3
TEST_SIZE = 0.2
N_FEATURES = 20
N_INFORMATIVE = 10
TARGET = "y"
MIN_RESOURCE = 20  # boosting rounds before the first cut
REDUCTION_FACTOR = 3
REPORT_EVERY = 10  # rounds between two reports (tunehouse, Optuna)
FULL = {"trials": 60, "rows": 20_000, "rounds": 500}
QUICK = {"trials": 8, "rows": 4_000, "rounds": 60}
TARGET_FULL_VS_ASHA = 3.0  # tunehouse-full wall / tunehouse-asha wall must be >= this
TARGET_HALVING_VS_ASHA = 1.0  # halving wall / tunehouse-asha wall must be > this
TARGET_TEST_DIFF = 0.005  # |test roc_auc asha - full| must be <= this

SPEC_TEMPLATE = """\
# Written by scripts/bench_early_stopping.py: the benchmark's search, as a tunehouse spec.
name: {name}
seed: {seed}
task: classification
data:
  path: {data}
  target: {target}
model:
  estimator: xgboost
  params: {params}
evaluation: {{cv: {cv}, test_size: {test_size}}}
metrics: [roc_auc]
search:
  algorithm: random
  num_samples: {trials}
{early_stopping}space:
  learning_rate: {{type: loguniform, low: 0.01, high: 0.3}}
  max_depth: {{type: int, low: 3, high: 10}}
  min_child_weight: {{type: loguniform, low: 1, high: 20}}
  subsample: {{type: uniform, low: 0.5, high: 1.0}}
  colsample_bytree: {{type: uniform, low: 0.5, high: 1.0}}
"""

EARLY_STOPPING_TEMPLATE = """\
  early_stopping:
    scheduler: asha
    resource: auto
    min_resource: {min_resource}
    max_resource: {max_resource}
    reduction_factor: {reduction_factor}
    report_every: {report_every}
"""


# -- the data: generated once, split the way tunehouse splits it ------------------------------
def write_data(rows: int, path: Path) -> None:
    """The benchmark's data set as one Parquet file: ``f00`` .. ``f19`` and the 0/1 target."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=N_FEATURES, n_informative=N_INFORMATIVE, random_state=SEED
    )
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(N_FEATURES)])
    frame[TARGET] = y
    frame.to_parquet(path, index=False)


def load_split(path: Path) -> tuple[Any, Any, Any, Any]:
    """(X_train, X_test, y_train, y_test) exactly as tunehouse holds out its test rows.

    ``tunehouse.data.split`` calls ``train_test_split(X, y, test_size, random_state=seed,
    stratify=y)`` on the file's rows in order (a 0/1 target keeps its codes), so the same call
    here gives the same rows.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_parquet(path)
    X, y = frame.drop(columns=[TARGET]), frame[TARGET]
    return train_test_split(X, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)


def cv_folds() -> Any:
    """The CV splitter tunehouse uses for classification (``tunehouse.trainable._folds``)."""
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=CV, shuffle=True, random_state=SEED)


def _xgb_fixed() -> dict[str, Any]:
    """The untuned XGBClassifier settings every way shares (tunehouse: its defaults + params)."""
    return {"tree_method": "hist", "n_jobs": 1, "random_state": SEED, "verbosity": 0}


def _test_auc(model: Any, X_test: Any, y_test: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))


# -- the two in-process ways (each runs inside its own child process) -------------------------
def one_halving(trials: int, rounds: int, cores: int, data: Path) -> dict[str, Any]:
    from scipy.stats import loguniform, randint, uniform
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV
    from xgboost import XGBClassifier

    X_train, X_test, y_train, y_test = load_split(data)
    search = HalvingRandomSearchCV(
        XGBClassifier(**_xgb_fixed()),  # n_estimators is the resource: set by each iteration
        param_distributions={
            "learning_rate": loguniform(0.01, 0.3),
            "max_depth": randint(3, 11),  # scipy's randint excludes the upper bound
            "min_child_weight": loguniform(1, 20),
            "subsample": uniform(0.5, 0.5),  # scipy's uniform(loc, scale): [0.5, 1.0]
            "colsample_bytree": uniform(0.5, 0.5),
        },
        resource="n_estimators",
        min_resources=MIN_RESOURCE,
        max_resources=rounds,
        factor=REDUCTION_FACTOR,
        n_candidates=trials,
        cv=cv_folds(),
        scoring="roc_auc",
        random_state=SEED,
        n_jobs=cores,
        refit=True,
    )
    search.fit(X_train, y_train)
    n_candidates = [int(n) for n in search.n_candidates_]
    n_resources = [int(n) for n in search.n_resources_]
    return {
        "best_cv_roc_auc": float(search.best_score_),
        "test_roc_auc": _test_auc(search.best_estimator_, X_test, y_test),
        "best_params": search.best_params_,
        "best_rounds": int(search.best_params_["n_estimators"]),
        "n_trials": n_candidates[0],
        "stopped_early": n_candidates[0] - n_candidates[-1],
        "n_candidates": n_candidates,
        "n_resources": n_resources,
        # CV fits x rounds, the refit not counted
        "rounds_trained": CV * sum(c * r for c, r in zip(n_candidates, n_resources)),
    }


def _report_steps(rounds: int) -> list[int]:
    """Rounds at which a trial reports: every ``REPORT_EVERY``, and the last round."""
    steps = list(range(REPORT_EVERY, rounds, REPORT_EVERY))
    return [*steps, rounds]


def one_optuna(trials: int, rounds: int, cores: int, data: Path) -> dict[str, Any]:
    import numpy as np
    import optuna
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X_train, X_test, y_train, y_test = load_split(data)
    folds = list(cv_folds().split(X_train, y_train))
    X_np, y_np = X_train.to_numpy(), y_train.to_numpy()
    steps = _report_steps(rounds)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 1, 20, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        }
        booster_params = {
            **params, "objective": "binary:logistic", "tree_method": "hist", "nthread": 1,
            "seed": SEED, "verbosity": 0,
        }  # fmt: skip
        # one DMatrix pair per trial: threads never share a DMatrix's lazily built histograms
        dms = [(xgb.DMatrix(X_np[tr], y_np[tr]), xgb.DMatrix(X_np[va])) for tr, va in folds]
        boosters = [xgb.Booster(booster_params, [dtr, dva]) for dtr, dva in dms]
        done, value = 0, float("nan")
        for step in steps:
            for bst, (dtr, _) in zip(boosters, dms):
                for i in range(done, step):
                    bst.update(dtr, iteration=i)
            done = step
            value = float(
                np.mean(
                    [
                        roc_auc_score(y_np[va], bst.predict(dva))
                        for bst, (_, dva), (_, va) in zip(boosters, dms, folds)
                    ]
                )
            )
            trial.set_user_attr("rounds", step)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=SEED),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=MIN_RESOURCE, max_resource=rounds, reduction_factor=REDUCTION_FACTOR
        ),
    )
    study.optimize(objective, n_trials=trials, n_jobs=cores)
    best = study.best_trial
    best_rounds = int(best.user_attrs["rounds"])
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=best_rounds, **best.params, **_xgb_fixed())
    model.fit(X_train, y_train)
    states = Counter(t.state.name for t in study.trials)
    return {
        "best_cv_roc_auc": float(best.value),
        "test_roc_auc": _test_auc(model, X_test, y_test),
        "best_params": best.params,
        "best_rounds": best_rounds,
        "n_trials": len(study.trials),
        "stopped_early": states.get("PRUNED", 0),
        "states": dict(states),
        "rounds_trained": CV * sum(int(t.user_attrs.get("rounds", 0)) for t in study.trials),
    }


IN_PROCESS = {"halving": one_halving, "optuna-hyperband": one_optuna}


# -- the parent: spawn, time, collect ----------------------------------------------------------
def run_in_process_way(
    way: str, size: dict[str, int], cores: int, data: Path, workdir: Path
) -> dict[str, Any]:
    args = [
        "--trials", str(size["trials"]), "--rows", str(size["rows"]),
        "--rounds", str(size["rounds"]), "--cores", str(cores), "--data", str(data),
    ]  # fmt: skip
    return bench.run_script_way(__file__, way, args, workdir, TIMEOUT_S)


def tunehouse_spec(way: str, size: dict[str, int], data: Path) -> str:
    """The spec of a tunehouse way: all rounds fixed (full), or the rounds as ASHA's resource."""
    if way.startswith("tunehouse-full"):
        params = f"{{n_estimators: {size['rounds']}, tree_method: hist, n_jobs: 1}}"
        early_stopping = ""
    else:  # the resource sets n_estimators: it is neither fixed nor tuned
        params = "{tree_method: hist, n_jobs: 1}"
        early_stopping = EARLY_STOPPING_TEMPLATE.format(
            min_resource=MIN_RESOURCE, max_resource=size["rounds"],
            reduction_factor=REDUCTION_FACTOR, report_every=REPORT_EVERY,
        )  # fmt: skip
    return SPEC_TEMPLATE.format(
        name=f"bench_early_stopping_{way.split('-')[1]}", seed=SEED, data=json.dumps(str(data)),
        target=TARGET, params=params, cv=CV, test_size=TEST_SIZE, trials=size["trials"],
        early_stopping=early_stopping,
    )  # fmt: skip


def run_tunehouse(way: str, size: dict[str, int], data: Path, workdir: Path,
                  service: bench.LocalService | None = None) -> dict[str, Any]:
    spec = workdir / f"{way}.yaml"
    spec.write_text(tunehouse_spec(way, size, data))
    child, res = bench.run_tunehouse_cli(spec, way, workdir, TIMEOUT_S, service)
    trials = res.get("trials") or []
    statuses = Counter(str(t.get("status")) for t in trials)
    best = res.get("best") or {}
    out: dict[str, Any] = {
        "wall_s": child.wall_s,
        "best_cv_roc_auc": float(best.get("metrics", {}).get("roc_auc", math.nan)),
        "test_roc_auc": float((res.get("test_metrics") or {}).get("roc_auc", math.nan)),
        "best_params": best.get("params"),
        "n_trials": len(trials),
        "stopped_early": statuses.get("early_stopped", 0),
        "statuses": dict(statuses),
        "failed_trials": statuses.get("error", 0),
        "run_wall_s": float(res.get("wall_s", 0.0)),  # RunResult.wall_s: inside driver.run()
    }
    if way.startswith("tunehouse-full"):
        out["best_rounds"] = size["rounds"]
        out["rounds_trained"] = CV * size["rounds"] * len(trials)
    else:  # each trial's resource: the rounds it reached before its scheduler stopped it (or all)
        out["best_rounds"] = best.get("resource")
        out["rounds_trained"] = CV * sum(int(t.get("resource") or 0) for t in trials)
    return out


def _check(value: float, target: str, passed: bool) -> dict[str, Any]:
    return {"value": value, "target": target, "pass": passed}


def checks(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """The issue's four targets, for the cold ways and (``*_warm``) the ways on the local
    service; None where a way it compares was not run (or gave no value). Halving is the same
    fresh process in both."""

    def get(way: str, key: str) -> float | None:
        v = summary.get(way, {}).get(key)
        return v if v is not None and not math.isnan(v) else None

    out: dict[str, dict[str, Any] | None] = {}
    for suffix, key_suffix in (("", ""), (WARM, "_warm")):
        if suffix and not any(w.endswith(WARM) for w in summary):
            continue
        asha, full = f"tunehouse-asha{suffix}", f"tunehouse-full{suffix}"
        asha_wall, full_wall, halving_wall = (get(w, "wall_s") for w in (asha, full, "halving"))
        asha_test, full_test, halving_test = (get(w, "test_roc_auc") for w in (asha, full, "halving"))
        got: dict[str, dict[str, Any] | None] = dict.fromkeys(
            ("full_vs_asha_wall", "halving_vs_asha_wall", "asha_vs_full_test", "asha_vs_halving_test"))
        if asha_wall and full_wall:
            r = full_wall / asha_wall
            got["full_vs_asha_wall"] = _check(r, f">= {TARGET_FULL_VS_ASHA}", r >= TARGET_FULL_VS_ASHA)
        if asha_wall and halving_wall:
            r = halving_wall / asha_wall
            got["halving_vs_asha_wall"] = _check(r, f"> {TARGET_HALVING_VS_ASHA}", r > TARGET_HALVING_VS_ASHA)
        if asha_test is not None and full_test is not None:
            d = asha_test - full_test
            got["asha_vs_full_test"] = _check(d, f"within +-{TARGET_TEST_DIFF}", abs(d) <= TARGET_TEST_DIFF)
        if asha_test is not None and halving_test is not None:
            d = asha_test - halving_test
            got["asha_vs_halving_test"] = _check(d, ">= 0", d >= 0)
        out.update({k + key_suffix: v for k, v in got.items()})
    return out


def benchmark(ways: list[str], size: dict[str, int], repeats: int, cores: int) -> dict[str, Any]:
    busy_before = bench.busy_cores()
    with tempfile.TemporaryDirectory(prefix="bench-es-data-") as d:
        data = Path(d) / "bench_early_stopping.parquet"
        write_data(size["rows"], data)

        with contextlib.ExitStack() as stack:
            service = None
            if any(w.endswith(WARM) for w in ways):  # idle while the other ways run
                service = stack.enter_context(bench.local_service(cores))

            def run_way(way: str, workdir: Path) -> dict[str, Any]:
                if way in TUNEHOUSE_WAYS:
                    return run_tunehouse(way, size, data, workdir, service if way.endswith(WARM) else None)
                return run_in_process_way(way, size, cores, data, workdir)

            runs = bench.run_rounds(ways, repeats, run_way)

    keys = ("wall_s", "best_cv_roc_auc", "test_roc_auc", "stopped_early", "n_trials",
            "best_rounds", "rounds_trained")  # fmt: skip
    summary = {w: {k: bench.median(runs[w], k) for k in keys} for w in ways}
    for w in ways:
        summary[w]["max_load1_at_exit"] = max(r["load1_at_exit"] for r in runs[w])
    if "tunehouse-full" in summary:
        for w in ways:
            summary[w]["wall_vs_full"] = summary[w]["wall_s"] / summary["tunehouse-full"]["wall_s"]
    return {
        "config": {
            **size,
            "ways": ways,
            "repeats": repeats,
            "cores": cores,
            "cv": CV,
            "test_size": TEST_SIZE,
            "min_resource": MIN_RESOURCE,
            "reduction_factor": REDUCTION_FACTOR,
            "report_every": REPORT_EVERY,
            "seed": SEED,
            "python": sys.executable,
            "busy_cores_before": busy_before,
        },
        "summary": summary,
        "checks": checks(summary),
        "notes": notes(runs, size),
        "runs": runs,
    }


def notes(runs: dict[str, list[dict[str, Any]]], size: dict[str, int]) -> list[str]:
    out = [
        "every way scores the same test rows (train_test_split(test_size=0.2, stratify=y, "
        "random_state=0) of the one Parquet file, as tunehouse.data.split does) and CV folds "
        "(StratifiedKFold(3, shuffle=True, random_state=0), as tunehouse does)",
        "the configurations differ between tools: tunehouse random search seed 0, scipy.stats "
        "with random_state=0 (halving), Optuna RandomSampler(seed=0); same distributions",
        "every model n_jobs=1 (one thread); tunehouse runs one trial per CPU (resources.cpus 1), "
        "halving n_jobs=<cores> joblib processes, Optuna n_jobs=<cores> threads",
        "each way's wall includes its refit of the best on all training rows and the test score",
    ]
    for r in runs.get("halving", [])[:1]:
        out.append(
            f"halving ran {len(r['n_resources'])} iterations at {r['n_resources']} rounds with "
            f"{r['n_candidates']} candidates: scikit-learn stops at the last iteration that fits "
            f"under max_resources={size['rounds']} (min_resources={MIN_RESOURCE}, factor="
            f"{REDUCTION_FACTOR}), so its best CV score is at {r['best_rounds']} rounds and "
            "its refit uses them"
        )
    if "optuna-hyperband" in runs:
        out.append(
            "optuna-hyperband: pruning decisions compare a trial with those that reported before "
            "it, so with threads its result varies a little from run to run; its best is "
            "chosen among completed (unpruned) trials"
        )
    out += [
        f"tunehouse ways: {bench.RAY_ENV_NOTE}",
        bench.LOAD1_NOTE,
    ]
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_report(rep: dict[str, Any]) -> None:
    c = rep["config"]
    bench.print_header(
        f"{c['trials']}-trial random search, XGBoost (<= {c['rounds']} rounds, hist, n_jobs=1), "
        f"make_classification({c['rows']:,} rows, {N_FEATURES} features), {1 - c['test_size']:.0%}"
        f"/{c['test_size']:.0%} split, {c['cv']}-fold CV roc_auc, {c['cores']} cores",
        c,
    )
    print()
    print(
        f"{'way':<19} {'wall s':>8} {'vs full':>8} {'best CV':>8} {'test':>7} "
        f"{'stopped':>8} {'rounds':>9} {'load1':>6}"
    )
    for way, s in rep["summary"].items():
        stopped = _fmt(s["stopped_early"], ".0f")
        if stopped != "n/a":
            stopped = f"{stopped}/{s['n_trials']:.0f}"
        print(
            f"{way:<19} {s['wall_s']:>8.2f} {_fmt(s.get('wall_vs_full'), '.2f'):>7}x "
            f"{_fmt(s['best_cv_roc_auc'], '.4f'):>8} {_fmt(s['test_roc_auc'], '.4f'):>7} "
            f"{stopped:>8} {_fmt(s['rounds_trained'], ',.0f'):>9} {s['max_load1_at_exit']:>6.1f}"
        )
    print(
        "  (best CV: the best trial's mean fold roc_auc; test: the refitted best on the test "
        "rows; stopped: trials stopped early / trials; rounds: boosting rounds trained in CV "
        "fits, where known)"
    )
    print()
    labels = {
        "full_vs_asha_wall": "wall tunehouse-full / tunehouse-asha",
        "halving_vs_asha_wall": "wall halving / tunehouse-asha",
        "asha_vs_full_test": "test asha - full",
        "asha_vs_halving_test": "test asha - halving",
    }
    labels.update({f"{k}_warm": v.replace("full", "full-warm").replace("asha", "asha-warm")
                   for k, v in labels.items()})
    for key, chk in rep["checks"].items():
        if chk is None:
            print(f"{labels[key]:<44} {'n/a':>8}  (a way it compares was not run)")
            continue
        verdict = "PASS" if chk["pass"] else "FAIL"
        print(f"{labels[key]:<44} {chk['value']:>8.4f}  (target {chk['target']})  {verdict}")
    print()
    bench.print_notes(rep["notes"])


def _parse_ways(text: str) -> list[str]:
    ways = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in ways if w not in WAYS]
    if bad or not ways:
        raise argparse.ArgumentTypeError(
            f"unknown way {bad[0]!r}; expected a comma-separated list of {', '.join(WAYS)}"
            if bad
            else "no way given"
        )
    return [w for w in WAYS if w in ways]  # the documented order, each once


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--ways",
        type=_parse_ways,
        default=list(WAYS),
        help=f"comma-separated ways to run (default: all of {','.join(WAYS)})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: {trials} trials, {rows} rows, {rounds} rounds".format(**QUICK),
    )
    p.add_argument("--trials", type=int, default=None, help=f"trials (default {FULL['trials']})")
    p.add_argument(
        "--rows", type=int, default=None, help=f"rows generated (default {FULL['rows']})"
    )
    p.add_argument(
        "--rounds", type=int, default=None, help=f"most boosting rounds (default {FULL['rounds']})"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of all ways; the median is reported (default 1)",
    )
    bench.add_output_and_child_args(p, IN_PROCESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    size = {k: getattr(args, k) if getattr(args, k) is not None else base[k] for k in FULL}
    if size["trials"] < 1 or args.repeats < 1:
        p.error("--trials and --repeats must be >= 1")
    if size["rounds"] < MIN_RESOURCE:
        p.error(f"--rounds must be >= {MIN_RESOURCE} (the rounds before the first cut)")
    if size["rows"] < 100:
        p.error("--rows must be >= 100")
    cores = args.cores or bench.available_cores()

    if args.one:
        if not args.data:
            p.error("--one needs --data")
        out = IN_PROCESS[args.one](size["trials"], size["rounds"], cores, Path(args.data))
        bench.write_result(out, args.result)
        return 0
    return bench.report(lambda: benchmark(args.ways, size, args.repeats, cores), args.json, print_report)


if __name__ == "__main__":
    sys.exit(main())
