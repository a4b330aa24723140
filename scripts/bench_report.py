"""What `tunehouse report` costs: build time and file size for a 1,000-trial experiment.

A measurement, not a test. It writes one experiment of ``--trials`` trials (default 1,000) into
a fresh catalog without Ray, through the catalog's own ``CatalogWriter`` and
``ExperimentRecorder`` exactly as the driver feeds them (trial_started, trial_result,
trial_finished, finish), then compacts it as a finished experiment usually is. The trials are
realistic: a random-forest space of 4 params (two ints, a choice, a float), the objective
``roc_auc`` with its fold spread ``roc_auc_std`` and ``accuracy``, usage columns on two nodes,
2 % errors; ``--reports N`` gives each trial N iteration rows (learning curves).

Then it times ``tunehouse report EXP --out FILE`` end to end in a fresh process (Python start
and imports included: what a user waits for), median of ``--repeats`` (default 3), and
``build_report`` alone in this process after one warm-up (imports excluded), and prints the
file's size. Nothing is extrapolated.

    .venv/bin/python scripts/bench_report.py
    .venv/bin/python scripts/bench_report.py --trials 200 --reports 5 --keep /tmp/bench-report
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

SPEC = """
name: bench-report
seed: 1
task: classification
data: {{sklearn: breast_cancer}}
model: sklearn.ensemble.RandomForestClassifier
evaluation: {{cv: 3}}
metrics: [roc_auc, accuracy]
search: {{algorithm: random, num_samples: {n}}}
space:
  n_estimators: {{type: int, low: 20, high: 300}}
  max_depth: {{type: int, low: 2, high: 20}}
  max_features: [sqrt, log2]
  min_impurity_decrease: {{type: uniform, low: 0.0, high: 0.05}}
"""


def write_experiment(catalog: Path, n: int, reports: int, seed: int = 0) -> str:
    from tunehouse.catalog import Catalog, CatalogWriter, ExperimentRecorder
    from tunehouse.driver import describe
    from tunehouse.records import TrialRecord
    from tunehouse.space import sample_points
    from tunehouse.spec import parse_spec

    spec = parse_spec(SPEC.format(n=n))
    exp_id = "bench-report-0001"
    writer = CatalogWriter(str(catalog), exp_id)
    dataset = SimpleNamespace(fingerprint="f" * 64, source="sklearn:breast_cancer")
    rec = ExperimentRecorder(writer, describe(spec, dataset, exp_id, {"python": sys.version.split()[0], "host": "bench"}))
    rec.start(cluster_cpus=2, cluster_nodes=2)
    rng = random.Random(seed)
    t = time.time() - n * 0.5
    for i, params in enumerate(sample_points(spec.space, n, seed)):
        tid = f"bench_{i:05d}"
        start, wall = t + i * 0.5, 0.4 + rng.random() * 0.6
        score = 0.95 + 0.03 * (1 - abs(params["max_depth"] - 9) / 11) - params["min_impurity_decrease"] + rng.gauss(0, 0.004)
        trial = TrialRecord(tid, "terminated", params, usage={
            "wall_s": wall, "cpu_s": wall * 0.95, "cpu_user_s": wall * 0.9, "cpu_sys_s": wall * 0.05,
            "peak_rss_mb": 250 + params["n_estimators"] * 0.4, "node_id": f"node{i % 2:02d}" + "a" * 50, "pid": 100 + i % 2},
            started_at=start, ended_at=start + wall)
        if rng.random() < 0.02:
            trial.status, trial.error = "error", f"ValueError: synthetic failure of trial {tid}"
        else:
            trial.metrics = {"roc_auc": score, "roc_auc_std": abs(rng.gauss(0.006, 0.002)), "accuracy": score - 0.03}
        rec.trial_started(tid, params, start)
        for it in range(1, reports + 1):
            rec.trial_result(tid, it, {"roc_auc": score - 0.02 / it, "accuracy": score - 0.03 - 0.02 / it})
        trial.iterations = reports
        rec.trial_finished(trial)
    rec.finish("completed")
    Catalog(str(catalog)).compact(exp_id)
    return exp_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--reports", type=int, default=1, help="iteration rows per trial")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", default=None, help="write the catalog and report here and keep them")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    shutil.rmtree(root / "catalog", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    exp_id = write_experiment(root / "catalog", args.trials, args.reports)
    print(f"wrote {args.trials} trials ({args.reports} report(s) each) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    out = root / "report.html"
    cli = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tunehouse", "report", exp_id, "--catalog", str(root / "catalog"),
                        "--out", str(out)], check=True, capture_output=True, text=True)
        cli.append(time.perf_counter() - t)
    from tunehouse.catalog import Catalog
    from tunehouse.report import build_report

    build_report(Catalog(str(root / "catalog")), [exp_id], root / "warmup.html")
    inproc = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        build_report(Catalog(str(root / "catalog")), [exp_id], root / "inproc.html")
        inproc.append(time.perf_counter() - t)
    size = out.stat().st_size
    from plotly.offline import get_plotlyjs

    js = len(get_plotlyjs().encode())
    print("| trials | `tunehouse report` (CLI, fresh process) | `build_report` in process | file size | of which plotly.js |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {args.trials:,} ({args.reports} report(s) each) | {statistics.median(cli):.2f} s | "
          f"{statistics.median(inproc):.2f} s | {size / 1e6:.2f} MB | {js / 1e6:.2f} MB |")
    print(f"report: {out}" if args.keep else f"(scratch folder {root} removed)", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
