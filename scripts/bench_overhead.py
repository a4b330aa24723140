"""Overhead benchmark: the same small random search run four ways, side by side.

What it measures
----------------
One 40-trial random search of a small random forest (``n_estimators=50``, ``n_jobs=1``,
``random_state=0``) on scikit-learn's breast cancer data, each trial scored by 3-fold CV
accuracy, over the same space (``max_depth`` int 2..12, ``min_samples_leaf`` int 1..8,
``max_features`` in [sqrt, log2], ``criterion`` in [gini, entropy]), run with:

1. ``sklearn``   -- ``RandomizedSearchCV(n_jobs=<cores>, n_iter=40, cv=3, refit=True)``;
2. ``optuna``    -- ``study.optimize(objective, n_trials=40, n_jobs=<cores>)`` with a
   ``RandomSampler(seed=0)`` and ``cross_val_score(cv=3)`` in the objective (threads);
3. ``tune``      -- plain Ray Tune with default settings: ``ray.init()``, a function trainable
   calling ``tune.report``, ``tune.Tuner(...).fit()`` with default ``TuneConfig`` /
   ``RunConfig`` except ``num_samples`` and ``storage_path`` (a temp dir);
4. ``tunehouse`` -- ``python -m tunehouse run SPEC --catalog TMP --json --no-service`` as a
   real CLI subprocess (cold: an embedded Ray), on a spec this script writes (random search,
   seed 0, ``test_size: 0``, fixed ``n_estimators: 50, n_jobs: 1``);
5. ``tunehouse-warm`` -- the same CLI run with the local service up: ``tunehouse up --cpus
   <cores>`` once before the rounds, in a private ``TUNEHOUSE_HOME`` (``tunehouse down`` after,
   whatever happens), so the run attaches to it instead of starting Ray.

Every way runs in its own fresh subprocess, and the parent times that subprocess end to end
(Python start-up, imports, Ray start-up and shutdown included), so no Ray or import cache
leaks from one way into the next. Repeats are interleaved (s, o, t, th, s, o, ...) and the
median is reported.

It prints wall seconds, the ratio to scikit-learn and the best CV accuracy of each way; then
tunehouse's trial efficiency (sum of per-trial ``usage.wall_s`` / (subprocess wall x cores)),
where tunehouse's wall time goes (its ``phases`` from ``run --json``, cold and warm), and the
ratios issue 15 tracks, each with PASS/FAIL: cold tunehouse / sklearn (target <= 1.5), plain
Tune / cold tunehouse (target >= 10) and warm tunehouse / sklearn (target <= 1.1). It is a
report: it exits 0 whatever the numbers, and 1 only if a child fails.

The service stays up (idle) during the other ways' runs too: its idle processes (dashboard,
GCS, raylet) take a little CPU from them, which the notes say.

How to run
----------
    .venv/bin/python scripts/bench_overhead.py                 # one round, 2-3 minutes
    .venv/bin/python scripts/bench_overhead.py --repeats 3     # median of three rounds
    .venv/bin/python scripts/bench_overhead.py --trials 20 --json

Ray is kept local and fresh: ``RAY_ADDRESS`` is removed from the children's environment,
``RAY_TMPDIR`` points at the child's private temp dir (so ``ray.init()`` cannot find and join
a cluster some ``ray start`` left behind) and ``RAY_USAGE_STATS_ENABLED=0`` is set. Plain Tune
calls ``ray.init()`` with no arguments; only if that raises (e.g. the dashboard cannot start)
does it retry with ``include_dashboard=False``, and the report says so.

Run it on an otherwise idle machine: it warns when the CPUs were busy before it started, and
the ``load1`` column shows the 1-minute load average as each way finished.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _bench as bench

WAYS: tuple[str, ...] = ("sklearn", "optuna", "tune", "tunehouse", "tunehouse-warm")
TUNEHOUSE_WAYS = ("tunehouse", "tunehouse-warm")
TIMEOUT_S = 600
SEED = 0
N_ESTIMATORS = 50
CV = 3
TARGET_TUNEHOUSE_VS_SKLEARN = 1.5  # cold tunehouse wall / sklearn wall must be <= this
TARGET_TUNE_VS_TUNEHOUSE = 10.0  # plain-Tune wall / cold tunehouse wall must be >= this
TARGET_WARM_VS_SKLEARN = 1.1  # warm tunehouse (service up) wall / sklearn wall must be <= this
#: ``RunResult.phases`` in the order a run passes them (``python_and_imports`` is derived: launch
#: to ``driver.run()``, i.e. Python start, the CLI, spec loading and imports)
PHASES = ("python_and_imports", "ray_start", "ray_start_and_data", "setup", "to_first_trial",
          "tuner_fit", "refit_and_test", "compact")  # fmt: skip

SPEC_TEMPLATE = """\
# Written by scripts/bench_overhead.py: the benchmark's search, as a tunehouse spec.
name: bench_overhead
seed: {seed}
task: classification
data:
  sklearn: breast_cancer
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: {n_estimators}, n_jobs: 1}}
evaluation: {{cv: {cv}, test_size: 0}}
metrics: [accuracy]
search: {{algorithm: random, num_samples: {trials}}}
space:
  max_depth: {{type: int, low: 2, high: 12}}
  min_samples_leaf: {{type: int, low: 1, high: 8}}
  max_features: {{type: choice, values: [sqrt, log2]}}
  criterion: {{type: choice, values: [gini, entropy]}}
"""


# -- the three in-process ways (each runs inside its own child process) ---------------------
def _forest(**params: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=N_ESTIMATORS, n_jobs=1, random_state=SEED, **params)


def _data() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def one_sklearn(trials: int, cores: int, workdir: Path) -> dict[str, Any]:
    from scipy.stats import randint
    from sklearn.model_selection import RandomizedSearchCV

    X, y = _data()
    search = RandomizedSearchCV(
        _forest(),
        param_distributions={
            "max_depth": randint(2, 13),  # scipy's randint excludes the upper bound
            "min_samples_leaf": randint(1, 9),
            "max_features": ["sqrt", "log2"],
            "criterion": ["gini", "entropy"],
        },
        n_iter=trials,
        cv=CV,
        scoring="accuracy",
        refit=True,
        n_jobs=cores,
        random_state=SEED,
    )
    search.fit(X, y)
    return {"best_accuracy": float(search.best_score_), "best_params": search.best_params_}


def one_optuna(trials: int, cores: int, workdir: Path) -> dict[str, Any]:
    import optuna
    from sklearn.model_selection import cross_val_score

    X, y = _data()

    def objective(trial: optuna.Trial) -> float:
        model = _forest(
            max_depth=trial.suggest_int("max_depth", 2, 12),
            min_samples_leaf=trial.suggest_int("min_samples_leaf", 1, 8),
            max_features=trial.suggest_categorical("max_features", ["sqrt", "log2"]),
            criterion=trial.suggest_categorical("criterion", ["gini", "entropy"]),
        )
        return float(cross_val_score(model, X, y, cv=CV, scoring="accuracy").mean())

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=SEED)
    )
    study.optimize(objective, n_trials=trials, n_jobs=cores)
    return {"best_accuracy": float(study.best_value), "best_params": study.best_params}


def _tune_trainable(config: dict[str, Any]) -> None:
    """Plain Tune's function trainable: what a user would write from the Tune docs."""
    from ray import tune
    from sklearn.model_selection import cross_val_score

    X, y = _data()
    acc = cross_val_score(_forest(**config), X, y, cv=CV, scoring="accuracy").mean()
    tune.report({"accuracy": float(acc)})


def one_tune(trials: int, cores: int, workdir: Path) -> dict[str, Any]:
    import ray
    from ray import tune

    notes: list[str] = []
    try:
        ctx = ray.init()  # pure defaults
        dashboard = getattr(ctx, "dashboard_url", None)
        notes.append(
            "plain Tune: ray.init() with defaults; "
            + (
                f"dashboard up at {dashboard}"
                if dashboard
                else "no dashboard started (ray[default] not installed)"
            )
        )
    except Exception as e:  # the default dashboard (or anything else) failed to start here
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if ray.is_initialized():
            ray.shutdown()
        ray.init(include_dashboard=False)
        notes.append(
            f"plain Tune: ray.init() failed ({first}); fell back to ray.init(include_dashboard=False)"
        )

    tuner = tune.Tuner(
        _tune_trainable,
        param_space={
            "max_depth": tune.randint(2, 13),  # Tune's randint excludes the upper bound
            "min_samples_leaf": tune.randint(1, 9),
            "max_features": tune.choice(["sqrt", "log2"]),
            "criterion": tune.choice(["gini", "entropy"]),
        },
        tune_config=tune.TuneConfig(num_samples=trials),
        run_config=tune.RunConfig(storage_path=str(workdir / "ray_results")),
    )
    results = tuner.fit()
    best = results.get_best_result(metric="accuracy", mode="max")
    trial_wall = [float(r.metrics.get("time_total_s", 0.0)) for r in results if r.metrics]
    ray.shutdown()
    return {
        "best_accuracy": float(best.metrics["accuracy"]),
        "best_params": best.config,
        "n_trials": len(results),
        "errors": len(results.errors),
        "sum_trial_wall_s": sum(trial_wall),
        "notes": notes,
    }


IN_PROCESS = {"sklearn": one_sklearn, "optuna": one_optuna, "tune": one_tune}


# -- the parent: spawn, time, collect ----------------------------------------------------------
#: Plain Tune runs with "defaults": none of the Tune/AIR knobs tunehouse sets for itself.
TUNE_DEFAULTS_DROP = ("TUNE_", "RAY_AIR_")


def run_in_process_way(way: str, trials: int, cores: int, workdir: Path) -> dict[str, Any]:
    args = ["--trials", str(trials), "--cores", str(cores), "--workdir", str(workdir)]
    drop = TUNE_DEFAULTS_DROP if way == "tune" else ()
    return bench.run_script_way(__file__, way, args, workdir, TIMEOUT_S, drop)


def run_tunehouse(
    trials: int, cores: int, workdir: Path, service: bench.LocalService | None = None
) -> dict[str, Any]:
    spec = workdir / "bench_overhead.yaml"
    spec.write_text(
        SPEC_TEMPLATE.format(seed=SEED, n_estimators=N_ESTIMATORS, cv=CV, trials=trials)
    )
    way = "tunehouse-warm" if service else "tunehouse"
    child, res = bench.run_tunehouse_cli(spec, way, workdir, TIMEOUT_S, service)
    wall, start, end = child.wall_s, child.start_epoch, child.end_epoch
    trials_out = res.get("trials") or []
    usage_wall = sum(float(t.get("usage", {}).get("wall_s", 0.0)) for t in trials_out)
    usage_cpu = sum(float(t.get("usage", {}).get("cpu_s", 0.0)) for t in trials_out)
    trial_walls = [float(t["usage"]["wall_s"]) for t in trials_out if t.get("usage")]
    starts = [t["started_at"] for t in trials_out if t.get("started_at")]
    ends = [t["ended_at"] for t in trials_out if t.get("ended_at")]
    best = res.get("best") or {}
    in_run = float(res.get("wall_s", 0.0))
    out: dict[str, Any] = {
        "wall_s": wall,
        "best_accuracy": float(best.get("metrics", {}).get("accuracy", float("nan"))),
        "best_params": best.get("params"),
        "n_trials": len(trials_out),
        "cluster_cpus": float(res.get("cluster_cpus", 0.0)),
        "failed_trials": sum(1 for t in trials_out if t.get("status") == "error"),
        "run_wall_s": in_run,  # RunResult.wall_s: inside driver.run()
        "outside_run_s": wall - in_run,  # Python start, CLI and tunehouse imports, JSON, exit
        "sum_trial_wall_s": usage_wall,
        "sum_trial_cpu_s": usage_cpu,
        "max_trial_wall_s": max(trial_walls, default=0.0),
        "median_trial_wall_s": statistics.median(trial_walls) if trial_walls else 0.0,
        "distinct_trial_pids": len({t["usage"].get("pid") for t in trials_out if t.get("usage")}),
        "trial_efficiency": usage_wall / (wall * cores) if wall > 0 else 0.0,
    }
    phases = {k: float(v) for k, v in (res.get("phases") or {}).items()}
    if starts and ends:
        out["to_first_trial_s"] = min(starts) - start  # launch -> Tune starts the first trial
        out["trials_span_s"] = max(ends) - min(starts)  # first trial start -> last trial end
        out["after_last_trial_s"] = end - max(ends)  # last trial end -> process exit
        in_run = sum(phases.get(k, 0.0) for k in ("ray_start_and_data", "setup", "to_first_trial"))
        phases["python_and_imports"] = out["to_first_trial_s"] - in_run
    out.update({f"phase_{k}": v for k, v in phases.items()})
    return out


def benchmark(trials: int, repeats: int, cores: int) -> dict[str, Any]:
    busy_before = bench.busy_cores()
    with bench.local_service(cores) as service:

        def run_way(way: str, workdir: Path) -> dict[str, Any]:
            if way in TUNEHOUSE_WAYS:
                return run_tunehouse(
                    trials, cores, workdir, service if way != "tunehouse" else None
                )
            return run_in_process_way(way, trials, cores, workdir)

        busy_idle_service = bench.busy_cores()
        runs = bench.run_rounds(WAYS, repeats, run_way)

    walls = {w: bench.median(runs[w], "wall_s") for w in WAYS}
    summary = {
        w: {
            "wall_s": walls[w],
            "ratio_vs_sklearn": walls[w] / walls["sklearn"],
            "best_accuracy": bench.median(runs[w], "best_accuracy"),
            "max_load1_at_exit": max(r["load1_at_exit"] for r in runs[w]),
        }
        for w in WAYS
    }
    th_keys = [
        "trial_efficiency", "sum_trial_wall_s", "sum_trial_cpu_s", "median_trial_wall_s",
        "max_trial_wall_s", "run_wall_s", "outside_run_s", "to_first_trial_s", "trials_span_s",
        "after_last_trial_s", "distinct_trial_pids", "n_trials", "failed_trials", "cluster_cpus",
    ]  # fmt: skip
    th_keys += [f"phase_{k}" for k in PHASES]
    tunehouse = {k: bench.median(runs["tunehouse"], k) for k in th_keys}
    warm = {k: bench.median(runs["tunehouse-warm"], k) for k in th_keys}
    warm_vs_sk = walls["tunehouse-warm"] / walls["sklearn"]
    tune_sum = bench.median(runs["tune"], "sum_trial_wall_s")
    tune_eff = tune_sum / (walls["tune"] * cores)
    th_vs_sk = walls["tunehouse"] / walls["sklearn"]
    tune_vs_th = walls["tune"] / walls["tunehouse"]
    notes = sorted({n for r in runs["tune"] for n in r.get("notes", [])})
    notes += [
        "sklearn refits the best configuration on all rows (refit=True): one extra fit the "
        "other ways do not do",
        "sklearn, optuna and plain Tune use unshuffled StratifiedKFold(3) (cv=3); tunehouse "
        "uses StratifiedKFold(3, shuffle=True, random_state=0), so best accuracies differ a "
        "little",
        "optuna uses RandomSampler(seed=0) and n_jobs threads; plain Tune samples unseeded "
        "(default BasicVariantGenerator); sklearn random_state=0; tunehouse seed 0",
        "plain Tune's trainable loads the data itself in every trial (as the Tune docs do); "
        "its environment has no TUNE_*/RAY_AIR_* variables",
        f"all Ray children: {bench.RAY_ENV_NOTE}",
        f"tunehouse-warm: `tunehouse up --cpus {cores}` took {service.up_s:.1f} s once, before "
        "the rounds (not in its wall); the idle service stayed up during every way's run "
        f"(machine busy {_cores(busy_idle_service)} cores with it up and idle, before the rounds; "
        f"{_cores(busy_before)} before it started)",
        "phases: RunResult.phases of `tunehouse run --json`; python_and_imports = launch to "
        "driver.run() (Python start, CLI, spec, imports); ray_start_and_data = Ray start (or "
        "attach) overlapped with data loading; setup = Tuner and recorder; to_first_trial = "
        "tuner.fit() to the first trial's start; tuner_fit includes it",
        bench.LOAD1_NOTE,
    ]
    return {
        "config": {
            "trials": trials,
            "repeats": repeats,
            "cores": cores,
            "cv": CV,
            "n_estimators": N_ESTIMATORS,
            "seed": SEED,
            "python": sys.executable,
            "busy_cores_before": busy_before,
            "busy_cores_service_idle": busy_idle_service,
            "service_up_s": service.up_s,
        },
        "summary": summary,
        "tunehouse": tunehouse,
        "tunehouse_warm": warm,
        "plain_tune": {"sum_trial_wall_s": tune_sum, "trial_efficiency": tune_eff},
        "checks": {
            "tunehouse_vs_sklearn": {
                "ratio": th_vs_sk,
                "target": f"<= {TARGET_TUNEHOUSE_VS_SKLEARN}",
                "pass": th_vs_sk <= TARGET_TUNEHOUSE_VS_SKLEARN,
            },
            "tune_vs_tunehouse": {
                "ratio": tune_vs_th,
                "target": f">= {TARGET_TUNE_VS_TUNEHOUSE}",
                "pass": tune_vs_th >= TARGET_TUNE_VS_TUNEHOUSE,
            },
            "warm_vs_sklearn": {
                "ratio": warm_vs_sk,
                "target": f"<= {TARGET_WARM_VS_SKLEARN}",
                "pass": warm_vs_sk <= TARGET_WARM_VS_SKLEARN,
            },
        },
        "notes": notes,
        "runs": runs,
    }


def print_report(rep: dict[str, Any]) -> None:
    c = rep["config"]
    bench.print_header(
        f"{c['trials']}-trial random search, RandomForest(n_estimators={c['n_estimators']}, n_jobs=1), "
        f"breast_cancer, {c['cv']}-fold CV, {c['cores']} cores",
        c,
    )
    print()
    print(f"{'way':<15} {'wall s':>8} {'vs sklearn':>11} {'best acc':>9} {'load1':>6}")
    for way, s in rep["summary"].items():
        print(
            f"{way:<15} {s['wall_s']:>8.2f} {s['ratio_vs_sklearn']:>10.2f}x "
            f"{s['best_accuracy']:>9.4f} {s['max_load1_at_exit']:>6.1f}"
        )
    th, tw = rep["tunehouse"], rep["summary"]["tunehouse"]["wall_s"]
    print()
    print(
        f"tunehouse trial efficiency: {th['trial_efficiency']:.2f} "
        f"(sum of trial wall {th['sum_trial_wall_s']:.2f} s / ({tw:.2f} s x {c['cores']} cores); "
        f"trial cpu {th['sum_trial_cpu_s']:.2f} s; median trial {th['median_trial_wall_s']:.3f} s, "
        f"slowest {th['max_trial_wall_s']:.3f} s; {th['distinct_trial_pids']:.0f} trial process(es) on a Ray of {th['cluster_cpus']:.0f} CPUs)"
    )
    if "to_first_trial_s" in th and th["to_first_trial_s"] == th["to_first_trial_s"]:
        print(
            f"  where tunehouse's {tw:.2f} s go: launch -> first trial {th['to_first_trial_s']:.2f} s, "
            f"trials {th['trials_span_s']:.2f} s, last trial -> exit {th['after_last_trial_s']:.2f} s "
            f"(driver.run() {th['run_wall_s']:.2f} s, outside it {th['outside_run_s']:.2f} s)"
        )
    if th["sum_trial_wall_s"] > 0 and th["sum_trial_cpu_s"] / th["sum_trial_wall_s"] < 0.8:
        print(
            f"  warning: tunehouse's trials got {th['sum_trial_cpu_s'] / th['sum_trial_wall_s']:.0%} "
            "of a CPU each (single-threaded trials get ~95% on an idle machine): something else "
            "competed for the CPUs, so these timings are inflated"
        )
    pt = rep["plain_tune"]
    print(
        f"plain Tune trial efficiency: {pt['trial_efficiency']:.2f} "
        f"(sum of trial time_total_s {pt['sum_trial_wall_s']:.2f} s)"
    )
    print()
    print_phases(rep)
    print()
    labels = {
        "tunehouse_vs_sklearn": "cold tunehouse / sklearn",
        "tune_vs_tunehouse": "plain Tune / cold tunehouse",
        "warm_vs_sklearn": "warm tunehouse / sklearn",
    }
    for key, chk in rep["checks"].items():
        verdict = "PASS" if chk["pass"] else "FAIL"
        print(f"{labels[key]:<28} {chk['ratio']:>6.2f}  (target {chk['target']})  {verdict}")
    print()
    bench.print_notes(rep["notes"])


def _cores(busy: float | None) -> str:
    return "?" if busy is None else f"{busy:.1f}"


def print_phases(rep: dict[str, Any]) -> None:
    """tunehouse's phases, cold and warm, side by side (medians, seconds)."""
    print()
    print(f"{'tunehouse phase (s)':<22} {'cold':>7} {'warm':>7}")
    for k in PHASES:
        cold, warm = rep["tunehouse"][f"phase_{k}"], rep["tunehouse_warm"][f"phase_{k}"]
        print(f"{k:<22} {cold:>7.2f} {warm:>7.2f}")
    cold, warm = rep["summary"]["tunehouse"]["wall_s"], rep["summary"]["tunehouse-warm"]["wall_s"]
    print(f"{'wall (end to end)':<22} {cold:>7.2f} {warm:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of all five ways; the median is reported (default 1)",
    )
    p.add_argument("--trials", type=int, default=40, help="trials per search (default 40)")
    bench.add_output_and_child_args(p, IN_PROCESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trials < 1 or args.repeats < 1:
        p.error("--trials and --repeats must be >= 1")
    cores = args.cores or bench.available_cores()

    if args.one:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-"))
        bench.write_result(IN_PROCESS[args.one](args.trials, cores, workdir), args.result)
        return 0
    return bench.report(
        lambda: benchmark(args.trials, args.repeats, cores), args.json, print_report
    )


if __name__ == "__main__":
    sys.exit(main())
