"""Writing catalog rows without Ray, as the driver would."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from tunehouse.catalog import CatalogWriter, ExperimentRecorder
from tunehouse.driver import describe
from tunehouse.records import TrialRecord
from tunehouse.spec import parse_spec

SPEC = """
name: {name}
task: classification
data: {{sklearn: iris}}
model: sklearn.tree.DecisionTreeClassifier
metrics: [{metric}]
search: {{algorithm: random, num_samples: {n}}}
space: {{max_depth: {{type: int, low: 1, high: 9}}}}
"""


def FakeTrial(*args: Any, iterations: int | None = 1, attempts: int | None = 1, **kw: Any) -> TrialRecord:
    """A ``TrialRecord`` as a trial of the driver's ends: one report, one attempt."""
    return TrialRecord(*args, iterations=iterations, attempts=attempts, **kw)


def plain_duckdb(sql: str) -> str:
    """What ``print(duckdb.sql(sql).fetchall())`` prints in a process without tunehouse or Ray."""
    import subprocess
    import sys

    code = (f"import duckdb, sys\nrows = duckdb.sql({sql!r}).fetchall()\n"
            "assert 'tunehouse' not in sys.modules and 'ray' not in sys.modules\nprint(rows)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def record_experiment(uri: str, exp_id: str, trials: list[FakeTrial], *, name: str = "exp",
                      metric: str = "accuracy", finish: bool = True, flush_rows: int = 200,
                      fingerprint: str = "fp0") -> ExperimentRecorder:
    spec = parse_spec(SPEC.format(name=name, metric=metric, n=max(1, len(trials))))
    writer = CatalogWriter(uri, exp_id, flush_rows=flush_rows, flush_s=3600)
    dataset = SimpleNamespace(fingerprint=fingerprint, source="sklearn:iris")
    rec = ExperimentRecorder(writer, describe(spec, dataset, exp_id, {"python": "3"}))
    rec.start(cluster_cpus=2, cluster_nodes=1)
    for t in trials:
        t.started_at = t.started_at or time.time()
        t.ended_at = t.ended_at or time.time()
        rec.trial_started(t.trial_id, t.params, t.started_at)
        rec.trial_result(t.trial_id, 1, t.metrics)
        rec.trial_finished(t)
    if finish:
        rec.finish("completed")
    else:
        writer.flush()
    return rec


def trials(n: int, metric: str = "accuracy", params=None) -> list[FakeTrial]:
    return [
        FakeTrial(f"t{i:04d}", "terminated", params(i) if params else {"max_depth": i % 9 + 1, "criterion": "gini"},
                  {metric: i / n, f"{metric}_std": 0.01},
                  usage={"wall_s": 0.1, "cpu_s": 0.1, "peak_rss_mb": 100.0, "node_id": "n1", "pid": 1})
        for i in range(n)
    ]
