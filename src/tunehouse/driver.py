"""Run and resume a search: prepare, plan, reach Ray, tune, finish.

Each step is a function below. What differs between search algorithms lives in
``tunehouse.search``, between model families in ``tunehouse.families``, between an embedded
Ray, a cluster and Ray Client in ``tunehouse.backend``, and the trial bookkeeping in
``tunehouse.tracking``: the driver strings them together and decides nothing itself about
models, search or where Ray runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tunehouse.backend import DEFAULT_CONNECT_TIMEOUT_S, backend_for
from tunehouse.errors import RunError
from tunehouse.records import FINISHED, RunInfo, RunResult, TrialRecord, best_of, config_key
from tunehouse.search import History, Plan

# Nothing heavy at module level: ``run`` starts Ray first, and pandas, scikit-learn and our
# trainable are imported by the data-loading thread meanwhile.
if TYPE_CHECKING:  # pragma: no cover
    from tunehouse.backend import Backend
    from tunehouse.catalog import ExperimentRecorder, Storage
    from tunehouse.report import Progress
    from tunehouse.spec import Spec
    from tunehouse.tracking import SearchLimits, TrialTracker

DEFAULT_CATALOG = "tunehouse-catalog"

__all__ = ["DEFAULT_CATALOG", "Resume", "RunResult", "StopSignal", "TrialRecord", "continue_experiment", "resume",
           "run"]


# -- stopping -----------------------------------------------------------------------------
class StopRequested(KeyboardInterrupt):
    """SIGTERM (``tunehouse jobs stop``, a scheduler's stop): end now, record ``stopped``.

    A ``KeyboardInterrupt`` so it leaves Ray Tune's loop the way Ctrl-C does; the experiment
    is recorded as ``stopped`` (asked to end) rather than ``interrupted`` (cut off).
    """


class StopSignal:
    """Makes SIGTERM (Ray's ``jobs stop``, a scheduler) end a search like Ctrl-C, recorded ``stopped``.

    For the CLI; a notebook keeps its own signal handling (no ``StopSignal``). ``ray.init``
    installs its own SIGTERM handler, so the driver installs this one again once Ray is up.
    """

    def __init__(self) -> None:
        # Ray turns our exception into a plain KeyboardInterrupt when it lands in a blocking
        # ray.wait, so this flag, not the exception's type, says a SIGTERM arrived
        self.signalled = False

    def install(self) -> None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            self.signalled = True
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the catalog flush
            raise StopRequested()

        signal.signal(signal.SIGTERM, handler)

    def was_stopped(self, e: BaseException) -> bool:
        """Whether a KeyboardInterrupt is a stop (SIGTERM) rather than a Ctrl-C."""
        return isinstance(e, StopRequested) or self.signalled


# -- the run ------------------------------------------------------------------------------
@dataclass
class Resume:
    """Continuing an experiment (``resume``): its history, its data's fingerprint, its start."""

    history: History
    expected_fingerprint: str | None = None
    started_at: Any = None  # when the experiment first started (kept in its row)
    warm_start: dict[str, Any] | None = None  # its warm start's record (experiments.warm_start), kept
    spent: tuple[float, float] = (0.0, 0.0)  # its earlier runs' (driver CPU-hours, wall seconds)


@dataclass
class _Prepared:
    """What the data-loading thread made ready while Ray started."""

    dataset: Any
    splits: Any
    payload: Any  # trainable.TrialPayload
    store: Storage


@dataclass
class _Clock:
    """Where a run's wall time went (``RunResult.phases``)."""

    t0: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)

    def since_start(self, name: str) -> None:
        self.phases[name] = time.perf_counter() - self.t0

    def took(self, name: str, since: float) -> float:
        self.phases[name] = time.perf_counter() - since
        return time.perf_counter()


def run(
    spec: Spec,
    *,
    address: str | None = None,
    catalog: str | os.PathLike[str] | None = None,
    experiment_id: str | None = None,
    callbacks: list[Any] | None = None,
    resume: Resume | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    backend: Backend | None = None,
    stop: StopSignal | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    warm_start: list[str] | None = None,
    parent_id: str | None = None,
    price_per_cpu_hour: float | str | None = None,
) -> RunResult:
    """Run the search a spec describes and return every trial and the best one.

    Args:
        spec: a spec (``load_spec``); it is validated against its data and model here.
        address: a Ray cluster to attach to (``auto``, ``HOST:PORT``, ``ray://HOST:10001``);
            default: start an embedded Ray sized to this machine (or join ``RAY_ADDRESS``).
        catalog: the catalog (a folder or ``s3://bucket/prefix``); default ``$TUNEHOUSE_CATALOG``
            or ``./tunehouse-catalog``. Trials are recorded as they finish; checkpoints go to
            ``<catalog>/checkpoints``.
        experiment_id: fix the id (default: ``<name>-<utc time>-<random>``).
        callbacks: extra Ray Tune callbacks.
        resume: continue ``experiment_id`` (see ``resume``).
        connect_timeout: seconds to reach the cluster at ``address`` before failing.
        backend: how Ray is reached (default: ``backend_for(address)``).
        stop: SIGTERM handling (the CLI's); None leaves signals alone.
        on_progress: called with a ``report.Progress`` of the whole experiment after every
            trial event (start, report, end), unthrottled, and once more with the final status
            (completed, stopped, failed, interrupted) before ``run`` returns or raises; e.g. a
            ``report.RunProgress``. Under Ray Client the events happen on the cluster, so only
            the final snapshot comes. Its exceptions are said in one line, never raised.
        warm_start: earlier experiments (ids, prefixes or names in the catalog) whose trials
            this search starts from (``tunehouse.warm`` has the rules); one line per source
            on stderr says what was reused or run first, and what was left out.
        parent_id: the experiment this one continues (``continue_experiment``), recorded.
        price_per_cpu_hour: what a CPU-hour costs; default ``$TUNEHOUSE_PRICE_PER_CPU_HOUR``,
            else the spec's ``cost.per_cpu_hour`` (``costs.price_per_cpu_hour``). The run records
            its CPU-hours and wall time, and with a price its cost.

    Raises:
        InputError: a bad price (nothing has run).
        SpecError: bad input found while loading data or the model (nothing has run).
        RunError: Ray could not start or be reached, or no trial finished.
    """
    clock, started_at, cpu_at = _Clock(), time.time(), time.process_time()
    from tunehouse.costs import price_per_cpu_hour as resolve_price

    price = resolve_price(price_per_cpu_hour, spec.cost.per_cpu_hour if spec.cost else None)
    backend = backend or backend_for(address, connect_timeout=connect_timeout)
    if resume is not None and warm_start:
        raise RunError("a resumed experiment keeps the trials it reused; warm_start is for a new one")
    warm_start = _warm_sources(warm_start, catalog)
    prep = _start(spec, catalog, backend, stop, clock)
    history = resume.history if resume else _warm_history(spec, prep, warm_start, "--spec" if parent_id else None)
    exp_id = _experiment_id(spec, prep, experiment_id, resume)
    recorder = _recorder(spec, prep, exp_id, resume, parent_id, _warm_record(warm_start, history, resume), price)
    recorder.run_t0, recorder.cpu_t0 = started_at, cpu_at  # the search's cost counts from here
    tracker = _tracker(spec, recorder, history)
    from tunehouse.search import plan_for

    plan = plan_for(spec, history, cluster_cpus=backend.cluster_cpus())
    recorder.start(cluster_cpus=backend.cluster_cpus(), cluster_nodes=backend.cluster_nodes())
    if resume is None:  # before the Tuner: under Ray Client it takes a copy of the recorder
        _record_reused(recorder, history)
    tuner = _tuner(spec, plan, prep, backend, tracker, tracker.limits, exp_id, callbacks)
    final_progress = _follow(on_progress, spec, exp_id, history, tracker, started_at, backend.remote_loop)
    clock.took("setup", clock.t0 + clock.phases["ray_start_and_data"])
    done = _Done()
    try:
        _search(done, spec, prep, tuner, plan, backend, tracker, recorder, history, clock)
    except KeyboardInterrupt as e:
        done.status = _interrupted(e, stop, tracker, recorder)
        e.experiment_id, e.catalog = exp_id, prep.store.uri  # for the CLI's resume hint
        raise
    except RunError as e:
        done.status = "stopped" if done.stop_reason else "failed"
        recorder.finish(done.status, error=str(e), stop_reason=done.stop_reason)
        raise
    except Exception as e:
        recorder.finish("failed", error=f"{type(e).__name__}: {e}")
        raise RunError(f"the search failed: {e}") from e
    else:
        done.status = "stopped" if done.stop_reason else "completed"
        recorder.finish(done.status, test_metrics=done.test_metrics, stop_reason=done.stop_reason)
    finally:
        final_progress(done.status, done.trials)
        _tidy(spec, recorder, done, clock)
    return _result(spec, exp_id, prep, recorder.info, backend, clock, done)


def _warm_sources(warm_start: list[str] | None, catalog: Any) -> list[str] | None:
    """The warm start's source experiment ids, resolved before Ray starts (a mistyped source
    fails first); the ids are what the experiment row records."""
    if not warm_start:
        return warm_start
    from tunehouse.catalog import Catalog
    from tunehouse.warm import source_experiment

    sources = Catalog(catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG))
    return list(dict.fromkeys(source_experiment(sources, s)["experiment_id"] for s in warm_start))


@dataclass
class _Done:
    """What the search produced, as far as it got (``run`` records and returns it)."""

    status: str = "failed"
    trials: list[TrialRecord] | None = None
    best: TrialRecord | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    stop_reason: str | None = None
    told: dict[str, int] | None = None  # what the searcher was told (Optuna's trials by state)
    refit_ahead: bool = False  # the test score's model came from ``RefitAhead``


def _tidy(spec: Spec, recorder: ExperimentRecorder, done: _Done, clock: _Clock) -> None:
    """A finished run (completed, stopped or failed; not a Ctrl-C, which should end fast) prunes
    checkpoints by ``spec.checkpoints``, then compacts its experiment's partitions, so a plain
    Parquet read sees one row per trial. Either failing is one line on stderr, never the run's
    failure; the phases ``prune_checkpoints`` and ``compact`` say how long they took."""
    if done.status == "interrupted":
        return
    from tunehouse.catalog import Catalog
    from tunehouse.catalog.retention import prune_checkpoints
    from tunehouse.tracking import say

    cat, exp_id, policy = Catalog(recorder.writer.storage), recorder.writer.experiment_id, spec.checkpoints
    if policy.keep != "all":
        t = time.perf_counter()
        try:
            pruned = set(prune_checkpoints(cat, exp_id, keep=policy.keep, best_n=policy.best_n))
            for r in done.trials or []:
                r.checkpoint_pruned = r.checkpoint_pruned or r.trial_id in pruned
        except Exception as e:
            say(f"pruning checkpoints of {exp_id} failed (they are all kept): {type(e).__name__}: {e}")
        clock.took("prune_checkpoints", t)
    t = time.perf_counter()
    try:
        cat.compact(exp_id)
    except Exception as e:
        say(f"compacting {exp_id} failed (its parts stay as written; tunehouse catalog compact "
            f"{exp_id} retries): {type(e).__name__}: {e}")
    clock.took("compact", t)


def _tracker(spec: Spec, recorder: ExperimentRecorder, history: History) -> TrialTracker:
    """The run's trial bookkeeping and limits (a resumed search's earlier failures count)."""
    from tunehouse.tracking import SearchLimits, TrialTracker

    limits = SearchLimits(spec.time_budget_s, spec.failure.max_failed_trials,
                          failed=sum(t.status == "error" for t in history.finished))
    return TrialTracker(recorder, limits, mode_of=recorder.info.mode_of, reuse_ids=history.unfinished,
                        max_resource=spec.max_resource)


def _search(done: _Done, spec: Spec, prep: _Prepared, tuner: Any, plan: Plan, backend: Backend,
            tracker: TrialTracker, recorder: ExperimentRecorder, history: History, clock: _Clock) -> None:
    """Tune, pick the best, refit it and score the test rows, filling ``done`` as it goes."""
    from tunehouse.search import algorithm

    ahead = _refit_ahead(spec, prep, plan, backend, history)
    tracker.after_end = ahead.trial_ended if ahead is not None else None
    done.trials = _tune(tuner, spec, plan, backend, tracker, recorder, history, clock)
    tracker.after_end = None
    done.told = None if backend.remote_loop else algorithm(spec.search.algorithm).told(plan)
    done.stop_reason = _stop_reason(tracker.limits, len(history.finished) + plan.num_samples, done.trials)
    done.best = best_of(done.trials, spec.objective.name, spec.mode)
    _require_success(done.best, done.trials, done.stop_reason)
    t = time.perf_counter()
    done.test_metrics, done.refit_ahead = _test_score(spec, prep, done.best, ahead)
    clock.took("refit_and_test", t)


def _refit_ahead(spec: Spec, prep: _Prepared, plan: Plan, backend: Backend, history: History) -> Any:
    """A ``RefitAhead`` for a run whose best is refitted for a test score, where Tune's loop runs
    in this process and the model is an estimator; else None."""
    if (backend.remote_loop or plan.num_samples <= 0 or not _scores_test_rows(spec, prep)
            or prep.payload.factory.kind != "estimator"):
        return None
    from tunehouse.refit_ahead import RefitAhead
    from tunehouse.trainable import refit

    return RefitAhead(lambda params, resource: refit(prep.payload, params, resource), planned=plan.num_samples,
                      earlier=history.finished, objective=spec.objective.name, mode=spec.mode)


def _result(spec: Spec, exp_id: str, prep: _Prepared, info: RunInfo, backend: Backend, clock: _Clock,
            done: _Done) -> RunResult:
    return RunResult(
        experiment_id=exp_id, name=spec.name, algorithm=info.algorithm, objective=info.objective,
        mode=info.mode, dataset_fingerprint=info.dataset_fingerprint, catalog=prep.store.uri,
        storage_path=prep.store.full_uri(f"checkpoints/{exp_id}"), trials=done.trials, best=done.best,
        test_metrics=done.test_metrics, wall_s=time.perf_counter() - clock.t0, phases=clock.phases,
        cluster_cpus=backend.cluster_cpus(), stop_reason=done.stop_reason, positive_class=info.positive_class,
        max_resource=spec.max_resource, searcher=done.told, refit_ahead=done.refit_ahead,
    )


def _follow(on_progress: Callable[[Progress], None] | None, spec: Spec, exp_id: str, history: History,
            tracker: TrialTracker, started_at: float, remote_loop: bool
            ) -> Callable[[str, list[TrialRecord] | None], None]:
    """Give ``on_progress`` a snapshot now (nothing started yet) and after every trial event (the
    tracker's listener); return the final report: ``(status, trials)``, the experiment's trials
    when known, else the tracker's. A remote loop (Ray Client) gets the final report only: its
    events happen on the cluster, with a copy of the tracker and no listener."""
    if on_progress is None:
        return lambda status, trials: None
    from dataclasses import asdict

    from tunehouse.report import RunSnapshots
    from tunehouse.tracking import say

    snapshot = RunSnapshots(experiment_id=exp_id, name=spec.name, total=spec.planned_trials,
                            objective=spec.objective.name, mode=spec.mode, started_at=started_at,
                            earlier=[asdict(t) for t in history.finished])
    tracker.listener = lambda t: on_progress(snapshot(t.rows()))

    def report(rows: list[dict[str, Any]], status: str = "running") -> None:
        try:
            on_progress(snapshot(rows, status=status))
        except Exception as e:  # a display must never fail the search
            say(f"live progress display failed: {type(e).__name__}: {e}")

    if not remote_loop:
        report([])  # Ray is up and the data loaded; the first trial may take seconds more to start
    return lambda status, trials: report(tracker.rows() if trials is None else [asdict(t) for t in trials], status)


def _start(spec: Spec, catalog: Any, backend: Backend, stop: StopSignal | None, clock: _Clock) -> _Prepared:
    """Start (or reach) Ray in this thread while another validates and loads the data.

    ``ray.init`` of an embedded Ray takes seconds, mostly waiting for its processes; the
    driver meanwhile imports the model library, loads and splits the data, and imports
    ``ray.tune``. Bad input wins over a Ray failure: its message is the more useful.
    """
    prepared = _Background(lambda: _prepare(spec, catalog))
    try:
        backend.start([str(spec.base_dir), os.getcwd()])
        if stop is not None:
            stop.install()  # ray.init replaced it
        clock.since_start("ray_start")
    finally:
        prep = prepared.result()
    clock.since_start("ray_start_and_data")
    return prep


def _prepare(spec: Spec, catalog: Any) -> _Prepared:
    from tunehouse.catalog import open_storage
    from tunehouse.trainable import make_payload
    from tunehouse.validate import validate

    dataset, splits = validate(spec)
    payload = make_payload(spec, dataset, splits)
    store = open_storage(catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG))
    store.probe()  # a bad --catalog fails here, before any trial runs
    import ray.tune  # noqa: F401  (half a second of imports, off the main thread)

    return _Prepared(dataset, splits, payload, store)


class _Background:
    """Run a function in a thread; ``result()`` joins and re-raises its exception."""

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


def _experiment_id(spec: Spec, prep: _Prepared, experiment_id: str | None, resume: Resume | None) -> str:
    """The run's id: a resumed one's own (on the same data), a chosen new one, or a fresh one."""
    if resume is not None:
        want = resume.expected_fingerprint
        if want and prep.dataset.fingerprint != want:
            from tunehouse.errors import DataError

            raise DataError(
                f"the data changed since experiment {experiment_id} ran (fingerprint {prep.dataset.fingerprint[:12]} "
                f"!= {want[:12]}): resume needs the same rows; run the spec as a new experiment", field="data")
        return experiment_id
    if experiment_id:
        _check_new_id(experiment_id, prep.store)
        return experiment_id
    return new_experiment_id(spec.name)


def _warm_history(spec: Spec, prep: _Prepared, sources: list[str] | None, field: str | None = None) -> History:
    """A new search's history: empty, or what ``warm_start`` makes of earlier experiments
    (its lines said on stderr). ``field`` names the input a mismatch blames (``--spec`` for
    ``tunehouse continue``; default ``--warm-start``)."""
    if not sources:
        return History()
    from tunehouse.catalog import Catalog
    from tunehouse.tracking import say
    from tunehouse.warm import warm_start

    warm = warm_start(spec, prep.dataset.fingerprint, sources, Catalog(prep.store), field=field or "--warm-start")
    for line in warm.lines:
        say(line)
    return warm.history


def _warm_record(sources: list[str] | None, history: History, resume: Resume | None) -> dict[str, Any] | None:
    """What the catalog keeps of a warm start (``experiments.warm_start``): its sources, and the
    configurations it runs first, so that ``resume`` plans the same search again."""
    if resume is not None:
        return resume.warm_start
    if not sources:
        return None
    return {"sources": list(sources), "first": history.first}


def _contract(spec: Spec, dataset: Any, splits: Any) -> str:
    """The data contract of the run's training rows (``tunehouse.contract``), as JSON."""
    from tunehouse.contract import infer

    data = spec.data
    return infer(splits.X_train, splits.y_train, target=dataset.target, classes=dataset.classes,
                 ignore=getattr(data, "drop", None), listed=getattr(data, "features", None) is not None).to_json()


def _record_reused(recorder: ExperimentRecorder, history: History) -> None:
    """A warm start's reused trials become the new experiment's own rows (``reused_from`` set)."""
    reused = [t for t in history.finished if t.reused_from]
    for t in reused:
        recorder.trial_finished(t)
    if reused:
        recorder.writer.flush()


def _recorder(spec: Spec, prep: _Prepared, exp_id: str, resume: Resume | None,
              parent_id: str | None = None, warm: dict[str, Any] | None = None,
              price: float | None = None) -> ExperimentRecorder:
    """The catalog's recorder of this run, counting a resumed run's earlier trials."""
    from tunehouse.catalog import CatalogWriter, ExperimentRecorder
    from tunehouse.provenance import environment

    env = environment(spec.base_dir)
    if spec.path is not None:
        env["spec_path"] = str(spec.path)  # where `resume` finds a relative data path again
    recorder = ExperimentRecorder(CatalogWriter(prep.store, exp_id),
                                  describe(spec, prep.dataset, exp_id, env, parent_id=parent_id, warm_start=warm,
                                           price_per_cpu_hour=price))
    recorder.writer.experiment["contract"] = _contract(spec, prep.dataset, prep.splits)
    if resume is not None:
        recorder.carry_over(resume.history.finished)
        recorder.earlier = resume.spent
        if resume.started_at is not None:
            recorder.writer.experiment["started_at"] = resume.started_at
    return recorder


def describe(spec: Spec, dataset: Any, experiment_id: str, environment: dict[str, str], *,
             parent_id: str | None = None, warm_start: dict[str, Any] | None = None,
             price_per_cpu_hour: float | None = None) -> RunInfo:
    """A run's record for the catalog, as plain values (the catalog never sees the spec)."""
    X = getattr(dataset, "X", None)  # what a model of this run takes and returns
    return RunInfo(
        experiment_id=experiment_id, name=spec.name, task=spec.task, algorithm=spec.search.algorithm,
        sampler=spec.search.sampler if spec.search.algorithm == "bayes" else None,
        objective=spec.objective.name, mode=spec.mode, metric_modes=spec.metric_modes,
        objectives=dict(spec.objective_modes) if spec.pareto else None,
        num_samples=spec.search.num_samples, seed=spec.seed, spec_text=spec.text, spec_hash=spec.spec_hash,
        dataset_fingerprint=dataset.fingerprint, dataset_source=dataset.source, environment=environment,
        cpus=spec.resources.cpus, gpus=spec.resources.gpus, memory_mb=spec.resources.memory_mb,
        features=None if X is None else [(str(c), str(X[c].dtype)) for c in X.columns],
        target=getattr(dataset, "target", None) if spec.task != "clustering" else None,
        classes=getattr(dataset, "classes", None), positive_class=getattr(dataset, "positive_class", None),
        max_resource=spec.max_resource, parent_id=parent_id, warm_start=warm_start,
        price_per_cpu_hour=price_per_cpu_hour,
    )


def _tuner(spec: Spec, plan: Plan, prep: _Prepared, backend: Backend, tracker: TrialTracker,
           limits: SearchLimits, exp_id: str, callbacks: list[Any] | None) -> Any:
    """Ray Tune's Tuner for the plan: the one trainable, its resources, our callback and stopper."""
    from ray import tune

    from tunehouse.errors import SpecError
    from tunehouse.spec import locate
    from tunehouse.trainable import tune_trainable
    from tunehouse.tune_hooks import (
        CatalogCallback,
        LimitStopper,
        count_callbacks_by_name,
        keep_starting_actors,
    )

    count_callbacks_by_name()
    bundle = _bundle(spec)
    try:
        backend.check_fits(bundle)
    except SpecError as e:
        raise locate(e, spec) from None
    resources = tune.PlacementGroupFactory([{k: v for k, v in bundle.items() if v}])
    storage_path, storage_fs = prep.store.tune_storage()
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trainable, payload=prep.payload), resources),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=spec.objective.name, mode=spec.mode, search_alg=plan.searcher,
            scheduler=keep_starting_actors(plan.scheduler),
            num_samples=plan.num_samples, max_concurrent_trials=spec.search.max_concurrent,
            # One actor serves many short trials: actor start-up (imports) costs more than a
            # tabular trial. Resource usage is measured per trial inside it (usage.py).
            reuse_actors=True, trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=exp_id, storage_path=storage_path, storage_filesystem=storage_fs, verbose=0,
            callbacks=[CatalogCallback(tracker, keep=tuple(spec.objective_modes)), *(callbacks or [])],
            # time_budget_s and failure.max_failed_trials: one stopper that knows which ended it
            stop=LimitStopper(limits),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
        ),
    )


def _bundle(spec: Spec) -> dict[str, float]:
    """One trial's resources: CPUs, GPUs and any custom resources (placement on tagged nodes)."""
    bundle = {"CPU": spec.resources.cpus, "GPU": spec.resources.gpus, **spec.resources.custom}
    if spec.resources.memory_mb is not None:  # Ray's memory resource is in bytes
        bundle["memory"] = int(spec.resources.memory_mb * 2**20)
    return bundle


@contextlib.contextmanager
def _pending_trials(limit: int | None) -> Iterator[None]:
    """``TUNE_MAX_PENDING_TRIALS_PG`` for one ``fit()`` (Tune reads it as its loop starts); a
    value the user set wins."""
    name = "TUNE_MAX_PENDING_TRIALS_PG"
    if limit is None or name in os.environ:
        yield
        return
    os.environ[name] = str(limit)
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _tune(tuner: Any, spec: Spec, plan: Plan, backend: Backend, tracker: TrialTracker,
          recorder: ExperimentRecorder, history: History, clock: _Clock) -> list[TrialRecord]:
    """Run Tune's loop; return every trial of the experiment (a resumed one's earlier ones too)."""
    t_fit = time.perf_counter()
    if plan.num_samples > 0:  # a resumed search may have nothing left but its refit
        with _pending_trials(backend.pending_trials(_bundle(spec))):
            tuner.fit()
    clock.took("tuner_fit", t_fit)
    if tracker.records:
        first = min(r.started_at or 0 for r in tracker.records)
        clock.phases["to_first_trial"] = first - (time.time() - (time.perf_counter() - t_fit))
    if not backend.remote_loop:
        return [*history.finished, *tracker.records]
    # fit() ran on the cluster with copies of the tracker and its limits: the catalog has the
    # trials, and the copy's stop reason in the experiment row
    from tunehouse.catalog import Catalog

    cat = Catalog(recorder.writer.storage)
    trials = cat.trial_records(recorder.writer.experiment_id)
    recorder.recount(trials)
    tracker.limits.reason = cat.experiment(recorder.writer.experiment_id).get("stop_reason")
    return trials


def _stop_reason(limits: SearchLimits, planned: int, records: list[TrialRecord]) -> str | None:
    """Why the search ended early, or None when a limit fired with nothing left to cut."""
    if limits.reason is None:
        return None
    finished = sum(r.status in FINISHED for r in records)
    return limits.reason if finished < planned else None


def _require_success(best: TrialRecord | None, trials: list[TrialRecord], stop_reason: str | None) -> None:
    if best is not None or not trials:
        return
    failed = [t for t in trials if t.status == "error"]
    first_error = next((t.error for t in failed if t.error), "no metric reported")
    if stop_reason:
        raise RunError(f"the search was stopped ({stop_reason}) before any trial succeeded"
                       + (f"; first error: {first_error}" if failed else ""))
    raise RunError(f"all {len(trials)} trials failed; first error: {first_error}")


def _scores_test_rows(spec: Spec, prep: _Prepared) -> bool:
    """Whether the run refits its best and scores it on held-out test rows (not clustering)."""
    return prep.splits.X_test is not None and spec.task != "clustering"


def _test_score(spec: Spec, prep: _Prepared, best: TrialRecord | None, ahead: Any = None) -> tuple[dict[str, float], bool]:
    """Refit the best configuration on all training rows (or take ``ahead``'s refit of it) and
    score the test rows, once; (the test metrics, whether the model was ``ahead``'s)."""
    from tunehouse.models import score
    from tunehouse.refit_ahead import NOT_AHEAD
    from tunehouse.trainable import refit

    splits, payload = prep.splits, prep.payload
    if best is None or not _scores_test_rows(spec, prep):
        return {}, False
    model = ahead.model_for(best) if ahead is not None else NOT_AHEAD
    was_ahead = model is not NOT_AHEAD
    if not was_ahead:
        model = refit(payload, best.params, best.resource)  # an early-stopped best: at its own resource
    if model is None:
        return {}, False  # a pure objective has nothing to score on the test rows
    metrics = score(model, splits.X_test, splits.y_test, payload.metrics, task=spec.task, n_classes=payload.n_classes)
    return metrics, was_ahead


def _interrupted(e: KeyboardInterrupt, stop: StopSignal | None, tracker: TrialTracker,
                 recorder: ExperimentRecorder) -> str:
    """Ctrl-C (``interrupted``) or SIGTERM (``stopped``): close the running trials, flush; the status."""
    stopped = stop is not None and stop.was_stopped(e)
    status = "stopped" if stopped else "interrupted"
    tracker.close_unfinished(status, "SIGTERM (a stop)" if stopped else "Ctrl-C or a kill")
    recorder.finish(status, stop_reason="SIGTERM (tunehouse jobs stop, or a scheduler)" if stopped else None)
    return status


# -- resume ---------------------------------------------------------------------------------
def resume(
    experiment: str,
    *,
    catalog: str | os.PathLike[str] | None = None,
    address: str | None = None,
    callbacks: list[Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    backend: Backend | None = None,
    stop: StopSignal | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    price_per_cpu_hour: float | str | None = None,
) -> RunResult:
    """Continue an experiment whose driver died or was stopped, from what the catalog holds.

    The search is rebuilt from the spec stored in the catalog (not from Ray Tune's experiment
    state, which lost OptunaSearch on restore, ray#30861, and broke on moved folders,
    ray#28082): finished trials (terminated or error) are kept and not run again; trials that
    never finished run again under their ids; the search algorithm plans the rest from that
    history (``tunehouse.search``). The data must be unchanged (same fingerprint).
    ``on_progress`` and ``price_per_cpu_hour`` are ``run``'s; its snapshots count the earlier
    trials too, and its driver CPU and wall time add to the earlier runs' recorded ones.

    Raises:
        CatalogError: no such experiment.
        RunError: the experiment is still running, or already completed.
        DataError: its data changed since it ran.
    """
    from tunehouse.catalog import Catalog

    uri = catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG)
    cat = Catalog(uri)
    exp = cat.experiment(experiment)
    exp_id = exp["experiment_id"]
    if exp["status"] == "running":
        raise RunError(f"experiment {exp_id} is still running (driver pid {exp.get('driver_pid')} on "
                       f"{exp.get('driver_host')}); stop it first (Ctrl-C or tunehouse jobs stop)")
    if exp["status"] == "completed":
        raise RunError(f"experiment {exp_id} already completed; nothing to resume")
    spec = recorded_spec(exp)
    warm = json.loads(exp["warm_start"]) if isinstance(exp.get("warm_start"), str) else None
    history = History(first=list((warm or {}).get("first") or []))  # a warm start on other data: run first again
    for t in cat.trial_records(exp_id):
        if t.status in FINISHED:
            history.finished.append(t)
        else:
            history.unfinished.setdefault(config_key(t.params), []).append(t.trial_id)
    return run(spec, address=address, catalog=uri, experiment_id=exp_id, callbacks=callbacks,
               resume=Resume(history, exp.get("dataset_fingerprint"), exp.get("started_at"), warm,
                             (_spent(exp.get("cpu_hours_driver")), _spent(exp.get("wall_s")))),
               connect_timeout=connect_timeout, backend=backend, stop=stop, on_progress=on_progress,
               price_per_cpu_hour=price_per_cpu_hour,
               parent_id=exp["parent_id"] if isinstance(exp.get("parent_id"), str) else None)


def _spent(v: Any) -> float:
    """An earlier run's recorded figure (0 when it recorded none: before the columns existed)."""
    return float(v) if isinstance(v, (int, float)) and v == v else 0.0


def recorded_spec(exp: dict[str, Any]) -> Spec:
    """The spec an experiment ran, from its catalog row: its text, the ``num_samples`` it used
    (``--num-samples`` included), and located where its file was (relative data paths)."""
    from pathlib import Path

    from tunehouse.spec import parse_spec

    spec = parse_spec(exp["spec_text"], file=f"the spec of {exp['experiment_id']} in the catalog")
    if exp.get("num_samples"):  # what the run used, --num-samples included
        spec = spec.override({"search.num_samples": int(exp["num_samples"])})
    spec_path = dict(exp.get("environment") or {}).get("spec_path")
    if spec_path and Path(spec_path).parent.is_dir():
        # relative data paths resolve where the spec was; elsewhere (a job's folder on a
        # cluster's head node) they resolve against the working directory
        spec = spec.located(spec_path)
    return spec


# -- continue ---------------------------------------------------------------------------------
def continue_experiment(
    experiment: str,
    *,
    spec: Spec | None = None,
    num_samples: int | None = None,
    time_budget_s: float | None = None,
    catalog: str | os.PathLike[str] | None = None,
    **run_kwargs: Any,
) -> RunResult:
    """A new child experiment of ``experiment`` (its ``parent_id``), warm-started from it.

    The child runs ``spec`` (default: the parent's recorded spec, ``recorded_spec``) with
    ``num_samples`` (the child's total: its reused trials count toward it) and
    ``time_budget_s`` when given; ``run_kwargs`` are ``run``'s (address, backend, ...).

    Raises:
        SpecError: no such experiment, a bad ``num_samples`` or ``time_budget_s``, or a spec of
            another task or model.
    """
    from tunehouse.catalog import Catalog
    from tunehouse.errors import SpecError
    from tunehouse.spec import override_num_samples
    from tunehouse.warm import source_experiment

    uri = catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG)
    exp = source_experiment(Catalog(uri), experiment, field="EXP")
    spec = spec if spec is not None else recorded_spec(exp)
    if num_samples is not None:
        spec = override_num_samples(spec, num_samples)
    if time_budget_s is not None:
        try:
            spec = spec.override({"time_budget_s": time_budget_s})
        except SpecError as e:
            raise SpecError(f"{e.reason} (time_budget_s)", field="--time-budget") from None
    return run(spec, catalog=uri, warm_start=[exp["experiment_id"]], parent_id=exp["experiment_id"], **run_kwargs)


# -- ids --------------------------------------------------------------------------------------
def new_experiment_id(name: str) -> str:
    now = datetime.now(timezone.utc)
    return f"{name}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def check_experiment_id(experiment_id: str) -> None:
    """A chosen id names a catalog partition: letters, digits, '.', '_' and '-'."""
    from tunehouse.errors import SpecError
    from tunehouse.spec import NAME_RE

    if not NAME_RE.match(experiment_id) or ".." in experiment_id:
        raise SpecError(f"{experiment_id!r}: expected letters, digits, '.', '_' and '-' (at most 128)",
                        field="--experiment-id")


def _check_new_id(experiment_id: str, store: Storage) -> None:
    """A chosen id must be a valid partition name and new (resume continues an existing one)."""
    from tunehouse.catalog import Catalog, CatalogError
    from tunehouse.errors import SpecError

    check_experiment_id(experiment_id)
    try:
        if Catalog(store).experiment(experiment_id)["experiment_id"] != experiment_id:
            return  # a name or an id prefix matched, not this id
    except CatalogError:
        return
    raise SpecError(f"experiment {experiment_id} already exists in {store.uri} (continue it with tunehouse resume)",
                    field="--experiment-id")
