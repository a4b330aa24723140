"""`tunehouse resume` after a driver's death, on real processes and a real embedded Ray.

The final catalog of an interrupted-then-resumed search must equal an uninterrupted run's:
the same trials (configurations), each once, the same best configuration; trials finished
before the interruption are kept, not run again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers.cli import tunehouse_main
from tunehouse.catalog import Catalog

pytestmark = pytest.mark.slow

OBJECTIVE = textwrap.dedent(
    """
    import os, time, uuid

    GATE = {gate!r}

    def slow(params, data):
        # While the gate folder exists, the trials after the first four hang: the test
        # interrupts a search that is certainly mid-way, however fast or loaded the machine.
        if os.path.isdir(GATE):
            seen = len(os.listdir(GATE))
            open(os.path.join(GATE, uuid.uuid4().hex), "w").close()
            if seen >= 4:
                time.sleep(300)
        time.sleep(0.2)
        return {{"loss": (params["x"] - 3) ** 2 + params["y"]}}
    """
)

SPACE = {
    "grid": "search: {algorithm: grid, max_concurrent: 2}\n"
    "space: {x: {type: grid, values: [0, 1, 2, 3, 4, 5]}, y: {type: grid, values: [0, 1]}}\n",
    "random": "seed: 7\nsearch: {algorithm: random, num_samples: 12, max_concurrent: 2}\n"
    "space: {x: {type: uniform, low: 0, high: 6}, y: [0, 1, 2]}\n",
    "bayes": "seed: 7\nsearch: {algorithm: bayes, num_samples: 10, max_concurrent: 2}\n"
    "space: {x: {type: uniform, low: 0, high: 6}, y: [0, 1, 2]}\n",
}


def _spec(tmp_path: Path, algo: str) -> Path:
    (tmp_path / "slow_objective.py").write_text(OBJECTIVE.format(gate=str(tmp_path / "gate")))
    (tmp_path / "rows.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40)))
    spec = tmp_path / f"resume-{algo}.yaml"
    spec.write_text(
        f"name: resume-{algo}\ntask: classification\n"
        "data: {path: rows.csv, target: label}\n"
        "model: slow_objective:slow\nmetrics: [{name: loss, mode: min}]\nevaluation: {holdout: 0.25}\n"
        + SPACE[algo]
    )
    return spec


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A resume through the CLI's ``main`` on the session's Ray: what is interrupted is a real
    process (``_interrupt``); what resumes it is any later run."""
    return tunehouse_main(*args, cwd=cwd)


def _terminated(uri: str) -> int:
    if not (Path(uri) / "trials").exists():
        return 0
    df = Catalog(uri).trials(Catalog(uri).experiments().iloc[0].experiment_id)
    return int((df.status == "terminated").sum()) if len(df) else 0


def _interrupt(spec: Path, uri: str, sig: int, after: int) -> tuple[str, subprocess.CompletedProcess | None]:
    """Start `tunehouse run`, send ``sig`` once ``after`` trials are recorded; returns (experiment id, output).

    SIGKILL goes to the whole process group: the driver and the embedded Ray it started die
    together, as on a crashed machine.
    """
    gate = spec.parent / "gate"
    gate.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", uri],
                            cwd=spec.parent, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and _terminated(uri) < after:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.3)
        assert _terminated(uri) >= after
        if sig == signal.SIGKILL:  # the driver alone, as a crash would; then the Ray it started
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            os.killpg(proc.pid, signal.SIGKILL)
            out = None
        else:
            os.kill(proc.pid, sig)
            so, se = proc.communicate(timeout=90)
            out = subprocess.CompletedProcess(proc.args, proc.returncode, so, se)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig != signal.SIGKILL:  # the driver's own Ray may outlive it for a moment; end it
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(gate)  # the resumed search runs freely
    return Catalog(uri).experiments().iloc[0].experiment_id, out


def _configs(df) -> list[tuple]:
    return sorted((round(float(r.x), 12), int(r.y)) for r in df.itertuples())


@pytest.mark.parametrize("algo", ["grid", "random"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(ray_session, tmp_path, algo):
    spec = _spec(tmp_path, algo)
    # What an uninterrupted run does: grid runs the product, random the seeded sample
    # (both asserted against real runs in tests/test_driver.py), each config once.
    from tunehouse import load_spec
    from tunehouse.space import grid_points, sample_points

    space = load_spec(spec, check=False).space
    points = grid_points(space) if algo == "grid" else sample_points(space, 12, 7)
    want = sorted((round(float(p["x"]), 12), int(p["y"])) for p in points)
    best = min(points, key=lambda p: (p["x"] - 3) ** 2 + p["y"])
    expected_best = (float(best["x"]), int(best["y"]))

    uri = str(tmp_path / "cut")
    exp_id, _ = _interrupt(spec, uri, signal.SIGKILL, after=3)
    cat = Catalog(uri)
    assert cat.check() == []  # readable, nothing half-written
    before = cat.trials(exp_id)
    assert before.trial_id.is_unique
    done = before[before.status == "terminated"]
    kept = set(done.trial_id)
    assert 3 <= len(kept) <= 4  # every trial seen before the kill is there; cut off mid-search
    assert cat.experiment(exp_id)["status"] == "interrupted"  # inferred: the driver is dead
    assert cat.best(exp_id)["loss"] == done.loss.min()

    if algo == "grid":  # the data changed meanwhile: refused, exit 2, nothing written
        rows = tmp_path / "rows.csv"
        original = rows.read_text()
        rows.write_text(original.replace("\n3,3,1\n", "\n3,3,0\n"))
        files = sorted(Path(uri).rglob("*.parquet"))
        bad = _cli("resume", exp_id, "--catalog", uri, cwd=tmp_path)
        assert bad.returncode == 2 and "data changed" in bad.stderr, bad.stderr[-2000:]
        assert sorted(Path(uri).rglob("*.parquet")) == files
        rows.write_text(original)

    # resumed from another folder: the spec's data path is found from the catalog's record
    res = _cli("resume", exp_id, "--catalog", uri, "--json", cwd=Path("/"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout)["experiment_id"] == exp_id

    cat = Catalog(uri)
    df = cat.trials(exp_id)
    assert len(df) == 12 and df.trial_id.is_unique
    assert _configs(df) == want  # the same configurations as the uninterrupted run, each once
    assert set(df.status) == {"terminated"}
    assert kept <= set(df.trial_id)  # finished before the kill: kept, not run again
    exp = cat.experiment(exp_id)
    assert exp["status"] == "completed" and exp["trials_done"] == 12
    best = cat.best(exp_id)
    assert (float(best["x"]), int(best["y"])) == expected_best
    assert cat.check() == []

    again = _cli("resume", exp_id, "--catalog", uri, cwd=tmp_path)
    assert again.returncode == 1 and "already completed" in again.stderr


def test_sigterm_stops_and_bayes_resume_finishes_the_budget(ray_session, tmp_path):
    spec = _spec(tmp_path, "bayes")
    uri = str(tmp_path / "cat")
    exp_id, out = _interrupt(spec, uri, signal.SIGTERM, after=3)
    assert out.returncode == 143, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped:") and f"tunehouse resume {exp_id}" in last
    cat = Catalog(uri)
    assert cat.experiment(exp_id)["status"] == "stopped"  # recorded by the driver, not inferred
    before = cat.trials(exp_id)
    assert "running" not in set(before.status)  # in-flight trials were closed as stopped
    done_before = set(before[before.status == "terminated"].trial_id)
    stopped = cat.experiment(exp_id)  # the stopped run recorded what it spent
    assert stopped["wall_s"] > 0 and stopped["cpu_hours_driver"] > 0

    res = _cli("resume", exp_id, "--catalog", uri, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    df = Catalog(uri).trials(exp_id)
    assert len(df) == 10 and df.trial_id.is_unique and set(df.status) == {"terminated"}
    assert done_before <= set(df.trial_id)
    exp = Catalog(uri).experiment(exp_id)
    assert exp["status"] == "completed"
    # the resumed run adds its driver CPU and wall time; the trials' CPU is every final row's
    assert exp["wall_s"] > stopped["wall_s"] and exp["cpu_hours_driver"] > stopped["cpu_hours_driver"]
    assert exp["cpu_hours_trials"] == pytest.approx(df.cpu_s.sum() / 3600.0, rel=1e-9)
