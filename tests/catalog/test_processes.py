"""The catalog under real processes: concurrent writers, a driver killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunehouse.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]

#: Each writer imports, says it is ready, waits for "go", then records ``TRIALS`` trials in
#: flushes of 7 rows: the four write at the same time rather than one after another.
WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    sys.path.insert(0, {tests!r})
    from catalog.helpers import record_experiment, trials
    gate = pathlib.Path(sys.argv[2])
    (gate / ("ready-" + sys.argv[1])).touch()
    while not (gate / "go").exists():
        time.sleep(0.01)
    record_experiment({uri!r}, sys.argv[1], trials({n}), name=sys.argv[1], flush_rows=7)
    """
)
TRIALS = 30  # about 13 flushes per writer, each of three parts


def test_four_concurrent_writers_lose_and_duplicate_nothing(catalog_uri, tmp_path):
    code = WRITER.format(tests=str(ROOT / "tests"), uri=catalog_uri, n=TRIALS)
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", code, f"w{i}", str(gate)], env=os.environ.copy())
             for i in range(4)]
    try:
        deadline = time.time() + 120
        while len(list(gate.glob("ready-*"))) < 4 and time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.02)
        (gate / "go").touch()
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    cat = Catalog(catalog_uri)
    exps = cat.experiments()
    assert sorted(exps.experiment_id) == ["w0", "w1", "w2", "w3"]
    assert set(exps.status) == {"completed"} and set(exps.trials_done) == {TRIALS}
    counts = cat.sql("select experiment_id, count(*) n, count(distinct trial_id) d from trials group by 1").df()
    assert set(counts.n) == {TRIALS} and set(counts.d) == {TRIALS}
    assert cat.check() == []


SLOW = textwrap.dedent(
    """
    import time

    def slow(params, data):
        time.sleep(0.4)
        return {"loss": (params["x"] - 1.0) ** 2}
    """
)

SPEC = textwrap.dedent(
    """
    name: killed
    task: classification
    data: {sklearn: iris}
    model: slow_objective:slow
    evaluation: {holdout: 0.3, test_size: 0}
    metrics: [{name: loss, mode: min}]
    search: {algorithm: random, num_samples: 200}
    space: {x: {type: uniform, low: -3, high: 3}}
    """
)


def _start_slow_run(tmp_path, **popen) -> tuple[subprocess.Popen, str]:
    """A real `tunehouse run` of 200 slow trials in its own session; returns (process, catalog)."""
    (tmp_path / "slow_objective.py").write_text(SLOW)
    spec = tmp_path / "killed.yaml"
    spec.write_text(SPEC)
    uri = str(tmp_path / "catalog")
    proc = subprocess.Popen([sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", uri],
                            cwd=tmp_path, start_new_session=True, **popen)
    return proc, uri


def _finished(uri: str) -> int:
    """Trials the catalog shows as finished (0 before the first flush)."""
    if not (Path(uri) / "trials").exists():
        return 0
    df = Catalog(uri).trials("killed")
    return int((df.status == "terminated").sum()) if len(df) else 0


@pytest.mark.slow
def test_ctrl_c_marks_the_experiment_interrupted(tmp_path):
    proc, uri = _start_slow_run(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, seen = time.time() + 120, 0
        while time.time() < deadline and seen < 4:
            time.sleep(0.5)
            seen = _finished(uri)
        assert seen >= 4
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    last = err.splitlines()[-1]
    assert last.startswith("interrupted:") and "tunehouse resume killed-" in last  # the resume command
    cat = Catalog(uri)
    exp = cat.experiments().iloc[0]
    assert exp.status == "interrupted" and exp.ended_at is not None  # recorded, not inferred
    df = cat.trials("killed")
    assert int((df.status == "terminated").sum()) >= seen
    assert cat.check() == []
