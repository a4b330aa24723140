"""Spec -> Ray Tune ``Tuner`` -> typed ``RunResult``.

Owns how Ray is reached (an embedded local Ray, or ``address=``), the search algorithm, the
per-trial resources and the run's storage. It decides nothing about models.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tunehouse.errors import RunError

# Nothing heavy at module level: ``run`` starts Ray first, and pandas, scikit-learn and our
# trainable are imported by the data-loading thread meanwhile.
if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.spec import Spec
    from tunehouse.trainable import TrialPayload

log = logging.getLogger(__name__)

DEFAULT_CATALOG = "tunehouse-catalog"

# Tune's own per-trial loggers (CSV/JSON/TensorBoard) cost more than a short trial: the
# catalog is our record (ray#48019, ray#11233). Set before ray.tune is imported; a user's
# explicit environment wins.
_TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "30",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    # Tune's own SIGINT handler ends fit() normally on Ctrl-C, indistinguishable from a
    # finished search; without it KeyboardInterrupt reaches us and the experiment is
    # recorded as interrupted.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # A failed trial is one line on stderr (the collector's) and its traceback goes to the
    # catalog; Tune's own traceback per failure made a failing search hundreds of lines.
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
}


@dataclass
class TrialRecord:
    """One trial as the driver saw it finish."""

    trial_id: str
    status: str  # terminated | error
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    iterations: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int | None = None  # 1 + the retries it took (failure.max_retries)
    error_traceback: str | None = None  # a failed trial's full traceback (``error`` is its last line)


@dataclass
class RunResult:
    """What a search produced; the catalog writer and the CLI consume it."""

    experiment_id: str
    name: str
    algorithm: str
    objective: str
    mode: str
    dataset_fingerprint: str
    catalog: str
    storage_path: str
    trials: list[TrialRecord]
    best: TrialRecord | None
    test_metrics: dict[str, float]
    wall_s: float
    cluster_cpus: float
    phases: dict[str, float] = field(default_factory=dict)  # where the wall time went, seconds
    stop_reason: str | None = None  # why the search ended early (time budget, failed trials)
    positive_class: Any = None  # binary classification: the label f1, precision, recall, roc_auc score

    @property
    def failed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "error"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StopRequested(KeyboardInterrupt):
    """SIGTERM (``tunehouse jobs stop``, a scheduler's stop): end now, record ``stopped``.

    A ``KeyboardInterrupt`` so it leaves Ray Tune's loop the way Ctrl-C does; the experiment
    is recorded as ``stopped`` (asked to end) rather than ``interrupted`` (cut off).
    """


_SIGTERM_STOPS = False
_STOP_SIGNALLED = False  # a SIGTERM arrived (Ray turns our exception into a plain KeyboardInterrupt
# when it lands in a blocking ray.wait, so the flag, not the type, says it was a stop)


def stop_on_sigterm() -> None:
    """Make SIGTERM (Ray's ``jobs stop``, a scheduler) end a search like Ctrl-C, recorded ``stopped``.

    ``ray.init`` installs its own SIGTERM handler (``sys.exit``), so ``run`` installs this one
    again once Ray is connected. For the CLI; a notebook keeps its own signal handling.
    """
    global _SIGTERM_STOPS, _STOP_SIGNALLED
    _SIGTERM_STOPS, _STOP_SIGNALLED = True, False
    _install_sigterm()


def was_stopped(e: BaseException) -> bool:
    """Whether a KeyboardInterrupt is a stop (SIGTERM) rather than a Ctrl-C."""
    return isinstance(e, StopRequested) or _STOP_SIGNALLED


def _install_sigterm() -> None:
    import signal

    if not _SIGTERM_STOPS or threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        global _STOP_SIGNALLED
        _STOP_SIGNALLED = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the catalog flush
        raise StopRequested()

    signal.signal(signal.SIGTERM, handler)


@dataclass
class ResumePlan:
    """What ``resume`` found in the catalog: trials to keep and unfinished ones to run again."""

    finished: list[TrialRecord]  # terminated or error: not run again
    redo: dict[str, list[str]]  # config key -> trial ids that never finished (reused when re-run)
    expected_fingerprint: str | None = None
    started_at: Any = None  # when the experiment first started (kept in its row)


def config_key(config: dict[str, Any]) -> str:
    """A configuration's identity, for matching the planned list against the catalog."""
    import json

    return json.dumps(config, sort_keys=True, default=str)


def new_experiment_id(name: str) -> str:
    now = datetime.now(timezone.utc)
    return f"{name}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


_STARTED_HERE = False  # whether this process started the Ray it is connected to

# -- Ray --------------------------------------------------------------------------------
DEFAULT_CONNECT_TIMEOUT_S = 30.0


def connect(address: str | None, extra_paths: list[str], *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> bool:
    """Start an embedded Ray, or attach to ``address`` / ``RAY_ADDRESS``; True if started here.

    With no address this always starts a new embedded Ray (``address="local"``), never a
    cluster that a ``ray start`` on this machine left behind. Attaching is bounded by
    ``timeout_s``: an address nothing listens on fails at once, and Ray's own connection
    attempts are cut to fit the timeout (``_connect_budget``). From the CLI, Ctrl-C and
    SIGTERM end the process at once while it attaches (``_signals_end_connecting``).
    Must run in the main thread: Ray's GCS client is bound to the thread that initialised it.
    (Preloading the model library into workers via ``preload_python_modules`` was measured
    and made runs about 2 s slower: the workers' imports then compete with the driver's.)
    """
    for k, v in _TUNE_ENV.items():
        os.environ.setdefault(k, v)
    target = address or os.environ.get("RAY_ADDRESS")
    attach = bool(target) and target != "local"
    with _connect_budget(timeout_s) if attach else contextlib.nullcontext():
        import ray

        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, namespace="tunehouse")
        try:
            if attach:
                _attach(ray, target, timeout_s, kwargs)
                return False
            if target:  # "local": a new local Ray, as Ray itself starts it
                ray.init(address=target, **kwargs)
                return False
            # Workers of an embedded Ray inherit the driver's environment: let them import a
            # user's training function that sits next to the spec or in the working directory.
            paths = [*extra_paths, os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            with _minimal_ray():
                ray.init(address="local", include_dashboard=False, **kwargs)
            global _STARTED_HERE
            _STARTED_HERE = True
            return True
        except RunError:
            raise
        except Exception as e:
            raise RunError(f"cannot start or reach Ray ({target or 'embedded local Ray'}): {_first_lines(e)}") from e


def _first_lines(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:2])[:500] if lines else type(e).__name__


def _attach(ray, target: str, timeout_s: float, kwargs: dict[str, Any]) -> None:
    """``ray.init(address=target)``, failing within about ``timeout_s`` when nothing answers."""
    endpoint = _endpoint(target)
    with _signals_end_connecting(target):
        if endpoint is not None:
            _check_listening(target, endpoint, timeout_s)
        for attempt in range(3):
            try:
                with _held_stderr(), warnings.catch_warnings():
                    # Ray Client's timeout warning repeats what our error says
                    warnings.filterwarnings("ignore", message="Ray Client connection timed out")
                    ray.init(address=target, **kwargs)
                return
            except ConnectionAbortedError:
                # Ray Client's server starts a process per client and gives it 30 s; on a
                # loaded head that start can fail once ("Initialization failure from server")
                if attempt == 2 or not target.startswith("ray://"):
                    raise
                time.sleep(2.0)
            except ConnectionError as e:
                if endpoint is None:
                    raise
                said = _first_lines(e)
                said = "" if said.startswith("Failed to connect to Ray cluster") else f" ({said})"
                hint = ("the head's Ray Client port (10001 by default)" if target.startswith("ray://")
                        else "the cluster's GCS port (6379 by default), or ray://HOST:10001 for Ray Client")
                raise RunError(
                    f"cannot connect to Ray at {target} within {timeout_s:g} s: {_hostport(endpoint)} accepts "
                    f"connections but did not answer as Ray{said}; is it {hint}?"
                ) from e


def _endpoint(target: str) -> tuple[str, int] | None:
    """The host and port that ``ray.init(address=target)`` connects to, when known here."""
    from urllib.parse import urlparse

    if target.startswith("ray://"):
        u = urlparse(target)
        try:
            return (u.hostname, u.port or 10001) if u.hostname else None
        except ValueError:  # a port that is not a number: Ray's own error says so
            return None
    try:
        # what Ray does with it: "auto" -> the cluster ray start recorded (or RAY_ADDRESS),
        # 127.0.0.1 -> this host's own address
        from ray._private.services import canonicalize_bootstrap_address

        addr = canonicalize_bootstrap_address(target)
    except Exception:  # no cluster found for "auto", a malformed address: Ray's error says it
        return None
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _hostport(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_listening(target: str, endpoint: tuple[str, int], timeout_s: float) -> None:
    """A TCP connect to Ray's address, bounded by the timeout: with nothing listening Ray
    itself retries for minutes, blocking Ctrl-C meanwhile."""
    import socket

    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            pass
    except OSError as e:
        where = target if target.endswith(_hostport(endpoint)) else f"{target} ({_hostport(endpoint)})"
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
        raise RunError(f"cannot reach Ray at {where} within {timeout_s:g} s (nothing listening?): {reason}; "
                       "start the cluster or check --address (HOST:6379, ray://HOST:10001 or auto)") from None


@contextlib.contextmanager
def _connect_budget(timeout_s: float):
    """Ray's own connection attempts, cut to fit ``timeout_s``, while attaching.

    To a GCS address Ray makes up to 20 attempts, each waiting 5 s for its channel, 5 s for
    its pubsub and 30 s for the cluster id: 14 minutes when a port listens but nothing there
    answers. One attempt with its waits scaled to the timeout fits in it; Ray Client (ray://)
    makes 3 attempts, each given a third. Ray reads the C++ settings when it is first
    imported (a Ray imported earlier keeps its own); a variable already set wins. The
    variables are removed again afterwards (the retry count also governs a local start).
    """
    t = max(1, int(timeout_s))
    budget = {
        "RAY_gcs_server_port_wait_time_s": "1",  # attempts, about a second apart
        "RAY_gcs_rpc_server_connect_timeout_s": str(max(1, t // 4)),
        "RAY_py_gcs_connect_timeout_s": str(max(1, t // 2)),
        "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": str(max(1, t // 3)),
        "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": str(max(1, t // 3)),
    }
    added = [k for k in budget if k not in os.environ]
    os.environ.update({k: budget[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


_RAY_LOG_LINE = re.compile(r"^(\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] |\d{4}-\d\d-\d\d [\d:,]+\t[A-Z]+ )")


@contextlib.contextmanager
def _held_stderr():
    """Hold what is printed on stderr while Ray connects; if the connection fails, drop Ray's
    own log lines (a warning per attempt), since the error says it in one line."""
    import tempfile

    try:
        ours = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a notebook's or a test's stream
        ours = False
    if not ours:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            text = "".join(ln for ln in lines if ok or not _RAY_LOG_LINE.match(ln))
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


@contextlib.contextmanager
def _signals_end_connecting(target: str):
    """From the CLI, Ctrl-C (exit 130) or SIGTERM (143) while attaching ends the process at once.

    Ray's C++ client blocks the main thread while it connects, and Python runs a signal's
    handler only once it has the thread back (Ray's timeouts later; a KeyboardInterrupt was
    lost in its retry loop here). The signal still reaches Python's C-level handler, which
    writes its number to the wakeup fd: a thread waiting on it ends the process. Nothing has
    been written to the catalog yet. A notebook keeps its own signal handling.
    """
    import select
    import signal
    import socket

    if not _SIGTERM_STOPS or threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = socket.socketpair()
    w.setblocking(False)
    err = os.dup(2)  # the terminal's stderr, even while ray.init's output is held
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not select.select([r], [], [], 0.1)[0]:
                continue
            for signum in r.recv(64):
                if signum in (signal.SIGINT, signal.SIGTERM):
                    what, code = ("interrupted", 130) if signum == signal.SIGINT else ("stopped", 143)
                    os.write(err, f"{what} while connecting to Ray at {target}; nothing ran\n".encode())
                    os._exit(code)

    # the watcher acts; Python's own handlers would only run after Ray returns
    handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="tunehouse-connect-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        done.set()
        watcher.join()
        r.close()
        w.close()
        os.close(err)


@contextlib.contextmanager
def _minimal_ray():
    """Start an embedded Ray as its minimal install would, even with ray[default] present.

    With the dashboard's dependencies installed (the `cluster` extra) Ray starts a full API
    server and a dashboard agent per node even with include_dashboard=False: measured here,
    +0.3-1.0 s of ray.init for a laptop run that shows no dashboard. Ray decides by one
    function (``get_dashboard_dependency_error``); we answer it for the duration of our own
    ray.init only. Cluster mode never comes here.
    """
    try:
        from ray._private import utils as ray_utils

        original = ray_utils.get_dashboard_dependency_error
    except (ImportError, AttributeError):  # a Ray without this hook: start it as it is
        yield
        return
    ray_utils.get_dashboard_dependency_error = lambda: ImportError("tunehouse: embedded Ray, no dashboard")
    try:
        yield
    finally:
        ray_utils.get_dashboard_dependency_error = original


class _Background:
    """Run a function in a thread; ``result()`` joins and re-raises its exception.

    ``ray.init`` of an embedded Ray takes seconds, mostly waiting for its processes; the
    driver meanwhile imports the model library and loads and splits the data.
    """

    def __init__(self, fn: Any) -> None:
        self._fn, self._value, self._error = fn, None, None
        self._thread = threading.Thread(target=self._run, name="tunehouse-prepare", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as e:
            self._error = e

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


# -- search -----------------------------------------------------------------------------
def make_search(spec: Spec, resume: ResumePlan | None = None):
    """The one place grid, random and Bayesian search differ. Returns (search_alg, param_space, num_samples).

    Grid and random search run an explicit list of configurations (the grid's product; a
    seeded sample), so a resumed experiment recomputes the same list and runs only what the
    catalog does not hold. Bayesian search is warm-started with the finished trials.
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from tunehouse.space import grid_points, sample_points, to_tune

    algo = spec.search.algorithm
    done = resume.finished if resume else []
    if algo in ("grid", "random"):
        if algo == "grid":
            points = grid_points(spec.space) * (spec.search.num_samples or 1)
        else:
            points = sample_points(spec.space, spec.search.num_samples or 10, spec.seed)
        if done:
            left: dict[str, int] = {}
            for key in map(config_key, (t.params for t in done)):
                left[key] = left.get(key, 0) + 1
            todo = []
            for p in points:
                k = config_key(p)
                if left.get(k):
                    left[k] -= 1
                else:
                    todo.append(p)
            points = todo
        # every point sets every parameter, so the param space only names them
        return BasicVariantGenerator(points_to_evaluate=points), to_tune(spec.space, grid=False), len(points)
    from ray.tune.search import ConcurrencyLimiter

    searcher = _make_optuna(spec, done, list(resume.redo.items()) if resume else [])
    limit = spec.search.max_concurrent or max(1, _cluster_cpus() // max(1, int(spec.resources.cpus)))
    n = max(0, (spec.search.num_samples or 10) - len(done))
    return ConcurrencyLimiter(searcher, max_concurrent=limit), {}, n


def _make_optuna(spec: Spec, done: list[TrialRecord], redo: list[tuple[str, list[str]]]):
    """OptunaSearch over the space's distributions, told about finished trials (resume).

    Given a space and metric, OptunaSearch creates its study at once, so a resumed search adds
    the finished trials to it and enqueues the unfinished ones (run again first). Ray's own
    warm start takes one kind or the other, not both.
    """
    import json

    from ray.tune.search.optuna import OptunaSearch

    from tunehouse.space import to_optuna

    searcher = OptunaSearch(
        space=to_optuna(spec.space).distributions(),
        metric=spec.objective.name,
        mode=spec.mode,
        sampler=make_sampler(spec.search.sampler, spec.seed),
    )
    for t in done:
        value = t.metrics.get(spec.objective.name)
        failed = t.status != "terminated" or value is None or not math.isfinite(value)  # as Tune tells Optuna
        searcher.add_evaluated_point(dict(t.params), 0.0 if failed else value, error=failed)
    for key, ids in redo:
        for _ in ids:
            searcher._ot_study.enqueue_trial(json.loads(key))
    return searcher


def make_sampler(name: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


def _cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))


# -- run ------------------------------------------------------------------------------------
def run(
    spec: Spec,
    *,
    address: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    experiment_id: str | None = None,
    callbacks: list[Any] | None = None,
    resume: ResumePlan | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> RunResult:
    """Run the search a spec describes and return every trial and the best one.

    Args:
        spec: a validated spec (``load_spec``).
        address: a Ray cluster to attach to (``auto``, ``ray://host:10001``); default: start
            an embedded Ray sized to this machine (or join ``RAY_ADDRESS`` when set).
        catalog: the catalog (a folder or ``s3://bucket/prefix``); default ``$TUNEHOUSE_CATALOG``
            or ``./tunehouse-catalog``. Trials are recorded as they finish; checkpoints go to
            ``<catalog>/checkpoints``.
        experiment_id: fix the id (default: ``<name>-<utc time>-<random>``).
        callbacks: extra Ray Tune callbacks (the catalog writer is one).
        resume: continue ``experiment_id`` (see ``resume``): finished trials are kept,
            unfinished ones run again under their ids, the rest of the plan runs.
        connect_timeout: seconds to reach the cluster at ``address`` before failing.

    Raises:
        SpecError: bad input found while loading data or the model (nothing has run).
        RunError: Ray could not start, or no trial finished.
    """
    if not (isinstance(connect_timeout, (int, float)) and 0 < connect_timeout < math.inf):
        from tunehouse.errors import SpecError

        raise SpecError(f"expected a positive number of seconds, got {connect_timeout!r}", field="--connect-timeout")
    t0 = time.perf_counter()
    phases: dict[str, float] = {}

    def prepare():
        from tunehouse.data import check_data, split
        from tunehouse.models import check_model
        from tunehouse.trainable import make_payload

        dataset = check_data(spec)
        check_model(spec, dataset)
        splits = split(dataset, task=spec.task, test_size=spec.evaluation.test_size, seed=spec.seed)
        payload = make_payload(spec, dataset, splits)
        from tunehouse.catalog import open_storage

        store = open_storage(catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG))
        store.probe()  # a bad --catalog fails here, before any trial runs
        import ray.tune  # noqa: F401  (half a second of imports, off the main thread)

        return dataset, splits, payload, store

    prepared = _Background(prepare)
    try:
        connect(address, [str(spec.base_dir), os.getcwd()], timeout_s=connect_timeout)
        _install_sigterm()  # ray.init replaced it
        phases["ray_start"] = time.perf_counter() - t0
    finally:
        dataset, splits, payload, store = prepared.result()  # bad input wins over a Ray failure
    phases["ray_start_and_data"] = time.perf_counter() - t0
    from ray import tune

    from tunehouse.catalog import CatalogWriter, ExperimentRecorder
    from tunehouse.provenance import environment

    if resume and resume.expected_fingerprint and dataset.fingerprint != resume.expected_fingerprint:
        from tunehouse.errors import DataError

        raise DataError(
            f"the data changed since experiment {experiment_id} ran (fingerprint {dataset.fingerprint[:12]} "
            f"!= {resume.expected_fingerprint[:12]}): resume needs the same rows; run the spec as a new experiment",
            field="data")
    if experiment_id and not resume:
        _check_new_id(experiment_id, store)
    exp_id = experiment_id or new_experiment_id(spec.name)
    storage_path, storage_fs = _checkpoint_storage(store)
    env = environment(spec.base_dir)
    if spec._path is not None:
        env["spec_path"] = str(spec._path)  # where `resume` finds a relative data path again
    recorder = ExperimentRecorder(CatalogWriter(store, exp_id), spec=spec, dataset=dataset, environment=env)
    prior = resume.finished if resume else []
    if prior:
        recorder.carry_over(prior)
    if resume and resume.started_at is not None:
        recorder.writer.experiment["started_at"] = resume.started_at

    from tunehouse.trainable import tune_trainable

    stopper = _make_stopper()(spec.time_budget_s, spec.failure.max_failed_trials)
    stopper.failed = sum(t.status == "error" for t in prior)  # a resumed search's failures count too
    collector = TrialCollector(recorder, stopper, reuse_ids=resume.redo if resume else None)
    search_alg, param_space, num_samples = make_search(spec, resume)
    # one bundle per trial: CPUs, GPUs and any custom resources (placement on tagged nodes)
    bundle = {"CPU": spec.resources.cpus, "GPU": spec.resources.gpus, **spec.resources.custom}
    if spec.resources.memory_mb is not None:  # Ray's memory resource is in bytes
        bundle["memory"] = int(spec.resources.memory_mb * 2**20)
    if _STARTED_HERE:
        _check_fits(bundle)
    resources = tune.PlacementGroupFactory([{k: v for k, v in bundle.items() if v}])
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trainable, payload=payload), resources),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.objective.name,
            mode=spec.mode,
            search_alg=search_alg,
            num_samples=num_samples,
            max_concurrent_trials=spec.search.max_concurrent,
            # One actor serves many short trials: actor start-up (imports) costs more than a
            # tabular trial. Resource usage is measured per trial inside it (usage.py).
            reuse_actors=True,
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=exp_id,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            verbose=0,
            callbacks=[collector, *(callbacks or [])],
            # time_budget_s and failure.max_failed_trials: one stopper that knows which ended it
            stop=stopper,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
        ),
    )
    import ray

    recorder.start(cluster_cpus=float(_cluster_cpus()), cluster_nodes=sum(1 for n in ray.nodes() if n["Alive"]))
    phases["setup"] = time.perf_counter() - t0 - phases["ray_start_and_data"]
    t_fit = time.perf_counter()
    stop_reason: str | None = None
    try:
        if num_samples > 0:  # a resumed search may have nothing left but its refit
            tuner.fit()
        phases["tuner_fit"] = time.perf_counter() - t_fit
        if collector.records:
            first = min(r.started_at or 0 for r in collector.records)
            phases["to_first_trial"] = first - (time.time() - (time.perf_counter() - t_fit))
        if _client_mode():
            # fit() ran on the cluster with copies of the collector and the stopper: the
            # catalog has the trials, and the copy's stop reason in the experiment row
            trials = catalog_records(store.uri, exp_id)
            recorder.done = recorder.failed = 0
            recorder.best_value = recorder.best_trial = None
            recorder.carry_over(trials)
            from tunehouse.catalog import Catalog

            stopper.reason = Catalog(store.uri).experiment(exp_id).get("stop_reason")
        else:
            trials = [*prior, *collector.records]
        stop_reason = _stop_reason(stopper, len(prior) + num_samples, trials)
        best = pick_best(trials, spec.objective.name, spec.mode)
        if best is None and trials:
            failed = [t for t in trials if t.status == "error"]
            first_error = next((t.error for t in failed if t.error), "no metric reported")
            if stop_reason:
                raise RunError(
                    f"the search was stopped ({stop_reason}) before any trial succeeded"
                    + (f"; first error: {first_error}" if failed else "")
                )
            raise RunError(f"all {len(trials)} trials failed; first error: {first_error}")
        t_refit = time.perf_counter()
        test_metrics = _test_score(spec, payload, splits, best) if best is not None else {}
        phases["refit_and_test"] = time.perf_counter() - t_refit
    except KeyboardInterrupt as e:
        status = "stopped" if was_stopped(e) else "interrupted"
        collector.close_unfinished(status, "SIGTERM (a stop)" if status == "stopped" else "Ctrl-C or a kill")
        recorder.finish(status, stop_reason="SIGTERM (tunehouse jobs stop, or a scheduler)" if status == "stopped" else None)
        e.experiment_id, e.catalog = exp_id, store.uri  # for the CLI's resume hint
        raise
    except RunError as e:
        status = "stopped" if stop_reason else "failed"
        recorder.finish(status, error=str(e), stop_reason=stop_reason)
        raise
    except Exception as e:
        recorder.finish("failed", error=f"{type(e).__name__}: {e}")
        raise RunError(f"the search failed: {e}") from e
    status = "stopped" if stop_reason else "completed"
    recorder.finish(status, test_metrics=test_metrics, stop_reason=stop_reason)
    return RunResult(
        experiment_id=exp_id,
        name=spec.name,
        algorithm=spec.search.algorithm,
        objective=spec.objective.name,
        mode=spec.mode,
        dataset_fingerprint=dataset.fingerprint,
        catalog=store.uri,
        storage_path=store.full_uri(f"checkpoints/{exp_id}"),
        trials=trials,
        best=best,
        test_metrics=test_metrics,
        wall_s=time.perf_counter() - t0,
        phases=phases,
        cluster_cpus=float(_cluster_cpus()),
        stop_reason=stop_reason,
        positive_class=dataset.positive_class,
    )


def resume(
    experiment: str,
    *,
    catalog: str | os.PathLike[str] | None = None,
    address: str | None = None,
    callbacks: list[Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> RunResult:
    """Continue an experiment whose driver died or was stopped, from what the catalog holds.

    The search is rebuilt from the spec stored in the catalog (not from Ray Tune's experiment
    state, which lost OptunaSearch on restore, ray#30861, and broke on moved folders,
    ray#28082): finished trials (terminated or error) are kept and not run again; trials that
    never finished run again under their ids; grid and random search then run the rest of
    their planned list (the same list for the same seed), Bayesian search the remaining
    samples, warm-started with every finished trial. The data must be unchanged (same
    fingerprint).

    Raises:
        CatalogError: no such experiment.
        RunError: the experiment is still running, or already completed.
        DataError: its data changed since it ran.
    """
    from pathlib import Path

    from tunehouse.catalog import Catalog
    from tunehouse.spec import parse_spec

    uri = catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG)
    cat = Catalog(uri)
    exp = cat.experiment(experiment)
    exp_id = exp["experiment_id"]
    if exp["status"] == "running":
        raise RunError(f"experiment {exp_id} is still running (driver pid {exp.get('driver_pid')} on "
                       f"{exp.get('driver_host')}); stop it first (Ctrl-C or tunehouse jobs stop)")
    if exp["status"] == "completed":
        raise RunError(f"experiment {exp_id} already completed; nothing to resume")
    spec = parse_spec(exp["spec_text"], file=f"the spec of {exp_id} in the catalog")
    if exp.get("num_samples"):  # what the run used, --num-samples included
        spec.search.num_samples = int(exp["num_samples"])
    spec_path = dict(exp.get("environment") or {}).get("spec_path")
    if spec_path and Path(spec_path).parent.is_dir():
        # relative data paths resolve where the spec was; elsewhere (a job's folder on a
        # cluster's head node) they resolve against the working directory
        spec._path = Path(spec_path)
    finished, redo = [], {}
    for t in catalog_records(uri, exp_id):
        if t.status in ("terminated", "error"):
            finished.append(t)
        else:
            redo.setdefault(config_key(t.params), []).append(t.trial_id)
    plan = ResumePlan(finished=finished, redo=redo, expected_fingerprint=exp.get("dataset_fingerprint"),
                      started_at=exp.get("started_at"))
    return run(spec, address=address, catalog=uri, experiment_id=exp_id, callbacks=callbacks, resume=plan,
               connect_timeout=connect_timeout)


def check_experiment_id(experiment_id: str) -> None:
    """A chosen id names a catalog partition: letters, digits, '.', '_' and '-'."""
    from tunehouse.errors import SpecError
    from tunehouse.spec import NAME_RE

    if not NAME_RE.match(experiment_id) or ".." in experiment_id:
        raise SpecError(f"{experiment_id!r}: expected letters, digits, '.', '_' and '-' (at most 128)",
                        field="--experiment-id")


def _check_new_id(experiment_id: str, store) -> None:
    """A chosen id must be a valid partition name and new (resume continues an existing one)."""
    from tunehouse.catalog import Catalog, CatalogError
    from tunehouse.errors import SpecError

    check_experiment_id(experiment_id)
    try:
        if Catalog(store.uri).experiment(experiment_id)["experiment_id"] != experiment_id:
            return  # a name or an id prefix matched, not this id
    except CatalogError:
        return
    raise SpecError(f"experiment {experiment_id} already exists in {store.uri} (continue it with tunehouse resume)",
                    field="--experiment-id")


def _check_fits(bundle: dict[str, float]) -> None:
    """An embedded Ray has the nodes it will ever have: a trial that fits none would wait forever.

    (Tune warns about missing CPUs and GPUs only, and not at all with its output off.) A
    cluster may still add nodes (an autoscaler), so only the embedded Ray is checked.
    """
    import ray

    from tunehouse.errors import SpecError

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    fields = {"CPU": "resources.cpus", "GPU": "resources.gpus", "memory": "resources.memory_mb"}
    for name, need in bundle.items():
        if not need or any(r.get(name, 0) >= need for r in nodes):
            continue
        have = max((r.get(name, 0) for r in nodes), default=0)
        if name == "memory":
            need, have, unit = need / 2**20, have / 2**20, " MB"
        else:
            unit = ""
        raise SpecError(f"a trial needs {need:g}{unit} {name} but this machine's Ray offers at most {have:g}{unit}",
                        field=fields.get(name, f"resources.custom.{name}"))


def _client_mode() -> bool:
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except ImportError:  # pragma: no cover - ray without the client extra
        return False


def catalog_records(catalog: str, experiment_id: str) -> list[TrialRecord]:
    """An experiment's trials as the catalog holds them (latest row each), as ``TrialRecord``s."""
    import json

    from tunehouse.catalog import Catalog

    cat = Catalog(catalog)
    rows = cat.trials(cat.experiment(experiment_id), raw=True)
    rows = rows.astype(object).where(rows.notna(), None)  # NaN -> None
    return [
        TrialRecord(
            trial_id=row.trial_id, status=row.status, params={k: json.loads(v) for k, v in (row.params or [])},
            metrics=dict(row.metrics or []), error=row.error, error_traceback=row.error_traceback,
            checkpoint=row.checkpoint_uri,
            checkpoint_sha256=row.checkpoint_sha256,
            usage={"node_id": row.node_id, "wall_s": row.wall_s, "cpu_s": row.cpu_s,
                   "peak_rss_mb": row.peak_rss_mb, "pid": None if row.pid is None else int(row.pid)},
        )
        for row in rows.itertuples(index=False)
    ]


def _stop_reason(stopper: Any, planned: int, records: list[TrialRecord]) -> str | None:
    """Why the search ended early, or None when the stopper fired with nothing left to cut."""
    if stopper.reason is None:
        return None
    finished = sum(r.status in ("terminated", "error") for r in records)
    return stopper.reason if finished < planned else None


def _checkpoint_storage(store) -> tuple[str, Any]:
    """Ray Tune's storage: ``<catalog>/checkpoints``, on the catalog's filesystem."""
    from tunehouse.catalog import LocalStorage

    if isinstance(store, LocalStorage):
        p = store.root / "checkpoints"
        p.mkdir(parents=True, exist_ok=True)
        return str(p), None
    return store.fs_path("checkpoints"), store.filesystem


def pick_best(trials: list[TrialRecord], metric: str, mode: str) -> TrialRecord | None:
    ok = [
        t
        for t in trials
        if t.status == "terminated"
        and isinstance(t.metrics.get(metric), (int, float))
        and math.isfinite(t.metrics[metric])
    ]
    if not ok:
        return None
    sign = 1 if mode == "max" else -1
    return max(ok, key=lambda t: sign * t.metrics[metric])


def _test_score(spec: Spec, payload: TrialPayload, splits, best: TrialRecord) -> dict[str, float]:
    """Refit the best configuration on all training rows and score the test rows, once."""
    from tunehouse.models import score
    from tunehouse.trainable import refit

    if splits.X_test is None or spec.task == "clustering":
        return {}
    model = refit(payload, best.params)
    if model is None:
        return {}  # a pure objective has nothing to score on the test rows
    return score(model, splits.X_test, splits.y_test, payload.metrics, task=spec.task, n_classes=payload.n_classes)


def _error_line(text: str | None) -> str:
    """The exception line of a trial's traceback (``ValueError: ...``)."""
    if not text:
        return "unknown error"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt", "Exit")) and " " not in head:
            return ln[:2000]
    return lines[-1][:2000] if lines else "unknown error"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # Ray colours the task name in its tracebacks
_TRACEBACK_MAX = 100_000  # characters kept of a trial's traceback (its end: the exception)


def _error_text(trial) -> str | None:
    """A failed trial's traceback as Tune recorded it, without terminal colours (None if gone)."""
    text = None
    try:  # the local error file is written before the callbacks run; storage syncs later
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file, errors="replace") as f:
                text = f.read()
        else:
            text = trial.get_error()
    except Exception:  # storage may be gone; the status is what matters
        return None
    if not text:
        return None
    text = _ANSI.sub("", str(text)).strip()
    return text[-_TRACEBACK_MAX:]


def _say(line: str) -> None:
    """One line on stderr, at once (the driver's progress notes; results go to stdout)."""
    print(line, file=sys.stderr, flush=True)


class _DropTuneNoise(logging.Filter):
    """Tune's summary of the failed trials at the end (each already had its line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


def _quiet_tune_logs() -> None:
    """Silence what Tune prints about failed trials; the collector prints one line each."""
    tune_log = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _DropTuneNoise) for f in tune_log.filters):
        tune_log.addFilter(_DropTuneNoise())


def _split_result(result: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    metrics, usage = {}, {}
    skip = {"time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "iterations_since_restore",
            "time_since_restore", "done", "pid", "node_ip", "date", "hostname", "trial_id", "experiment_tag",
            "should_checkpoint", "checkpoint_dir_name"}
    for k, v in result.items():
        if k.startswith("usage/"):
            usage[k.removeprefix("usage/")] = v
        elif k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool):
            metrics[k] = float(v)
    return metrics, usage


def _make_stopper():
    from ray.tune import Stopper

    class _SearchStopper(Stopper):
        """Ends the whole search at the time budget or the failure limit, and keeps why.

        Tune consults ``stop_all`` on every step of its loop, whether or not any trial
        reported a result, so trials that fail before their first report still end the
        search. Trials running then are stopped (recorded as 'stopped'), none is started.
        """

        def __init__(self, time_budget_s: float | None, max_failed_trials: int | None) -> None:
            self.time_budget_s, self.max_failed_trials = time_budget_s, max_failed_trials
            self.failed = 0
            self.reason: str | None = None
            self._spent, self._last = 0.0, None  # the budget counts from Tune's first step

        def __call__(self, trial_id, result):
            return False

        def trial_failed(self) -> None:
            self.failed += 1

        def stop_all(self) -> bool:
            now = time.monotonic()
            if self._last is not None:
                self._spent += now - self._last
            self._last = now
            if self.reason is None:
                if self.time_budget_s is not None and self._spent >= self.time_budget_s:
                    self.reason = f"time_budget_s: {self.time_budget_s:g} s reached"
                elif self.max_failed_trials is not None and self.failed >= self.max_failed_trials:
                    self.reason = f"max_failed_trials: {self.failed} trials failed"
            return self.reason is not None

        def __setstate__(self, state):
            state["_last"] = None  # Tune pickles its stopper; a monotonic clock does not travel
            self.__dict__.update(state)

    return _SearchStopper


def _make_collector():
    from ray.tune import Callback

    from tunehouse.models import mode_for

    class _Collector(Callback):
        """Keeps a ``TrialRecord`` per finished trial (the catalog writer's seam)."""

        def __init__(self, recorder, stopper=None, reuse_ids: dict[str, list[str]] | None = None) -> None:
            self.recorder = recorder
            self.stopper = stopper  # told of every failed trial; says why a search was stopped
            self.records: list[TrialRecord] = []
            self._started: dict[str, float] = {}  # by Ray Tune's trial id
            self._attempts: dict[str, int] = {}
            self._best: dict[str, dict[str, float]] = {}
            self._ids: dict[str, str] = {}  # Ray Tune's trial id -> the catalog's
            # a resumed experiment's unfinished trials: their configuration runs again under
            # the same catalog id, so the catalog ends with each trial once (latest row wins)
            self._reuse = {k: list(v) for k, v in (reuse_ids or {}).items()}

        def _id(self, trial) -> str:
            return self._ids.get(trial.trial_id, trial.trial_id)

        def __getstate__(self):
            # Tune pickles callbacks with its experiment state (unused: resume rebuilds from the
            # catalog) and, under Ray Client, ships them to run fit() on the cluster; the copy
            # records into the same catalog through a writer of its own.
            return {"recorder": self.recorder, "stopper": self.stopper, "reuse": self._reuse}

        def __setstate__(self, state):
            self.__init__(state.get("recorder"), state.get("stopper"), state.get("reuse"))

        def on_experiment_end(self, trials, **info):
            # Trials cut short by the time budget (or a stop) get no complete/error event:
            # close them in the catalog so none stays 'running' forever.
            self._trials = trials
            reason = getattr(self.stopper, "reason", None)
            self.close_unfinished("stopped", reason or "the search was stopped")
            if reason:  # under Ray Client the driver reads it back from here
                self.recorder.writer.set_experiment(stop_reason=reason)
            self.recorder.writer.flush()  # under Ray Client this copy's rows are written nowhere else

        def on_step_end(self, iteration, trials, **info):
            self._trials = trials  # what close_unfinished sees when the driver is interrupted

        def close_unfinished(self, status: str, why: str) -> None:
            """Record every started, unfinished trial as ``status`` (stopped / interrupted), saying ``why``."""
            done = {r.trial_id for r in self.records}
            for trial in getattr(self, "_trials", None) or []:
                if trial.trial_id in self._started and self._id(trial) not in done:
                    metrics, usage = _split_result(trial.last_result or {})
                    self._finish(TrialRecord(
                        trial_id=self._id(trial), status=status, params=dict(trial.config),
                        metrics=metrics, usage=usage, started_at=self._started[trial.trial_id],
                        ended_at=time.time(), error=f"{status} before it finished ({why})",
                        attempts=self._attempts.get(trial.trial_id),
                    ))

        def on_step_begin(self, iteration, trials, **info):
            self.recorder.writer.maybe_flush()

        def on_trial_start(self, iteration, trials, trial, **info):
            self._trials = trials
            # A retried trial (failure.max_retries) starts again: count it, keep its first start
            # and its catalog id (a resumed trial's old id is taken on its first attempt only).
            n = self._attempts[trial.trial_id] = self._attempts.get(trial.trial_id, 0) + 1
            started = self._started.setdefault(trial.trial_id, time.time())
            if n == 1:
                old = self._reuse.get(config_key(dict(trial.config)))
                if old:
                    self._ids[trial.trial_id] = old.pop(0)
            self.recorder.trial_started(self._id(trial), dict(trial.config), started, attempts=n)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            metrics, _ = _split_result(result)
            self.recorder.trial_result(self._id(trial), int(result.get("training_iteration", 1)), metrics)
            best = self._best.setdefault(trial.trial_id, {})
            for k, v in metrics.items():
                mode = mode_for(k, self.recorder.spec.metrics)
                if k not in best or (v > best[k] if mode == "max" else v < best[k]):
                    best[k] = v

        def _finish(self, record: TrialRecord) -> None:
            self.records.append(record)
            self.recorder.trial_finished(record)

        def on_trial_complete(self, iteration, trials, trial, **info):
            metrics, usage = _split_result(trial.last_result or {})
            ckpt = trial.checkpoint
            last = trial.last_result or {}
            self._finish(
                TrialRecord(
                    trial_id=self._id(trial),
                    status="terminated",
                    params=dict(trial.config),
                    metrics=metrics,
                    usage=usage,
                    checkpoint=ckpt.path if ckpt is not None else None,
                    checkpoint_sha256=last.get("checkpoint_sha256"),
                    iterations=last.get("training_iteration"),
                    best_metrics=self._best.pop(trial.trial_id, {}),
                    started_at=self._started.get(trial.trial_id),
                    ended_at=time.time(),
                    attempts=self._attempts.get(trial.trial_id),
                )
            )

        def setup(self, **info):
            _quiet_tune_logs()

        def on_trial_recover(self, iteration, trials, trial, **info):
            # a failed attempt that failure.max_retries runs again: one line, no traceback
            line = _error_line(_error_text(trial))
            _say(f"trial {self._id(trial)} failed (attempt {self._attempts.get(trial.trial_id, 1)}), "
                 f"retrying: {line}")

        def on_trial_error(self, iteration, trials, trial, **info):
            # Only a final failure comes here: a failure that is retried fires on_trial_recover
            # instead (TuneController._process_trial_failure), so each trial gets one final row.
            if self.stopper is not None:
                self.stopper.trial_failed()
            metrics, usage = _split_result(trial.last_result or {})
            text = _error_text(trial)
            line = _error_line(text)
            _say(f"trial {self._id(trial)} failed: {line}")
            self._finish(
                TrialRecord(
                    trial_id=self._id(trial),
                    status="error",
                    params=dict(trial.config),
                    metrics=metrics,
                    usage=usage,
                    error=line,
                    error_traceback=text,
                    iterations=(trial.last_result or {}).get("training_iteration"),
                    best_metrics=self._best.pop(trial.trial_id, {}),
                    started_at=self._started.get(trial.trial_id),
                    ended_at=time.time(),
                    attempts=self._attempts.get(trial.trial_id),
                )
            )

    return _Collector


def TrialCollector(recorder, stopper=None, reuse_ids: dict[str, list[str]] | None = None):
    return _make_collector()(recorder, stopper, reuse_ids)


def shutdown() -> None:
    """Stop an embedded Ray this process started (disconnect only when attached to a cluster)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def exit_now(code: int) -> None:
    """End a CLI process at once, taking down the embedded Ray it started.

    Ray's graceful shutdown stops its processes one after another with a SIGTERM and up to a
    second's wait each (1.1-1.4 s measured here), longer than a short search's trials. When
    this process started the Ray it uses, everything of it is a child of this process and
    nothing in it is still needed: the catalog is flushed and Tune has synced its storage.
    So kill that process tree and exit. Attached to a cluster, disconnect normally.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized() or not _STARTED_HERE:
        shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    import psutil

    family = psutil.Process().children(recursive=True)
    for p in family:
        try:
            p.kill()  # SIGKILL is final; the orphans' exit is reaped by init, no need to wait
        except psutil.Error:
            pass
    os._exit(code)
