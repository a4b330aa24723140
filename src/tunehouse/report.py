"""Progress, the live display, ``watch``, the HTML report and ``compare``: they read the catalog only.

Never imports Ray, so a watcher, a report or a comparison runs on any machine that reaches the
catalog (a folder or ``s3://``). ``Progress`` is a plain snapshot: built here from catalog rows,
or by a driver from its own in-memory trial list (``Progress.from_trials``).
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from tunehouse.catalog import Catalog

#: Trial statuses, as the catalog records them. ``early_stopped`` is what a trial scheduler's
#: stop is recorded as; ``interrupted`` is how readers show a running trial of a dead driver.
DONE = "terminated"
FAILED = "error"
EARLY_STOPPED = ("early_stopped", "early-stopped")
STOPPED = ("stopped", "interrupted")

#: A plain (non-terminal) display prints a line at most this often, unless this many more
#: trials finished since its last line.
PLAIN_EVERY_S = 10.0
PLAIN_EVERY_TRIALS = 10


# -- the snapshot ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """Where a search stands: counts, times, the best so far, the last failure.

    ETA: with ``T`` the mean duration (end - start) of the finished trials and ``c`` the
    concurrency actually seen (the summed run time of every trial so far, running ones up to
    now, divided by the time from the first trial's start to now), the remaining work is
    ``(total - finished) * T`` less what the running trials have done already (each up to
    ``T``), and ``ETA = remaining work / c``. It is None until a trial has finished, when the
    total is unknown, or once the search is no longer running.
    """

    experiment_id: str
    status: str  # the experiment's: running | completed | failed | stopped | interrupted
    total: int | None
    done: int = 0
    running: int = 0
    failed: int = 0
    early_stopped: int = 0
    stopped: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    mean_trial_s: float | None = None
    concurrency: float | None = None
    objective: str | None = None
    mode: str = "max"
    best_value: float | None = None
    best_trial_id: str | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    last_failure: str | None = None
    name: str | None = None

    @property
    def finished(self) -> int:
        """Trials that will not run again in this search: done, failed, early- or otherwise stopped."""
        return self.done + self.failed + self.early_stopped + self.stopped

    @classmethod
    def from_trials(
        cls,
        trials: Iterable[Mapping[str, Any]],
        total: int | None,
        started_at: Any,
        *,
        now: Any = None,
        ended_at: Any = None,
        status: str = "running",
        objective: str | None = None,
        mode: str = "max",
        experiment_id: str = "",
        name: str | None = None,
    ) -> Progress:
        """A snapshot from plain trial dicts, the driver's or the catalog's.

        Args:
            trials: one mapping per trial with ``status``, ``objective_value`` (or ``metrics``
                holding ``objective``), ``params`` (a dict), ``started_at``, ``ended_at``
                (epoch seconds or datetimes, None when unknown), ``error`` and ``trial_id``;
                missing keys read as None. ``dataclasses.asdict`` of the driver's
                ``TrialRecord`` fits; a running trial needs only its status and start.
            total: the planned number of trials (None: unknown).
            started_at: when the search started (epoch seconds or a datetime).
            now: the time of the snapshot (default: now).
            ended_at: when the search ended, if it has (elapsed stops there).
            status: the experiment's status.
            objective: the objective's name; mode: ``max`` or ``min``.
        """
        t_now = _epoch(now)
        t_now = time.time() if t_now is None else t_now
        t_end = _epoch(ended_at) if status != "running" else None
        rows = list(trials)
        counts = {"done": 0, "running": 0, "failed": 0, "early_stopped": 0, "stopped": 0}
        best: Mapping[str, Any] | None = None
        best_value: float | None = None
        last_fail: Mapping[str, Any] | None = None
        for r in rows:
            st = r.get("status")
            counts[_bucket(st)] += 1
            value = _finite(r.get("objective_value"))
            if value is None and objective and r.get("metrics"):  # a driver's TrialRecord-like dict
                value = _finite(dict(r["metrics"]).get(objective))
            if st == DONE and value is not None and (best_value is None or _better(value, best_value, mode)):
                best, best_value = r, value
            if st == FAILED and (last_fail is None or _ended(r) >= _ended(last_fail)):
                last_fail = r
        start = _epoch(started_at)
        horizon = t_now if t_end is None else t_end
        elapsed = max(0.0, horizon - start) if start is not None else 0.0
        mean_s, conc, eta = _eta(rows, total, horizon, running=status == "running")
        return cls(
            experiment_id=experiment_id, status=status, total=total, elapsed_s=elapsed, eta_s=eta,
            mean_trial_s=mean_s, concurrency=conc, objective=objective, mode=mode, name=name,
            best_value=best_value,
            best_trial_id=None if best is None else best.get("trial_id"),
            best_params=dict(best.get("params") or {}) if best is not None else {},
            last_failure=None if last_fail is None else _one_line_failure(last_fail),
            **counts,
        )

    def line(self) -> str:
        """The plain one-line progress text (logs, CI, ``jobs status``)."""
        total = "?" if self.total is None else str(self.total)
        text = (f"[{_duration(self.elapsed_s)}] {self.finished}/{total} finished: {self.done} done, "
                f"{self.running} running, {self.failed} failed, {self.early_stopped} early-stopped")
        if self.stopped:
            text += f", {self.stopped} stopped"
        if self.best_value is not None:
            text += f"; best {self.objective} {self.best_value:.6g} (trial {self.best_trial_id}"
            text += f": {_params_text(self.best_params)})" if self.best_params else ")"
        if self.status == "running":
            text += f"; ETA {_duration(self.eta_s) if self.eta_s is not None else '?'}"
        else:
            text += f"; {self.status}"
        if self.last_failure:
            text += f"; last failure {self.last_failure}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus ``finished`` and the plain ``line``."""
        return {**asdict(self), "finished": self.finished, "line": self.line()}


def _ended(r: Mapping[str, Any]) -> float:
    t = _epoch(r.get("ended_at"))
    return -math.inf if t is None else t


def _bucket(status: Any) -> str:
    if status == DONE:
        return "done"
    if status == FAILED:
        return "failed"
    if status in EARLY_STOPPED:
        return "early_stopped"
    if status in STOPPED:
        return "stopped"
    return "running"


def _eta(rows: list[Mapping[str, Any]], total: int | None, horizon: float, *, running: bool
         ) -> tuple[float | None, float | None, float | None]:
    """(mean trial seconds, concurrency seen, ETA seconds); see ``Progress``."""
    durations, ages, starts = [], [], []
    for r in rows:
        s, e = _epoch(r.get("started_at")), _epoch(r.get("ended_at"))
        if s is None:
            continue
        starts.append(s)
        if _bucket(r.get("status")) == "running":
            ages.append(max(0.0, horizon - s))
        elif e is not None:
            durations.append(max(0.0, e - s))
    if not durations:
        return None, (float(len(ages)) if ages else None), None
    mean_s = sum(durations) / len(durations)
    window = horizon - min(starts)
    busy = sum(durations) + sum(ages)
    conc = busy / window if window > 0 else max(1.0, float(len(ages)))
    if not running or total is None:
        return mean_s, conc, None
    finished = sum(_bucket(r.get("status")) != "running" for r in rows)
    work = max(0, total - finished) * mean_s - sum(min(a, mean_s) for a in ages)
    return mean_s, conc, max(0.0, work) / max(conc, 1e-9)


# -- from the catalog --------------------------------------------------------------------------
def planned_total(exp: Mapping[str, Any]) -> int | None:
    """The planned trial count of an experiment row: grid product x repeats, else num_samples."""
    from tunehouse.spec import planned_trials

    return planned_trials(exp.get("spec_text"), exp.get("num_samples"))


def progress_from_catalog(catalog: Catalog, experiment: str | Mapping[str, Any], *, now: Any = None) -> Progress:
    """The progress of one experiment (id, prefix, name, or its row) as the catalog holds it now.

    Raises:
        CatalogError: no such experiment, or the catalog cannot be read.
    """
    exp = dict(experiment) if isinstance(experiment, Mapping) else catalog.experiment(experiment)
    return _progress(exp, catalog.trials(exp, raw=True), now=now)


def _progress(exp: Mapping[str, Any], raw: pd.DataFrame, *, now: Any = None) -> Progress:
    status = exp.get("status") or "running"
    ended = exp.get("ended_at")
    if status != "running" and _epoch(ended) is None:
        ended = exp.get("heartbeat_at")  # an interrupted driver's last sign of life
    return Progress.from_trials(
        trial_dicts(raw), planned_total(exp), exp.get("started_at"), now=now, ended_at=ended,
        status=status, objective=exp.get("objective"), mode=exp.get("mode") or "max",
        experiment_id=exp.get("experiment_id", ""), name=exp.get("name"),
    )


def trial_dicts(raw: pd.DataFrame) -> list[dict[str, Any]]:
    """The catalog's raw trial rows as the plain dicts ``Progress.from_trials`` reads."""
    from tunehouse.catalog.schema import decode_params

    if raw.empty:
        return []
    cols = [c for c in ("trial_id", "status", "objective_value", "params", "started_at", "ended_at", "error")
            if c in raw.columns]
    out = raw[cols].to_dict("records")
    for r in out:
        r["params"] = decode_params(r.get("params"))
    return out


# -- displays ----------------------------------------------------------------------------------
class Display:
    """Shows successive ``Progress`` snapshots of one search.

    Rules for implementations: ``update`` may be called as often as the caller likes (on every
    trial event or every poll) and decides itself whether to draw; ``close`` is called once,
    with the final snapshot, and leaves a summary that stays on screen (or in the log).
    """

    def update(self, progress: Progress) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self, progress: Progress | None) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class NullDisplay(Display):
    """``--quiet``: shows nothing."""

    def update(self, progress: Progress) -> None:
        pass

    def close(self, progress: Progress | None) -> None:
        pass


class PlainDisplay(Display):
    """One plain line at the first update, then every ``every_s`` seconds or every
    ``every_trials`` newly finished trials, and the final line at close (logs, CI, pipes)."""

    def __init__(self, stream: TextIO, *, every_s: float = PLAIN_EVERY_S, every_trials: int = PLAIN_EVERY_TRIALS):
        self.stream, self.every_s, self.every_trials = stream, every_s, every_trials
        self._last_t: float | None = None
        self._last_finished = 0
        self._last_line: str | None = None

    def update(self, progress: Progress) -> None:
        t = time.monotonic()
        due = (self._last_t is None or t - self._last_t >= self.every_s
               or progress.finished - self._last_finished >= self.every_trials)
        if due:
            self._print(progress, t)

    def close(self, progress: Progress | None) -> None:
        if progress is not None and progress.line() != self._last_line:
            self._print(progress, time.monotonic())

    def _print(self, progress: Progress, t: float) -> None:
        self._last_line = progress.line()
        self._last_t, self._last_finished = t, progress.finished
        print(self._last_line, file=self.stream, flush=True)


class RichDisplay(Display):
    """A live panel redrawn in place on a terminal (rich); at close it is replaced by a summary.

    Between updates the panel keeps ticking (twice a second): elapsed time grows and the ETA
    shrinks from the last snapshot, so a driver that updates only on trial events still shows
    a moving clock during a long trial. An update redraws at once at most every
    ``REDRAW_S`` (a driver updates on every trial event). While the panel is up, what Python
    prints to standard output or error, when that is a terminal too, appears above the panel
    instead of tearing it (a failed trial's line, for one).
    """

    REDRAW_S = 0.1

    def __init__(self, console: Any) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._at = time.monotonic()
        self._drawn = -math.inf
        self._live: Any = None

    def _render(self) -> Any:
        from rich.text import Text

        p = self._progress
        if p is None:
            return Text("waiting for the first trial ...")
        if p.status == "running":
            dt = time.monotonic() - self._at
            p = replace(p, elapsed_s=p.elapsed_s + dt, eta_s=None if p.eta_s is None else max(0.0, p.eta_s - dt))
        return rich_view(p)

    def update(self, progress: Progress) -> None:
        self._progress, self._at = progress, time.monotonic()
        if self._live is None:
            from rich.live import Live

            # built at the first update: the redirection follows where the streams point then
            self._live = Live(console=self.console, transient=True, auto_refresh=True, refresh_per_second=2,
                              get_renderable=self._render, redirect_stdout=_is_terminal(sys.stdout),
                              redirect_stderr=_is_terminal(sys.stderr))
            self._live.start()
        if self._at - self._drawn >= self.REDRAW_S:
            self._drawn = self._at
            self._live.refresh()

    def close(self, progress: Progress | None) -> None:
        if self._live is not None:
            self._live.stop()
        if progress is not None:
            self.console.print(rich_view(progress, final=True))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def make_display(stream: TextIO | None = None, *, quiet: bool = False, live: bool | None = None) -> Display:
    """The display for ``stream``: rich on a terminal, plain lines elsewhere, none if ``quiet``.

    Args:
        stream: where to draw (default: standard error, so ``--json`` on stdout stays clean).
        quiet: show nothing.
        live: force the rich display on (True) or off (False); default: is ``stream`` a terminal.
    """
    if quiet:
        return NullDisplay()
    stream = stream or sys.stderr
    from rich.console import Console

    console = Console(file=stream, force_terminal=live or None, highlight=False, soft_wrap=False)
    if live is None:
        live = console.is_terminal and not console.is_dumb_terminal
    return RichDisplay(console) if live else PlainDisplay(stream)


class RunSnapshots:
    """Progress snapshots of a search from its driver's own trials (``TrialTracker.rows``).

    ``earlier`` are a resumed experiment's finished trials: they count, and compete for the
    best, but not for the ETA and the concurrency (they ran before a pause of unknown length).
    A row of ``rows`` whose trial is one of them is left out, so ``rows`` may be this run's
    trials or all of the experiment's.
    """

    def __init__(self, *, experiment_id: str, name: str | None, total: int | None, objective: str, mode: str,
                 started_at: float | None = None, earlier: Iterable[Mapping[str, Any]] = ()) -> None:
        self.experiment_id, self.name, self.total = experiment_id, name, total
        self.objective, self.mode = objective, mode
        self.started_at = time.time() if started_at is None else started_at
        self._earlier = [{**r, "started_at": None, "ended_at": None} for r in earlier]
        self._earlier_ids = {r.get("trial_id") for r in self._earlier}

    def __call__(self, rows: Iterable[Mapping[str, Any]], *, status: str = "running") -> Progress:
        """The snapshot now; ``status`` other than ``running`` ends the elapsed time now."""
        ours = [r for r in rows if r.get("trial_id") not in self._earlier_ids] if self._earlier_ids else rows
        return Progress.from_trials(
            [*self._earlier, *ours], self.total, self.started_at, ended_at=time.time(), status=status,
            objective=self.objective, mode=self.mode, experiment_id=self.experiment_id, name=self.name)


class RunProgress:
    """A run's ``on_progress`` (``driver.run``): shows each running snapshot on a display, and
    ``close`` leaves the last snapshot's summary, once.

    Call ``close`` in a ``finally``: after the driver's final snapshot (a status other than
    ``running``, kept for the summary, not drawn as a live frame) it shows the final status;
    after Ctrl-C or an error that came before it, the last snapshot seen.
    """

    def __init__(self, display: Display) -> None:
        self.display = display
        self.last: Progress | None = None
        self._closed = False

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if not self._closed and progress.status == "running":
            self.display.update(progress)

    def close(self, final: Progress | None = None) -> None:
        if not self._closed:
            self._closed = True
            self.display.close(final or self.last)


def rich_view(p: Progress, *, final: bool = False) -> Any:
    """The rich renderable of a snapshot: a bar with counts and times, the best, the last failure."""
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    total = "?" if p.total is None else str(p.total)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=p.total, completed=p.finished, width=30),
                Text(f"{p.finished}/{total} finished"))
    grid.add_row("trials", bar)
    grid.add_row("", Text(f"{p.done} done, {p.running} running, {p.failed} failed, "
                          f"{p.early_stopped} early-stopped" + (f", {p.stopped} stopped" if p.stopped else "")))
    times = f"elapsed {_duration(p.elapsed_s)}"
    if not final:
        times += f", ETA {_duration(p.eta_s) if p.eta_s is not None else '?'}"
    if p.mean_trial_s is not None and p.concurrency is not None:
        times += f" ({p.mean_trial_s:.2f} s per trial, {p.concurrency:.1f} at once)"
    grid.add_row("time", Text(times))
    if p.best_value is not None:
        grid.add_row("best", Text(f"{p.objective} {p.best_value:.6g}  trial {p.best_trial_id}  "
                                  f"{_params_text(p.best_params, limit=8)}"))
    if p.last_failure:
        grid.add_row("last failure", Text(p.last_failure, style="red"))
    title = f"{p.name or 'experiment'} {p.experiment_id}"
    subtitle = p.status if final or p.status != "running" else "running"
    return Panel(grid, title=title, subtitle=subtitle, title_align="left", expand=False)


# -- watch -------------------------------------------------------------------------------------
def watch(catalog: Catalog, experiment: str, *, interval: float = 2.0, display: Display | None = None,
          stream: TextIO | None = None) -> int:
    """Show an experiment's progress by polling the catalog until it is no longer running.

    Works from any machine that reaches the catalog (a folder or ``s3://``), for a search
    started with ``run`` or ``submit``. Returns the exit code: 0 when the experiment completed,
    or stopped early (time budget, max_failed_trials, ``jobs stop``) with a successful trial, as
    ``tunehouse run`` does; 1 when it failed, was interrupted (its driver died or got Ctrl-C), or
    stopped without a successful trial. A KeyboardInterrupt (the watcher's own Ctrl-C) closes
    the display and propagates; the search is not touched.

    Raises:
        CatalogError: no such experiment, or the catalog cannot be read.
    """
    exp = catalog.experiment(experiment)
    disp = display or make_display(stream or sys.stdout)
    p: Progress | None = None
    try:
        while True:
            p = progress_from_catalog(catalog, exp["experiment_id"])
            disp.update(p)
            if p.status != "running":
                break
            time.sleep(interval)
    finally:
        disp.close(p)
    return exit_code(p)


def exit_code(p: Progress) -> int:
    """What a finished search's status means for a watcher's exit code (see ``watch``)."""
    if p.status == "completed" or (p.status == "stopped" and p.done > 0):
        return 0
    return 1


# -- compare -----------------------------------------------------------------------------------
NOISE_RULE = ("|best A - best B| <= the larger of the two best trials' fold-to-fold standard "
              "deviations (<objective>_std)")


def search_costs(catalog: Catalog, exp: dict[str, Any], raw: Any = None, price: float | None = None) -> dict[str, Any]:
    """An experiment's ``costs.search_cost`` figures, priced by ``price`` (after the fact) or the
    run's recorded price, the gain measured from its first trial (``Catalog.first_values``). An
    experiment recorded before the cost columns existed gets its trials' CPU seconds summed."""
    from tunehouse.costs import search_cost

    row = dict(exp)
    if row.get("cpu_hours_trials") is None and raw is not None and not raw.empty:
        row["cpu_hours_trials"] = float(raw["cpu_s"].fillna(0).sum()) / 3600.0
    first = catalog.first_values(exp["experiment_id"]).get(exp["experiment_id"])
    return search_cost(row, price=price, first_value=first)


def cost_columns(catalog: Catalog, df: pd.DataFrame, price: float | None = None) -> pd.DataFrame:
    """The ``experiments`` listing with ``cpu_h``, ``wall_s``, ``cost`` and ``cost_per_point``
    (``costs.search_cost``; ``price`` prices every row after the fact)."""
    from tunehouse.costs import search_cost

    if df.empty:
        return df
    first = catalog.first_values()
    figures = [search_cost(r, price=price, first_value=first.get(r["experiment_id"])) for r in df.to_dict("records")]
    return df.assign(cpu_h=[f["cpu_hours"] for f in figures], wall_s=[f["wall_s"] for f in figures],
                     price_per_cpu_hour=[f["price_per_cpu_hour"] for f in figures],
                     cost=[f["cost"] for f in figures], cost_per_point=[f["cost_per_point"] for f in figures])


def compare(catalog: Catalog, experiments: list[str], price: float | None = None) -> list[dict[str, Any]]:
    """Experiments side by side; each row is compared with the first.

    Each row: id, name, status, objective and mode, best value, its spread over the CV folds
    (the best trial's ``<objective>_std``), best trial and params, trials done / failed /
    planned, CPU-hours (summed trial CPU seconds), wall time, data fingerprint, and against
    the first experiment: ``same_data``, ``delta`` and ``within_noise`` (``NOISE_RULE``; None
    when a spread is unknown, e.g. a hold-out evaluation, or the objectives differ). With a
    price (``price``, else the run's), ``cost`` and ``cost_per_point`` (``search_costs``).
    """
    rows = []
    for e in experiments:
        exp = catalog.experiment(e)
        raw = catalog.trials(exp, raw=True)
        p = _progress(exp, raw)
        best_std = None
        if p.best_trial_id is not None:
            metrics = dict(raw.loc[raw.trial_id == p.best_trial_id, "metrics"].iloc[0] or [])
            best_std = _finite(metrics.get(f"{p.objective}_std"))
        costs = search_costs(catalog, exp, raw, price)
        rows.append({
            "experiment_id": exp["experiment_id"], "name": exp.get("name"), "status": p.status,
            "objective": p.objective, "mode": p.mode, "best_value": p.best_value, "best_std": best_std,
            "best_trial_id": p.best_trial_id, "best_params": p.best_params, "trials_done": p.done,
            "trials_failed": p.failed, "trials_total": p.total, "cpu_hours": costs["cpu_hours"] or 0.0,
            "wall_s": costs["wall_s"] if costs["wall_s"] is not None else p.elapsed_s,
            "price_per_cpu_hour": costs["price_per_cpu_hour"], "cost": costs["cost"],
            "cost_per_point": costs["cost_per_point"], "dataset_fingerprint": exp.get("dataset_fingerprint"),
        })
    ref = rows[0] if rows else None
    for r in rows:
        r.update(_versus(r, ref))
    return rows


def _versus(r: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    same_data = r["dataset_fingerprint"] == ref["dataset_fingerprint"]
    if r is ref:
        return {"same_data": True, "delta": None, "noise": None, "within_noise": None}
    if r["objective"] != ref["objective"] or r["best_value"] is None or ref["best_value"] is None:
        return {"same_data": same_data, "delta": None, "noise": None, "within_noise": None}
    delta = r["best_value"] - ref["best_value"]
    stds = [s for s in (r["best_std"], ref["best_std"]) if s is not None]
    noise = max(stds) if len(stds) == 2 else None
    within = None if noise is None else abs(delta) <= noise
    return {"same_data": same_data, "delta": delta, "noise": noise, "within_noise": within}


def compare_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``compare``'s rows turned side by side: one column per experiment, one row per field."""
    import pandas as pd

    from tunehouse.costs import money

    fields = {
        "name": lambda r: r["name"], "status": lambda r: r["status"],
        "objective": lambda r: f"{r['mode']} {r['objective']}",
        "best": lambda r: "-" if r["best_value"] is None else f"{r['best_value']:.6g}"
        + (f" ± {r['best_std']:.3g}" if r["best_std"] is not None else ""),
        "best trial": lambda r: r["best_trial_id"] or "-",
        "best params": lambda r: _params_text(r["best_params"], limit=50) or "-",
        "trials done / failed / planned": lambda r: f"{r['trials_done']} / {r['trials_failed']} / "
        + ("?" if r["trials_total"] is None else str(r["trials_total"])),
        "CPU-hours": lambda r: f"{r['cpu_hours']:.4g}", "wall time": lambda r: _duration(r["wall_s"]),
        "cost": lambda r: money(r.get("cost")), "cost per point gained": lambda r: money(r.get("cost_per_point")),
        "data fingerprint": lambda r: f"{str(r['dataset_fingerprint'])[:16]}"
        + ("" if r["same_data"] else " (different)"),
        "delta vs first": lambda r: "-" if r["delta"] is None else f"{r['delta']:+.4g}",
        "within fold noise": lambda r: {None: "-", True: "yes", False: "no"}[r["within_noise"]],
    }
    return pd.DataFrame({"": list(fields), **{r["experiment_id"]: [f(r) for f in fields.values()] for r in rows}})


def compare_verdict(row: dict[str, Any], ref: dict[str, Any]) -> str:
    """One line saying how ``row`` relates to the reference (first) experiment."""
    data = "same data" if row["same_data"] else "DIFFERENT data (fingerprints differ)"
    if row["delta"] is None:
        return f"{row['experiment_id']} vs {ref['experiment_id']}: not comparable (objective or best value missing); {data}"
    if row["within_noise"] is None:
        noise = "fold noise unknown (no <objective>_std: hold-out evaluation?)"
    elif row["within_noise"]:
        noise = f"within fold noise (|delta| <= {row['noise']:.3g})"
    else:
        better = (row["delta"] > 0) == (row["mode"] == "max")
        noise = f"beyond fold noise (|delta| > {row['noise']:.3g}): {'better' if better else 'worse'}"
    return (f"{row['experiment_id']} vs {ref['experiment_id']}: {row['objective']} delta "
            f"{row['delta']:+.4g}, {noise}; {data}")


# -- the HTML report ---------------------------------------------------------------------------
TOP_N = 10
CURVES_MAX = 20  # learning curves drawn: the best trials (by final objective) with several reports
FAILED_MAX = 200
MIN_IMPORTANCE_TRIALS = 5


@dataclass
class _Story:
    """One experiment as the report reads it, once."""

    exp: dict[str, Any]
    raw: Any  # pandas: trials, raw (params as pairs)
    wide: Any  # pandas: a column per param and metric
    iterations: Any
    progress: Progress
    study: Any  # an in-memory Optuna study rebuilt from the trials
    costs: dict[str, Any]  # costs.search_cost's figures

    @property
    def label(self) -> str:
        return f"{self.exp.get('name')} ({self.exp['experiment_id']})"

    @property
    def anchor(self) -> str:
        return "exp-" + "".join(c if c.isalnum() else "-" for c in self.exp["experiment_id"])


def build_report(catalog: Catalog, experiments: list[str], out: str | os.PathLike[str], *,
                 price: float | None = None) -> Path:
    """Write one self-contained HTML file about experiments, built from the catalog alone.

    Works for finished and running experiments, on a local or ``s3://`` catalog. Figures are
    Optuna's (``optuna.visualization``, on a study rebuilt from the catalog's trials) where Optuna
    has the plot, plotly's otherwise; plotly.js is inlined once, so the file opens offline and
    makes no network request. Several experiments: their optimization histories overlaid and a
    side-by-side comparison first, then a section each. The file is written atomically.
    ``price`` prices the searches' CPU-hours after the fact (default: each run's recorded price).

    Returns:
        ``out`` as a Path.

    Raises:
        CatalogError: no experiment named, an unknown experiment, or an unreadable catalog.
    """
    from tunehouse.catalog import CatalogError

    if not experiments:
        raise CatalogError("report: name at least one experiment")
    with _quiet_optuna():
        stories = [_story(catalog, e, price) for e in experiments]
        figs = _Figures()
        body = [_contents(stories)]
        if len(stories) > 1:
            body.append(_overview(catalog, stories, figs, price))
        body += [_section(s, figs) for s in stories]
    title = "tunehouse report: " + ", ".join(s.exp["experiment_id"] for s in stories)
    out = Path(out)
    _write_atomic(out, _page(title, "\n".join(body)))
    return out


def _story(catalog: Catalog, experiment: str, price: float | None = None) -> _Story:
    exp = catalog.experiment(experiment)
    raw = catalog.trials(exp, raw=True)
    wide = catalog.trials(exp)
    iterations = catalog.iterations(exp["experiment_id"])
    return _Story(exp, raw, wide, iterations, _progress(exp, raw), _study(exp, raw),
                  search_costs(catalog, exp, raw, price))


class _quiet_optuna:
    """Optuna logs every study it creates (INFO); a report creates one per experiment."""

    def __enter__(self) -> None:
        import optuna

        self._level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(self._level)


# -- the rebuilt study ---------------------------------------------------------------------------
def _study(exp: Mapping[str, Any], raw: Any) -> Any:
    """An in-memory Optuna study holding the experiment's trials in start order.

    Finished trials are COMPLETE (FAIL without a finite value), errors FAIL, early-stopped ones
    PRUNED; running and stopped trials have no outcome yet and are left out. Each trial keeps
    its catalog id in ``user_attrs["trial_id"]``.
    """
    import optuna
    from optuna.trial import TrialState

    rows = sorted(trial_dicts(raw), key=lambda r: (_epoch(r.get("started_at")) or math.inf, str(r.get("trial_id"))))
    dists = _distributions(exp.get("spec_text"), rows)
    study = optuna.create_study(direction="maximize" if exp.get("mode", "max") == "max" else "minimize",
                                study_name=exp.get("experiment_id"))
    for r in rows:
        st, value = r.get("status"), _finite(r.get("objective_value"))
        if st == DONE:
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        elif st == FAILED:
            state = TrialState.FAIL
        elif st in EARLY_STOPPED:
            state = TrialState.PRUNED
        else:
            continue
        params = {k: _scalar(v) for k, v in r["params"].items()}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=value if state == TrialState.COMPLETE else None, state=state,
            user_attrs={"trial_id": str(r.get("trial_id"))}))
    return study


def _distributions(spec_text: str | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Optuna distributions from the spec's space; a param the space lacks, or whose values fall
    outside it (an old or foreign spec), gets one inferred from the values seen."""
    dists: dict[str, Any] = {}
    if spec_text:
        try:
            from tunehouse.space import OptunaSpace
            from tunehouse.spec import parse_spec

            dists = OptunaSpace(parse_spec(spec_text).space).distributions()
        except Exception:  # not a spec this version reads: the values decide
            dists = {}
    seen: dict[str, list[Any]] = {}
    for r in rows:
        for k, v in r["params"].items():
            seen.setdefault(k, []).append(_scalar(v))
    for k, values in seen.items():
        if k not in dists or not all(_contains(dists[k], v) for v in values):
            dists[k] = _inferred(values)
    return dists


def _contains(d: Any, v: Any) -> bool:
    import optuna.distributions as od

    if isinstance(d, od.CategoricalDistribution):
        return v in d.choices
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(d, od.IntDistribution) and not isinstance(v, int):
        return False
    return d.low <= v <= d.high


def _inferred(values: list[Any]) -> Any:
    import optuna.distributions as od

    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if values and len(nums) == len(values):
        if all(isinstance(v, int) for v in nums):
            return od.IntDistribution(min(nums), max(nums))
        return od.FloatDistribution(float(min(nums)), float(max(nums)))
    return od.CategoricalDistribution(list(dict.fromkeys(values)))


def _scalar(v: Any) -> Any:
    """Optuna's categorical choices are scalars: a list or mapping value becomes its JSON text."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


# -- figures -------------------------------------------------------------------------------------
class _Figures:
    """Turns figures into HTML divs with ids unique in the page (plotly.js is in the page head)."""

    def __init__(self) -> None:
        self.n = 0

    def html(self, fig: Any, height: int = 440) -> str:
        import plotly.io as pio

        self.n += 1
        fig.update_layout(height=height, margin={"l": 60, "r": 30, "t": 60, "b": 50})
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{self.n}",
                          default_height=f"{height}px", config={"displaylogo": False, "responsive": True})
        return f'<div class="fig">{div}</div>'


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _plots(s: _Story, figs: _Figures) -> list[str]:
    """The experiment's figures (or a one-line note where a figure cannot say anything)."""
    import optuna.visualization as ov
    from optuna.trial import TrialState

    obj = s.exp.get("objective") or "objective"
    complete = [t for t in s.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    out = [_h3("Optimization history", "history")]
    if not complete:
        out.append(_note("no finished trial with a value yet: nothing to plot"))
        return out + _resources(s, figs)
    out.append(figs.html(ov.plot_optimization_history(s.study, target_name=obj)))
    params = sorted({k for t in complete for k in t.params})
    out.append(_h3("Parallel coordinates", "parallel"))
    out.append(figs.html(ov.plot_parallel_coordinate(s.study, target_name=obj)) if params
               else _note("the trials have no parameters"))
    out.append(_h3("Parameter importances", "importances"))
    out.append(_importances(s.study, complete, params, obj, figs))
    out.append(_h3("Slices: the objective against each parameter", "slices"))
    for p in params:
        fig = ov.plot_slice(s.study, params=[p], target_name=obj)
        out.append(figs.html(fig.update_layout(title=f"Slice: {obj} against {p}"), height=380))
    out.append(_h3("Learning curves", "curves"))
    out.append(_curves(s, figs))
    return out + _resources(s, figs)


def _importances(study: Any, complete: list[Any], params: list[str], obj: str, figs: _Figures) -> str:
    """Optuna's importance plot (its default evaluator), or why it cannot say anything."""
    import warnings

    import optuna.visualization as ov

    if len(params) < 2:
        return _note(f"{len(params)} parameter: nothing to rank it against")
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return _note(f"{len(complete)} finished trial(s): too few to estimate importances "
                     f"(at least {MIN_IMPORTANCE_TRIALS} needed)")
    if len({t.value for t in complete}) == 1:
        return _note(f"every finished trial has the same {obj}: no parameter explains a difference")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = ov.plot_param_importances(study, target_name=obj)
    except Exception as e:  # the evaluator's own limits (e.g. a degenerate space)
        return _note(f"importances could not be estimated: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    said = [str(w.message) for w in caught if "importance" in str(w.message).lower()]
    if said:
        return _note(f"importances could not be estimated: {said[0]}")
    return figs.html(fig, height=60 + 40 * len(params))


def _curves(s: _Story, figs: _Figures) -> str:
    """The objective per report, for the best trials that reported several times."""
    import plotly.express as px

    it, obj = s.iterations, s.exp.get("objective")
    if it.empty or obj not in it.columns:
        return _note("no per-report history in the catalog's iterations table")
    it = it[it[obj].notna()]
    counts = it.groupby("trial_id").size()
    multi = list(counts[counts > 1].index)
    if not multi:
        return _note("each trial reported once (e.g. cross-validated, then reported): no learning curves")
    several = it[it.trial_id.isin(multi)].sort_values(["trial_id", "iteration"])
    finals = several.groupby("trial_id")[obj].last().dropna()
    keep = list(finals.sort_values(ascending=s.exp.get("mode") == "min").index[:CURVES_MAX])
    # early stopping reports the resource (rounds, trees, epochs, folds): trials compare at equal x
    x = "resource" if "resource" in several.columns and several.resource.notna().all() else "iteration"
    fig = px.line(several[several.trial_id.isin(keep)], x=x, y=obj, color="trial_id", markers=True,
                  title=f"{obj} per report: the {len(keep)} best of {len(multi)} trials with several reports")
    return figs.html(fig)


_USAGE = {"wall_s": "wall s", "cpu_s": "CPU s", "peak_rss_mb": "peak RSS MB"}


def _resources(s: _Story, figs: _Figures) -> list[str]:
    """Per-trial wall time, CPU seconds and peak RSS, colored by node; per-node totals."""
    import plotly.express as px

    out = [_h3("Resource use per trial", "resources")]
    raw = s.raw
    if raw.empty or raw[list(_USAGE)].isna().all().all():
        return out + [_note("no resource usage recorded yet")]
    d = raw[["trial_id", "node_id", "started_at", *_USAGE]].copy()
    d["node"] = d["node_id"].fillna("?").astype(str).str[:12]
    d = d.sort_values(["started_at", "trial_id"], na_position="last", ignore_index=True)
    d["trial"] = range(len(d))
    long = d.melt(id_vars=["trial", "trial_id", "node"], value_vars=list(_USAGE), var_name="measure",
                  value_name="value").dropna(subset=["value"])
    long["measure"] = long["measure"].map(_USAGE)
    fig = px.scatter(long, x="trial", y="value", color="node", facet_row="measure", hover_data=["trial_id"],
                     title="per trial (in start order), colored by Ray node id",
                     category_orders={"measure": list(_USAGE.values())})
    fig.update_yaxes(matches=None, title_text="")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    by_node = d.groupby("node").agg(trials=("trial_id", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                    peak_rss_mb=("peak_rss_mb", "max")).reset_index()
    by_node["cpu_hours"] = by_node["cpu_s"] / 3600.0
    return out + [figs.html(fig, height=720), _table(by_node)]


def _overlay(stories: list[_Story]) -> Any:
    """Every experiment's finished values and best-so-far line on one axis (plotly)."""
    import plotly.express as px
    import plotly.graph_objects as go
    from optuna.trial import TrialState

    fig = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, s in enumerate(stories):
        color = palette[i % len(palette)]
        done = [t for t in s.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        xs, ys = [t.number for t in done], [t.value for t in done]
        best, cur = [], None
        for y in ys:
            cur = y if cur is None or _better(y, cur, s.exp.get("mode", "max")) else cur
            best.append(cur)
        fig.add_scatter(x=xs, y=ys, mode="markers", name=s.label, legendgroup=s.label, opacity=0.45,
                        marker={"color": color, "size": 6})
        fig.add_scatter(x=xs, y=best, mode="lines", name=f"{s.label}: best so far", legendgroup=s.label,
                        line={"color": color, "width": 2})
    objectives = sorted({str(s.exp.get("objective")) for s in stories})
    fig.update_layout(title="Optimization histories, overlaid", xaxis_title="trial (in start order)",
                      yaxis_title=" / ".join(objectives), legend={"orientation": "h", "y": -0.2})
    return fig


# -- HTML sections ----------------------------------------------------------------------------
def _contents(stories: list[_Story]) -> str:
    items = "".join(f'<li><a href="#{s.anchor}">{_esc(s.label)}</a> - {_esc(s.progress.status)}</li>'
                    for s in stories)
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"<header><h1>tunehouse report</h1><p class=\"note\">built {when} from the catalog alone; "
            f"a running experiment shows its state at that moment</p><ul>{items}</ul></header>")


def _overview(catalog: Catalog, stories: list[_Story], figs: _Figures, price: float | None = None) -> str:
    rows = compare(catalog, [s.exp["experiment_id"] for s in stories], price)
    table = compare_table(rows)
    verdicts = "".join(f"<li>{_esc(compare_verdict(r, rows[0]))}</li>" for r in rows[1:])
    return (f'<section id="overview"><h2>Side by side</h2>{figs.html(_overlay(stories), height=500)}'
            f"{_table(table)}<p class=\"note\">noise rule: {_esc(NOISE_RULE)}</p><ul>{verdicts}</ul></section>")


def _section(s: _Story, figs: _Figures) -> str:
    parts = [f'<section id="{s.anchor}"><h2>{_esc(s.label)}</h2>', _facts(s), *_plots(s, figs),
             _h3(f"Top {TOP_N} trials", "top"), _top(s), _h3("Failed and stopped trials", "failed"), _failures(s),
             _h3("Spec", "spec"), f"<pre>{_esc(s.exp.get('spec_text') or '')}</pre>",
             _h3("Data and environment", "env"), _environment(s), "</section>"]
    return "\n".join(parts)


def _facts(s: _Story) -> str:
    from tunehouse.costs import cost_line

    e, p = s.exp, s.progress
    cpu = float(s.raw["cpu_s"].fillna(0).sum()) if not s.raw.empty else 0.0
    wall = float(s.raw["wall_s"].fillna(0).sum()) if not s.raw.empty else 0.0
    best = "none yet"
    if p.best_value is not None:
        std = _best_std(s)
        best = f"{p.best_value:.6g}" + (f" ± {std:.3g} over folds" if std is not None else "")
        best += f" (trial {p.best_trial_id}: {_params_text(p.best_params, limit=50)})"
    facts = [
        ("status", p.status + (f" ({e['stop_reason']})" if e.get("stop_reason") else "")
         + (f": {e['error']}" if e.get("error") else "")),
        ("progress", p.line()),
        ("search", f"{e.get('algorithm')}" + (f" ({e['sampler']})" if e.get("sampler") else "")
         + f", {e.get('mode')} {e.get('objective')}, {p.total if p.total is not None else '?'} trials planned"),
        ("best", best),
        ("test metrics of the refitted best", _params_text(dict(e.get("test_metrics") or []), limit=20) or "none"),
        ("started / ended", f"{_when(e.get('started_at'))} / {_when(e.get('ended_at'))} ({_duration(p.elapsed_s)})"),
        ("compute", f"{cpu / 3600.0:.4f} CPU-hours (trials' CPU seconds summed), {wall / 3600.0:.4f} trial wall-hours"),
        ("cost", cost_line(s.costs)),
        ("cluster", f"{e.get('cluster_cpus')} CPUs on {e.get('cluster_nodes')} node(s)"),
    ]
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def _best_std(s: _Story) -> float | None:
    p = s.progress
    col = f"{p.objective}_std"
    if p.best_trial_id is None or col not in s.wide.columns:
        return None
    return _finite(s.wide.loc[s.wide.trial_id == p.best_trial_id, col].iloc[0])


def _top(s: _Story) -> str:
    w, obj = s.wide, s.exp.get("objective")
    if w.empty or obj not in w.columns:
        return _note("no finished trial yet")
    ok = w[(w.status == DONE) & w[obj].notna()].sort_values(obj, ascending=s.exp.get("mode") == "min")
    if ok.empty:
        return _note("no finished trial yet")
    metrics = [m for m in w.attrs.get("metrics", []) if m in w.columns]
    metrics = sorted(metrics, key=lambda m: (m != obj, m != f"{obj}_std", m))
    cols = ["trial_id", *metrics, *[c for c in w.attrs.get("params", []) if c in w.columns],
            "wall_s", "cpu_s", "peak_rss_mb", "node_id"]
    top = ok.head(TOP_N)[cols].copy()
    top["node_id"] = top["node_id"].astype(str).str[:12]
    return _table(top)


def _failures(s: _Story) -> str:
    from tunehouse.catalog.schema import decode_params

    raw = s.raw
    if raw.empty:
        return _note("none")
    bad = raw[raw.status.isin([FAILED, *STOPPED, *EARLY_STOPPED])]
    if bad.empty:
        return _note("none")
    has_tb = "error_traceback" in bad.columns
    rows = []
    for r in bad.head(FAILED_MAX).to_dict("records"):
        tb = r.get("error_traceback") if has_tb else None
        details = (f"<details><summary>traceback</summary><pre>{_esc(tb)}</pre></details>"
                   if isinstance(tb, str) and tb else "")
        rows.append(f"<tr><td>{_esc(r['trial_id'])}</td><td>{_esc(r['status'])}</td>"
                    f"<td>{_esc(r.get('attempts'))}</td><td>{_esc(_params_text(decode_params(r.get('params')), 20))}</td>"
                    f"<td>{_esc(r.get('error') or '')}{details}</td></tr>")
    more = _note(f"showing {FAILED_MAX} of {len(bad)}") if len(bad) > FAILED_MAX else ""
    return ('<div class="scroll"><table><tr><th>trial</th><th>status</th><th>attempts</th><th>params</th>'
            "<th>error</th></tr>" + "".join(rows) + "</table></div>" + more)


def _environment(s: _Story) -> str:
    e = s.exp
    data = [("data fingerprint", e.get("dataset_fingerprint")), ("data source", e.get("dataset_source")),
            ("spec SHA-256", e.get("spec_hash")), ("driver", f"{e.get('driver_host')} pid {e.get('driver_pid')}")]
    env = sorted(dict(e.get("environment") or []).items())
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in data + env)
    return f'<table class="facts">{rows}</table>'


def _h3(text: str, kind: str) -> str:
    return f'<h3 class="{kind}">{_esc(text)}</h3>'


def _table(df: Any) -> str:
    """A pandas frame as an HTML table, every cell escaped, floats to 6 significant digits."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:4px;margin-top:48px}h3{margin-top:28px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f7}table.facts th{width:16em}pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:.85em}
.scroll{overflow-x:auto}.note{color:#666;font-style:italic}.fig{margin:8px 0 20px;border:1px solid #eee}details pre{max-height:24em}
"""


def _page(title: str, body: str) -> str:
    from plotly.offline import get_plotlyjs

    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style>'
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n<body>\n{body}\n</body></html>\n')


def _write_atomic(out: Path, text: str) -> None:
    """Write under a temporary name, then rename: a reader never sees half a report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# -- small helpers -----------------------------------------------------------------------------
def _epoch(t: Any) -> float | None:
    """Epoch seconds from a float, a datetime or a pandas Timestamp; None for missing / NaT."""
    if t is None:
        return None
    if isinstance(t, (int, float)):
        return None if isinstance(t, float) and math.isnan(t) else float(t)
    if isinstance(t, datetime):
        try:
            if t != t:  # NaT
                return None
            return t.timestamp()
        except (ValueError, OverflowError):
            return None
    return None


def _when(t: Any) -> str:
    e = _epoch(t)
    return "-" if e is None else datetime.fromtimestamp(e, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _one_line_failure(r: Mapping[str, Any], width: int = 140) -> str:
    err = str(r.get("error") or "failed").strip().splitlines()
    text = f"{r.get('trial_id')}: {err[0] if err else 'failed'}"
    return text if len(text) <= width else text[: width - 3] + "..."


def _params_text(params: Mapping[str, Any], limit: int = 4) -> str:
    items = [f"{k}={_value(v)}" for k, v in params.items()]
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _duration(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


# -- lineage ----------------------------------------------------------------------------------
def lineage(experiments: pd.DataFrame) -> pd.DataFrame:
    """The experiments (``Catalog.experiments()``) as a tree: each child (``parent_id``, from
    ``tunehouse continue``) right under its parent, oldest child first, its ``name`` indented
    two spaces a generation and marked ``└─``; roots (no parent, or one not in the frame) keep
    their order. Names are padded to one width, so a right-aligned table still shows the tree."""
    df = experiments.reset_index(drop=True)
    if "parent_id" not in df.columns:
        df = df.assign(parent_id=None)
    ids = set(df.experiment_id)
    parent = {r.experiment_id: (r.parent_id if isinstance(r.parent_id, str) and r.parent_id in ids else None)
              for r in df.itertuples(index=False)}
    children: dict[str, list[int]] = {}
    for i, r in df.iterrows():
        if parent[r.experiment_id]:
            children.setdefault(parent[r.experiment_id], []).append(i)
    order: list[tuple[int, int]] = []

    def visit(i: int, depth: int) -> None:
        order.append((i, depth))
        kids = sorted(children.get(df.experiment_id[i], []), key=lambda k: (df.started_at[k] is None, df.started_at[k]))
        for k in kids:
            visit(k, depth + 1)

    for i in df.index:
        if parent[df.experiment_id[i]] is None:
            visit(i, 0)
    out = df.loc[[i for i, _ in order]].reset_index(drop=True)
    names = ["  " * (d - 1) + "└─ " + str(out["name"][n]) if d else str(out["name"][n]) for n, (_, d) in enumerate(order)]
    width = max(len(n) for n in names)
    out["name"] = [n.ljust(width) for n in names]
    return out
