"""Searches as Ray jobs: submit a spec to a cluster's job server; list, status, logs, stop.

A submitted search is an ordinary ``tunehouse run`` whose driver runs on the cluster (Ray's
job server starts it as the job's entrypoint), so everything ``run`` records lands in the
catalog the same way. What this module adds is the shipping and the bookkeeping:

- The spec is validated here, locally, before anything is sent (bad input never reaches the
  cluster). The spec, a local data file it names and a training-function module next to it
  travel in the job's ``working_dir``; the driver copies them to a folder of its own first
  (Ray deleted its unpacked working_dir under a running driver here).
- The experiment id is chosen here and given to the job, so ``jobs status`` can show the
  catalog's progress (trials done / total, best so far) while the job runs.
- ``jobs stop`` is Ray's stop: SIGTERM to the driver, which records the experiment as
  ``stopped`` and flushes the catalog before it exits (``driver.StopRequested``). Ray
  force-kills after ``RAY_JOB_STOP_WAIT_TIME_S`` (3 s by default); jobs submitted here get 30 s.

Ray's client prefers ``RAY_API_SERVER_ADDRESS`` / ``RAY_ADDRESS`` over an explicit address;
here an explicit ``--address`` wins.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tunehouse.errors import RunError, SpecError

META_EXPERIMENT = "tunehouse_experiment"
META_CATALOG = "tunehouse_catalog"
META_SPEC = "tunehouse_spec"
STOP_WAIT_S = 30  # how long Ray waits after SIGTERM before SIGKILL; the driver needs ~1 s
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass
class Submission:
    job_id: str
    experiment_id: str
    catalog: str
    entrypoint: str


# -- the job server -------------------------------------------------------------------------
def job_server_address(address: str | None) -> str:
    """The job server's URL: ``--address``, else ``$RAY_API_SERVER_ADDRESS``, else an http ``$RAY_ADDRESS``."""
    target = address or os.environ.get("RAY_API_SERVER_ADDRESS")
    if not target:
        env = os.environ.get("RAY_ADDRESS", "")
        target = env if env.startswith(("http://", "https://")) else None
    if not target:
        raise SpecError(
            "no job server address: pass --address http://HEAD:8265 (the dashboard's address) "
            "or set RAY_API_SERVER_ADDRESS", field="--address")
    url = urlparse(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        hint = " (that looks like the GCS or client address; the job server is the dashboard's, port 8265 by default)" \
            if url.scheme in ("ray", "") else ""
        raise SpecError(f"bad job server address {target!r}: expected http://HOST:PORT{hint}", field="--address")
    try:
        url.port  # noqa: B018  (a non-numeric port raises here)
    except ValueError:
        raise SpecError(f"bad job server address {target!r}: the port is not a number", field="--address") from None
    return target.rstrip("/")


@contextlib.contextmanager
def _explicit_address():
    """Ray's client lets these variables override the address it is given; ours must win."""
    saved = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def client(address: str | None):
    """A connected ``JobSubmissionClient``; unreachable servers are one clear line."""
    url = job_server_address(address)
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as e:  # pragma: no cover - ray[default] is a dependency
        raise RunError(f"job submission needs ray[default]: {e}") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        with _explicit_address():
            return JobSubmissionClient(url)
    except (ConnectionError, OSError) as e:
        raise RunError(f"cannot reach Ray's job server at {url}: {_first_line(e)} "
                       "(is the cluster up and the dashboard on that port?)") from None
    except Exception as e:
        raise RunError(f"Ray's job server at {url} refused the connection: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _call(fn, *args, what: str, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError as e:
        text = _first_line(e)
        if "404" in text or "does not exist" in text:
            raise RunError(f"{what}: no such job on this cluster") from None
        raise RunError(f"{what}: {text}") from None
    except (ConnectionError, OSError) as e:
        raise RunError(f"{what}: lost the job server: {_first_line(e)}") from None


# -- submit ------------------------------------------------------------------------------------
def submit(
    spec_path: str | os.PathLike[str],
    *,
    address: str | None = None,
    catalog: str | None = None,
    num_samples: int | None = None,
    pip: list[str] | None = None,
    env: dict[str, str] | None = None,
    experiment_id: str | None = None,
) -> Submission:
    """Validate a spec here, then submit it as a Ray job whose entrypoint is ``tunehouse run``.

    Args:
        spec_path: the YAML spec (validated locally first, data and model included).
        address: the job server, ``http://HEAD:8265``.
        catalog: where the job records trials; must be reachable from the cluster's nodes
            (``s3://...`` or a shared folder). A local path is made absolute.
        num_samples: override ``search.num_samples``.
        pip: packages the job's environment installs (Ray's ``runtime_env.pip``); by default
            the cluster's own Python must already have tunehouse (see cluster/README.md).
        env: environment variables for the job (e.g. object-store credentials).
        experiment_id: fix the experiment id (default: a new one).

    Raises:
        SpecError: the spec, the address or an option is bad (nothing was submitted).
        RunError: the job server cannot be reached or refused the job.
    """
    from tunehouse.driver import DEFAULT_CATALOG, new_experiment_id
    from tunehouse.spec import override_num_samples
    from tunehouse.validate import load_checked

    spec, _ = load_checked(spec_path)  # the same checks as `tunehouse validate`
    if num_samples is not None:
        override_num_samples(spec, num_samples)  # the same bounds as the spec's own field
    cat = catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG)
    if "://" not in cat:
        cat = str(Path(cat).resolve())
    jc = client(address)  # a bad or unreachable address fails before we stage anything
    exp_id = experiment_id or new_experiment_id(spec.name)
    staging = Path(tempfile.mkdtemp(prefix="tunehouse-job-"))
    try:
        spec_name = _stage(spec, Path(spec_path), staging)
        args = ["--experiment-id", exp_id, "--catalog", cat]
        if num_samples is not None:
            args += ["--num-samples", str(num_samples)]
        entrypoint = _entrypoint(f'run "$d"/{shlex.quote(spec_name)}', args)
        job_id = _submit_job(jc, staging, entrypoint, exp_id, cat, spec.name, pip, env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # uploaded by submit_job
    return Submission(job_id=job_id, experiment_id=exp_id, catalog=cat, entrypoint=entrypoint)


def _entrypoint(command: str, args: list[str]) -> str:
    """The job's shell command: ``tunehouse COMMAND ARGS`` in a copy of the job's folder ``$d``.

    The job starts in Ray's unpacked copy of working_dir, which Ray deleted under a running
    driver here (the first job on a fresh cluster: Tune's final os.getcwd() failed). So the
    driver first copies it to a folder of its own and runs from there; `resume` later finds
    the spec and data in it too. ``command`` is shell text (it may name ``"$d"/FILE``).
    """
    return ('d=$(mktemp -d "${TMPDIR:-/tmp}/tunehouse-job-XXXXXX") && cp -R . "$d" && cd "$d" && '
            f"exec tunehouse {command} " + " ".join(shlex.quote(a) for a in args)).rstrip()


def _submit_job(jc, staging: Path, entrypoint: str, exp_id: str, cat: str, name: str, pip: list[str] | None,
                env: dict[str, str] | None) -> str:
    runtime_env: dict[str, Any] = {
        "working_dir": str(staging),
        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S), **(env or {})},
    }
    if pip:
        runtime_env["pip"] = list(pip)
    return _call(
        jc.submit_job, what="submitting the job", entrypoint=entrypoint, runtime_env=runtime_env,
        submission_id=f"tunehouse-{exp_id}",
        metadata={META_EXPERIMENT: exp_id, META_CATALOG: cat, META_SPEC: name},
    )


def submit_retrain(
    champion: str,
    data: str | os.PathLike[str],
    *,
    address: str | None = None,
    catalog: str | None = None,
    num_samples: int | None = None,
    min_gain: float | None = None,
    pip: list[str] | None = None,
    env: dict[str, str] | None = None,
    experiment_id: str | None = None,
) -> Submission:
    """Check a retrain here (the champion resolves, the new data loads with its spec), then
    submit ``tunehouse retrain`` as a Ray job; the data file travels in the job's folder.

    ``champion`` is a tag, or an export folder every node reaches (a shared file system). The
    experiment id is the child search's (it appears in the catalog only if the data is new).

    Raises:
        InputError / SpecError / DataError: a bad champion, data, option or address (nothing sent).
        RunError: the job server cannot be reached or refused the job.
    """
    cat, exp_id, staging, entrypoint = stage_retrain(champion, data, catalog=catalog, num_samples=num_samples,
                                                     min_gain=min_gain, experiment_id=experiment_id)
    try:
        jc = client(address)
        job_id = _submit_job(jc, staging, entrypoint, exp_id, cat, f"retrain {champion}", pip, env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # uploaded by submit_job
    return Submission(job_id=job_id, experiment_id=exp_id, catalog=cat, entrypoint=entrypoint)


def stage_retrain(champion: str, data: str | os.PathLike[str], *, catalog: str | None = None,
                  num_samples: int | None = None, min_gain: float | None = None,
                  experiment_id: str | None = None) -> tuple[str, str, Path, str]:
    """What ``submit_retrain`` sends, built without a cluster: (catalog, child experiment id,
    the staged job folder holding ``data/<file>``, the entrypoint). The caller removes the folder.

    Raises:
        InputError / SpecError / DataError: as ``submit_retrain``.
    """
    from tunehouse.catalog import Catalog
    from tunehouse.driver import DEFAULT_CATALOG, check_experiment_id, new_experiment_id
    from tunehouse.errors import InputError
    from tunehouse.retrain import child_spec, resolve_champion
    from tunehouse.validate import validate

    cat = catalog or os.environ.get("TUNEHOUSE_CATALOG", DEFAULT_CATALOG)
    if "://" not in cat:
        cat = str(Path(cat).resolve())
    champ = resolve_champion(Catalog(cat), champion)
    spec = child_spec(champ.experiment, data, num_samples)
    validate(spec)  # the new data loads and splits with the champion's spec, here
    if min_gain is not None and not min_gain >= 0:
        raise InputError(f"--min-gain: expected a number >= 0, got {min_gain!r}")
    if experiment_id is not None:
        check_experiment_id(experiment_id)
    exp_id = experiment_id or new_experiment_id(spec.name)
    who = champion if champ.tag == champion else str(champ.path)  # a folder: the same path on the cluster
    args = ["--catalog", cat, "--experiment-id", exp_id]
    if num_samples is not None:
        args += ["--num-samples", str(num_samples)]
    if min_gain is not None:
        args += ["--min-gain", repr(float(min_gain))]
    source = Path(data).resolve()
    staging = Path(tempfile.mkdtemp(prefix="tunehouse-job-"))
    (staging / "data").mkdir()
    shutil.copy2(source, staging / "data" / source.name)
    command = f'retrain {shlex.quote(who)} --data "$d"/{shlex.quote("data/" + source.name)}'
    return cat, exp_id, staging, _entrypoint(command, args)


def _stage(spec, spec_path: Path, staging: Path) -> str:
    """Copy the spec, its local data file and a training-function module next to it; return the spec's name."""
    import yaml

    text = spec.text
    base = spec.base_dir
    data_path = spec.data.path
    if data_path and "://" not in data_path:
        source = (base / data_path).resolve()
        rel = Path(data_path)
        if rel.is_absolute() or ".." in rel.parts:
            # keep the spec's text unless the path cannot live inside the job's folder
            rel = Path("data") / source.name
            doc = yaml.safe_load(text)
            doc["data"]["path"] = rel.as_posix()
            text = yaml.safe_dump(doc, sort_keys=False)
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, staging / rel)
    if spec.model.is_function:
        src = _user_module(spec.model.estimator.split(":", 1)[0].split(".")[0], base)
        if src is not None and src.is_dir():
            shutil.copytree(src, staging / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src is not None:
            shutil.copy2(src, staging / src.name)
    name = spec_path.name
    (staging / name).write_text(text, encoding="utf-8")
    return name


def _user_module(top: str, base: Path) -> Path | None:
    """The file or package validation imported ``top`` from, when it is the user's (next to the
    spec or in the working directory); None when it is installed (the cluster must have it)."""
    import sys

    origin = getattr(sys.modules.get(top), "__file__", None)
    if not origin:
        return None
    origin_path = Path(origin).resolve()
    for where in (base.resolve(), Path.cwd().resolve()):
        if origin_path == where / f"{top}.py":
            return origin_path
        if origin_path == where / top / "__init__.py":
            return origin_path.parent
    return None


# -- list / status / logs / stop ---------------------------------------------------------------
def list_jobs(address: str | None = None, *, everything: bool = False) -> list[dict[str, Any]]:
    """The cluster's jobs, newest first: tunehouse's own, or ``everything``."""
    jc = client(address)
    return job_rows(_call(jc.list_jobs, what="listing jobs"), everything=everything)


def job_rows(jobs: list[Any], *, everything: bool = False) -> list[dict[str, Any]]:
    """Ray's ``JobDetails`` as the rows of ``jobs list``, newest first; start and end times
    as UTC datetimes (Ray gives epoch milliseconds), as the other listings show times."""
    picked = [j for j in jobs if everything or META_EXPERIMENT in (j.metadata or {})]
    picked.sort(key=lambda j: j.start_time or 0, reverse=True)
    return [
        {
            "job_id": j.submission_id or j.job_id,
            "status": str(getattr(j.status, "value", j.status)),
            "experiment_id": (j.metadata or {}).get(META_EXPERIMENT),
            "spec": (j.metadata or {}).get(META_SPEC),
            "start_time": _utc(j.start_time),
            "end_time": _utc(j.end_time),
            "message": j.message,
        }
        for j in picked
    ]


def _utc(epoch_ms: int | None) -> datetime | None:
    return None if not epoch_ms else datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)


def status(job_id: str, address: str | None = None) -> dict[str, Any]:
    """Ray's view of a job plus the catalog's: trials done / total, failures, best so far."""
    return _status(client(address), job_id)


def _state(jc, job_id: str) -> str:
    s = _call(jc.get_job_status, job_id, what=f"job {job_id}")
    return str(getattr(s, "value", s))


def _status(jc, job_id: str) -> dict[str, Any]:
    info = _call(jc.get_job_info, job_id, what=f"job {job_id}")
    meta = info.metadata or {}
    out: dict[str, Any] = {
        "job_id": job_id,
        "status": str(getattr(info.status, "value", info.status)),
        "message": info.message,
        "experiment_id": meta.get(META_EXPERIMENT),
        "catalog": meta.get(META_CATALOG),
    }
    if out["experiment_id"] and out["catalog"]:
        out.update(progress(out["catalog"], out["experiment_id"]))
    return out


def progress(catalog: str, experiment_id: str) -> dict[str, Any]:
    """The search's progress in the catalog (``report.Progress``): trials done / total, failures,
    best so far, and ``progress_line``, the same plain line ``tunehouse watch`` prints."""
    from tunehouse.catalog import Catalog
    from tunehouse.report import progress_from_catalog

    try:
        p = progress_from_catalog(Catalog(catalog), experiment_id)
    except Exception as e:  # not written yet, or not reachable from here
        return {"catalog_note": f"no catalog record yet ({_first_line(e)})"}
    return {
        "experiment_status": p.status,
        "trials_done": p.done,
        "trials_failed": p.failed,
        "trials_total": p.total,
        "objective": p.objective,
        "best_value": p.best_value,
        "best_trial_id": p.best_trial_id,
        "progress_line": p.line(),
    }


def logs(job_id: str, address: str | None = None, *, follow: bool = False) -> Iterator[str]:
    """The job's output; with ``follow``, chunks as they come until the job ends."""
    jc = client(address)
    if not follow:
        yield _call(jc.get_job_logs, job_id, what=f"logs of job {job_id}")
        return
    _call(jc.get_job_info, job_id, what=f"job {job_id}")  # a clear error for an unknown id
    import asyncio

    agen = jc.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    seen = 0
    try:
        while True:
            try:
                chunk = loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                break
            except Exception:  # the stream closed before the job ended: poll the rest
                break
            seen += len(chunk)
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(agen.aclose())
        loop.close()
    while True:  # whatever the stream did not deliver, until the job has ended
        done = _state(jc, job_id) in TERMINAL
        text = _call(jc.get_job_logs, job_id, what=f"logs of job {job_id}")
        if len(text) > seen:
            yield text[seen:]
            seen = len(text)
        if done:
            return
        time.sleep(1.0)


def wait(job_id: str, address: str | None = None, *, timeout_s: float | None = None, poll_s: float = 0.5) -> str:
    """Block until the job is SUCCEEDED, FAILED or STOPPED; return that status."""
    return _wait(client(address), job_id, timeout_s=timeout_s, poll_s=poll_s)


def _wait(jc, job_id: str, *, timeout_s: float | None, poll_s: float = 0.5) -> str:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        st = _state(jc, job_id)
        if st in TERMINAL:
            return st
        if deadline is not None and time.monotonic() > deadline:
            raise RunError(f"job {job_id} still {st} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def stop(job_id: str, address: str | None = None, *, timeout_s: float = STOP_WAIT_S + 30) -> dict[str, Any]:
    """Stop a job (SIGTERM to its driver, which records the experiment as stopped) and wait for it to end."""
    jc = client(address)
    _call(jc.stop_job, job_id, what=f"stopping job {job_id}")
    final = _wait(jc, job_id, timeout_s=timeout_s)
    out = _status(jc, job_id)
    out["status"] = final
    return out
