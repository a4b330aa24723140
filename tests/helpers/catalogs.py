"""Experiments written into a catalog without Ray, as the driver writes them (report tests)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from catalog.helpers import FakeTrial
from tunehouse.catalog import CatalogWriter, ExperimentRecorder
from tunehouse.driver import describe
from tunehouse.spec import parse_spec

#: A random search over three params of a decision tree (``name`` and ``n`` to fill in).
THREE_PARAMS = """
name: {name}
task: classification
data: {{sklearn: iris}}
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy]
search: {{algorithm: random, num_samples: {n}}}
space: {{max_depth: {{type: int, low: 1, high: 9}}, criterion: [gini, entropy], min_impurity_decrease: {{type: uniform, low: 0.0, high: 0.2}}}}
"""

ONE_PARAM = """
name: single
task: classification
data: {sklearn: iris}
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy]
search: {algorithm: random, num_samples: 5}
space: {max_depth: {type: int, low: 1, high: 9}}
"""


def fake(i: int, value: float | None, *, status: str = "terminated", params=None, start: float | None = None,
         wall: float = 1.0, std: float = 0.01, error: str | None = None) -> FakeTrial:
    """Trial ``t<i>`` with accuracy ``value`` (and its fold spread ``std``), usage on two nodes."""
    start = time.time() - 100 + i if start is None else start
    params = params or {"max_depth": i % 9 + 1, "criterion": "gini", "min_impurity_decrease": 0.01 * (i % 7)}
    return FakeTrial(f"t{i:04d}", status, params, {} if value is None else {"accuracy": value, "accuracy_std": std},
                     usage={"wall_s": wall, "cpu_s": wall * 0.9, "peak_rss_mb": 100.0 + i, "node_id": f"node{i % 2}",
                            "pid": 1},
                     error=error, started_at=start, ended_at=start + wall)


def write(uri: str, exp_id: str, spec_text: str, finished: list[FakeTrial], *, running=(), reports: int = 1,
          finish: str | None = "completed", fingerprint: str = "fp0") -> ExperimentRecorder:
    """An experiment: ``finished`` trials (each reporting ``reports`` times), ``running`` ones
    given as (trial id, params, start), then ``finish`` (an experiment status) or left running."""
    writer = CatalogWriter(uri, exp_id, flush_rows=10_000, flush_s=3600)
    dataset = SimpleNamespace(fingerprint=fingerprint, source="sklearn:iris")
    rec = ExperimentRecorder(writer, describe(parse_spec(spec_text), dataset, exp_id, {"python": "3.11", "host": "h"}))
    rec.start(cluster_cpus=2, cluster_nodes=1)
    for t in finished:
        rec.trial_started(t.trial_id, t.params, t.started_at)
        for i in range(1, reports + 1):
            rec.trial_result(t.trial_id, i, {k: v - 0.1 / i for k, v in t.metrics.items()})
        rec.trial_finished(t)
    for tid, params, start in running:
        rec.trial_started(tid, params, start)
    if finish:
        rec.finish(finish)
    else:
        writer.flush()
    return rec


def story_catalog(uri: str) -> None:
    """Two experiments for report tests: ``story`` (3 params, 26 trials reporting 3 times, one
    error with HTML in its message, one value outside the space) and ``single`` (one param)."""
    done = [fake(i, 0.6 + (i % 7) / 20) for i in range(24)]
    done.append(fake(40, None, status="error", error="ValueError: <bad> & worse"))
    done.append(fake(41, 0.7, params={"max_depth": 15, "criterion": "gini", "min_impurity_decrease": 0.0}))
    write(uri, "story", THREE_PARAMS.format(name="story", n=30), done, reports=3)
    write(uri, "single", ONE_PARAM, [fake(i, 0.5 + i / 10, params={"max_depth": i + 1}) for i in range(5)],
          fingerprint="fp1")
