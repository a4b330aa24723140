"""Writing catalog rows without Ray, as the driver would."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tunehouse.catalog import CatalogWriter, ExperimentRecorder
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


@dataclass
class FakeTrial:  # the fields of driver.TrialRecord the recorder reads
    trial_id: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    iterations: int | None = 1
    best_metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int | None = 1


def record_experiment(uri: str, exp_id: str, trials: list[FakeTrial], *, name: str = "exp",
                      metric: str = "accuracy", finish: bool = True, flush_rows: int = 200,
                      fingerprint: str = "fp0") -> ExperimentRecorder:
    spec = parse_spec(SPEC.format(name=name, metric=metric, n=max(1, len(trials))))
    writer = CatalogWriter(uri, exp_id, flush_rows=flush_rows, flush_s=3600)
    rec = ExperimentRecorder(writer, spec=spec, dataset=SimpleNamespace(fingerprint=fingerprint, source="sklearn:iris"),
                             environment={"python": "3"})
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
