"""Efficiency benchmark: CPU-busy trials of fixed length, end to end, cold and warm.

What it measures
----------------
``tunehouse run`` as a real CLI subprocess, timed end to end by the parent (Python start,
imports, Ray start or attach, the trials, exit), on a spec whose training function
(``spin_train:fit``, a module this script writes next to the spec, so the workers import it)
spins one CPU for ``seconds`` and returns a pure objective. Each workload (default: 40 trials
of 1 s and 200 trials of 0.1 s) runs two ways:

- ``cold`` -- ``tunehouse run --no-service``: an embedded Ray started for the search;
- ``warm`` -- the same run with the local service up (``tunehouse up --cpus <cores>`` once,
  before the rounds, in a private ``TUNEHOUSE_HOME``; ``tunehouse down`` after, whatever
  happens).

Efficiency = ideal / wall, ideal = trials x seconds / cores (every core busy with trials from
launch to exit). Targets (PASS/FAIL): warm efficiency >= 0.9 for 40 x 1 s and >= 0.75 for
200 x 0.1 s; cold is reported beside it. It is a report: it exits 0 whatever the numbers,
and 1 only if a child fails.

A trial spins on its own CPU time by default (``--clock cpu``: ``seconds`` of CPU, as the
issue measured), so a machine busy with other work stretches every trial and the efficiency
drops with it; ``--clock wall`` spins on wall time instead, which isolates tunehouse's own
overhead (scheduling, start-up, bookkeeping) from CPU contention. The report shows how much
of a CPU the trials got (their CPU / wall) and the 1-minute load average at each exit.

How to run
----------
    .venv/bin/python scripts/bench_efficiency.py                      # both workloads, 1 round
    .venv/bin/python scripts/bench_efficiency.py --repeats 3
    .venv/bin/python scripts/bench_efficiency.py --workloads 8x0.5 --clock wall --json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import _bench as bench

WAYS: tuple[str, ...] = ("cold", "warm")
DEFAULT_WORKLOADS = ("40x1", "200x0.1")
#: the issue's targets for the warm way, by workload
TARGETS = {(40, 1.0): 0.9, (200, 0.1): 0.75}
TIMEOUT_S = 1200

SPIN_TRAIN = '''\
"""Written by scripts/bench_efficiency.py: a training function of fixed length."""

import time

SECONDS = {seconds!r}
CLOCK = time.{clock}


def fit(params, fold):
    """Spin one CPU for SECONDS (of CPU time, or of wall time), a pure objective."""
    end = CLOCK() + SECONDS
    n = 0
    while CLOCK() < end:
        n += 1
    return {{"loss": float(params["x"])}}
'''

SPEC_TEMPLATE = """\
# Written by scripts/bench_efficiency.py: {trials} trials of {seconds} s of busy CPU each.
name: bench_efficiency
seed: 0
task: regression
data:
  sklearn: diabetes
model: {{estimator: "spin_train:fit"}}  # spins {seconds} s of {clock} time
evaluation: {{holdout: 0.2, test_size: 0}}
metrics: [{{name: loss, mode: min}}]
search: {{algorithm: random, num_samples: {trials}}}
space:
  x: {{type: uniform, low: 0, high: 1}}
"""


def parse_workload(text: str) -> tuple[int, float]:
    """``"40x1"`` -> (40, 1.0): trials x seconds per trial."""
    trials, _, seconds = text.partition("x")
    try:
        n, s = int(trials), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TRIALSxSECONDS, e.g. 40x1") from None
    if n < 1 or s <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: trials must be >= 1 and seconds > 0")
    return n, s


def run_one(
    workload: str, clock: str, cores: int, workdir: Path, service: bench.LocalService | None
) -> dict[str, Any]:
    """One workload, one way: the CLI run and what its trials say."""
    trials, seconds = parse_workload(workload)
    clock_fn = "process_time" if clock == "cpu" else "perf_counter"
    (workdir / "spin_train.py").write_text(SPIN_TRAIN.format(seconds=seconds, clock=clock_fn))
    spec = workdir / "bench_efficiency.yaml"
    spec.write_text(SPEC_TEMPLATE.format(trials=trials, seconds=seconds, clock=clock))
    way = f"{workload} {'warm' if service else 'cold'}"
    child, res = bench.run_tunehouse_cli(spec, way, workdir, TIMEOUT_S, service)
    records = res.get("trials") or []
    usage = [t["usage"] for t in records if t.get("usage")]
    starts = [t["started_at"] for t in records if t.get("started_at")]
    ideal = trials * seconds / cores
    out: dict[str, Any] = {
        "wall_s": child.wall_s,
        "ideal_s": ideal,
        "efficiency": ideal / child.wall_s,
        "n_trials": len(records),
        "failed_trials": sum(1 for t in records if t.get("status") == "error"),
        "median_trial_wall_s": statistics.median(u["wall_s"] for u in usage) if usage else None,
        "trial_cpu_share": (
            sum(u["cpu_s"] for u in usage) / sum(u["wall_s"] for u in usage) if usage else None
        ),
        "to_first_trial_s": (min(starts) - child.start_epoch) if starts else None,
        "phases": res.get("phases"),
    }
    if out["n_trials"] != trials or out["failed_trials"]:
        raise bench.ChildFailed(
            f"{way}: {out['n_trials']} trials recorded ({out['failed_trials']} failed), "
            f"{trials} planned"
        )
    return out


def benchmark(workloads: list[str], clock: str, repeats: int, cores: int) -> dict[str, Any]:
    busy_before = bench.busy_cores()
    ways = [f"{w} {way}" for w in workloads for way in WAYS]
    with bench.local_service(cores) as service:

        def run_way(name: str, workdir: Path) -> dict[str, Any]:
            workload, way = name.split()
            return run_one(workload, clock, cores, workdir, service if way == "warm" else None)

        runs = bench.run_rounds(ways, repeats, run_way)
    results = {}
    for name in ways:
        workload, way = name.split()
        rs = runs[name]
        results.setdefault(workload, {})[way] = {
            "wall_s": bench.median(rs, "wall_s"),
            "ideal_s": rs[0]["ideal_s"],
            "efficiency": rs[0]["ideal_s"] / bench.median(rs, "wall_s"),
            "to_first_trial_s": bench.median(rs, "to_first_trial_s"),
            "median_trial_wall_s": bench.median(rs, "median_trial_wall_s"),
            "trial_cpu_share": bench.median(rs, "trial_cpu_share"),
            "max_load1_at_exit": max(r["load1_at_exit"] for r in rs),
        }
    checks = {}
    for workload, by_way in results.items():
        target = TARGETS.get(parse_workload(workload))
        if target is not None:
            eff = by_way["warm"]["efficiency"]
            checks[workload] = {"efficiency": eff, "target": f">= {target}", "pass": eff >= target}
    return {
        "config": {
            "workloads": workloads,
            "clock": clock,
            "repeats": repeats,
            "cores": cores,
            "python": sys.executable,
            "busy_cores_before": busy_before,
            "service_up_s": service.up_s,
        },
        "results": results,
        "checks": checks,
        "notes": [
            f"ideal = trials x seconds / {cores} cores; efficiency = ideal / wall, the wall timed "
            "end to end around the CLI subprocess (Python start to exit)",
            f"warm: `tunehouse up --cpus {cores}` once before the rounds ({service.up_s:.1f} s, not "
            "in any wall), idle during the cold runs too",
            f"trials spin on {'CPU' if clock == 'cpu' else 'wall'} time; trial cpu = their CPU / "
            "their wall (about 1.0 when each trial had a core to itself)",
            "first = launch to the first trial's start",
            f"Ray children: {bench.RAY_ENV_NOTE}",
            bench.LOAD1_NOTE,
        ],
        "runs": runs,
    }


def print_report(rep: dict[str, Any]) -> None:
    c = rep["config"]
    bench.print_header(
        f"CPU-busy trials of fixed length ({c['clock']} time), `tunehouse run` end to end, "
        f"cold and warm, {c['cores']} cores",
        c,
    )
    print()
    head = (
        f"{'workload':<10} {'way':<5} {'wall s':>7} {'ideal s':>8} {'effic.':>7} "
        f"{'first s':>8} {'trial s':>8} {'trial cpu':>9} {'load1':>6}"
    )
    print(head)
    for workload, by_way in rep["results"].items():
        for way, r in by_way.items():
            print(
                f"{workload:<10} {way:<5} {r['wall_s']:>7.2f} {r['ideal_s']:>8.2f} "
                f"{r['efficiency']:>7.2f} {r['to_first_trial_s']:>8.2f} "
                f"{r['median_trial_wall_s']:>8.3f} {r['trial_cpu_share']:>9.2f} "
                f"{r['max_load1_at_exit']:>6.1f}"
            )
    print()
    for workload, chk in rep["checks"].items():
        verdict = "PASS" if chk["pass"] else "FAIL"
        print(
            f"warm efficiency {workload:<9} {chk['efficiency']:>5.2f}  (target {chk['target']})  "
            f"{verdict}"
        )
    print()
    bench.print_notes(rep["notes"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=1, help="rounds; the median is reported")
    p.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help="comma-separated TRIALSxSECONDS (default 40x1,200x0.1)",
    )
    p.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="what a trial spins on (default cpu: seconds of CPU)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    args = p.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    try:
        for w in workloads:
            parse_workload(w)
    except argparse.ArgumentTypeError as e:
        p.error(f"--workloads: {e}")
    if args.repeats < 1 or not workloads:
        p.error("--repeats must be >= 1 and --workloads not empty")
    cores = bench.available_cores()
    return bench.report(
        lambda: benchmark(workloads, args.clock, args.repeats, cores), args.json, print_report
    )


if __name__ == "__main__":
    sys.exit(main())
