"""Warm starts: a new search given the trials of earlier experiments (``run(warm_start=...)``).

Rules (one home for them):

- Only an earlier experiment's ``terminated`` trials with a finite value of the new
  objective are candidates (failed, early-stopped and unfinished ones are not counted).
- A candidate is *inside* the new space when it has a value for every parameter of the
  space, each inside its domain, and no parameter the space lacks (``space.outside``);
  the others are left out, and the one line said per source names why.
- Same data and setup (the data's fingerprint, the evaluation, the fixed model params and
  the preprocessing all equal): the candidates inside the space are *reused*: recorded in
  the new experiment as trials of their own (``reused-NNNN``, status terminated, metrics and
  checkpoint copied, ``reused_from`` = the ``<experiment>/<trial>`` that actually ran them),
  and put in the search's ``History.finished``: grid and random skip those configurations,
  Bayesian search is told their results, and they count toward ``num_samples``.
- Other data or setup: their results mean nothing here, so the ``FIRST_N`` best candidates
  inside the space (by the new objective) are put in ``History.first``: they run first.
- The source must be the same task and estimator (else ``SpecError`` on ``--warm-start``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunehouse.errors import SpecError
from tunehouse.records import TrialRecord, best_n_of, config_key
from tunehouse.search import History

#: How many of an earlier experiment's best configurations run first on other data.
FIRST_N = 5


@dataclass
class WarmStart:
    """What a warm start gives a run: its history, and one line per source for stderr."""

    history: History = field(default_factory=History)
    lines: list[str] = field(default_factory=list)


def warm_start(spec: Any, fingerprint: str, sources: Sequence[str], catalog: Any, *,
               field: str = "--warm-start") -> WarmStart:
    """The history of a new search of ``spec`` on data ``fingerprint``, from ``sources``
    (experiment ids, id prefixes or names in ``catalog``, a ``Catalog``).

    A trial is reused once, whichever source holds it (a child holds its parent's trials as
    reused ones: their origin, ``reused_from``, is what counts), so a grid never skips a point
    twice for one trial.

    Raises:
        SpecError: no such experiment, or one of another task or estimator (on ``field``).
    """
    out, seen, n = WarmStart(), set(), 0
    origins: set[str] = set()
    for source in sources:
        exp = source_experiment(catalog, source, field)
        exp_id = exp["experiment_id"]
        if exp_id in seen:
            continue
        seen.add(exp_id)
        comparable = _comparable(spec, exp, fingerprint, field)
        candidates = [t for t in catalog.trial_records(exp) if t.status == "terminated"]
        inside, left_out = _split(spec, candidates)
        if comparable is None:
            fresh_trials = [t for t in inside if (t.reused_from or f"{exp_id}/{t.trial_id}") not in origins]
            for t in fresh_trials:
                n += 1
                origins.add(t.reused_from or f"{exp_id}/{t.trial_id}")
                out.history.finished.append(_reused(t, exp_id, n))
            if len(fresh_trials) < len(inside):
                left_out = [*left_out, *[("trial", "already reused from another source", None)]
                            * (len(inside) - len(fresh_trials))]
            inside = fresh_trials
            out.lines.append(f"reused {len(inside)} of {len(candidates)} trials from {exp_id}"
                             + _left_out(left_out))
        else:
            keys = {config_key(c) for c in out.history.first}
            best = [dict(t.params) for t in best_n_of(inside, spec.objective.name, spec.mode, FIRST_N)]
            fresh = [c for c in best if config_key(c) not in keys]
            out.history.first.extend(fresh)
            out.lines.append(f"{exp_id} ran on {comparable}: its {len(best)} best configurations in the new "
                             f"space run first, no results reused ({len(inside)} of {len(candidates)} trials "
                             f"inside the space" + _left_out(left_out) + ")")
    return out


def source_experiment(catalog: Any, source: str, field: str = "--warm-start") -> dict[str, Any]:
    """The experiment row ``--warm-start SOURCE`` names in ``catalog`` (a ``Catalog``).

    Raises:
        SpecError: no such experiment (on ``field``: it is bad input).
    """
    from tunehouse.catalog import CatalogError

    try:
        return catalog.experiment(source)
    except CatalogError as e:
        raise SpecError(str(e), field=field) from None


def _comparable(spec: Any, exp: dict[str, Any], fingerprint: str, field: str = "--warm-start") -> str | None:
    """None when ``exp``'s results hold for ``spec`` (same data and setup), else what differs."""
    from tunehouse.spec import parse_spec

    theirs = parse_spec(exp["spec_text"], file=f"the spec of {exp['experiment_id']} in the catalog")
    if theirs.task != spec.task or theirs.model.estimator != spec.model.estimator:
        raise SpecError(f"experiment {exp['experiment_id']} is a {theirs.task} search of {theirs.model.estimator}, "
                        f"expected {spec.task} of {spec.model.estimator} like the spec", field=field)
    theirs_fp = exp.get("dataset_fingerprint") or ""
    if theirs_fp != fingerprint:
        return f"different data (fingerprint {theirs_fp[:12]} != {fingerprint[:12]})"
    # the seed sets the test split and the folds; the positive class what f1 / roc_auc score
    for what, a, b in (("evaluation", theirs.evaluation, spec.evaluation), ("model params", theirs.model.params,
                       spec.model.params), ("preprocessing", theirs.preprocess, spec.preprocess),
                       ("seed", theirs.seed, spec.seed),
                       ("positive class", theirs.data.positive_class, spec.data.positive_class)):
        if _dump(a) != _dump(b):
            return f"the same data with a different {what}"
    return None


def _dump(x: Any) -> str:
    return json.dumps(x.model_dump(mode="json") if hasattr(x, "model_dump") else x, sort_keys=True, default=str)


def _split(spec: Any, trials: list[TrialRecord]) -> tuple[list[TrialRecord], list[tuple[str, str, Any]]]:
    """The trials inside ``spec``'s space with a finite objective, and why each other one is not:
    ``(parameter or metric, why, value)``."""
    import math

    from tunehouse.space import outside

    inside, left_out = [], []
    objective = spec.objective.name
    for t in trials:
        why = outside(spec.space, t.params)
        value = t.metrics.get(objective)
        if why is not None:
            left_out.append((why[0], why[1], t.params.get(why[0])))
        elif not isinstance(value, (int, float)) or not math.isfinite(value):
            left_out.append((objective, "no result", None))
        else:
            inside.append(t)
    return inside, left_out


def _order(v: Any) -> tuple[int, Any]:
    """Numbers before text, each in its own order (9 before 13)."""
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def _left_out(left_out: list[tuple[str, str, Any]]) -> str:
    """``; left out 6 (max_depth=13, 14 outside 2..12)``, or nothing when none was."""
    if not left_out:
        return ""
    groups: dict[tuple[str, str], list[Any]] = {}
    for name, why, value in left_out:
        values = groups.setdefault((name, why), [])
        if value not in values:
            values.append(value)
    parts = []
    for (name, why), values in groups.items():
        if why.startswith("outside"):
            shown = ", ".join(json.dumps(v, default=str) for v in sorted(values, key=_order)[:4])
            parts.append(f"{name}={shown}{', ...' if len(values) > 4 else ''} {why}")
        elif why == "missing":
            parts.append(f"no {name}")
        elif why == "no result":
            parts.append(f"no {name} result")
        else:
            parts.append(f"{name} {why}")
    return f"; left out {len(left_out)} ({'; '.join(parts)})"


def _reused(t: TrialRecord, exp_id: str, n: int) -> TrialRecord:
    """A new experiment's record of trial ``t`` of ``exp_id``: its results, the trial that ran it."""
    return TrialRecord(
        trial_id=f"reused-{n:04d}", status="terminated", params=dict(t.params), metrics=dict(t.metrics),
        checkpoint=t.checkpoint, checkpoint_sha256=t.checkpoint_sha256, resource=t.resource,
        checkpoint_pruned=t.checkpoint_pruned, reused_from=t.reused_from or f"{exp_id}/{t.trial_id}",
    )
