"""The experiment spec: immutable pydantic models of the YAML file, and ``load_spec``.

Everything the file alone decides is validated here, when it loads, never inside a Ray
worker; the checks that need the data and the model are ``tunehouse.validate``'s. Every
error names the file, the line when known, the field, what was given and what is allowed.
A ``Spec`` never changes: an override (``--num-samples``, resume, export) is a new, validated
``Spec`` (``override``). This module imports neither Ray, nor ``data``, nor ``models``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tunehouse.errors import SpecError, did_you_mean
from tunehouse.metrics import METRICS, metric_mode
from tunehouse.search import ALGORITHMS
from tunehouse.search.bayes import SAMPLERS
from tunehouse.search.schedulers import SCHEDULERS
from tunehouse.space import (
    MAX_GRID_POINTS,
    Domain,
    FiniteFloat,
    Grid,
    Uniform,
    grid_size,
    normalize_domain,
)

Task = Literal["classification", "regression", "clustering"]
#: Upper bound on trials in one experiment: more is almost surely a typo (and would not fit
#: any sensible time budget on one machine).
MAX_NUM_SAMPLES = 100_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: One-hot width cap per text column: a 3,000-category column becomes 50 columns, not 3,000.
DEFAULT_MAX_CATEGORIES = 50
#: Built-in data sets that ship inside scikit-learn (no download): name -> its loader.
SKLEARN_DATASETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
    "digits": "load_digits",
}
#: ``search.algorithm`` and ``search.sampler`` values: the search registry's, not a copy.
Algorithm = Literal[tuple(ALGORITHMS)]  # type: ignore[valid-type]
SamplerName = Literal[tuple(SAMPLERS)]  # type: ignore[valid-type]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Model):
    """Where the rows come from: a scikit-learn built-in, or a CSV / Parquet file."""

    sklearn: str | None = Field(None, description="Built-in data set, e.g. breast_cancer.")
    path: str | None = Field(None, description="CSV or Parquet file, relative to the spec file.")
    target: str | None = Field(None, description="Target column (required with path).")
    features: list[str] | None = Field(None, description="Feature columns (default: all others).")
    drop: list[str] | None = Field(
        None, description="Columns to leave out (identifiers, free text, dates); the rest are features."
    )
    positive_class: bool | int | float | str | None = Field(
        None,
        description="Binary classification: the label that precision, recall, f1 and roc_auc score "
        "as positive (default: the later label in sorted order).",
    )

    @field_validator("sklearn")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown built-in data set {v!r}{did_you_mean(v, SKLEARN_DATASETS)}; expected one of "
                f"{', '.join(sorted(SKLEARN_DATASETS))}"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.sklearn is None) == (self.path is None):
            raise ValueError("give exactly one of 'sklearn' (a built-in data set) or 'path'")
        if self.features is not None and len(set(self.features)) != len(self.features):
            dup = next(f for f in self.features if self.features.count(f) > 1)
            raise ValueError(f"features: column {dup!r} is listed twice")
        both = [c for c in self.drop or [] if c in (self.features or [])]
        if both:
            raise ValueError(f"drop: column {both[0]!r} is also listed in features; keep it in one of them")
        return self


class ModelSpec(_Model):
    """The model: an estimator import path, a model family's shorthand, or a training function ``pkg.mod:fn``."""

    estimator: str = Field(
        description="An estimator import path (sklearn.ensemble.RandomForestClassifier), a model family's "
        "shorthand that picks the class by task (see tunehouse.families), or 'package.module:function'."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed (untuned) parameters.")

    @property
    def is_function(self) -> bool:
        return ":" in self.estimator


class Preprocess(_Model):
    """Preprocessing fitted inside every CV fold (never on the validation rows)."""

    impute: Literal["mean", "median", "most_frequent"] | None = None
    scale: Literal["standard", "minmax", "robust"] | None = None
    onehot: bool = False
    max_categories: int | None = Field(
        DEFAULT_MAX_CATEGORIES,
        ge=2,
        description="One-hot: at most this many columns per text column, the rarest categories "
        "grouped into one 'infrequent' column (null: no cap).",
    )
    min_frequency: int | float | None = Field(
        None,
        description="One-hot: categories seen fewer times (an int) or in a smaller fraction of the "
        "training rows (a float below 1) are grouped as infrequent.",
    )

    @field_validator("min_frequency", mode="before")
    @classmethod
    def _frequency(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, int) and v >= 1:
                return v
            if 0 < v < 1:
                return float(v)
        raise ValueError(
            f"min_frequency must be a count (an integer >= 1) or a share of the training rows "
            f"(between 0 and 1), got {v!r}"
        )


class Evaluation(_Model):
    """How a configuration is scored: k-fold CV or one hold-out split, plus a test split."""

    cv: int | None = Field(None, ge=2, le=50, description="Number of CV folds (default 3).")
    holdout: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False, description="Validation fraction.")
    test_size: float = Field(
        0.2, ge=0, lt=1, description="Test fraction held out and scored for the best trial only."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_scheme(cls, v: Any) -> Any:
        if isinstance(v, dict):
            if v.get("cv") is not None and v.get("holdout") is not None:
                raise ValueError("give 'cv' or 'holdout', not both")
            if v.get("cv") is None and v.get("holdout") is None:
                v = {**v, "cv": 3}
        return v


class MetricSpec(_Model):
    name: str
    mode: Literal["min", "max"] | None = None


SchedulerName = Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]


class EarlyStopping(_Model):
    """Trials that learn in steps, and a trial scheduler that stops the poor ones early.

    A trial reports after every ``report_every`` units of its resource (boosting rounds,
    trees, epochs, or CV folds); the scheduler compares trials at equal resource and stops
    those behind. ``max_resource`` is a trial's full budget (it sets ``n_estimators`` /
    ``max_iter``, or a training function's steps).
    """

    scheduler: SchedulerName = Field(description="asha | hyperband | median (Ray Tune's trial schedulers).")
    resource: Literal["auto", "folds"] = Field(
        "auto", description="auto: what the model family learns in (rounds, trees, epochs); folds: CV folds.")
    min_resource: int | None = Field(
        None, ge=1, description="Resource every trial gets before it can be stopped (default: report_every).")
    max_resource: int | None = Field(
        None, ge=1, le=1_000_000, description="A trial's full budget (required unless resource: folds).")
    reduction_factor: float = Field(3, gt=1, le=100, allow_inf_nan=False,
                                    description="asha/hyperband: 1/reduction_factor of the trials go on at each rung.")
    report_every: int = Field(1, ge=1, description="Report (and let the scheduler act) every this many units.")
    checkpoint_every: int | None = Field(
        None, ge=1, description="Save the trial's models every this many reports: a retried trial resumes there.")

    @model_validator(mode="after")
    def _bounds(self) -> EarlyStopping:
        if self.resource == "auto" and self.max_resource is None:
            raise ValueError("max_resource: required with resource: auto (a trial's full budget, "
                             "e.g. 500 boosting rounds)")
        lo = self.min_resource if self.min_resource is not None else self.report_every
        if self.max_resource is not None and lo > self.max_resource:
            which = "min_resource" if self.min_resource is not None else "report_every"
            raise ValueError(f"{which}: {lo} is more than max_resource ({self.max_resource})")
        return self


class SearchSpec(_Model):
    """The search strategy."""

    algorithm: Algorithm
    num_samples: int = Field(
        None,
        ge=1,
        le=MAX_NUM_SAMPLES,
        description="Trials to run (default 10); for grid, repeats of the whole grid (default 1).",
    )
    max_concurrent: int | None = Field(None, ge=1, description="Trials running at once.")
    sampler: SamplerName = Field("tpe", description="Optuna sampler for algorithm: bayes.")
    early_stopping: EarlyStopping | None = Field(
        None, description="Report as trials learn and stop poor ones early (default: one report per trial).")

    @model_validator(mode="before")
    @classmethod
    def _default_samples(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("num_samples") is None:
            v = {**v, "num_samples": 1 if v.get("algorithm") == "grid" else 10}
        return v

    @model_validator(mode="after")
    def _sampler_for_bayes(self) -> SearchSpec:
        if "sampler" in self.model_fields_set and self.algorithm != "bayes":
            raise ValueError(
                f"sampler: a sampler is for algorithm: bayes; {self.algorithm} search has none "
                "(remove sampler, or use algorithm: bayes)"
            )
        return self


class Resources(_Model):
    cpus: float = Field(1, gt=0, le=1024, allow_inf_nan=False)
    gpus: float = Field(0, ge=0, le=64, allow_inf_nan=False)
    memory_mb: float | None = Field(
        None,
        gt=0,
        le=2**24,
        allow_inf_nan=False,
        description="Memory per trial in MB: reserved in Ray's scheduling and enforced in the trial, "
        "where an allocation past it fails that trial.",
    )
    custom: dict[str, FiniteFloat] = Field(
        default_factory=dict, description='Ray custom resources per trial, e.g. {"worker_b": 1}.'
    )

    @field_validator("custom")
    @classmethod
    def _custom(cls, v: dict[str, float]) -> dict[str, float]:
        for name, amount in v.items():
            if name.upper() in ("CPU", "GPU", "MEMORY") or amount < 0:
                raise ValueError(
                    f"custom resource {name!r}: use cpus, gpus and memory_mb for CPUs, GPUs and "
                    "memory; amounts must be >= 0"
                )
        return v


class FailureSpec(_Model):
    """What failing trials cost: retries of one trial, and how many failed trials end the search."""

    max_retries: int = Field(
        0,
        ge=0,
        description="Retries of a failed trial (from its last checkpoint) before it is an error.",
    )
    max_failed_trials: int | None = Field(
        None,
        ge=1,
        description="Stop the search once this many trials have failed (default: never).",
    )


class CheckpointsSpec(_Model):
    """Checkpoint retention: which trials keep their checkpoint folders once the run ends.

    ``all`` keeps every one (as before the policy existed); ``best`` keeps the ``best_n`` best
    trials by the objective (``records.best_n_of``); ``none`` keeps none. A pruned trial can
    still be exported refitted, not with ``--no-refit``.
    """

    keep: Literal["all", "best", "none"] = Field(
        "all", description="all | best | none: whose checkpoint folders survive the end of the run.")
    best_n: int = Field(5, ge=1, description="keep: best: how many of the best trials keep theirs (default 5).")

    @model_validator(mode="after")
    def _best_n_for_best(self) -> CheckpointsSpec:
        if "best_n" in self.model_fields_set and self.keep != "best":
            raise ValueError(f"best_n: only with keep: best (keep: {self.keep} keeps "
                             f"{'every' if self.keep == 'all' else 'no'} checkpoint); remove best_n")
        return self


class CostSpec(_Model):
    """What a CPU-hour costs, to price a search (``--price-per-cpu-hour`` and
    ``TUNEHOUSE_PRICE_PER_CPU_HOUR`` take precedence). Not part of the spec hash: it changes no result."""

    per_cpu_hour: FiniteFloat = Field(gt=0, description="Price of one CPU-hour, in your currency (e.g. 0.05).")


class Spec(_Model):
    """A whole experiment, as written in ``search_spaces/*.yaml``."""

    name: str = Field(description="Experiment name: letters, digits, '.', '_' and '-'.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds sampling, splits and the model.")
    task: Task
    data: DataSpec
    model: ModelSpec
    preprocess: Preprocess | None = None
    evaluation: Evaluation = Field(default_factory=Evaluation)
    metrics: list[MetricSpec] = Field(min_length=1, description="The first is the objective.")
    objectives: list[MetricSpec] | None = Field(
        None, description="Two or more metrics to optimize at once: a Pareto search (they lead metrics).")
    search: SearchSpec
    space: dict[str, Domain] = Field(min_length=1)
    resources: Resources = Field(default_factory=Resources)
    time_budget_s: FiniteFloat | None = Field(None, gt=0)
    failure: FailureSpec = Field(default_factory=FailureSpec)
    refit: bool = Field(True, description="Exports refit the chosen trial on all training rows.")
    checkpoints: CheckpointsSpec = Field(
        default_factory=CheckpointsSpec, description="Checkpoint retention after the run (default: keep all).")
    cost: CostSpec | None = Field(None, description="Price a search's CPU-hours: {per_cpu_hour: 0.05}.")

    _path: Path | None = PrivateAttr(None)  # the file, resolved (relative data paths start there)
    _file: str = PrivateAttr("")  # the file as the user named it (what error messages show)
    _text: str = PrivateAttr("")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError(
                f"name {v!r} must be 1-128 letters, digits, '.', '_' or '-', start with a letter "
                "or digit, and contain no '..'"
            )
        return v

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return {"estimator": v} if isinstance(v, str) else v

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_shorthand(cls, v: Any) -> Any:
        return _metric_entries(v)

    @model_validator(mode="before")
    @classmethod
    def _objectives_lead_metrics(cls, v: Any) -> Any:
        """``objectives`` are metrics too: they lead ``metrics`` (which may then be left out),
        so everything that reads the metrics (scoring, modes, the catalog) sees them."""
        if not isinstance(v, dict) or v.get("objectives") is None:
            return v
        objectives = _metric_entries(v["objectives"])
        if not isinstance(objectives, list):
            return v
        metrics = _metric_entries(v.get("metrics") or [])
        names = [o.get("name") if isinstance(o, dict) else None for o in objectives]
        rest = []
        for m in metrics if isinstance(metrics, list) else []:
            if isinstance(m, dict) and m.get("name") in names:
                i = names.index(m["name"])
                o = objectives[i]
                if m.get("mode") is not None and o.get("mode") is not None and m["mode"] != o["mode"]:
                    raise ValueError(f"metrics: {m['name']!r} has mode {m['mode']} here and {o['mode']} "
                                     "in objectives; give its mode once, in objectives")
                if isinstance(o, dict) and o.get("mode") is None and m.get("mode") is not None:
                    objectives[i] = {**o, "mode": m["mode"]}
                continue
            rest.append(m)
        return {**v, "objectives": objectives, "metrics": [*objectives, *rest]}

    @field_validator("space", mode="before")
    @classmethod
    def _space_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: normalize_domain(d) for k, d in v.items()}
        return v

    @model_validator(mode="after")
    def _search_fits_space(self) -> Spec:
        algo = self.search.algorithm
        discrete = ALGORITHMS[algo].discrete_only
        for name, d in self.space.items():
            if discrete and isinstance(d, Uniform):
                raise ValueError(
                    f"space.{name}: {algo} search needs discrete values, got a continuous "
                    f"{d.type} domain; use 'grid' values, 'choice' or 'int'"
                )
            if algo != "grid" and isinstance(d, Grid):
                raise ValueError(
                    f"space.{name}: 'grid' values need search.algorithm: grid; use 'choice' "
                    f"for {algo} search"
                )
        if discrete and grid_size(self.space) > MAX_GRID_POINTS:
            raise ValueError(
                f"space: the grid has {grid_size(self.space)} points, more than {MAX_GRID_POINTS}"
            )
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"metrics: {dup!r} is listed twice; each metric may be listed once")
        self._check_early_stopping()
        self._check_objectives()
        ALGORITHMS[algo].validate(self)  # what only this algorithm needs (e.g. its sampler's package)
        return self

    def _check_early_stopping(self) -> None:
        es = self.search.early_stopping
        if es is None:
            return
        if self.task == "clustering":
            raise ValueError("search.early_stopping: a clustering trial fits once, on all rows; "
                             "remove early_stopping")
        if METRICS.get(self.metrics[0].name) is not None and METRICS[self.metrics[0].name].needs == "cost":
            raise ValueError(f"search.early_stopping: the objective {self.metrics[0].name!r} is measured on a "
                             "trial's final models only, so a scheduler has nothing to compare mid-trial; "
                             "make a score the objective, or remove early_stopping")
        if es.resource == "folds":
            cv = self.evaluation.cv
            if cv is None:
                raise ValueError("search.early_stopping.resource: folds needs evaluation.cv (k-fold CV), "
                                 "not a hold-out split; use resource: auto")
            if es.max_resource is not None and es.max_resource != cv:
                raise ValueError(f"search.early_stopping.max_resource: with resource: folds it is the "
                                 f"number of folds, {cv}; leave it out")

    def _check_objectives(self) -> None:
        if self.objectives is None:
            return
        if len(self.objectives) < 2:
            raise ValueError("objectives: a Pareto search needs two or more objectives; for one, "
                             "list it first in metrics and leave objectives out")
        if self.search.early_stopping is not None:
            raise ValueError("search.early_stopping: not with several objectives (a trial scheduler "
                             "compares trials by one metric, and Optuna cannot prune multi-objective "
                             "studies); remove early_stopping, or keep one objective")
        if self.search.algorithm == "bayes" and not SAMPLERS[self.search.sampler].multi_objective:
            multi = ", ".join(k for k, v in SAMPLERS.items() if v.multi_objective)
            raise ValueError(f"search.sampler: {self.search.sampler} optimizes one objective; with "
                             f"objectives use one of {multi}")

    def metric_field(self, i: int) -> str:
        """Where the i-th metric is written: ``objectives.i`` for an objective, else ``metrics.j``."""
        n = len(self.objectives or [])
        return f"objectives.{i}" if i < n else f"metrics.{i - n}"

    @property
    def pareto(self) -> bool:
        """Whether this is a multi-objective (Pareto) search: ``objectives`` lists two or more."""
        return self.objectives is not None

    @property
    def objective_modes(self) -> dict[str, Literal["min", "max"]]:
        """The objectives in order, each with its mode: one entry (the objective) unless ``pareto``."""
        return {m.name: metric_mode(m) for m in self.metrics[:len(self.objectives or [None])]}

    @property
    def early_stopping(self) -> EarlyStopping | None:
        return self.search.early_stopping

    @property
    def max_resource(self) -> int | None:
        """A trial's full budget under early stopping (the CV folds for resource: folds)."""
        es = self.search.early_stopping
        if es is None:
            return None
        return self.evaluation.cv if es.resource == "folds" else es.max_resource

    @property
    def min_resource(self) -> int | None:
        es = self.search.early_stopping
        if es is None:
            return None
        return es.min_resource if es.min_resource is not None else min(es.report_every, self.max_resource)

    def override(self, changes: dict[str, Any]) -> Spec:
        """A new Spec with dotted fields changed (``{"search.num_samples": 50}``), validated
        exactly like the file: an override cannot slip past a bound the spec would have hit.

        Raises:
            SpecError: naming the dotted field and what is allowed.
        """
        data = self.model_dump(mode="python", exclude_unset=True)
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        try:
            new = Spec.model_validate(data)
        except ValidationError as e:
            err = _from_validation_error(e, "", "")
            raise SpecError(err.reason, field=err.field) from None
        new._path, new._file, new._text = self._path, self._file, self._text
        return new

    def located(self, path: str | Path) -> Spec:
        """The same spec with relative data paths resolving next to ``path`` (where it once was)."""
        new = self.model_copy()
        new._path, new._file, new._text = Path(path), self._file or str(path), self._text
        return new

    # -- derived -----------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The file the spec was loaded from (None when built in Python)."""
        return self._path

    @property
    def file(self) -> str:
        """The spec's file as the user named it, for messages (``<spec>`` when built in Python)."""
        return self._file or "<spec>"

    @property
    def base_dir(self) -> Path:
        """Relative data paths resolve against the spec file's folder."""
        return self._path.parent if self._path else Path.cwd()

    @property
    def text(self) -> str:
        return self._text or yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical (validated, defaults filled) spec; stable under reformatting.

        Fields added later hash as if absent while they hold their defaults (which behave as
        before they existed), so an unchanged spec file keeps the hash the catalog recorded.
        The one exception in behaviour is the one-hot cap (``preprocess.max_categories``, 50):
        a text column of more than 50 categories is now capped under the same hash.
        """
        data = self.model_dump(mode="json")
        if self.failure == FailureSpec():
            del data["failure"]
        if self.checkpoints == CheckpointsSpec():
            del data["checkpoints"]
        del data["cost"]  # a price changes no result: the same search under any price
        if self.resources.memory_mb is None:
            del data["resources"]["memory_mb"]
        if self.search.early_stopping is None:
            del data["search"]["early_stopping"]
        if self.objectives is None:
            del data["objectives"]
        for key in ("drop", "positive_class"):
            if data["data"][key] is None:
                del data["data"][key]
        prep = data.get("preprocess")
        if prep is not None:
            if prep["max_categories"] == DEFAULT_MAX_CATEGORIES and prep["min_frequency"] is None:
                del prep["max_categories"], prep["min_frequency"]
        canon = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    @property
    def objective(self) -> MetricSpec:
        return self.metrics[0]

    @property
    def mode(self) -> Literal["min", "max"]:
        return metric_mode(self.objective)

    @property
    def metric_modes(self) -> dict[str, str]:
        """Every listed metric's mode (the spec's, else its direction): plain values for the catalog."""
        return {m.name: metric_mode(m) for m in self.metrics}

    @property
    def planned_trials(self) -> int:
        """How many trials the search runs: the grid's points times its repeats, else num_samples."""
        n = self.search.num_samples
        return n * grid_size(self.space) if ALGORITHMS[self.search.algorithm].discrete_only else n


def _metric_entries(v: Any) -> Any:
    """``metrics`` / ``objectives`` shorthand: one name or entry, or a list of names and entries."""
    if isinstance(v, (str, dict)):
        v = [v]
    if isinstance(v, list):
        return [{"name": m} if isinstance(m, str) else m for m in v]
    return v


def planned_trials(spec_text: str | None, num_samples: Any = None) -> int | None:
    """The trial count of a recorded spec text with the ``num_samples`` the run used (a
    ``--num-samples`` override included); None when the text cannot be read."""
    if not spec_text:
        return None
    try:
        spec = parse_spec(spec_text)
        if num_samples:
            spec = spec.override({"search.num_samples": int(num_samples)})
    except Exception:
        return None
    return spec.planned_trials


def override_num_samples(spec: Spec, num_samples: int) -> Spec:
    """``--num-samples N``: the spec with ``search.num_samples`` replaced, validated as the file is.

    Raises:
        SpecError: on ``--num-samples``, e.g. below 1 or above the spec's bound.
    """
    try:
        return spec.override({"search.num_samples": num_samples})
    except SpecError as e:
        raise SpecError(f"{e.reason} (search.num_samples)", field="--num-samples") from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors (``tunehouse schema``)."""
    schema = Spec.model_json_schema()
    schema["title"] = "tunehouse experiment spec"
    props = schema["properties"]
    # the shorthands the loader accepts (model: 'pkg.Class', metrics: [name], space.x: [values])
    props["model"] = {"anyOf": [{"type": "string"}, props["model"]], "description": "Estimator import path, or a mapping."}
    item = props["metrics"]["items"]
    props["metrics"] = {**props["metrics"], "items": {"anyOf": [{"type": "string"}, item]}}
    props["objectives"] = {"anyOf": [{"type": "array", "minItems": 2, "items": {"anyOf": [{"type": "string"}, item]}},
                                     {"type": "null"}], "description": props["objectives"].get("description", "")}
    space = props["space"]["additionalProperties"]
    props["space"]["additionalProperties"] = {"anyOf": [{"type": "array", "minItems": 1}, space]}
    return schema


# -- loading ------------------------------------------------------------------------------
def load_spec(path: str | Path) -> Spec:
    """Load a YAML spec and validate what the file alone decides (no data, no model).

    ``tunehouse.validate.validate`` then checks it against its data and model; the package's
    own ``tunehouse.load_spec`` does both.

    Raises:
        SpecError: with file, line, field and the expected value in its message.
    """
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise SpecError("no such file", file=shown)
    if p.is_dir():
        raise SpecError("is a directory, expected a YAML file", file=shown)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read: {e}", file=shown) from None
    spec = parse_spec(text, file=shown)
    spec._path, spec._file = p.resolve(), shown
    return spec


def parse_spec(text: str, *, file: str = "<spec>") -> Spec:
    """Validate spec text without touching the model or the data."""
    try:
        _refuse_aliases(text)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.context_mark or e.problem_mark  # where the bracket or quote opened
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise SpecError(f"invalid YAML: {what}", file=file, line=line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"invalid YAML: {str(e).splitlines()[0]}", file=file) from None
    except SpecError as e:
        raise SpecError(e.reason, file=file, line=e.line) from None
    except Exception as e:  # PyYAML's constructors raise ValueError, KeyError... for bad tags
        raise SpecError(f"invalid YAML value: {type(e).__name__}: {e}", file=file) from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise SpecError(f"expected a mapping of spec fields, got {got}", file=file, line=1)
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise SpecError(f"keys must be strings, got {bad_keys[0]!r}", file=file)
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        raise _from_validation_error(e, text, file) from None
    except (TypeError, ValueError, RecursionError) as e:  # defensive: odd YAML values
        raise SpecError(f"invalid spec: {e}", file=file) from None
    spec._text, spec._file = text, file
    return spec


def _refuse_aliases(text: str) -> None:
    """YAML anchors and aliases are refused: they allow recursive or exponentially large specs."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else None
            raise SpecError("YAML aliases (*name) are not supported in specs; write the value out", line=line)


# -- error formatting ----------------------------------------------------------------------
def locate(err: SpecError, spec: Spec) -> SpecError:
    """``err`` (raised by a check without a file) pointing at the spec's file and line."""
    if err.file:
        return err
    line = _line_for(_line_map(spec.text), err.field) if spec._text else None
    return type(err)(err.reason, file=spec.file, field=err.field, line=line)  # a DataError stays one


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.S)
_TAGS = {"uniform", "loguniform", "int", "choice", "grid", "str", "dict[str,any]"}


def _from_validation_error(err: ValidationError, text: str, file: str) -> SpecError:
    e = err.errors(include_url=False)[0]
    loc = [str(x) for x in e["loc"] if str(x) not in _TAGS and not str(x).startswith("function-")]
    kind, msg, given = e["type"], e["msg"], e.get("input")
    field = ".".join(loc)
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = _allowed_keys(parent)
        reason = f"unknown key {loc[-1]!r}{did_you_mean(loc[-1], allowed)}"
        if allowed:
            reason += f"; allowed: {', '.join(allowed)}"
    elif kind == "missing":
        reason = "required field is missing"
        parent = e.get("input")
        if isinstance(parent, dict) and loc:
            typo = difflib.get_close_matches(loc[-1], [str(k) for k in parent], n=1, cutoff=0.6)
            if typo and typo[0] != loc[-1]:
                loc = [*loc[:-1], typo[0]]
                field = ".".join(loc)
                reason = f"unknown key {typo[0]!r} (did you mean {e['loc'][-1]!r}?)"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        tag = given.get("type") if isinstance(given, dict) else None
        kinds = "uniform, loguniform, int, choice, grid"
        reason = (
            f"unknown domain type {tag!r}{did_you_mean(str(tag), kinds.split(', '))}; expected one of {kinds}"
            if tag is not None
            else f"expected a domain mapping with 'type' ({kinds}) or a list of values"
        )
    elif kind == "value_error":
        reason = msg.removeprefix("Value error, ")
        m = _FIELD_PREFIX.match(reason)
        if m:  # a model-level check names the field it is about, relative to its model
            sub = m.group(1).split(".")
            loc = [*loc, *sub]
            field, reason = ".".join(loc), m.group(2)
    else:
        reason = f"{msg[0].lower()}{msg[1:]}"
        if given is not None and not isinstance(given, (dict, list)):
            reason += f" (got {given!r})"
    return SpecError(reason, file=file, field=field or None, line=_line_for(_line_map(text), loc))


_DOMAIN_KEYS = ["type", "low", "high", "log", "values"]


def _allowed_keys(parent: list[str]) -> list[str]:
    """The keys allowed at ``parent`` (a path of field names, dict keys and list indexes)."""
    model: Any = Spec
    i = 0
    while i < len(parent):
        f = model.model_fields.get(parent[i]) if model is not None else None
        if f is None:
            return []
        if parent[i] == "space":
            return _DOMAIN_KEYS if len(parent) == i + 2 else []
        ann, nested = f.annotation, None
        for a in (ann, *typing.get_args(ann)):
            if isinstance(a, type) and issubclass(a, BaseModel):
                nested = a
                break
            if typing.get_origin(a) is list:  # list[Model]: the next part is an index
                inner = typing.get_args(a)[0]
                nested = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
                i += 1
                break
        model = nested
        i += 1
    return list(model.model_fields) if model is not None else []


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path of the YAML document to its (1-based) line."""
    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out

    seen: set[int] = set()

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in seen or len(path) > 50:  # aliases: each node once
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (str(k.value),)
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = path + (str(i),)
                out[key] = v.start_mark.line + 1
                walk(v, key)

    if root is not None:
        walk(root, ())
    return out


def _line_for(lines: dict[tuple[str, ...], int], field: str | list[str] | None) -> int | None:
    if not field:
        return None
    parts = field.split(".") if isinstance(field, str) else list(field)
    while parts:
        if tuple(parts) in lines:
            return lines[tuple(parts)]
        parts.pop()
    return None
