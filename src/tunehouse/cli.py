"""Command-line interface: argument parsing and output formatting only.

Each command calls the Python API; a ``TunehouseError`` becomes one line on stderr and exit
code 2 (bad input) or 1 (run-time failure). ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

from tunehouse import __version__
from tunehouse.errors import TunehouseError


@dataclass
class Session:
    """What one CLI invocation holds besides its arguments: how Ray was reached, SIGTERM's
    meaning, and whether the process ends right after the command (the console entry point)."""

    fast_exit: bool = False
    backend: Any = None  # backend.Backend, once a search reached Ray
    stop: Any = None  # driver.StopSignal, once a search installed it

    def was_stopped(self, e: BaseException) -> bool:
        return self.stop is not None and self.stop.was_stopped(e)

    def end(self, code: int) -> None:
        """End the process at once (with the embedded Ray it started, if any)."""
        if self.backend is not None:
            self.backend.exit(code)
        # Everything is written and flushed (catalog parts are fsynced). Skipping interpreter
        # finalization avoids a native thread pool's abort at exit ("terminate called without
        # an active exception", seen once from a `catalog check` with pyarrow 25).
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            code = _reader_gone()
        sys.stderr.flush()
        os._exit(code)


def entry() -> None:
    """Console entry point: ``main``, then end the process (and an embedded Ray) at once."""
    session = Session(fast_exit=True)
    try:
        code = main(session=session)
        sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_closed():  # a pipe of something else broke: not the reader's doing
            raise
        code = _reader_gone()
    session.end(code)


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll reports an error)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no fd: assume it is
        return True


def _reader_gone() -> int:
    """Standard output's reader closed the pipe (``tunehouse best EXP | head -1``): end quietly
    with exit 0, as ``git log | head`` does. Python's recipe: point stdout at devnull, so that
    no later flush fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def main(argv: list[str] | None = None, *, session: Session | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.session = session = session or Session()
    try:
        return int(args.func(args) or 0)
    except TunehouseError as e:
        if args.debug or os.environ.get("TUNEHOUSE_DEBUG") == "1":  # the env var reaches a job's driver
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        what, code = ("stopped", 143) if session.was_stopped(e) else ("interrupted", 130)
        hint = ""
        if getattr(e, "experiment_id", None):
            hint = f"; continue it with: tunehouse resume {e.experiment_id} --catalog {shlex.quote(e.catalog)}"
        print(f"{what}: the catalog holds every trial finished so far{hint}", file=sys.stderr)
        return code


def _seconds(text: str) -> float:
    """A positive number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunehouse",
        description="Hyperparameter search on Ray Tune, recorded in a Parquet catalog.",
    )
    p.add_argument("--version", action="version", version=f"tunehouse {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    r = sub.add_parser("run", help="run the search a spec describes", description=cmd_run.__doc__)
    r.add_argument("spec", help="YAML spec, e.g. search_spaces/quickstart.yaml")
    r.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
    r.add_argument("--address", default=None, help="Ray cluster to attach to (auto, ray://HOST:10001, local: an embedded Ray); default: the local service when it is up, else an embedded local Ray")
    r.add_argument("--no-service", action="store_true", help="do not use the local service (tunehouse up) even when it is up")
    r.add_argument("--connect-timeout", type=_seconds, default=30.0, metavar="SECONDS", help="fail if --address does not answer within this long (default 30)")
    r.add_argument("--num-samples", type=int, default=None, help="override search.num_samples")
    r.add_argument("--experiment-id", default=None, help="use this experiment id (default: NAME-TIME-RANDOM)")
    r.add_argument("--warm-start", action="append", default=None, metavar="EXP",
                   help="start from an earlier experiment's trials (repeatable): on the same data, those inside "
                   "the space are reused; on other data, its best configurations run first")
    r.add_argument("--json", action="store_true", help="print the result as JSON (progress: plain lines on stderr)")
    r.add_argument("--quiet", action="store_true", help="show no progress while the search runs")
    _price_option(r, run=True)
    r.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser("resume", help="continue an interrupted or stopped experiment", description=cmd_resume.__doc__)
    rs.add_argument("experiment", help="experiment id, id prefix or name")
    rs.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
    rs.add_argument("--address", default=None, help="Ray cluster to attach to; default: the local service when it is up, else an embedded local Ray")
    rs.add_argument("--no-service", action="store_true", help="do not use the local service (tunehouse up) even when it is up")
    rs.add_argument("--connect-timeout", type=_seconds, default=30.0, metavar="SECONDS", help="fail if --address does not answer within this long (default 30)")
    rs.add_argument("--json", action="store_true", help="print the result as JSON (progress: plain lines on stderr)")
    rs.add_argument("--quiet", action="store_true", help="show no progress while the search runs")
    _price_option(rs, run=True)
    rs.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    rs.set_defaults(func=cmd_resume)

    co = sub.add_parser("continue", help="a new child experiment warm-started from an earlier one",
                        description=cmd_continue.__doc__)
    co.add_argument("experiment", help="experiment id, id prefix or name (the parent)")
    co.add_argument("--spec", default=None, help="the child's spec (default: the parent's recorded spec)")
    co.add_argument("--num-samples", type=int, default=None, help="the child's search.num_samples (its reused trials count toward it)")
    co.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS", help="the child's time_budget_s")
    co.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
    co.add_argument("--address", default=None, help="Ray cluster to attach to; default: the local service when it is up, else an embedded local Ray")
    co.add_argument("--no-service", action="store_true", help="do not use the local service (tunehouse up) even when it is up")
    co.add_argument("--connect-timeout", type=_seconds, default=30.0, metavar="SECONDS", help="fail if --address does not answer within this long (default 30)")
    co.add_argument("--json", action="store_true", help="print the result as JSON (progress: plain lines on stderr)")
    co.add_argument("--quiet", action="store_true", help="show no progress while the search runs")
    _price_option(co, run=True)
    co.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    co.set_defaults(func=cmd_continue)

    rt = sub.add_parser("retrain", help="retrain a tagged model on new data; move the tag if the challenger wins",
                        description=cmd_retrain.__doc__)
    rt.add_argument("champion", metavar="TAG_OR_EXPORT_DIR", help="a tag (its current holder) or an export folder")
    rt.add_argument("--data", required=True, help="the new CSV or Parquet file (the champion's columns)")
    rt.add_argument("--num-samples", type=int, default=None, help="the child search's num_samples (default: the champion's)")
    rt.add_argument("--min-gain", type=float, default=0.0, help="promote only if the challenger beats the champion "
                    "by at least this on the held-out rows, in the objective's direction (default 0)")
    rt.add_argument("--out", default=None, help="the challenger's export folder (default: next to the champion's, "
                    "named by the child experiment)")
    rt.add_argument("--experiment-id", default=None, help="the child experiment's id (default: NAME-TIME-RANDOM)")
    rt.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
    rt.add_argument("--address", default=None, help="Ray cluster to attach to; default: the local service when it is up, else an embedded local Ray")
    rt.add_argument("--no-service", action="store_true", help="do not use the local service (tunehouse up) even when it is up")
    rt.add_argument("--connect-timeout", type=_seconds, default=30.0, metavar="SECONDS", help="fail if --address does not answer within this long (default 30)")
    rt.add_argument("--json", action="store_true", help="print the decision as JSON (progress: plain lines on stderr)")
    rt.add_argument("--quiet", action="store_true", help="show no progress while the search runs")
    rt.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    rt.set_defaults(func=cmd_retrain)

    for name, func, help_ in [
        ("up", cmd_up, "start the local service: a persistent Ray that run and resume use"),
        ("status", cmd_status, "is the local service up: its address, CPUs, running searches"),
        ("down", cmd_down, "stop the local service (only its own processes)"),
    ]:
        sv = sub.add_parser(name, help=help_, description=func.__doc__)
        if name == "up":
            sv.add_argument("--cpus", type=int, default=None, help="CPUs the service offers trials (default: this machine's)")
        if name == "status":
            sv.add_argument("--json", action="store_true", help="print the status as JSON")
        sv.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        sv.set_defaults(func=func)

    sb = sub.add_parser("submit", help="submit a search to a Ray cluster as a job", description=cmd_submit.__doc__)
    sb.add_argument("spec", nargs="?", default=None, help="YAML spec (validated here before it is sent)")
    sb.add_argument("--retrain", default=None, metavar="TAG", help="instead of a spec: submit `tunehouse retrain TAG "
                    "--data FILE` (the file travels with the job)")
    sb.add_argument("--data", default=None, help="with --retrain: the new data file")
    sb.add_argument("--min-gain", type=float, default=None, help="with --retrain: its --min-gain")
    sb.add_argument("--address", default=None, help="the job server, http://HEAD:8265 (default $RAY_API_SERVER_ADDRESS)")
    sb.add_argument("--catalog", default=None, help="catalog every node reaches: s3://... or a shared folder")
    sb.add_argument("--num-samples", type=int, default=None, help="override search.num_samples")
    sb.add_argument("--pip", action="append", default=None, help="a package the job's environment installs (repeatable)")
    sb.add_argument("--env", action="append", default=None, metavar="KEY=VALUE", help="an environment variable for the job (repeatable)")
    sb.add_argument("--wait", action="store_true", help="follow the job's output to its end; exit 0 only if it succeeded")
    sb.add_argument("--json", action="store_true", help="print the submission as JSON")
    sb.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sb.set_defaults(func=cmd_submit)

    jb = sub.add_parser("jobs", help="tunehouse jobs on a Ray cluster: list, status, logs, stop", description="Jobs on a Ray cluster's job server.")
    jsub = jb.add_subparsers(title="jobs commands", metavar="COMMAND")
    for name, func, help_ in [
        ("list", cmd_jobs_list, "the cluster's tunehouse jobs, newest first"),
        ("status", cmd_jobs_status, "a job's state and its search's progress in the catalog"),
        ("logs", cmd_jobs_logs, "a job's output"),
        ("stop", cmd_jobs_stop, "stop a job; its experiment is recorded as stopped"),
    ]:
        j = jsub.add_parser(name, help=help_, description=func.__doc__)
        if name != "list":
            j.add_argument("job_id", help="the job id printed by submit")
        j.add_argument("--address", default=None, help="the job server, http://HEAD:8265 (default $RAY_API_SERVER_ADDRESS)")
        j.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        if name == "logs":
            j.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
        elif name == "list":
            j.add_argument("--all", action="store_true", help="also jobs not submitted by tunehouse")
        if name != "logs":
            j.add_argument("--json", action="store_true", help="print JSON")
        j.set_defaults(func=func)

    v = sub.add_parser("validate", help="check a spec (model, data, space) without running", description=cmd_validate.__doc__)
    v.add_argument("spec", nargs="+", help="YAML spec(s)")
    v.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print the spec's JSON Schema", description=cmd_schema.__doc__)
    s.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_schema)

    def catalog_cmd(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=func.__doc__)
        c.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
        c.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        c.set_defaults(func=func)
        return c

    e = catalog_cmd("experiments", cmd_experiments, "list the experiments in the catalog")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--tree", action="store_true", help="show lineage: each child (tunehouse continue) under its parent")
    _price_option(e)

    t = catalog_cmd("trials", cmd_trials, "show an experiment's trials: params, metrics, usage")
    t.add_argument("experiment", help="experiment id, id prefix or name (newest of that name)")
    t.add_argument("--sort", default=None, help="sort by this column (default: the objective, best first)")
    t.add_argument("--where", default=None, help='SQL filter over the columns, e.g. "max_depth > 3"')
    t.add_argument("--limit", type=int, default=None, help="at most N rows")
    t.add_argument("--all-columns", action="store_true", help="include every core column")
    t.add_argument("--errors", action="store_true", help="print each failed trial's id and full traceback")
    t.add_argument("--pareto", action="store_true", help="only the Pareto front (a multi-objective experiment; "
                   "else the best trial)")
    t.add_argument("--json", action="store_true", help="print JSON")

    b = catalog_cmd("best", cmd_best, "print the best trial of an experiment")
    b.add_argument("experiment", help="experiment id, id prefix or name")
    b.add_argument("--metric", default=None, help="rank by this metric instead of the objective")
    b.add_argument("--json", action="store_true", help="print JSON")

    q = catalog_cmd("query", cmd_query, "run DuckDB SQL over the views experiments, trials, iterations")
    q.add_argument("sql", help="SQL, e.g. \"select name, best_value from experiments\"")
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print JSON")

    x = catalog_cmd("export", cmd_export, "export a trial (the best by default) as a deployable model folder")
    x.add_argument("experiment", help="experiment id, id prefix or name")
    x.add_argument("--out", required=True, help="the export folder to create")
    x.add_argument("--trial", default=None, help="trial id (default: the best)")
    x.add_argument("--metric", default=None, help="pick the best by this metric instead of the objective")
    x.add_argument("--where", default=None, help='the best among the trials meeting this SQL condition, '
                   'e.g. "predict_ms < 5"')
    rf = x.add_mutually_exclusive_group()
    rf.add_argument("--refit", dest="refit", action="store_true", default=None, help="refit on all training rows (the spec's default)")
    rf.add_argument("--no-refit", dest="refit", action="store_false", help="export the trial's checkpointed model as it is")
    x.add_argument("--joblib", action="store_true", help="also write a joblib copy")
    x.add_argument("--tag", default=None, help="move this tag (e.g. production) to the export")
    x.add_argument("--json", action="store_true", help="print the export's metadata as JSON")

    rq = catalog_cmd("reproduce", cmd_reproduce, "re-run one trial from the catalog alone and compare its metrics")
    rq.add_argument("experiment", help="experiment id, id prefix or name")
    rq.add_argument("trial", help="the trial id")
    rq.add_argument("--json", action="store_true", help="print the comparison as JSON")

    ex = catalog_cmd("exports", cmd_exports, "list exports; with --tag its holder, --history every holder")
    ex.add_argument("--tag", default=None, help="only exports that held this tag")
    ex.add_argument("--history", action="store_true", help="every export that held --tag, newest first")
    ex.add_argument("--json", action="store_true", help="print JSON")

    pm = catalog_cmd("promotions", cmd_promotions, "retrain's decisions: promoted, kept or refused, with both scores")
    pm.add_argument("--tag", default=None, help="only decisions about this tag")
    pm.add_argument("--json", action="store_true", help="print JSON")

    w = catalog_cmd("watch", cmd_watch, "follow a search's progress from the catalog until it ends")
    w.add_argument("experiment", help="experiment id, id prefix or name")
    w.add_argument("--interval", type=float, default=2.0, help="seconds between reads of the catalog (default 2)")

    rp = catalog_cmd("report", cmd_report, "write one self-contained HTML report of one or more experiments")
    rp.add_argument("experiment", nargs="+", help="experiment id(s), id prefix or name; several: overlaid and compared")
    rp.add_argument("--out", default=None, help="the HTML file (default ./report-<id>.html)")
    _price_option(rp)

    cp = catalog_cmd("compare", cmd_compare, "compare experiments side by side: best, spread, cost, data")
    cp.add_argument("experiment", nargs="+", help="two or more experiment ids, prefixes or names; the first is the reference")
    cp.add_argument("--json", action="store_true", help="print JSON")
    _price_option(cp)

    pr = sub.add_parser("predict", help="predict with an export folder (checksums verified)", description=cmd_predict.__doc__)
    pr.add_argument("export", help="an export folder")
    pr.add_argument("--input", required=True, help="CSV or Parquet with the model's feature columns")
    pr.add_argument("--output", default=None, help="write predictions here (CSV); default: standard output")
    pr.add_argument("--keep", action="append", default=None, metavar="COL",
                    help="copy this input column (e.g. an id) to the output, before the predictions (repeatable)")
    pr.add_argument("--ignore-extra", action="store_true", help="drop input columns the model does not know instead of refusing them")
    pr.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    pr.set_defaults(func=cmd_predict)

    cd = catalog_cmd("check-data", cmd_check_data, "check a data file against an experiment's or an export's data contract")
    cd.add_argument("source", help="an experiment id (or name) in the catalog, or an export folder")
    cd.add_argument("--input", required=True, help="the CSV or Parquet file to check")
    cd.add_argument("--json", action="store_true", help="print JSON")

    c = sub.add_parser("catalog", help="catalog maintenance: check, compact", description="Catalog maintenance: check every part file, compact finished experiments.")
    csub = c.add_subparsers(title="catalog commands", metavar="COMMAND")
    for name, func, help_ in [
        ("check", cmd_catalog_check, "report truncated, foreign or leftover files"),
        ("compact", cmd_catalog_compact, "rewrite a finished experiment as one file per table"),
    ]:
        cc = csub.add_parser(name, help=help_, description=func.__doc__)
        cc.add_argument("--catalog", default=None, help="catalog folder or s3:// URI")
        cc.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        cc.set_defaults(func=func)
        if name == "compact":
            cc.add_argument("experiment", nargs="*", help="experiment id(s), prefix or name; none: every finished experiment, plus the catalog-wide experiments index")
            cc.add_argument("--force", action="store_true", help="compact even if it looks running")
    return p


def _price_option(p: argparse.ArgumentParser, *, run: bool = False) -> None:
    """``--price-per-cpu-hour``: a run records its cost; a listing prices after the fact."""
    p.add_argument("--price-per-cpu-hour", dest="price", default=None, metavar="PRICE",
                   help="price of a CPU-hour: the run records its cost (default $TUNEHOUSE_PRICE_PER_CPU_HOUR, "
                   "else the spec's cost.per_cpu_hour)" if run else
                   "price the CPU-hours at this (default: the price each run recorded)")


def _display_price(args: argparse.Namespace) -> float | None:
    """A listing's ``--price-per-cpu-hour`` (checked: one line, exit 2), or None: the recorded price."""
    from tunehouse.costs import price_per_cpu_hour

    return None if args.price is None else price_per_cpu_hour(args.price)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a grid, random or Bayesian search on an embedded Ray (or --address) and print the best trial."""
    from tunehouse.driver import check_experiment_id, run
    from tunehouse.spec import load_spec, override_num_samples

    spec = load_spec(args.spec)
    if args.num_samples is not None:
        spec = override_num_samples(spec, args.num_samples)
    if args.experiment_id is not None:
        check_experiment_id(args.experiment_id)  # before Ray starts
    from tunehouse.costs import price_per_cpu_hour

    price = price_per_cpu_hour(args.price, spec.cost.per_cpu_hour if spec.cost else None)  # before Ray starts
    return _search(args, lambda **ray: run(spec, catalog=args.catalog, experiment_id=args.experiment_id,
                                           warm_start=args.warm_start, price_per_cpu_hour=price, **ray))


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an experiment whose driver was killed, interrupted or stopped: finished trials are
    kept, unfinished ones run again under their ids, then the rest of the search runs."""
    from tunehouse.costs import price_per_cpu_hour
    from tunehouse.driver import resume

    price = price_per_cpu_hour(args.price) if args.price is not None else None  # else env, else the spec's
    return _search(args, lambda **ray: resume(args.experiment, catalog=args.catalog, price_per_cpu_hour=price, **ray))


def cmd_continue(args: argparse.Namespace) -> int:
    """Start a new child experiment of EXP (recorded as its parent), warm-started from it: on the
    same data its trials inside the (new) space are reused and count toward num_samples; the
    spec is the parent's unless --spec gives a changed one (a narrowed space, more budget)."""
    from tunehouse.costs import price_per_cpu_hour
    from tunehouse.driver import continue_experiment
    from tunehouse.spec import load_spec

    spec = load_spec(args.spec) if args.spec else None
    price = price_per_cpu_hour(args.price) if args.price is not None else None  # else env, else the spec's
    return _search(args, lambda **ray: continue_experiment(
        args.experiment, spec=spec, num_samples=args.num_samples, time_budget_s=args.time_budget,
        catalog=args.catalog, price_per_cpu_hour=price, **ray))


def cmd_retrain(args: argparse.Namespace) -> int:
    """Retrain a champion (a tag's current holder, or an export folder) on new data: the same data
    (fingerprint) is nothing to do; a decision already recorded for this champion and data is
    printed again; else the data is checked against the champion's contract, a child search
    warm-started from the champion's experiment runs on it, both models are scored on the same
    held-out rows of the new data, and the tag moves to the challenger iff it is better by at
    least --min-gain. The decision is recorded in the catalog's promotions table. Exit 0 for
    nothing to do, promoted and kept; 2 for refused (the data broke the contract)."""
    from tunehouse.retrain import retrain

    return _search(args, lambda **ray: retrain(
        args.champion, args.data, catalog=args.catalog, num_samples=args.num_samples, min_gain=args.min_gain,
        out=args.out, experiment_id=args.experiment_id, **ray), show=_print_decision)


def _print_decision(decision: Any, out: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(decision.to_dict(), indent=2, default=str), file=out)
    else:
        print(decision.line(), file=out)
    return decision.exit_code


def _show_run(result: Any, out: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str), file=out)
    else:
        _print_run(result, out)
    return 0


def _ray_up() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _search(args: argparse.Namespace, start: Any, show: Any = _show_run) -> int:
    """Run a search (``start(backend=..., stop=..., on_progress=...)``) showing its progress on
    stderr (a live panel on a terminal, plain lines elsewhere and with ``--json``, nothing with
    ``--quiet``), then print its result to the real stdout (``show(result, out, as_json)``, which
    returns the exit code). A Ray that was up before the command (a notebook's) stays up."""
    from tunehouse.backend import backend_for
    from tunehouse.driver import StopSignal
    from tunehouse.report import RunProgress, make_display

    session = args.session
    session.stop = StopSignal()
    session.stop.install()
    session.backend = backend_for(args.address, connect_timeout=args.connect_timeout, own_signals=True,
                                  service=not args.no_service)
    progress = RunProgress(make_display(sys.stderr, quiet=args.quiet, live=False if args.json else None))
    ours = not _ray_up()
    with _results_stdout() as out:
        try:
            try:
                result = start(backend=session.backend, stop=session.stop, on_progress=progress)
            finally:
                progress.close()  # the summary stays, before any result or error line
        except BaseException:
            if ours:
                session.backend.shutdown()
            raise
        if ours and not session.fast_exit:  # the entry point tears Ray down faster once the output is out
            session.backend.shutdown()
        return show(result, out, args.json)


@contextlib.contextmanager
def _results_stdout():
    """Standard output for our results only; anything else printed meanwhile goes to stderr.

    Ray prints cluster events on the driver's stdout even with log_to_driver off (a dead
    raylet's last log lines, for one), which broke `run --json` when a node died mid-search.
    """
    try:
        ours = sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a notebook's or a test's stream: leave it be
        ours = False
    if not ours:
        yield sys.stdout
        return
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    out = open(real, "w", closefd=False)  # noqa: SIM115  (closed below, after the fd is restored)
    try:
        yield out
    finally:
        sys.stdout.flush()
        os.dup2(real, 1)  # first: fd 1 must come back even if the flush below fails
        try:
            out.flush()
        finally:
            out.close()
            os.close(real)


# -- cluster jobs ------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    """Start the local service: a persistent Ray on loopback (token auth, its own ports and temp
    dir) that `tunehouse run` and `resume` then use instead of starting Ray each time. State in
    $TUNEHOUSE_HOME/service (default ~/.tunehouse/service)."""
    from tunehouse.backend import service
    from tunehouse.errors import InputError

    if args.cpus is not None and args.cpus < 1:
        raise InputError(f"--cpus: expected a positive number of CPUs, got {args.cpus}")
    st = service.up(args.cpus)
    print(f"local service up at {st.address} with {st.cpus} CPUs (job server {st.job_server}); "
          "tunehouse run uses it, tunehouse down stops it")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Say whether the local service is up, its address, CPUs and running searches (Ray jobs)."""
    from tunehouse.backend import service

    st = service.status()
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    if not st["up"]:
        stale = " (stale state: its processes are gone; tunehouse down clears it)" if st["stale"] else ""
        print(f"local service: down{stale}")
        return 0
    print(f"local service: up at {st['address']}, {st['cpus']} CPUs, job server {st['job_server']}, "
          f"{len(st['pids'])} processes, state in {st['state_dir']}")
    searches = st["searches"]
    print(f"running searches: {len(searches)}")
    for job in searches:
        print(f"  {job['error']}" if "error" in job else f"  job {job['job_id']} pid {job['driver_pid']}: {job['command']}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the local service: end its processes only (searches running on it fail; resume
    continues them), remove its temp dir and state."""
    from tunehouse.backend import service
    from tunehouse.errors import RunError

    done = service.down()
    if done["survivors"]:
        raise RunError(f"the local service's processes {done['survivors']} survived SIGKILL")
    if not done["was_up"]:
        print("local service: was not up" + (" (cleared its stale state)" if done["had_state"] else ""))
        return 0
    print(f"local service: down ({done['stopped']} processes ended)")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate a spec here, then submit it to a Ray cluster's job server as `tunehouse run`
    (the spec, a local data file and a training-function module next to it travel with it);
    or, with --retrain TAG --data FILE, submit `tunehouse retrain` (checked here the same way)."""
    from tunehouse import jobs
    from tunehouse.errors import InputError, SpecError

    env = {}
    for item in args.env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--env {item!r}: expected KEY=VALUE", field="--env")
        env[key] = value
    if (args.spec is None) == (args.retrain is None):
        raise InputError("submit: give a spec, or --retrain TAG --data FILE (not both)")
    if args.retrain is None and (args.data is not None or args.min_gain is not None):
        raise InputError("--data and --min-gain go with --retrain")
    if args.retrain is not None:
        if args.data is None:
            raise InputError("--retrain needs --data FILE (the new data)")
        sub = jobs.submit_retrain(args.retrain, args.data, address=args.address, catalog=args.catalog,
                                  num_samples=args.num_samples, min_gain=args.min_gain, pip=args.pip, env=env)
    else:
        sub = jobs.submit(args.spec, address=args.address, catalog=args.catalog, num_samples=args.num_samples,
                          pip=args.pip, env=env)
    if args.json and not args.wait:
        print(json.dumps(sub.__dict__, indent=2))
        return 0
    print(f"submitted job {sub.job_id}: experiment {sub.experiment_id}, catalog {sub.catalog}")
    if not args.wait:
        print(f"follow it with: tunehouse jobs logs {sub.job_id} --follow")
        return 0
    sys.stdout.flush()
    for chunk in jobs.logs(sub.job_id, args.address, follow=True):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    final = jobs.wait(sub.job_id, args.address)
    print(f"job {sub.job_id}: {final}")
    return 0 if final == "SUCCEEDED" else 1


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """The cluster's jobs submitted by tunehouse (--all: every job), newest first."""
    import pandas as pd

    from tunehouse import jobs

    rows = jobs.list_jobs(args.address, everything=args.all)
    _print_frame(pd.DataFrame(rows, columns=["job_id", "status", "experiment_id", "spec", "start_time", "end_time", "message"]),
                 as_json=args.json)
    return 0


def _print_status(st: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(st, indent=2, default=str))
        return
    print(f"job {st['job_id']}: {st['status']}" + (f" ({st['message']})" if st.get("message") else ""))
    if st.get("experiment_id"):
        print(f"  experiment {st['experiment_id']}: {st.get('experiment_status', 'not recorded yet')}")
    if st.get("progress_line"):
        print(f"  {st['progress_line']}")
    elif st.get("catalog_note"):
        print(f"  {st['catalog_note']}")


def cmd_jobs_status(args: argparse.Namespace) -> int:
    """A job's state on the cluster and its search's progress in the catalog (trials done / total, best so far)."""
    from tunehouse import jobs

    _print_status(jobs.status(args.job_id, args.address), args.json)
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    """A job's output (--follow: until it ends)."""
    from tunehouse import jobs

    for chunk in jobs.logs(args.job_id, args.address, follow=args.follow):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    """Stop a job: its driver records the experiment as stopped, with every finished trial, then exits."""
    from tunehouse import jobs

    _print_status(jobs.stop(args.job_id, args.address), args.json)
    return 0


def _print_run(result: Any, out: Any = None) -> None:
    say = functools.partial(print, file=out or sys.stdout)
    n, failed = len(result.trials), len(result.failed)
    counts = f"{failed} failed" + (f", {len(result.early_stopped)} early-stopped" if result.max_resource else "")
    say(f"experiment {result.experiment_id}: {n} trials ({counts}) in {result.wall_s:.1f}s, "
          f"{result.algorithm} search, {result.mode} {result.objective}")
    if result.positive_class is not None:
        say(f"positive class: {result.positive_class!r} (scored by precision, recall, f1, roc_auc)")
    if result.stop_reason:
        say(f"stopped early: {result.stop_reason}")
    b = result.best
    if b is None:
        say("no successful trial")
        return
    say(f"best trial {b.trial_id}")
    say(f"  {result.objective}: {b.metrics[result.objective]:.6g}"
          + (f" ± {b.metrics[result.objective + '_std']:.3g}" if result.objective + "_std" in b.metrics else ""))
    for k, v in b.params.items():
        say(f"  param {k} = {v!r}")
    if result.max_resource and b.resource is not None:
        how = "stopped early" if b.status == "early_stopped" else "its full budget"
        say(f"  resource: {b.resource} of {result.max_resource} ({how}; the refit uses {b.resource})")
    for k, v in sorted(b.metrics.items()):
        if k != result.objective and not k.endswith("_std"):
            say(f"  {k}: {v:.6g}")
    for k, v in sorted(result.test_metrics.items()):
        say(f"  test {k}: {v:.6g}")
    u = b.usage
    if u:
        say(f"  usage: wall {u.get('wall_s', 0):.2f}s, cpu {u.get('cpu_s', 0):.2f}s, "
              f"peak rss {u.get('peak_rss_mb', 0):.0f} MB, node {str(u.get('node_id', ''))[:12]} pid {u.get('pid')}")
    if b.checkpoint:
        say(f"  checkpoint: {b.checkpoint}" + (" (pruned: checkpoints.keep)" if b.checkpoint_pruned else ""))
    say(f"catalog: {result.catalog}  (tunehouse trials {result.experiment_id} --catalog {result.catalog})")


# -- catalog commands ------------------------------------------------------------------
def _catalog(args: argparse.Namespace):
    from tunehouse.catalog import Catalog

    return Catalog(args.catalog)


def _print_frame(df: Any, *, as_json: bool = False, as_csv: bool = False) -> None:
    if as_json:
        print(df.to_json(orient="records", date_format="iso", indent=2, default_handler=str))
    elif as_csv:
        print(df.to_csv(index=False), end="")
    elif df.empty:
        print("(no rows)")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200,
                               "display.max_colwidth", 40):
            print(df.to_string(index=False))


def cmd_experiments(args: argparse.Namespace) -> int:
    """List experiments: name, id, status, algorithm, objective, best value, trials done/failed, start, duration,
    CPU-hours (trials and driver), wall seconds, cost and cost per point gained (with a price)."""
    from tunehouse.report import cost_columns

    price = _display_price(args)
    cat = _catalog(args)
    df = cat.experiments()
    if not df.empty:
        if args.tree:
            from tunehouse.report import lineage

            df = lineage(df)
        df = cost_columns(cat, df, price)
        detail = ["cpu_hours_trials", "cpu_hours_driver"] if args.json else []
        df = df[["name", "experiment_id", *(["parent_id"] if args.tree else []), "status", "algorithm", "objective",
                 "mode", "best_value", "trials_done", "trials_failed", "started_at", "duration_s", "cpu_h", *detail,
                 "wall_s", *(["price_per_cpu_hour"] if args.json else []), "cost", "cost_per_point"]]
        if not args.json:
            from tunehouse.costs import money

            df = df.assign(cpu_h=df.cpu_h.map(lambda v: "-" if v is None or v != v else f"{v:.4g}"),
                           wall_s=df.wall_s.map(lambda v: "-" if v is None or v != v else f"{v:.1f}"),
                           cost=df.cost.map(money), cost_per_point=df.cost_per_point.map(money))
    _print_frame(df, as_json=args.json)
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    """Show an experiment's trials (a column per param and metric) with resource usage
    (--errors: each failed trial's id and full traceback)."""
    cat = _catalog(args)
    exp = cat.experiment(args.experiment)
    df = cat.trials(exp["experiment_id"])
    if args.errors:
        _print_errors(df if df.empty or not args.where else _where(df, args.where), as_json=args.json)
        return 0
    if df.empty:
        _print_frame(df, as_json=args.json)
        return 0
    params, metrics = df.attrs["params"], df.attrs["metrics"]
    if args.pareto:
        front = set(cat.pareto(exp).trial_id)
        df = df[df.trial_id.isin(front)]
    if args.where:
        df = _where(df, args.where)
    sort = args.sort or exp["objective"]
    if sort not in df.columns:
        from tunehouse.catalog import CatalogError
        from tunehouse.errors import did_you_mean

        raise CatalogError(f"--sort: no column {sort!r}{did_you_mean(sort, df.columns)}")
    ascending = exp["mode"] == "min" if sort == exp["objective"] else False
    df = df.sort_values(sort, ascending=ascending, na_position="last")
    if args.limit is not None:
        df = df.head(args.limit)
    if not args.all_columns and not args.json:
        extra = [c for c in ("resource", "reused_from", "pareto") if c in df.columns and df[c].notna().any()]
        df = df[["trial_id", "status", *params, *metrics, *extra, "wall_s", "cpu_s", "peak_rss_mb", "node_id", "error"]]
        df = df.assign(node_id=df.node_id.str[:12])
    _print_frame(df, as_json=args.json)
    return 0


def _print_errors(df: Any, *, as_json: bool) -> None:
    """Each failed trial (status error): its id, its error line and its full traceback."""
    import pandas as pd

    failed = df[df.status == "error"].sort_values("trial_id") if not df.empty else df
    rows = [
        {"trial_id": r["trial_id"], "error": r.get("error"),
         "error_traceback": None if pd.isna(r.get("error_traceback")) else r.get("error_traceback")}
        for r in failed.to_dict("records")
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(no failed trials)")
    for i, r in enumerate(rows):
        print(("\n" if i else "") + f"trial {r['trial_id']} failed: {r['error']}")
        print(r["error_traceback"] or "(no traceback recorded: written by a tunehouse before they were kept)")


def _where(df: Any, expr: str) -> Any:
    from tunehouse.catalog.reader import filter_where

    return filter_where(df, expr)


def cmd_best(args: argparse.Namespace) -> int:
    """Print the best finished trial of an experiment (by its objective and mode, or --metric);
    for a multi-objective experiment, its Pareto front (one row per trial, by the first objective)."""
    cat = _catalog(args)
    objectives = cat.objectives(args.experiment)
    if len(objectives) > 1 and args.metric is None:
        return _print_front(cat, args.experiment, objectives, as_json=args.json)
    best = cat.best(args.experiment, metric=args.metric)
    if args.json:
        print(json.dumps(best, indent=2, default=str))
        return 0
    print(f"experiment {best['experiment_id']}: best trial {best['trial_id']} by {best['mode']} {best['metric']}")
    print(f"  {best['metric']}: {best[best['metric']]:.6g}")
    skip = {"experiment_id", "trial_id", "metric", "mode", "params_num", "schema_version"}
    for k, v in best.items():
        if k not in skip and k != best["metric"] and v is not None and str(v) not in ("nan", "NaT", "None"):
            print(f"  {k}: {v}")
    return 0


def _print_front(cat: Any, experiment: str, objectives: dict[str, str], *, as_json: bool) -> int:
    exp = cat.experiment(experiment)
    df = cat.pareto(exp)
    first, mode = next(iter(objectives.items()))
    if not df.empty:
        df = df.sort_values(first, ascending=mode == "min", ignore_index=True)
    if as_json:
        print(df.to_json(orient="records", date_format="iso", indent=2, default_handler=str))
        return 0
    how = ", ".join(f"{m} {n}" for n, m in objectives.items())
    print(f"experiment {exp['experiment_id']}: Pareto front of {len(df)} trial(s) by {how}")
    if not df.empty:
        _print_frame(df[["trial_id", *objectives, *df.attrs.get("params", [])]])
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run DuckDB SQL over the catalog's views experiments, trials and iterations (latest rows)."""
    df = _catalog(args).sql(args.sql).df()
    _print_frame(df, as_json=args.json, as_csv=args.csv)
    return 0


def cmd_catalog_check(args: argparse.Namespace) -> int:
    """Check every part file; list truncated, foreign and leftover files (exit 1 if any)."""
    cat = _catalog(args)
    problems = cat.check()
    for p in problems:
        print(f"{cat.uri}/{p}")
    print(f"{len(problems)} problem(s) in {cat.uri}", file=sys.stderr)
    return 1 if problems else 0


def cmd_catalog_compact(args: argparse.Namespace) -> int:
    """Rewrite finished experiments as one file per table; no query result changes."""
    cat = _catalog(args)
    if not args.experiment:
        out = cat.compact_catalog(force=args.force)
        print(f"compacted {out['experiments']} finished experiment(s); experiments index: {out['index_rows']} rows in one file")
        return 0
    for exp in args.experiment:
        out = cat.compact(exp, force=args.force)
        print(exp + ": " + ", ".join(f"{t} {a} -> {b} parts" for t, (a, b) in out.items()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a finished trial: native model file, MLflow layout, tunehouse.json (provenance, checksums), MODEL_CARD.md."""
    from tunehouse.export import export

    with _warning_lines():
        meta = export(_catalog(args), args.experiment, args.out, trial=args.trial, metric=args.metric,
                      where=args.where, refit=args.refit, joblib_copy=args.joblib, tag=args.tag)
    if args.json:
        print(json.dumps(meta, indent=2, default=str))
        return 0
    test = ", ".join(f"{k} {v:.4g}" for k, v in meta["metrics"]["test"].items())
    test = test or ("no test split" if meta["dataset"]["verified"] else "not scored, no data")
    print(f"exported trial {meta['trial_id']} of {meta['experiment_id']} to {args.out} "
          f"({'refitted' if meta['refit'] else 'checkpoint'}; test: {test})"
          + (f"; tag {args.tag!r} now points here" if args.tag else ""))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Rebuild a trial from the catalog alone (spec, params, seed, the data checked against its
    fingerprint), re-run it here without Ray and print recorded against reproduced metrics; exit
    0 when the data and every metric are equal (to 1e-9 relative), 1 when not."""
    from tunehouse.reproduce import RTOL, reproduce

    r = reproduce(_catalog(args), args.experiment, args.trial)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2, default=str))
        return 0 if r.equal else 1
    at = f", re-run to resource {r.resource}" if r.resource is not None else ""
    print(f"trial {r.trial_id} of {r.experiment_id} ({r.status}{at}), seed {r.seed}")
    data = "same" if r.data_matches else "CHANGED"
    print(f"data: fingerprint recorded {r.fingerprint_recorded[:12]}, found {r.fingerprint_found[:12]} ({data})")
    if r.packages:
        print("packages that differ from the run's: "
              + ", ".join(f"{name} {old or '-'} -> {new or '-'}" for name, old, new in r.packages))
    else:
        print("packages: the versions the run recorded")
    width = max([len(m.name) for m in r.metrics] + [6])
    print(f"{'metric':<{width}}  {'recorded':>14}  {'reproduced':>14}")
    for m in r.metrics:
        verdict = "measured, not compared" if m.measured else "equal" if m.equal else "DIFFERS"
        print(f"{m.name:<{width}}  {_num(m.recorded):>14}  {_num(m.reproduced):>14}  {verdict}")
    if r.equal:
        print(f"reproduced: every metric equal to {RTOL:g} relative (measured costs fit_s, predict_ms, "
              "model_kb are timings and sizes, shown but not compared)")
        return 0
    why = "the data changed" if not r.data_matches else "metrics differ"
    print(f"not reproduced: {why}")
    return 1


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.10g}"


@contextlib.contextmanager
def _warning_lines():
    """tunehouse's warnings as one ``warning: ...`` line each on stderr (not Python's two lines)."""
    import warnings

    from tunehouse.errors import TunehouseWarning, one_line

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, TunehouseWarning):
            print(f"warning: {one_line(str(message))}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def cmd_exports(args: argparse.Namespace) -> int:
    """List exports (newest first): experiment, trial, path, tag, whether it holds the tag now."""
    df = _catalog(args).exports(tag=args.tag, history=args.history)
    if not df.empty and not args.json:
        df = df[["exported_at", "tag", "current", "experiment_id", "trial_id", "refit", "path"]]
    _print_frame(df, as_json=args.json)
    return 0


def cmd_promotions(args: argparse.Namespace) -> int:
    """List retrain's decisions (newest first): tag, decision, champion and challenger scores, gain, min_gain, reason."""
    df = _catalog(args).promotions(tag=args.tag)
    if not df.empty and not args.json:
        df = df[["decided_at", "tag", "decision", "metric", "champion_score", "challenger_score", "gain", "min_gain",
                 "champion_experiment_id", "challenger_experiment_id", "reason"]]
    _print_frame(df, as_json=args.json)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Show a search's progress (trials done / running / failed, ETA, best so far) by reading the
    catalog until the experiment ends; exit 0 completed (or stopped early with a best trial),
    1 failed, interrupted or stopped without one, 130 on Ctrl-C of the watcher alone."""
    from tunehouse.errors import SpecError
    from tunehouse.report import watch

    if not args.interval > 0:
        raise SpecError(f"must be > 0 seconds (got {args.interval})", field="--interval")
    try:
        return watch(_catalog(args), args.experiment, interval=args.interval)
    except KeyboardInterrupt:
        print("watch stopped (Ctrl-C); the search itself goes on", file=sys.stderr)
        return 130


def cmd_report(args: argparse.Namespace) -> int:
    """Write one self-contained HTML file (opens offline) telling experiments' story from the catalog:
    optimization history, parallel coordinates, importances, slices, learning curves, resource use,
    top 10, failures, spec, data fingerprint and environment."""
    from tunehouse.report import build_report

    cat = _catalog(args)
    price = _display_price(args)
    out = args.out or f"report-{cat.experiment(args.experiment[0])['experiment_id']}.html"
    path = build_report(cat, args.experiment, out, price=price)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare experiments with the first: best value and its fold spread, best params, trials done
    and failed, CPU-hours, wall time, data fingerprint, and whether the best scores differ by more
    than the fold-to-fold noise."""
    from tunehouse.errors import SpecError
    from tunehouse.report import NOISE_RULE, compare, compare_table, compare_verdict

    if len(args.experiment) < 2:
        raise SpecError("compare needs at least two experiments", field="experiment")
    rows = compare(_catalog(args), args.experiment, _display_price(args))
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(compare_table(rows).set_index("").rename_axis(None).to_string())
    for r in rows[1:]:
        print(compare_verdict(r, rows[0]))
    print(f"(fold noise: {NOISE_RULE})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict with an export: verifies every model file's checksum, then the input's columns and values."""
    from pathlib import Path

    from tunehouse.data import read_table
    from tunehouse.export import ExportInputError, load_export

    with _warning_lines():
        model = load_export(args.export)
    try:
        X = read_table(Path(args.input))
    except TunehouseError as e:
        raise ExportInputError(f"--input: {getattr(e, 'reason', e)}") from None
    _check_contract(model, X, args)
    out = model.predictions(X, keep=args.keep or (), ignore_extra=args.ignore_extra)
    if args.output:
        try:
            out.to_csv(args.output, index=False)
        except OSError as e:
            raise ExportInputError(f"--output {args.output}: {e.strerror or e}") from None
        print(f"wrote {len(out)} predictions to {args.output}", file=sys.stderr)
    else:
        print(out.to_csv(index=False), end="")
    return 0


def _check_contract(model: Any, X: Any, args: argparse.Namespace) -> None:
    """predict's first step: the export's data contract refuses violations (one line each, exit
    2) and warns of the values' problems and drift; columns it does not name are left to
    ``--keep`` / ``--ignore-extra``."""
    if model.contract is None:
        return
    result = model.contract.check(X, extra=False)
    for p in result.warnings:
        print(f"warning: {p.message}", file=sys.stderr)
    if result.violations:
        from tunehouse.export import ExportInputError

        for p in result.violations[:-1]:
            print(f"error: --input {args.input}: {p.message}", file=sys.stderr)
        raise ExportInputError(f"--input {args.input}: {result.violations[-1].message}")


def cmd_check_data(args: argparse.Namespace) -> int:
    """Check a data file against a data contract: missing or extra columns, changed dtypes, nulls,
    values out of range, unseen categories, drift (PSI). Exit 0 clean, 1 problems, 2 bad input."""
    from pathlib import Path

    from tunehouse.contract import check_file

    cat = None if (Path(args.source) / "tunehouse.json").is_file() else _catalog(args)
    result = check_file(args.source, args.input, cat)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    elif result.ok:
        print(f"ok: {result.rows} rows of {args.input} match the data contract of {args.source}")
    else:
        for p in result.problems:
            print(f"{p.kind}: {p.message}")
    return 0 if result.ok else 1


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate specs: YAML, fields, the model and its parameter names, metrics, and the data."""
    from tunehouse.spec import load_spec
    from tunehouse.validate import validate

    for path in args.spec:
        spec = load_spec(path)
        positive = validate(spec)[0].positive_class
        print(f"{path}: ok ({spec.task}, {spec.search.algorithm} search, {_trial_count(spec)}, "
              f"{len(spec.space)} params, objective {spec.mode} {spec.objective.name}"
              + (f", positive class {positive!r})" if positive is not None else ")"))
    return 0


def _trial_count(spec: Any) -> str:
    """``24 trials``, or ``48 trials (24 grid points x 2)`` for a repeated grid."""
    n = spec.planned_trials
    text = f"{n} trial{'s' if n != 1 else ''}"
    repeats = spec.search.num_samples or 1
    if spec.search.algorithm == "grid" and repeats > 1:
        text += f" ({n // repeats} grid points x {repeats})"
    return text


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the experiment spec (for editors and CI)."""
    from tunehouse.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
