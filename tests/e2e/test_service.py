"""The local service (`tunehouse up/status/down`) with real processes: a real Ray head started by
`up`, searches as separate CLI processes attached to it, a trial's worker killed, and `down`
leaving nothing behind. Each test has its own TUNEHOUSE_HOME (and so its own ports, token and
temp dir) and always runs `down` in a finally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunehouse.catalog import Catalog

pytestmark = pytest.mark.slow

OBJECTIVE = textwrap.dedent(
    """
    import os, time

    MARKERS = {markers!r}

    def work(params, data):
        # each attempt appends its worker's pid to markers/x<x>; the first attempt of x == 0
        # (with ``hang``) waits for the test to kill its worker
        path = os.path.join(MARKERS, "x%d" % params["x"])
        with open(path, "a") as f:
            f.write("%d\\n" % os.getpid())
        attempt = len(open(path).read().split())
        if params["hang"] and params["x"] == 0 and attempt == 1:
            time.sleep(120)
        if params["x"] == params["fail"]:
            raise ValueError("a planned failure: its actor ends with it")
        time.sleep(0.2)
        return {{"loss": float(params["x"])}}
    """
)


def _spec(d: Path, name: str, *, hang: bool = False, n: int = 4, retries: int = 0, fail: int = -1) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "markers").mkdir()
    (d / "svc_objective.py").write_text(OBJECTIVE.format(markers=str(d / "markers")))
    (d / "rows.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40)))
    spec = d / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\ntask: classification\ndata: {{path: rows.csv, target: label}}\n"
        "model: svc_objective:work\nmetrics: [{name: loss, mode: min}]\nevaluation: {holdout: 0.25, test_size: 0}\n"
        f"search: {{algorithm: grid, max_concurrent: 2}}\nfailure: {{max_retries: {retries}}}\n"
        f"space: {{x: {{type: grid, values: {list(range(n))}}}, hang: {{type: grid, values: [{str(hang).lower()}]}}, "
        f"fail: {{type: grid, values: [{fail}]}}}}\n"
    )
    return spec


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    e["TUNEHOUSE_HOME"] = str(tmp_path / "home")
    return e


def _cli(env, *args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunehouse", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _run(env, spec: Path, catalog: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", str(catalog),
                             "--json", "--quiet"], env=env, cwd=spec.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout=400) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _trials(catalog: Path):
    cat = Catalog(str(catalog))
    (exp_id,) = cat.experiments().experiment_id
    return cat.trials(exp_id)


def _service_procs(home: Path):
    from tunehouse.backend import service

    state = service.read_state(home / "service")
    assert state is not None
    return state, service.processes(state)


def test_up_status_two_searches_a_killed_worker_and_down(tmp_path, env):
    import psutil

    home = Path(env["TUNEHOUSE_HOME"])
    seen: list[tuple[int, float]] = []
    try:
        up = _cli(env, "up", "--cpus", "2", timeout=240)
        assert up.returncode == 0, up.stderr[-3000:]
        assert "local service up at 127.0.0.1:" in up.stdout
        state, procs = _service_procs(home)
        seen += [(p.pid, p.create_time()) for p in procs]
        assert state.temp_dir.startswith("/tmp/") and Path(state.token_path).stat().st_mode & 0o077 == 0

        again = _cli(env, "up")
        assert again.returncode == 1 and again.stderr.count("\n") == 1
        assert f"already up at {state.address}" in again.stderr

        st = json.loads(_cli(env, "status", "--json").stdout)
        assert st["up"] and st["address"] == state.address and st["cpus"] == 2 and st["searches"] == []

        # two searches at once, from two CLI processes; both attach to the service
        specs = [_spec(tmp_path / n, n) for n in ("one", "two")]
        procs_ = [_run(env, s, tmp_path / f"cat-{s.stem}") for s in specs]
        listed = _wait_for_searches(env, 2, procs_)
        for proc, spec in zip(procs_, specs, strict=True):
            out, err = _finish(proc)
            assert f"using the local service at {state.address} (tunehouse down to stop it)" in err.splitlines()
            result = json.loads(out)
            assert result["cluster_cpus"] == 2
            df = _trials(tmp_path / f"cat-{spec.stem}")
            assert sorted(df.x) == [0, 1, 2, 3] and set(df.status) == {"terminated"}
        assert listed >= 1  # status listed running searches while they ran

        # a trial's worker is killed: the trial is retried (max_retries: 1) and the search completes
        spec = _spec(tmp_path / "killed", "killed", hang=True, n=3, retries=1)
        proc = _run(env, spec, tmp_path / "cat-killed")
        marker = spec.parent / "markers" / "x0"
        deadline = time.time() + 240
        while time.time() < deadline and not marker.exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        pid = int(marker.read_text().split()[0])
        _, procs = _service_procs(home)
        if pid not in {p.pid for p in procs}:  # say where it ran: its ancestry and what the run said
            chain = [(a.pid, " ".join(a.cmdline()[:2])) for a in psutil.Process(pid).parents()]
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the trial did not run in a worker of the service: {pid} under {chain}; "
                        f"run said {proc.communicate()[1][-1500:]}")
        os.kill(pid, signal.SIGKILL)
        _finish(proc)
        assert len(marker.read_text().split()) == 2  # killed, then retried once
        df = _trials(tmp_path / "cat-killed")
        assert sorted(df.x) == [0, 1, 2] and set(df.status) == {"terminated"}

        # trials far shorter than a new worker's start-up keep both CPUs busy: when trial 2 fails,
        # its actor ends and a new one starts; a free actor then takes a trial whose own actor only
        # waits for resources, never the starting one's (tune_hooks.ReuseForWaitingTrials). Tune's
        # own choice killed each new actor as it came up, and the rest ran in one actor.
        spec = _spec(tmp_path / "short", "short", n=40, fail=2)
        _finish(_run(env, spec, tmp_path / "cat-short"))
        df = _trials(tmp_path / "cat-short")
        assert len(df) == 40 and sorted(df.status.unique()) == ["error", "terminated"]
        failed_at = df[df.status == "error"].ended_at.max()
        after = df[df.started_at > failed_at]
        assert len(after) >= 30 and after.pid.nunique() == 2, after.pid.value_counts().to_dict()

        _, procs = _service_procs(home)
        seen += [(p.pid, p.create_time()) for p in procs]
    finally:
        down = _cli(env, "down", timeout=120)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "local service: down" in down.stdout
    survivors = []
    for pid, created in seen:
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                survivors.append(pid)
        except psutil.NoSuchProcess:
            pass
    assert survivors == []
    assert not any(state.temp_dir in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))
    assert not Path(state.temp_dir).exists() and not (home / "service" / "state.json").exists()
    assert _cli(env, "status").stdout.strip() == "local service: down"


def _wait_for_searches(env, n: int, procs: list[subprocess.Popen]) -> int:
    """Poll ``status`` while the searches run; the most running searches it listed at once."""
    most = 0
    deadline = time.time() + 240
    while time.time() < deadline and any(p.poll() is None for p in procs) and most < n:
        st = json.loads(_cli(env, "status", "--json").stdout)
        assert st["up"]
        mine = [j for j in st["searches"] if j.get("driver_pid") in {p.pid for p in procs}]
        most = max(most, len(mine))
        time.sleep(0.5)
    return most


def test_a_stale_state_falls_back_to_an_embedded_ray_in_one_line(tmp_path, env):
    """A state file whose processes are gone: status says so, run uses an embedded Ray, down clears it."""
    home = Path(env["TUNEHOUSE_HOME"]) / "service"
    home.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (home / "state.json").write_text(json.dumps({
        "address": "127.0.0.1:9", "job_server": "http://127.0.0.1:9", "cpus": 2,
        "temp_dir": str(tmp_path / "no-such-ray"), "token_path": str(home / "token"),
        "started_at": time.time(), "pids": [[gone.pid, 0.0]],
    }))
    try:
        st = _cli(env, "status")
        assert st.stdout.startswith("local service: down (stale state")
        spec = _spec(tmp_path / "s", "stale", n=2)
        run = _cli(env, "run", str(spec), "--catalog", str(tmp_path / "cat"), "--quiet", cwd=spec.parent)
        assert run.returncode == 0, run.stderr[-3000:]
        said = [ln for ln in run.stderr.splitlines() if "local service" in ln]
        assert said == [f"the local service recorded in {home} is not running: using an embedded Ray "
                        "(tunehouse down clears its state)"]
        assert sorted(_trials(tmp_path / "cat").x) == [0, 1]
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0 and down.stdout.strip() == "local service: was not up (cleared its stale state)"
    assert not (home / "state.json").exists()


def test_backend_choice_follows_the_service_state(tmp_path, monkeypatch):
    """No address: the service when its state is live, unless bypassed; an address always wins."""
    from tunehouse.backend import AttachedCluster, EmbeddedRay, LocalService, backend_for

    monkeypatch.setenv("TUNEHOUSE_HOME", str(tmp_path))
    for k in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        # set, then deleted: monkeypatch restores each to its state before the test (unset too),
        # so the auth settings backend_for exports for the service never leak into later tests
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    home = tmp_path / "service"
    home.mkdir()
    import socket

    import psutil

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    me = psutil.Process()
    (home / "state.json").write_text(json.dumps({
        "address": f"127.0.0.1:{port}", "job_server": "http://127.0.0.1:1", "cpus": 1,
        "temp_dir": str(tmp_path / "ray"), "token_path": str(home / "token"), "started_at": 0.0,
        "pids": [[me.pid, me.create_time()]],  # a process that is certainly alive: this one
    }))
    said: list[str] = []
    try:
        backend = backend_for(None, say=said.append)
        assert isinstance(backend, LocalService) and backend.address == f"127.0.0.1:{port}"
        assert said == [f"using the local service at 127.0.0.1:{port} (tunehouse down to stop it)"]
        assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN_PATH"] == str(home / "token")
        said.clear()
        assert type(backend_for(None, service=False, say=said.append)) is EmbeddedRay
        assert type(backend_for("local", say=said.append)) is EmbeddedRay
        assert type(backend_for("127.0.0.1:6379", say=said.append)) is AttachedCluster
        assert said == []
    finally:
        listener.close()
