"""The harness the side-by-side benchmarks share: each way in a fresh, timed subprocess.

Used by ``bench_overhead.py`` and ``bench_early_stopping.py`` (run as ``python scripts/x.py``,
so ``scripts/`` is ``sys.path[0]`` and ``import _bench`` finds this file). Rules:

- every way runs in its own child process, timed by the parent end to end (Python start-up,
  imports, Ray start-up and shutdown included), so no Ray or import cache leaks between ways;
- a child's Ray is local and fresh: ``RAY_ADDRESS`` removed, ``RAY_TMPDIR`` the child's private
  temp dir (so ``ray.init()`` cannot attach to a cluster a ``ray start`` left behind),
  ``RAY_USAGE_STATS_ENABLED=0``;
- a child that exits non-zero, times out or leaves no result raises ``ChildFailed``: the
  benchmark then prints ``error: a benchmark child failed: ...`` and exits 1; otherwise it
  exits 0 whatever the numbers (a report, not a test);
- each way's run records ``load1_at_exit``, the 1-minute load average as its child finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The report's note on the children's Ray environment (each script says whose it is).
RAY_ENV_NOTE = (
    "RAY_ADDRESS unset, RAY_TMPDIR a private temp dir (so ray.init() cannot attach to a "
    "`ray start` cluster), RAY_USAGE_STATS_ENABLED=0"
)
LOAD1_NOTE = (
    "load1 = the machine's 1-minute load average when that way's child exited (its own "
    "processes included); far above the core count means something else competed for "
    "the CPUs and the walls are inflated"
)


class ChildFailed(RuntimeError):
    """A benchmark subprocess exited non-zero, timed out, or printed no result."""


@dataclass(frozen=True)
class ChildRun:
    """One finished child: its wall time (perf counter), start and end (epoch s), stdout, and
    its own peak resident memory."""

    wall_s: float
    start_epoch: float
    end_epoch: float
    stdout: str
    max_rss_mb: float = float("nan")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


def busy_cores(sample_s: float = 1.0) -> float | None:
    """Cores' worth of CPU the whole machine used over ``sample_s`` (from /proc/stat)."""

    def read() -> tuple[float, float]:
        with open("/proc/stat") as f:
            vals = [float(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
        return sum(vals), idle

    try:
        total0, idle0 = read()
        time.sleep(sample_s)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    dt = total1 - total0
    return (1.0 - (idle1 - idle0) / dt) * available_cores() if dt > 0 else None


def child_env(
    workdir: Path, drop_prefixes: tuple[str, ...] = (), extra: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment for a child, its Ray made local and fresh (see the module).

    Variables starting with one of ``drop_prefixes`` are removed too; ``extra`` is set last
    (e.g. ``TUNEHOUSE_HOME`` of a benchmark's own local service).
    """
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # always an embedded, local Ray
    # ray.init() without an address attaches to a cluster a `ray start` recorded in
    # $RAY_TMPDIR/ray/ray_current_cluster: a private temp dir makes it start a fresh one.
    env["RAY_TMPDIR"] = str(workdir)
    env["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage-stats traffic leaves the machine
    env["PYTHONUNBUFFERED"] = "1"
    if drop_prefixes:
        for k in [k for k in env if k.startswith(drop_prefixes)]:
            del env[k]
    env.update(extra or {})
    return env


def run_child(
    cmd: list[str],
    way: str,
    cwd: Path,
    timeout_s: float,
    drop_prefixes: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> ChildRun:
    """Run one child in ``cwd`` (also its ``RAY_TMPDIR``) and time it.

    Its peak RSS (``ChildRun.max_rss_mb``: the kernel's ``ru_maxrss`` of that process alone,
    from ``wait4``) is recorded too.

    Raises:
        ChildFailed: it timed out or exited non-zero (with the last 25 lines it wrote).
    """
    start_epoch = time.time()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=child_env(cwd, drop_prefixes, extra_env), stdout=out, stderr=err,
            text=True,
        )  # fmt: skip
        code, max_rss_kb = _wait(proc, timeout_s, way)
        wall = time.perf_counter() - t0
        end_epoch = time.time()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        tail = "\n".join((stderr or stdout or "").strip().splitlines()[-25:])
        raise ChildFailed(f"{way}: exit code {code}\n{tail}")
    return ChildRun(wall, start_epoch, end_epoch, stdout, max_rss_kb / 1024)


def _wait(proc: subprocess.Popen[str], timeout_s: float, way: str) -> tuple[int, int]:
    """Wait for ``proc`` (killed after ``timeout_s``): its exit code and ``ru_maxrss`` (KiB)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise ChildFailed(f"{way}: timed out after {timeout_s} s")
        time.sleep(0.05)


def run_script_way(
    script: str,
    way: str,
    args: list[str],
    workdir: Path,
    timeout_s: float,
    drop_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``script --one WAY ARGS --result FILE`` as a child; its result with ``wall_s``.

    The child writes its result as JSON to FILE (see ``write_result``).

    Raises:
        ChildFailed: the child failed, or wrote no readable result.
    """
    result_file = workdir / f"{way}-result.json"
    cmd = [
        sys.executable, str(Path(script).resolve()), "--one", way, *args,
        "--result", str(result_file),
    ]  # fmt: skip
    child = run_child(cmd, way, workdir, timeout_s, drop_prefixes)
    try:
        out = json.loads(result_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ChildFailed(f"{way}: no result written ({e})") from e
    return {"wall_s": child.wall_s, **out}


def run_tunehouse_cli(
    spec: Path,
    way: str,
    workdir: Path,
    timeout_s: float,
    service: LocalService | None = None,
) -> tuple[ChildRun, dict[str, Any]]:
    """``python -m tunehouse run SPEC --catalog WORKDIR/catalog --json`` as a child.

    With ``service`` it runs on that local service (its ``TUNEHOUSE_HOME``); without, it
    starts an embedded Ray (``--no-service``: never a service someone else left up).
    Returns the child and the JSON object it printed.

    Raises:
        ChildFailed: the child failed, or its output is not JSON.
    """
    catalog = workdir / "catalog"
    cmd = [sys.executable, "-m", "tunehouse", "run", str(spec), "--catalog", str(catalog), "--json"]
    if service is None:
        cmd.append("--no-service")
    env = service.env if service is not None else None
    child = run_child(cmd, way, workdir, timeout_s, extra_env=env)
    try:
        return child, parse_json_output(child.stdout)
    except json.JSONDecodeError as e:
        raise ChildFailed(
            f"{way}: cannot parse its --json output ({e}): {child.stdout[:300]!r}"
        ) from e


@dataclass(frozen=True)
class LocalService:
    """A ``tunehouse up`` of the benchmark's own, in a private ``TUNEHOUSE_HOME``."""

    home: Path
    up_s: float  # how long ``tunehouse up`` took

    @property
    def env(self) -> dict[str, str]:
        return {"TUNEHOUSE_HOME": str(self.home)}


@contextlib.contextmanager
def local_service(cpus: int, timeout_s: float = 300) -> Iterator[LocalService]:
    """``tunehouse up --cpus CPUS`` in a private ``TUNEHOUSE_HOME``; ``tunehouse down`` after,
    whatever happened (so the benchmark never leaves a service behind, and never uses or stops
    one of somebody else's).

    Raises:
        ChildFailed: ``up`` failed.
    """
    with tempfile.TemporaryDirectory(prefix="bench-svc-", ignore_cleanup_errors=True) as d:
        home = Path(d) / "home"
        svc = LocalService(home, 0.0)
        cli = [sys.executable, "-m", "tunehouse"]
        print("[service] tunehouse up ...", file=sys.stderr, flush=True)
        try:
            child = run_child([*cli, "up", "--cpus", str(cpus)], "tunehouse up", Path(d), timeout_s,
                              extra_env=svc.env)  # fmt: skip
            svc = LocalService(home, child.wall_s)
            print(f"[service] up in {svc.up_s:.1f} s", file=sys.stderr, flush=True)
            yield svc
        finally:
            try:
                run_child([*cli, "down"], "tunehouse down", Path(d), timeout_s, extra_env=svc.env)
                print("[service] down", file=sys.stderr, flush=True)
            except ChildFailed as e:
                print(f"[service] warning: tunehouse down failed: {e}", file=sys.stderr, flush=True)


def parse_json_output(text: str) -> dict[str, Any]:
    """The JSON object the tunehouse CLI printed (tolerating stray lines before it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start = text.find("\n{")
        if start < 0:
            raise
        return json.loads(text[start + 1 :])


def write_result(out: dict[str, Any], result: str | None) -> None:
    """A ``--one`` child's result, as JSON: into the file ``result``, or on stdout."""
    text = json.dumps(out, default=str)
    if result:
        Path(result).write_text(text)
    else:
        print(text)


def run_rounds(
    ways: Iterable[str], repeats: int, run_way: Callable[[str, Path], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``repeats`` interleaved rounds of every way: each way's runs, in order.

    ``run_way(way, workdir)`` runs one way in a fresh temp dir (removed after) and returns
    its result; ``load1_at_exit`` is added to it. Progress goes to stderr.
    """
    ways = list(ways)
    runs: dict[str, list[dict[str, Any]]] = {w: [] for w in ways}
    for i in range(repeats):
        for way in ways:
            print(f"[round {i + 1}/{repeats}] {way} ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(
                prefix=f"bench-{way}-", ignore_cleanup_errors=True
            ) as d:
                r = run_way(way, Path(d))
            r["load1_at_exit"] = os.getloadavg()[0]
            print(
                f"[round {i + 1}/{repeats}] {way}: {r['wall_s']:.2f} s", file=sys.stderr, flush=True
            )
            runs[way].append(r)
    return runs


def median(runs: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over the runs that have it (not None); NaN if none has."""
    vals = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def add_output_and_child_args(p: argparse.ArgumentParser, in_process: Iterable[str]) -> None:
    """``--json``, and the hidden options of a ``--one WAY`` child (``--cores``, ``--result``).

    ``in_process`` names the ways a child can run.
    """
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    # internal: one way, in a child process (see run_script_way)
    p.add_argument("--one", choices=sorted(in_process), help=argparse.SUPPRESS)
    p.add_argument("--cores", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)


def print_header(what: str, config: dict[str, Any]) -> None:
    """The report's first line (``what`` was run, then how), and a warning on its own line if
    over half a core was busy before the benchmark started."""
    print(f"{what}; median of {config['repeats']} round(s), each way in a fresh subprocess")
    busy = config.get("busy_cores_before")
    if busy is not None and busy > 0.5:
        print(
            f"warning: the machine was already busy before the benchmark ({busy:.1f} of "
            f"{config['cores']} cores in use): timings will be inflated and noisy"
        )


def print_notes(notes: Iterable[str]) -> None:
    """The report's closing list of notes."""
    print("notes:")
    for n in notes:
        print(f"  - {n}")


def report(
    benchmark: Callable[[], dict[str, Any]],
    as_json: bool,
    print_report: Callable[[dict[str, Any]], None],
) -> int:
    """Run the benchmark and print its report (a table, or JSON); the exit code.

    0 whatever the numbers; 1, with the reason on stderr, if a child failed.
    """
    try:
        rep = benchmark()
    except ChildFailed as e:
        print(f"error: a benchmark child failed: {e}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(rep, indent=2, default=str))
    else:
        print_report(rep)
    return 0
