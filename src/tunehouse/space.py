"""The search-space vocabulary and its translations.

A space is a mapping of parameter name to one of five domains (uniform, loguniform, int,
choice, grid). This module turns it into Ray Tune domains (grid and random search) and into
an Optuna define-by-run function (Bayesian search). It knows nothing about models.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

if TYPE_CHECKING:  # pragma: no cover
    import optuna

Scalar = bool | int | float | str | None


class _Domain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def discrete(self) -> bool:
        return False

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this domain can produce (a warm start's "inside the space")."""
        raise NotImplementedError

    def describe(self) -> str:
        """The domain in a few characters, for messages: ``2..12``, ``one of [gini, entropy]``."""
        raise NotImplementedError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Uniform(_Domain):
    """A float drawn uniformly from [low, high]."""

    type: Literal["uniform"]
    low: FiniteFloat
    high: FiniteFloat

    @model_validator(mode="after")
    def _bounds(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low must be < high (got low={self.low}, high={self.high})")
        return self

    def contains(self, value: Any) -> bool:
        return _number(value) and self.low <= value <= self.high

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}"


class LogUniform(Uniform):
    """A float drawn uniformly in log space from [low, high]; low must be > 0."""

    type: Literal["loguniform"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.low <= 0:
            raise ValueError(f"loguniform needs low > 0 (got low={self.low})")
        return self


class Int(_Domain):
    """An integer from [low, high], both ends included; ``log: true`` samples in log space."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> Int:
        if not self.low <= self.high:
            raise ValueError(f"low must be <= high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"int with log: true needs low > 0 (got low={self.low})")
        return self

    def contains(self, value: Any) -> bool:
        """An integer in [low, high]; a float with an integral value (2.0) is not one."""
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        return f"{self.low}..{self.high}"

    @property
    def discrete(self) -> bool:
        return True

    @property
    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))


class Choice(_Domain):
    """One of a list of values (categorical)."""

    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1)

    @property
    def discrete(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:
        """One of the values, of the same kind: ``True`` is not ``1``, ``1.0`` is ``1``."""
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def describe(self) -> str:
        return "one of [" + ", ".join("null" if v is None else str(v) for v in self.values) + "]"


class Grid(Choice):
    """Values that a grid search enumerates exhaustively."""

    type: Literal["grid"]  # type: ignore[assignment]


Domain = Annotated[Uniform | LogUniform | Int | Choice | Grid, Field(discriminator="type")]
Space = dict[str, Domain]

#: Largest grid we agree to enumerate; a bigger one is almost always a spec mistake.
MAX_GRID_POINTS = 100_000


def normalize_domain(value: Any) -> Any:
    """Accept a bare YAML list as shorthand for ``{type: choice, values: [...]}``."""
    if isinstance(value, list):
        return {"type": "choice", "values": value}
    return value


def domain_size(domain: Domain) -> int:
    """Number of values of a discrete domain (computed, not enumerated)."""
    if isinstance(domain, Int):
        return domain.high - domain.low + 1
    if isinstance(domain, Choice):
        return len(domain.values)
    raise TypeError(f"{domain.type} is continuous")


def grid_size(space: Space) -> int:
    """Number of configurations in the product of a fully discrete space."""
    return math.prod(domain_size(d) for d in space.values())


def _discrete_values(domain: Domain) -> list[Any]:
    if isinstance(domain, Int):
        return domain.values
    if isinstance(domain, Choice):
        return list(domain.values)
    raise TypeError(f"{domain.type} is continuous")


def grid_points(space: Space) -> list[dict[str, Any]]:
    """Every configuration of a discrete space, in a stable order (the product)."""
    names = list(space)
    values = [_discrete_values(space[n]) for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def to_tune(space: Space, *, grid: bool) -> dict[str, Any]:
    """Translate to a Ray Tune ``param_space``.

    Args:
        space: the validated space.
        grid: enumerate every discrete domain with ``tune.grid_search`` (exhaustive product)
            instead of sampling it.
    """
    from ray import tune

    out: dict[str, Any] = {}
    for name, d in space.items():
        if grid:
            out[name] = tune.grid_search(_discrete_values(d))
        elif isinstance(d, LogUniform):
            out[name] = tune.loguniform(d.low, d.high)
        elif isinstance(d, Uniform):
            out[name] = tune.uniform(d.low, d.high)
        elif isinstance(d, Int):
            # Tune's randint excludes the upper bound; ours includes it.
            out[name] = tune.lograndint(d.low, d.high + 1) if d.log else tune.randint(d.low, d.high + 1)
        else:
            out[name] = tune.choice(list(d.values))
    return out


class OptunaSpace:
    """An Optuna define-by-run function suggesting every parameter of a space.

    A class rather than a closure: Ray Tune pickles the searcher with the experiment state.
    """

    def __init__(self, space: Space) -> None:
        self.space = space

    def __call__(self, trial: optuna.Trial) -> None:
        for name, d in self.space.items():
            if isinstance(d, LogUniform):
                trial.suggest_float(name, d.low, d.high, log=True)
            elif isinstance(d, Uniform):
                trial.suggest_float(name, d.low, d.high)
            elif isinstance(d, Int):
                trial.suggest_int(name, d.low, d.high, log=d.log)
            else:
                trial.suggest_categorical(name, list(d.values))


    def distributions(self) -> dict[str, Any]:
        """The same space as Optuna distributions (what warm-starting a study needs)."""
        import optuna.distributions as od

        out: dict[str, Any] = {}
        for name, d in self.space.items():
            if isinstance(d, LogUniform):
                out[name] = od.FloatDistribution(d.low, d.high, log=True)
            elif isinstance(d, Uniform):
                out[name] = od.FloatDistribution(d.low, d.high)
            elif isinstance(d, Int):
                out[name] = od.IntDistribution(d.low, d.high, log=d.log)
            else:
                out[name] = od.CategoricalDistribution(list(d.values))
        return out


def sample_points(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random configurations, a pure function of (space, n, seed).

    Random search runs exactly this list, so ``tunehouse resume`` can recompute it and run
    only the configurations the catalog does not already hold.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    names = list(space)
    points = []
    for _ in range(n):
        point: dict[str, Any] = {}
        for name in names:
            d = space[name]
            if isinstance(d, LogUniform):
                point[name] = float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
            elif isinstance(d, Uniform):
                point[name] = float(rng.uniform(d.low, d.high))
            elif isinstance(d, Int):
                if d.log:
                    v = math.exp(rng.uniform(math.log(d.low), math.log(d.high + 1)))
                    point[name] = int(min(d.high, max(d.low, math.floor(v))))
                else:
                    point[name] = int(rng.integers(d.low, d.high + 1))
            else:
                values = list(d.values)
                point[name] = values[int(rng.integers(len(values)))]
        points.append(point)
    return points


def to_optuna(space: Space) -> OptunaSpace:
    """Translate to an Optuna define-by-run function (Bayesian search)."""
    return OptunaSpace(space)


def contains(space: Space, config: dict[str, Any]) -> bool:
    """Whether every value of ``config`` lies in its domain (used by tests and resume)."""
    return all(name in config and d.contains(config[name]) for name, d in space.items())


def outside(space: Space, config: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``config`` is not a configuration of ``space``, or None when it is one.

    Returns ``(parameter, why)``, e.g. ``("max_depth", "outside 2..12")``: a value outside its
    domain, a parameter the space does not have (``"not in the space"``), or one the config
    lacks (``"missing"``). The rule a warm start uses: a trial is reused only inside the space.
    """
    for name, d in space.items():
        if name not in config:
            return name, "missing"
        if not d.contains(config[name]):
            return name, f"outside {d.describe()}"
    for name in config:
        if name not in space:
            return name, "not in the space"
    return None
