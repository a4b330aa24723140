"""Bookkeeping benchmark: many trivial trials on the warm service, and what they cost.

What it measures
----------------
``tunehouse run`` as a real CLI subprocess on the local service (``tunehouse up --cpus
<cores>`` once, in a private ``TUNEHOUSE_HOME``; ``tunehouse down`` after, whatever happens),
on a spec whose training function (``noop_train:fit``, written next to the spec) returns a
pure objective at once, so everything measured is overhead. Two searches, ``--trials`` (default
10,000) and a tenth of it (1,000), each timed end to end, report:

- total overhead per trial: wall / trials (ms), and wall x cores / trials (core-ms);
- the driver's peak RSS (the CLI process's own ``ru_maxrss``; on the service it holds no Ray
  processes); target: at 10,000 trials <= 1.2x at 1,000;
- catalog part files: the distinct part files seen in the experiment's partitions while it ran
  (polled every 0.2 s, before the finished run compacts them into one per table), against the
  trials and against the flush bound (wall / flush_s + rows / flush_rows + 2 per table, rows =
  3 per trial: its running and final ``trials`` rows and its one report): they must follow
  flushes, not trials;
- Tune's experiment state folder (``checkpoints/<exp>/`` without the trial folders): bytes and
  files, at both sizes; it must not grow per trial.

Beside ours it prints Ray's published reference: 10,000 trials of 1 s on 16 CPUs took 715 s
against 625 s ideal (efficiency 0.87), i.e. 9 ms of wall, 144 core-ms, of overhead per trial.
It is a report: it exits 0 whatever the numbers, and 1 only if a child fails.

How to run
----------
    .venv/bin/python scripts/bench_bookkeeping.py                 # 1,000 and 10,000 trials
    .venv/bin/python scripts/bench_bookkeeping.py --trials 1000   # smoke run: 100 and 1,000
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

import _bench as bench

TIMEOUT_S = 3600
POLL_S = 0.2
TARGET_RSS_GROWTH = 1.2  # driver peak RSS at N trials / at N/10 trials must be <= this
TABLES = ("experiments", "trials", "iterations")
#: the catalog writer's defaults (tunehouse.catalog.writer.CatalogWriter): a flush every
#: flush_rows rows or flush_s seconds, whichever comes first
FLUSH_ROWS, FLUSH_S = 200, 2.0
#: catalog rows a trivial trial writes, all tables together (what ``flush_rows`` counts): its
#: running row and its final row in ``trials``, and its one report in ``iterations``
ROWS_PER_TRIAL = 3
#: Ray's published figure: 10,000 trials of 1 s each on 16 CPUs
RAY_REF = {"trials": 10_000, "trial_s": 1.0, "cpus": 16, "wall_s": 715.0, "ideal_s": 625.0}

NOOP_TRAIN = '''\
"""Written by scripts/bench_bookkeeping.py: a trial that costs nothing."""


def fit(params, fold):
    """A pure objective, returned at once."""
    return {"loss": float(params["x"])}
'''

SPEC_TEMPLATE = """\
# Written by scripts/bench_bookkeeping.py: {trials} trivial trials.
name: bench_bookkeeping
seed: 0
task: regression
data:
  sklearn: diabetes
model: {{estimator: "noop_train:fit"}}
evaluation: {{holdout: 0.2, test_size: 0}}
metrics: [{{name: loss, mode: min}}]
search: {{algorithm: random, num_samples: {trials}}}
space:
  x: {{type: uniform, low: 0, high: 1}}
"""


class PartWatcher:
    """Polls a catalog's part files while a run goes: every distinct one seen, per table."""

    def __init__(self, catalog: Path) -> None:
        self.catalog = catalog
        self.seen: dict[str, set[str]] = {t: set() for t in TABLES}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PartWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            self._scan()

    def _scan(self) -> None:
        for table in TABLES:
            for p in (self.catalog / table).glob("experiment=*/*.parquet"):
                self.seen[table].add(p.name)


def state_folder(checkpoints: Path) -> dict[str, Any]:
    """Tune's experiment state under ``checkpoints/<exp>/``: without the trial folders."""
    exps = [d for d in checkpoints.iterdir() if d.is_dir()] if checkpoints.is_dir() else []
    files, size, trial_dirs = 0, 0, 0
    for exp in exps:
        for p in exp.iterdir():
            if p.is_dir() and p.name.startswith("trial_"):
                trial_dirs += 1
                continue
            for f in [p] if p.is_file() else [q for q in p.rglob("*") if q.is_file()]:
                files += 1
                size += f.stat().st_size
    return {"state_bytes": size, "state_files": files, "trial_dirs": trial_dirs}


def run_one(trials: int, cores: int, workdir: Path, service: bench.LocalService) -> dict[str, Any]:
    (workdir / "noop_train.py").write_text(NOOP_TRAIN)
    spec = workdir / "bench_bookkeeping.yaml"
    spec.write_text(SPEC_TEMPLATE.format(trials=trials))
    with PartWatcher(workdir / "catalog") as parts:
        child, res = bench.run_tunehouse_cli(spec, f"{trials} trials", workdir, TIMEOUT_S, service)
    records = res.get("trials") or []
    if len(records) != trials or any(t.get("status") == "error" for t in records):
        raise bench.ChildFailed(f"{trials} trials: {len(records)} recorded, some failed or missing")
    seen = {t: len(s) for t, s in parts.seen.items()}
    flush_bound = int(child.wall_s / FLUSH_S + ROWS_PER_TRIAL * trials / FLUSH_ROWS) + 2
    return {
        "trials": trials,
        "wall_s": child.wall_s,
        "overhead_ms_per_trial": 1000 * child.wall_s / trials,
        "core_ms_per_trial": 1000 * child.wall_s * cores / trials,
        "driver_peak_rss_mb": child.max_rss_mb,
        "part_files": seen,
        "part_files_total": sum(seen.values()),
        "flush_bound_per_table": flush_bound,
        "parts_bounded": all(n <= flush_bound for n in seen.values()),
        "phases": res.get("phases"),
        **state_folder(workdir / "catalog" / "checkpoints"),
    }


def benchmark(trials: int, cores: int) -> dict[str, Any]:
    busy_before = bench.busy_cores()
    sizes = [max(1, trials // 10), trials]
    with bench.local_service(cores) as service:
        runs = bench.run_rounds(
            [str(n) for n in sizes], 1, lambda way, d: run_one(int(way), cores, d, service)
        )
    small, big = (runs[str(n)][0] for n in sizes)
    growth = big["driver_peak_rss_mb"] / small["driver_peak_rss_mb"]
    ref = RAY_REF
    ref_over = (ref["wall_s"] - ref["ideal_s"]) / ref["trials"]
    return {
        "config": {
            "trials": sizes,
            "cores": cores,
            "repeats": 1,
            "python": sys.executable,
            "busy_cores_before": busy_before,
            "service_up_s": service.up_s,
        },
        "runs": {str(n): runs[str(n)][0] for n in sizes},
        "ray_reference": {
            **ref,
            "efficiency": ref["ideal_s"] / ref["wall_s"],
            "overhead_ms_per_trial": 1000 * ref_over,
            "core_ms_per_trial": 1000 * ref_over * ref["cpus"],
        },
        "checks": {
            "rss_growth": {
                "ratio": growth,
                "target": f"<= {TARGET_RSS_GROWTH}",
                "pass": growth <= TARGET_RSS_GROWTH,
            },
            "parts_bounded_by_flushes": {
                "pass": small["parts_bounded"] and big["parts_bounded"],
                "target": "part files per table <= wall / flush_s + rows / flush_rows + 2",
            },
        },
        "notes": [
            "trials return a pure objective at once: the wall is all overhead (Python start, "
            "attach, data, Tune's loop, the catalog, exit)",
            "overhead per trial = wall / trials; core-ms = that x cores (Ray's figure: "
            "(715 - 625) s / 10,000 trials, x 16 CPUs)",
            "Ray's reference trials last 1 s on 16 CPUs, ours 0 s on "
            f"{cores}: the per-trial overheads compare, the efficiencies do not",
            "driver peak RSS: ru_maxrss of the CLI process (wait4)",
            "part files: distinct files seen while the run went, polled every "
            f"{POLL_S} s (a lower bound), before the finished run compacts them",
            f"`tunehouse up --cpus {cores}` took {service.up_s:.1f} s, once, not in any wall",
            bench.LOAD1_NOTE,
        ],
    }


def print_report(rep: dict[str, Any]) -> None:
    c = rep["config"]
    bench.print_header(
        f"trivial trials (a pure objective returned at once) on the warm local service, "
        f"{c['cores']} cores",
        c,
    )
    print()
    print(
        f"{'trials':>7} {'wall s':>8} {'ms/trial':>9} {'core-ms':>8} {'driver RSS MB':>14} "
        f"{'part files (exp/trials/iter)':>29} {'flush bound':>12} {'state KB':>9} "
        f"{'state files':>11} {'load1':>6}"
    )
    for r in rep["runs"].values():
        pf = r["part_files"]
        parts = f"{pf['experiments']}/{pf['trials']}/{pf['iterations']}"
        print(
            f"{r['trials']:>7} {r['wall_s']:>8.1f} {r['overhead_ms_per_trial']:>9.1f} "
            f"{r['core_ms_per_trial']:>8.1f} {r['driver_peak_rss_mb']:>14.0f} {parts:>29} "
            f"{r['flush_bound_per_table']:>12} {r['state_bytes'] / 1024:>9.1f} "
            f"{r['state_files']:>11} {r['load1_at_exit']:>6.1f}"
        )
    ref = rep["ray_reference"]
    print(
        f"{'Ray ref':>7} {ref['wall_s']:>8.1f} {ref['overhead_ms_per_trial']:>9.1f} "
        f"{ref['core_ms_per_trial']:>8.1f}   ({ref['trials']:,} x {ref['trial_s']:.0f} s trials on "
        f"{ref['cpus']} CPUs: {ref['ideal_s']:.0f} s ideal, efficiency {ref['efficiency']:.2f})"
    )
    print()
    small, big = rep["runs"].values()
    chk = rep["checks"]["rss_growth"]
    print(
        f"driver peak RSS {big['trials']} / {small['trials']} trials  {chk['ratio']:.2f}  "
        f"(target {chk['target']})  {'PASS' if chk['pass'] else 'FAIL'}"
    )
    chk = rep["checks"]["parts_bounded_by_flushes"]
    print(
        f"part files vs trials: {small['part_files_total']} for {small['trials']}, "
        f"{big['part_files_total']} for {big['trials']} (bounded by flushes: {chk['target']})  "
        f"{'PASS' if chk['pass'] else 'FAIL'}"
    )
    print(
        f"Tune's experiment state: {small['state_bytes'] / 1024:.1f} KB at {small['trials']}, "
        f"{big['state_bytes'] / 1024:.1f} KB at {big['trials']} trials "
        f"({big['trial_dirs']} trial folders beside it)"
    )
    print()
    bench.print_notes(rep["notes"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--trials",
        type=int,
        default=10_000,
        help="trials of the big search; the small one runs a tenth (default 10000)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    args = p.parse_args(argv)
    if args.trials < 10:
        p.error("--trials must be >= 10")
    cores = bench.available_cores()
    return bench.report(lambda: benchmark(args.trials, cores), args.json, print_report)


if __name__ == "__main__":
    sys.exit(main())
