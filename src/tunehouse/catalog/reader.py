"""Reading the catalog: pandas / pyarrow / DuckDB SQL. Never imports Ray.

Readers tolerate what a crash or a stranger may leave behind: temporary files are never
listed, and a truncated or foreign part is skipped with a warning (``check()`` reports it).
Every table is deduplicated to the latest row per key, so a replayed or compacted experiment
never shows a row twice.
"""

from __future__ import annotations

import math
import os
import socket
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tunehouse.catalog.schema import KEYS, SCHEMAS, TABLES, decode_params
from tunehouse.catalog.storage import CatalogError, LocalStorage, PartInfo, Storage, open_storage
from tunehouse.catalog.writer import ALL, COMPACTED, HEARTBEAT_STALE_S, parquet_bytes, part_name
from tunehouse.records import TrialRecord, best_of, pareto_front

_MAGIC = b"PAR1"
_CANDIDATES = 10  # experiments an ambiguous id prefix lists


class CatalogWarning(UserWarning):
    """A part file was skipped (truncated, foreign or unreadable)."""


@dataclass
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Catalog:
    """A catalog root (local folder or ``s3://bucket/prefix``).

    >>> cat = Catalog("tunehouse-catalog")
    >>> cat.experiments()            # one row per experiment, latest state
    >>> cat.trials("quickstart-...") # wide: a column per param and metric
    >>> cat.sql("select * from trials order by objective_value desc limit 10")
    """

    def __init__(self, uri: str | os.PathLike[str] | Storage | None = None) -> None:
        if uri is None:
            uri = os.environ.get("TUNEHOUSE_CATALOG", "tunehouse-catalog")
        self.storage = uri if isinstance(uri, Storage) else open_storage(uri)
        self.uri = self.storage.uri

    # -- raw tables -------------------------------------------------------------------------
    def _prefix(self, table: str, experiment_id: str | None) -> str:
        return f"{table}/experiment={experiment_id}/" if experiment_id else f"{table}/"

    def parts(self, table: str, experiment_id: str | None = None) -> list[PartInfo]:
        return self.storage.list_parts(self._prefix(table, experiment_id))

    def _read_part(self, part: PartInfo, table: str) -> pa.Table | None:
        try:
            # one GET of the whole (small) part, not a HEAD, a footer read and a data read
            t = pq.read_table(pa.BufferReader(self.storage.read(part.path)))
        except FileNotFoundError:
            raise  # removed since it was listed (compaction): the caller lists again
        except Exception as e:  # truncated, not Parquet, unreadable
            warnings.warn(f"skipping {part.path}: {str(e).splitlines()[0]}", CatalogWarning, stacklevel=3)
            return None
        missing = [k for k in (*KEYS[table], "updated_at") if k not in t.column_names]
        if missing:
            warnings.warn(f"skipping {part.path}: not a tunehouse {table} part (no {missing[0]})",
                          CatalogWarning, stacklevel=3)
            return None
        return _conform(t, SCHEMAS[table])

    def table(self, table: str, experiment_id: str | None = None, *, latest: bool = True) -> pa.Table:
        """One table as Arrow, latest row per key (``latest=False``: every version)."""
        if table not in SCHEMAS:
            raise CatalogError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
        parts, tables = self._list_and_read(table, lambda: self.parts(table, experiment_id))
        return self._combine(table, parts, tables, latest)

    def _list_and_read(self, table: str, list_parts: Callable[[], list[PartInfo]]
                       ) -> tuple[list[PartInfo], list[pa.Table | None]]:
        """``list_parts()`` and every part read; listed again when a part vanished meanwhile (a
        compaction replaced it: its merged part is already written, so a new listing sees every
        row)."""
        for _ in range(3):
            parts = list_parts()
            try:
                return parts, self._read_parts(table, parts)
            except FileNotFoundError:
                continue
        raise CatalogError(f"{table}: parts keep vanishing while reading; retry")

    def _combine(self, table: str, parts: list[PartInfo], tables: list[pa.Table | None], latest: bool) -> pa.Table:
        tables = [t for t in tables if t is not None and t.num_rows]
        if not tables:
            return SCHEMAS[table].empty_table()
        out = pa.concat_tables(tables)
        if not latest or (len(parts) == 1 and _is_compacted(parts[0])):
            return out  # a compacted part holds one row per key already
        return _latest(out, KEYS[table])

    def _read_parts(self, table: str, parts: list[PartInfo]) -> list[pa.Table | None]:
        if len(parts) > 4:
            with ThreadPoolExecutor(max_workers=8) as ex:
                return list(ex.map(lambda p: self._read_part(p, table), parts))
        return [self._read_part(p, table) for p in parts]

    # -- pandas views ---------------------------------------------------------------------
    def experiments(self) -> pd.DataFrame:
        """Every experiment, its latest state; ``status`` says ``interrupted`` for a dead driver."""
        df = self.table("experiments").to_pandas()
        if df.empty:
            return df
        df["status"] = [infer_status(r) for r in df.to_dict("records")]
        df["duration_s"] = [
            ((r["ended_at"] or r["heartbeat_at"]) - r["started_at"]).total_seconds()
            if r["started_at"] is not None and (r["ended_at"] or r["heartbeat_at"]) is not None
            else None
            for r in df.to_dict("records")
        ]
        return df.sort_values("started_at", ascending=False, ignore_index=True)

    def experiment(self, experiment: str) -> dict[str, Any]:
        """One experiment's latest row: by exact id, by name (the newest of that name), or by
        an id prefix that matches exactly one experiment.

        Raises:
            CatalogError: no such experiment, or a prefix that matches several (listed).
        """
        if "/" not in experiment and experiment != ALL:
            # an exact id reads its own partition and the compacted index, not the catalog
            parts, tables = self._list_and_read(
                "experiments", lambda: self.parts("experiments", experiment) + self.parts("experiments", ALL))
            t = self._combine("experiments", parts, tables, True)
            t = t.filter(pc.equal(t.column("experiment_id"), experiment))
            if t.num_rows:
                row = t.to_pylist()[0]
                row["status"] = infer_status(row)
                return row
        df = self.experiments()
        if df.empty:
            raise CatalogError(f"no experiments in {self.uri}")
        hit = df[df.experiment_id == experiment]
        if hit.empty:
            hit = df[df.name == experiment]
        if hit.empty:
            hit = df[df.experiment_id.str.startswith(experiment)]
            if len(hit) > 1:  # newest first: never guess which one was meant
                shown = ", ".join(hit.experiment_id.head(_CANDIDATES))
                more = f" and {len(hit) - _CANDIDATES} more" if len(hit) > _CANDIDATES else ""
                raise CatalogError(f"experiment id prefix {experiment!r} matches {len(hit)} experiments in "
                                   f"{self.uri}: {shown}{more}; give more of the id, or a name")
        if hit.empty:
            from tunehouse.errors import did_you_mean

            raise CatalogError(
                f"no experiment {experiment!r} in {self.uri}"
                f"{did_you_mean(experiment, list(df.experiment_id) + list(df.name))}"
            )
        return hit.iloc[0].to_dict()

    def trials(self, experiment: str | dict[str, Any], *, raw: bool = False) -> pd.DataFrame:
        """One experiment's trials, wide: a column per param and per metric (plus the core columns)."""
        exp = experiment if isinstance(experiment, dict) else self.experiment(experiment)
        t = self.table("trials", exp["experiment_id"])
        df = t.to_pandas()
        if not df.empty and exp.get("status") in ("interrupted", "failed", "stopped"):
            # a trial still 'running' in an experiment whose driver is gone never finished
            df.loc[df.status == "running", "status"] = "interrupted"
        if raw or df.empty:
            return df
        return widen(df)

    def trial_records(self, experiment: str | dict[str, Any]) -> list[TrialRecord]:
        """An experiment's trials (latest row each) as ``TrialRecord``s: what resume plans from,
        and what a driver reads back when Tune's loop ran on the cluster (Ray Client)."""
        rows = self.trials(experiment, raw=True)
        rows = rows.astype(object).where(rows.notna(), None)  # NaN -> None
        return [
            TrialRecord(
                trial_id=row.trial_id, status=row.status, params=decode_params(row.params),
                metrics=dict(row.metrics or []), error=row.error, error_traceback=row.error_traceback,
                checkpoint=row.checkpoint_uri, checkpoint_sha256=row.checkpoint_sha256,
                usage={k: getattr(row, k, None) for k in _USAGE} | {"pid": _int(row.pid)},
                iterations=_int(row.iterations), best_metrics=dict(row.best_metrics or []),
                started_at=_epoch(row.started_at), ended_at=_epoch(row.ended_at),
                attempts=_int(getattr(row, "attempts", None)),
                resource=_int(getattr(row, "resource", None)),
                checkpoint_pruned=bool(row.checkpoint_pruned),
                reused_from=getattr(row, "reused_from", None),
            )
            for row in rows.itertuples(index=False)
        ]

    def iterations(self, experiment: str) -> pd.DataFrame:
        exp = self.experiment(experiment)
        df = self.table("iterations", exp["experiment_id"]).to_pandas()
        if df.empty:
            return df
        metrics = pd.DataFrame([dict(m) for m in df.pop("metrics")], index=df.index)
        return pd.concat([df, metrics], axis=1).sort_values(["trial_id", "iteration"], ignore_index=True)

    def best(self, experiment: str, metric: str | None = None, mode: str | None = None, *,
             where: str | None = None) -> dict[str, Any]:
        """The best finished trial of an experiment by its objective (its first, with several), or
        ``metric``; with ``where`` (SQL over the wide trials table, ``filter_where``), the best
        among the trials meeting it."""
        exp = self.experiment(experiment)
        metric = metric or exp["objective"]
        if mode is None:
            mode = _metric_mode(exp, metric)
        df = self.trials(exp)
        if df.empty or metric not in df.columns:
            raise CatalogError(f"experiment {exp['experiment_id']} has no trial with metric {metric!r}")
        if where:
            df = filter_where(df, where)
        row = best_of(df.to_dict("records"), metric, mode)
        if row is None:
            meeting = f" meeting --where {where!r}" if where else ""
            raise CatalogError(f"experiment {exp['experiment_id']} has no finished trial with {metric!r}{meeting}")
        return {**row, "metric": metric, "mode": mode, "experiment_id": exp["experiment_id"]}

    def objectives(self, experiment: str | dict[str, Any]) -> dict[str, str]:
        """An experiment's objectives in order, each with its mode: two or more for a
        multi-objective (Pareto) search, else the one objective."""
        exp = experiment if isinstance(experiment, dict) else self.experiment(experiment)
        names = exp.get("objectives")
        names = list(names) if names is not None and len(names) else [exp["objective"]]
        return {n: _metric_mode(exp, n) for n in names}

    def pareto(self, experiment: str | dict[str, Any]) -> pd.DataFrame:
        """The Pareto front of an experiment's trials (``records.pareto_front``), wide, in trial
        order; for a single-objective experiment, its best trial."""
        exp = experiment if isinstance(experiment, dict) else self.experiment(experiment)
        df = self.trials(exp)
        objectives = self.objectives(exp)
        if df.empty or any(n not in df.columns for n in objectives):
            return df.iloc[0:0]
        rows = df.to_dict("records")
        front = pareto_front(rows, objectives) if len(objectives) > 1 else [
            r for r in [best_of(rows, *next(iter(objectives.items())))] if r is not None]
        keep = {id(r) for r in front}
        return df[[id(r) in keep for r in rows]].reset_index(drop=True)

    def exports(self, *, tag: str | None = None, history: bool = False) -> pd.DataFrame:
        """Exports, newest first. With ``tag``: its current holder, or (``history``) every
        export that held it, so a rollback target is always listed."""
        df = self.table("exports").to_pandas()
        if df.empty:
            return df
        df = df.sort_values("exported_at", ascending=False, ignore_index=True)
        if tag is not None:
            df = df[df.tag == tag]
            if not history:
                df = df.head(1)
        df["current"] = False
        holders = df.dropna(subset=["tag"]).groupby("tag").head(1).index
        df.loc[holders, "current"] = True
        return df.reset_index(drop=True)

    def promotions(self, *, tag: str | None = None) -> pd.DataFrame:
        """``tunehouse retrain``'s decisions (promoted, kept, refused), newest first; with
        ``tag``, only those about that tag."""
        df = self.table("promotions").to_pandas()
        if df.empty:
            return df
        if tag is not None:
            df = df[df.tag == tag]
        return df.sort_values("decided_at", ascending=False, ignore_index=True)

    # -- SQL ------------------------------------------------------------------------------------
    def first_values(self, experiment_id: str | None = None) -> dict[str, float]:
        """Each experiment's first trial's objective value: the earliest-started finished trial
        it ran itself (not one a warm start reused); what ``costs.search_cost`` measures the
        gain from. One SQL statement over every experiment (or ``experiment_id`` alone)."""
        where = "" if experiment_id is None else f" and experiment_id = '{experiment_id.replace(chr(39), '')}'"
        try:
            df = self.sql(
                "select experiment_id, objective_value from trials where status in ('terminated', 'early_stopped')"
                f" and isfinite(objective_value) and reused_from is null{where} qualify row_number() over "
                "(partition by experiment_id order by started_at, trial_id) = 1").df()
        except CatalogError:
            return {}  # no trials yet
        return {str(r.experiment_id): float(r.objective_value) for r in df.itertuples()}

    def sql(self, query: str):
        """Run DuckDB SQL over views ``experiments``, ``trials``, ``iterations`` (latest rows).

        Returns a DuckDB relation (``.df()``, ``.arrow()``, ``.fetchall()``).
        """
        import duckdb

        names = [n for n in TABLES if n in query.lower()]  # only read the tables the query names
        if isinstance(self.storage, LocalStorage):
            con = duckdb.connect()
            try:
                for name in names:
                    con.execute(f"create view {name} as {self._duckdb_select(name)}")
                return con.from_arrow(con.sql(query).to_arrow_table())
            except duckdb.Error:
                pass  # a damaged part or an old layout: the checked path below skips it with a warning
        con = duckdb.connect()
        for name in names:
            con.register(f"_{name}", self.table(name))
            con.execute(f"create view {name} as select * from _{name}")
        try:
            return con.sql(query)
        except duckdb.Error as e:
            raise CatalogError(f"SQL error: {str(e).splitlines()[0]}") from None

    def _duckdb_select(self, table: str) -> str:
        """DuckDB reads a local catalog's files directly: compacted partitions as they are,
        the rest deduplicated to the latest row per key."""
        parts = self.parts(table)
        by_dir: dict[str, list[PartInfo]] = {}
        for p in parts:
            by_dir.setdefault(os.path.dirname(p.path), []).append(p)
        def clean_dir(ps: list[PartInfo]) -> bool:
            # experiments: the index may overlap a partition a driver wrote to later
            return table != "experiments" and len(ps) == 1 and _is_compacted(ps[0])

        clean = [self.storage.fs_path(ps[0].path) for ps in by_dir.values() if clean_dir(ps)]
        rest = [self.storage.fs_path(p.path) for ps in by_dir.values() if not clean_dir(ps) for p in ps]
        cols = ", ".join(f'"{f.name}"' for f in SCHEMAS[table])
        keys = ", ".join(KEYS[table])
        selects = []
        if clean:
            selects.append(f"select {cols} from read_parquet({clean!r}, union_by_name=true)")
        if rest:
            selects.append(
                f"select {cols} from read_parquet({rest!r}, union_by_name=true) "
                f"qualify row_number() over (partition by {keys} order by updated_at desc) = 1"
            )
        if not selects:
            raise duckdb_error("empty table")
        return " union all ".join(selects)

    # -- maintenance --------------------------------------------------------------------------
    def check(self) -> list[Problem]:
        """Every file a reader would skip or that does not belong, with the reason."""
        problems: list[Problem] = []
        for table in TABLES:
            for f in self.storage.list_files(f"{table}/"):
                name = os.path.basename(f.path)
                if name.startswith(".tmp-"):
                    problems.append(Problem(f.path, "temporary file left by an interrupted write"))
                    continue
                if not name.endswith(".parquet") or name.startswith((".", "_")):
                    problems.append(Problem(f.path, "not a catalog part (foreign file)"))
                    continue
                reason = self._verify(f, table)
                if reason:
                    problems.append(Problem(f.path, reason))
        return problems

    def _verify(self, part: PartInfo, table: str) -> str | None:
        if part.size < 12:
            return f"truncated ({part.size} bytes)"
        try:
            data = self.storage.read(part.path)
            if data[:4] != _MAGIC or data[-4:] != _MAGIC:
                return "truncated or not Parquet (no PAR1 footer)"
            t = pq.read_table(pa.BufferReader(data))
        except Exception as e:
            return f"unreadable: {str(e).splitlines()[0]}"
        missing = [k for k in (*KEYS[table], "updated_at") if k not in t.column_names]
        if missing:
            return f"foreign Parquet file (no column {missing[0]!r})"
        return None

    def compact(self, experiment: str, *, force: bool = False) -> dict[str, tuple[int, int]]:
        """Rewrite a finished experiment's partitions as one part per table.

        The new part (latest rows only) is written atomically before the old parts are
        deleted; in between a reader sees each row twice on disk, and its latest-row dedup
        shows it once. Returns ``{table: (parts before, parts after)}``.
        """
        exp = self.experiment(experiment)
        if infer_status(exp) == "running" and not force:
            raise CatalogError(f"experiment {exp['experiment_id']} is still running; compact it when it ends")
        out = {}
        for table in TABLES:
            parts = self.parts(table, exp["experiment_id"])
            if len(parts) <= 1:
                out[table] = (len(parts), len(parts))
                continue
            tables = self._read_parts(table, parts)
            if any(t is None for t in tables):  # never delete what could not be read
                bad = [p.path for p, t in zip(parts, tables) if t is None]
                raise CatalogError(f"cannot compact {exp['experiment_id']}: unreadable part(s) {', '.join(bad)}; "
                                   "see tunehouse catalog check")
            merged = self._combine(table, parts, tables, True)
            self.storage.write_atomic(part_name(table, exp["experiment_id"], compacted=True), parquet_bytes(merged))
            for p in parts:
                self.storage.delete(p.path)
            out[table] = (len(parts), 1)
        return out

    def compact_catalog(self, *, force: bool = False) -> dict[str, int]:
        """Compact every finished experiment, then merge their experiment rows into one index.

        The index (``experiments/experiment=_all/``) lets listing experiments read one file
        instead of one per experiment. Running experiments are left alone. Returns counts.
        """
        exps = self.experiments()
        finished = [] if exps.empty else [e for e, st in zip(exps.experiment_id, exps.status) if st != "running" or force]
        for exp_id in finished:
            self.compact(exp_id, force=force)
        old_index = self.parts("experiments", ALL)
        merge = [p for e in finished for p in self.parts("experiments", e)]
        if not merge and len(old_index) <= 1:
            return {"experiments": len(finished), "index_rows": 0}
        sources = old_index + merge
        tables = self._read_parts("experiments", sources)
        if any(t is None for t in tables):
            raise CatalogError("cannot build the experiments index: unreadable part(s); see tunehouse catalog check")
        rows = self._combine("experiments", sources, tables, True)
        self.storage.write_atomic(part_name("experiments", ALL, compacted=True), parquet_bytes(rows))
        for p in old_index + merge:  # the index is written before its sources go
            self.storage.delete(p.path)
        return {"experiments": len(finished), "index_rows": rows.num_rows}


def filter_where(df: pd.DataFrame, expr: str) -> pd.DataFrame:
    """The rows of a wide trials table (``Catalog.trials``) meeting a SQL condition over its
    columns, e.g. ``"predict_ms < 5 and max_depth > 3"``: what ``--where`` means everywhere.

    Raises:
        InputError: the condition is not valid SQL over these columns (one line).
    """
    import duckdb

    from tunehouse.errors import InputError

    con = duckdb.connect()
    con.register("t", df)
    try:
        keep = con.sql(f"select trial_id from t where {expr}").df()["trial_id"]
    except duckdb.Error as e:
        raise InputError(f"--where {expr!r}: {str(e).splitlines()[0]}") from None
    return df[df.trial_id.isin(set(keep))]


def duckdb_error(msg: str) -> Exception:
    import duckdb

    return duckdb.Error(msg)


def _metric_mode(exp: dict[str, Any], metric: str) -> str:
    """A metric's direction: the objective's mode, the experiment's recorded mode for it, else
    the metric registry's ('max' for a metric nobody knows)."""
    from tunehouse.metrics import direction

    if metric == exp["objective"]:
        return exp["mode"]
    pairs = exp.get("metric_modes")
    modes = dict(pairs) if isinstance(pairs, (list, tuple)) and pairs else _modes_in_text(exp.get("spec_text"))
    return modes.get(metric) or direction(metric) or "max"


def _modes_in_text(text: Any) -> dict[str, str]:
    """The ``mode`` of each metric a spec text lists: experiments recorded before ``metric_modes``."""
    import yaml

    try:
        listed = yaml.safe_load(text).get("metrics") or []
    except Exception:  # an old or foreign spec text: no modes
        return {}
    listed = listed if isinstance(listed, list) else [listed]
    return {m["name"]: m["mode"] for m in listed if isinstance(m, dict) and m.get("mode") in ("min", "max")}


def _is_compacted(part: PartInfo) -> bool:
    return os.path.basename(part.path).startswith(COMPACTED)


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a part to the current schema: columns added later read as nulls (additive changes)."""
    cols = []
    for f in schema:
        if f.name in t.column_names:
            col = t.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(t.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _latest(t: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Keep the row with the greatest ``updated_at`` for each key.

    Sorts a narrow table of the keys and row numbers only, then takes the winners from the
    wide table once (copying map columns twice cost seconds at a million rows).
    """
    import numpy as np

    n = t.num_rows
    if n <= 1:
        return t
    narrow = pa.table({**{k: t.column(k) for k in keys}, "updated_at": t.column("updated_at"),
                       "__i": pa.array(np.arange(n), pa.int64())})
    order = narrow.sort_by([(k, "ascending") for k in keys] + [("updated_at", "descending"), ("__i", "descending")])
    first = np.zeros(n, dtype=bool)
    first[0] = True
    for k in keys:
        c = order.column(k).combine_chunks()
        first[1:] |= pc.fill_null(pc.not_equal(c.slice(1), c.slice(0, n - 1)), True).to_numpy(zero_copy_only=False)
    if first.all():
        return t  # no key has two versions
    winners = np.sort(order.column("__i").to_numpy()[first])
    return t.take(pa.array(winners, pa.int64()))


def widen(df: pd.DataFrame) -> pd.DataFrame:
    """Core columns, then one column per param and per metric."""
    params = pd.DataFrame([decode_params(p) for p in df["params"]], index=df.index)
    metrics = pd.DataFrame([dict(m or []) for m in df["metrics"]], index=df.index)
    core = df.drop(columns=["params", "params_num", "params_text", "metrics", "best_metrics"])
    clash = set(params.columns) & (set(metrics.columns) | set(core.columns))
    params = params.rename(columns={c: f"param_{c}" for c in clash})
    clash = set(metrics.columns) & set(core.columns)
    metrics = metrics.rename(columns={c: f"metric_{c}" for c in clash})
    out = pd.concat([core[["experiment_id", "trial_id", "status"]], params, metrics,
                     core.drop(columns=["experiment_id", "trial_id", "status"])], axis=1)
    out.attrs["params"] = list(params.columns)
    out.attrs["metrics"] = list(metrics.columns)
    return out.sort_values("trial_id", ignore_index=True)


def infer_status(row: dict[str, Any]) -> str:
    """``running`` rows whose driver is gone read as ``interrupted``."""
    status = row.get("status")
    if status != "running":
        return status
    host, pid = row.get("driver_host"), row.get("driver_pid")
    if host == socket.gethostname() and pid and not _alive(int(pid), row.get("started_at")):
        return "interrupted"
    beat = row.get("heartbeat_at")
    if beat is not None and not (isinstance(beat, float) and math.isnan(beat)):
        if datetime.now(timezone.utc) - _aware(beat) > timedelta(seconds=HEARTBEAT_STALE_S):
            return "interrupted"
    return "running"


def _aware(t: Any) -> datetime:
    if isinstance(t, pd.Timestamp):
        t = t.to_pydatetime()
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _alive(pid: int, started_at: Any) -> bool:
    import psutil

    try:
        p = psutil.Process(pid)
        if started_at is not None:
            # a recycled pid belongs to a process created after our driver started
            return p.create_time() <= _aware(started_at).timestamp() + 1.0
        return p.is_running()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


#: The usage fields of a trial row that ``trial_records`` hands back (the writer writes them all).
_USAGE = ("node_id", "node_ip", "hostname", "wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb")


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _epoch(v: Any) -> float | None:
    """A row's timestamp as the epoch seconds a ``TrialRecord`` holds."""
    return None if v is None else pd.Timestamp(v).timestamp()
