from __future__ import annotations

import optuna
import pytest
from pydantic import TypeAdapter, ValidationError

from tunehouse.space import Domain, contains, grid_points, grid_size, to_optuna, to_tune

SPACE = TypeAdapter(dict[str, Domain]).validate_python(
    {
        "a": {"type": "uniform", "low": 0.0, "high": 1.0},
        "b": {"type": "loguniform", "low": 1e-3, "high": 10.0},
        "c": {"type": "int", "low": 2, "high": 5},
        "d": {"type": "choice", "values": ["x", "y", None]},
    }
)


def test_grid_points_is_the_exact_product():
    space = TypeAdapter(dict[str, Domain]).validate_python(
        {"n": {"type": "int", "low": 1, "high": 3}, "k": {"type": "grid", "values": ["a", "b"]}}
    )
    pts = grid_points(space)
    assert grid_size(space) == 6
    assert sorted((p["n"], p["k"]) for p in pts) == [(n, k) for n in (1, 2, 3) for k in "ab"]


def test_int_upper_bound_is_inclusive_in_tune():
    from ray import tune

    dom = to_tune(SPACE, grid=False)["c"]
    samples = {dom.sample() for _ in range(400)}
    assert samples == {2, 3, 4, 5}
    assert isinstance(to_tune(SPACE, grid=False)["b"], tune.search.sample.Float)


def test_optuna_space_stays_in_bounds():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = to_optuna(SPACE)
    for _ in range(200):
        t = study.ask()
        define(t)
        assert contains(SPACE, t.params), t.params
        study.tell(t, 0.0)


@pytest.mark.parametrize(
    "domain",
    [
        {"type": "uniform", "low": 1, "high": 1},
        {"type": "loguniform", "low": 0, "high": 1},
        {"type": "int", "low": 3, "high": 2},
        {"type": "int", "low": 0, "high": 2, "log": True},
        {"type": "choice", "values": []},
    ],
)
def test_bad_domains_are_refused(domain):
    with pytest.raises(ValidationError):
        TypeAdapter(Domain).validate_python(domain)


def test_contains_rejects_out_of_bounds():
    assert contains(SPACE, {"a": 0.5, "b": 1.0, "c": 3, "d": "x"})
    assert not contains(SPACE, {"a": 1.5, "b": 1.0, "c": 3, "d": "x"})
    assert not contains(SPACE, {"a": 0.5, "b": 1.0, "c": 6, "d": "x"})
    assert not contains(SPACE, {"a": 0.5, "b": 1.0, "c": 3, "d": "z"})


def test_outside_names_the_first_parameter_not_in_the_space_and_why():
    from tunehouse.space import outside

    ok = {"a": 0.5, "b": 1.0, "c": 3, "d": None}
    assert outside(SPACE, ok) is None and contains(SPACE, ok)
    assert outside(SPACE, {**ok, "c": 6}) == ("c", "outside 2..5")
    assert outside(SPACE, {**ok, "c": 3.0}) == ("c", "outside 2..5")  # an int domain takes ints only
    assert outside(SPACE, {**ok, "a": 1.5}) == ("a", "outside 0..1")
    assert outside(SPACE, {**ok, "d": "z"}) == ("d", "outside one of [x, y, null]")
    assert outside(SPACE, {k: v for k, v in ok.items() if k != "b"}) == ("b", "missing")
    assert outside(SPACE, {**ok, "e": 1}) == ("e", "not in the space")
    assert not contains(SPACE, {k: v for k, v in ok.items() if k != "d"})  # a missing None is missing


def test_a_choice_tells_true_from_one():
    from tunehouse.space import Choice

    d = Choice(type="choice", values=[1, "a"])
    assert d.contains(1) and d.contains(1.0) and not d.contains(True) and not d.contains(2)
