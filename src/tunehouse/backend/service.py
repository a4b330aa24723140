"""The local service: a persistent Ray on loopback that ``run`` and ``resume`` attach to.

``up`` starts a Ray head (``ray start``) of its own: token auth with a token of its own,
loopback addresses, its own ports and temp dir; ``down`` ends exactly its processes. What
it saves is Ray's start-up per search (the embedded ``ray.init``); each search is still a
new Ray job whose trial workers Ray starts for it (workers belong to one job), which Ray does
while the driver loads its data. The state is one folder (``service_home()``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunehouse.backend._attach import DEFAULT_CONNECT_TIMEOUT_S
from tunehouse.backend._base import INIT_KWARGS
from tunehouse.backend.cluster import AttachedCluster
from tunehouse.backend.local import EmbeddedRay
from tunehouse.errors import RunError

STATE_FILE = "state.json"
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 5.0


def service_home() -> Path:
    """The service's state folder: ``$TUNEHOUSE_HOME/service``, by default ``~/.tunehouse/service``."""
    home = os.environ.get("TUNEHOUSE_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".tunehouse") / "service"


@dataclass
class ServiceState:
    """What ``up`` recorded: where the service listens, with what, and its processes."""

    address: str  # the GCS, 127.0.0.1:PORT
    job_server: str  # http://127.0.0.1:PORT, for ``tunehouse submit --address``
    cpus: int
    temp_dir: str  # Ray's --temp-dir: every process of the service names it, or descends from one that does
    token_path: str
    started_at: float
    pids: list[tuple[int, float]] = field(default_factory=list)  # (pid, create time) after ``ray start``

    def env(self) -> dict[str, str]:
        """What a client of the service needs in its environment (before Ray is imported)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": self.token_path}


def read_state(home: Path | None = None) -> ServiceState | None:
    """The recorded state, or None when no service was started (an unreadable file counts as none)."""
    path = (home or service_home()) / STATE_FILE
    try:
        data = json.loads(path.read_text())
        data["pids"] = [tuple(p) for p in data.get("pids", [])]
        return ServiceState(**data)
    except (OSError, ValueError, TypeError):
        return None


def recorded(state: ServiceState) -> dict[int, Any]:
    """The processes recorded at ``up`` that still run (same pid and start time)."""
    import psutil

    alive: dict[int, Any] = {}
    for pid, created in state.pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 1e-3 and _running(p):
                alive[pid] = p
    return alive


def processes(state: ServiceState) -> list[Any]:
    """The service's live processes: those recorded at ``up``, those naming its temp dir, and
    all their descendants (Ray's workers name neither)."""
    import psutil

    roots = recorded(state)
    me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.pid not in me and any(state.temp_dir in a for a in p.info["cmdline"] or []):
                roots[p.pid] = p
    family = dict(roots)
    for r in roots.values():
        with contextlib.suppress(psutil.Error):
            family.update({c.pid: c for c in r.children(recursive=True)})
    return [p for p in family.values() if _running(p)]


def is_alive(state: ServiceState) -> bool:
    """Whether the service answers: a process recorded at ``up`` runs and its GCS port accepts
    connections (cheap: no scan of the machine's processes)."""
    if not recorded(state):
        return False
    host, _, port = state.address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2.0):
            return True
    except OSError:
        return False


# -- up / status / down ------------------------------------------------------------------------
def up(cpus: int | None = None, *, home: Path | None = None) -> ServiceState:
    """Start the service (``ray start --head`` on loopback) and record its state.

    Raises:
        RunError: a service is already up (one line naming its address), or Ray did not start.
    """
    home = home or service_home()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        old = read_state(home)
        if old is not None and is_alive(old):
            raise RunError(f"a local service is already up at {old.address} (state in {home}); "
                           "tunehouse down to stop it")
        if old is not None:
            _stop(old, home)  # stale: whatever is left of it goes first
        cpus = cpus or os.cpu_count() or 1
        state = _start(home, cpus)
        (home / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        return state


def status(home: Path | None = None) -> dict[str, Any]:
    """``{"up": bool, "state_dir", "address", "job_server", "cpus", "pids", "searches", "stale"}``.

    ``searches``: the Ray jobs (one per ``tunehouse run``) whose driver is alive, each with its
    driver pid and command line. ``stale``: a state file whose processes are gone.
    """
    home = home or service_home()
    state = read_state(home)
    out: dict[str, Any] = {"up": False, "state_dir": str(home), "stale": False}
    if state is None:
        return out
    if not is_alive(state):
        out["stale"] = True
        return out
    out.update(up=True, address=state.address, job_server=state.job_server, cpus=state.cpus,
               pids=sorted(p.pid for p in processes(state)), started_at=state.started_at,
               searches=_searches(state))
    return out


def down(home: Path | None = None) -> dict[str, Any]:
    """End the service's processes (SIGTERM, then SIGKILL after a grace period), remove its temp
    dir and state. Searches running on it fail (``tunehouse resume`` continues them).

    Returns ``{"had_state": bool, "was_up": bool, "stopped": n, "survivors": [pids]}``.
    """
    home = home or service_home()
    with _locked(home):
        state = read_state(home)
        if state is None:
            return {"had_state": False, "was_up": False, "stopped": 0, "survivors": []}
        was_up = is_alive(state)
        stopped, survivors = _stop(state, home)
        return {"had_state": True, "was_up": was_up, "stopped": stopped, "survivors": survivors}


def _start(home: Path, cpus: int) -> ServiceState:
    token = home / "token"
    token.touch(mode=0o600)
    token.write_text(secrets.token_hex(32))
    # Ray's unix sockets live under <temp dir>/session_<time>/sockets (a 108-byte limit):
    # a short folder of its own in /tmp, whatever the state folder's path
    temp_dir = tempfile.mkdtemp(prefix="thsvc-", dir="/tmp")
    base, ports = _ports(9)
    gcs, dash, client = ports[:3]
    state = ServiceState(address=f"127.0.0.1:{gcs}", job_server=f"http://127.0.0.1:{dash}", cpus=cpus,
                         temp_dir=temp_dir, token_path=str(token), started_at=time.time())
    cmd = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
        f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}", f"--num-cpus={cpus}", f"--temp-dir={temp_dir}",
        "--disable-usage-stats", f"--min-worker-port={base}", f"--max-worker-port={base + WORKER_PORTS - 1}",
        f"--node-manager-port={ports[3]}", f"--object-manager-port={ports[4]}",
        f"--dashboard-agent-listen-port={ports[5]}", f"--dashboard-agent-grpc-port={ports[6]}",
        f"--runtime-env-agent-port={ports[7]}", f"--metrics-export-port={ports[8]}",
    ]
    env = {**os.environ, **state.env(), "RAY_USAGE_STATS_ENABLED": "0"}
    # job entrypoints (``tunehouse submit``) run in a shell the head starts: this environment first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):  # the service is its own cluster
        env.pop(k, None)
    log = home / "up.log"
    try:
        with log.open("w") as out:
            done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S,
                                  start_new_session=True)
        failed = done.returncode != 0
    except subprocess.TimeoutExpired:
        failed = True
    if failed:
        _stop(state, home)
        raise RunError(f"the local service did not start: {_last_line(log)} (see {log})")
    state.pids = [(p.pid, p.create_time()) for p in processes(state)]
    return state


def _stop(state: ServiceState, home: Path) -> tuple[int, list[int]]:
    import psutil

    procs = processes(state)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=STOP_GRACE_S)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    survivors = sorted(p.pid for p in processes(state))
    if not survivors:
        shutil.rmtree(state.temp_dir, ignore_errors=True)
        for name in (STATE_FILE, "token"):
            with contextlib.suppress(FileNotFoundError):
                (home / name).unlink()
    return len(procs), survivors


def _searches(state: ServiceState) -> list[dict[str, Any]]:
    """The service's running Ray jobs, read from its GCS (no driver is registered for it)."""
    os.environ.update(state.env())
    try:
        from ray._raylet import GcsClient

        jobs = GcsClient(address=state.address).get_all_job_info()
    except Exception as e:  # a Ray without this client: the rest of the status stands
        return [{"error": f"cannot list searches: {type(e).__name__}: {e}"}]
    return [{"job_id": jid.hex(), "driver_pid": j.driver_pid, "command": j.entrypoint}
            for jid, j in jobs.items() if not j.is_dead]


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per state folder."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _running(p: Any) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


WORKER_PORTS = 1000


def _ports(n: int) -> tuple[int, list[int]]:
    """The first of ``WORKER_PORTS`` worker ports, and ``n`` distinct free ports outside them.

    The worker range sits below Linux's ephemeral range (32768-60999), where the free ports
    come from; Ray refuses to start when any two of its ports collide."""
    base = 10002 + secrets.randbelow(32768 - WORKER_PORTS - 10002)
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in ports and not base <= port < base + WORKER_PORTS:
            ports.append(port)
    return base, ports


def _last_line(path: Path) -> str:
    """The log's last error line (a Python exception's), else its last line."""
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception"))]
        if errors or lines:
            return (errors or lines)[-1][:300]
    return "no output"


# -- the backend -------------------------------------------------------------------------------
class LocalService(AttachedCluster):
    """A search attached to the local service: the driver runs here, its trials on the service's
    workers. Like an embedded Ray it has the one node it will ever have, and shares this
    machine's files, so a training function next to the spec is found by its workers."""

    kind = "local service"
    check_fits = EmbeddedRay.check_fits
    pending_trials = EmbeddedRay.pending_trials

    def __init__(self, state: ServiceState, *, own_signals: bool = False,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        super().__init__(state.address, own_signals=own_signals, connect_timeout=connect_timeout)
        # Ray reads its auth settings when first imported, and the driver's data thread may
        # import ray.tune before start()
        os.environ.update(state.env())

    def _init(self, extra_paths: list[str]) -> None:
        from ray.job_config import JobConfig

        from tunehouse.backend._attach import attach

        # a job's workers put these first on sys.path (Ray adds the working directory itself)
        job = JobConfig(_py_driver_sys_path=[p for p in extra_paths if p])
        attach(self.address, self.connect_timeout, {**INIT_KWARGS, "job_config": job}, own_signals=self.own_signals)


def service_backend(say: Callable[[str], None], *, own_signals: bool = False,
                    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> LocalService | None:
    """The local service's backend when it is up (said in one line), else None; a stale state
    (its processes gone) is said in one line too."""
    home = service_home()
    state = read_state(home)
    if state is None:
        return None
    if not is_alive(state):
        say(f"the local service recorded in {home} is not running: using an embedded Ray "
            "(tunehouse down clears its state)")
        return None
    say(f"using the local service at {state.address} (tunehouse down to stop it)")
    return LocalService(state, own_signals=own_signals, connect_timeout=connect_timeout)
