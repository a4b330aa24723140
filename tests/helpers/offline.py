"""An experiment recorded without Ray: the real recorder, writer and trial code, no Tune.

Tests of what reads a finished experiment (export, predict, the model card) use it to stay
fast; what the driver itself records is covered by the tests that run real searches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def record(spec_path: Path, catalog: Path, configs: list[dict[str, Any]]) -> str:
    """Validate ``spec_path``, evaluate each config as a trial would, record it all in ``catalog``.

    Each trial's fitted model is checkpointed where a run puts it; returns the experiment id.
    """
    from tunehouse import load_spec
    from tunehouse.catalog import CatalogWriter, ExperimentRecorder
    from tunehouse.driver import TrialRecord, describe, new_experiment_id
    from tunehouse.provenance import environment
    from tunehouse.trainable import evaluate, make_payload, save_model

    spec = load_spec(spec_path)
    from tunehouse.validate import validate

    dataset, splits = validate(spec)
    payload = make_payload(spec, dataset, splits)
    exp_id = new_experiment_id(spec.name)
    root = Path(catalog).resolve()
    recorder = ExperimentRecorder(CatalogWriter(str(root), exp_id),
                                  describe(spec, dataset, exp_id, environment(spec.base_dir)))
    recorder.start(cluster_cpus=1.0, cluster_nodes=1)
    for i, params in enumerate(configs):
        trial_id = f"offline_{i:05d}"
        t0 = time.time()
        outcome = evaluate(params, payload)
        folder = root / "checkpoints" / exp_id / f"trial_{trial_id}" / "checkpoint_000000"
        folder.mkdir(parents=True)
        sha = save_model(outcome.model, params, str(folder))
        recorder.trial_finished(TrialRecord(
            trial_id, "terminated", params, metrics=outcome.metrics, checkpoint=str(folder),
            checkpoint_sha256=sha, iterations=1, started_at=t0, ended_at=time.time(), attempts=1))
    recorder.finish("completed")
    return exp_id
